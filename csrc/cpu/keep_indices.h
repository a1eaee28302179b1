// The `keep` argument shared by patch_embed and drop_tokens, checked once and read uniformly.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <optional>

namespace vatt::cpu {

// Indices of the kept tokens for every sample: a shared [K] set, a per-sample [B, K] set, or all N tokens.
class KeepIndices {
 public:
  KeepIndices(const std::optional<at::Tensor>& keep, int64_t batch, int64_t num_tokens)
      : num_tokens_(num_tokens) {
    if (!keep.has_value()) {
      indices_ = at::arange(num_tokens, at::TensorOptions().dtype(at::kLong));  // [N]
      shared_ = true;
    } else {
      const at::Tensor& k = *keep;
      TORCH_CHECK(k.scalar_type() == at::kLong, "vatt: keep must be an int64 tensor, got ", k.scalar_type());
      TORCH_CHECK(k.device().is_cpu(), "vatt: keep must be on the CPU like the input, got ", k.device());
      TORCH_CHECK(k.dim() == 1 || (k.dim() == 2 && k.size(0) == batch),
                  "vatt: keep must be [K] or [B, K] with B = ", batch, ", got shape ", k.sizes());
      indices_ = k.contiguous();
      shared_ = k.dim() == 1;
    }
    kept_ = indices_.size(-1);
    data_ = indices_.data_ptr<int64_t>();
    check_range();
  }

  int64_t kept() const { return kept_; }
  bool shared() const { return shared_; }
  const at::Tensor& tensor() const { return indices_; }

  // Token index of kept slot k of sample b.
  int64_t at(int64_t b, int64_t k) const { return shared_ ? data_[k] : data_[b * kept_ + k]; }

 private:
  void check_range() const {
    for (int64_t i = 0; i < indices_.numel(); ++i) {
      TORCH_CHECK(data_[i] >= 0 && data_[i] < num_tokens_, "vatt: keep index ", data_[i], " is outside [0, ",
                  num_tokens_, ")");
    }
  }

  at::Tensor indices_;
  const int64_t* data_ = nullptr;
  int64_t num_tokens_;
  int64_t kept_ = 0;
  bool shared_ = true;
};

// Adds row (b, k) of source [B*K, D] to row b * sample_rows + keep(b, k) of target. Threads split the D columns,
// never the rows, so an index listed twice (or one position kept by many samples) needs no atomics.
template <typename source_t, typename target_t>
void scatter_add_rows(const source_t* source, const KeepIndices& kept, int64_t batch, int64_t dim,
                      int64_t sample_rows, target_t* target) {
  const int64_t rows = batch * kept.kept();
  // Below ~256k added values, waking threads costs more than it saves.
  at::parallel_for(0, dim, std::max<int64_t>(1, 262144 / std::max<int64_t>(rows, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t b = row / kept.kept();
      target_t* out = target + (b * sample_rows + kept.at(b, row % kept.kept())) * dim;
      const source_t* in = source + row * dim;
      for (int64_t d = begin; d < end; ++d) out[d] += static_cast<target_t>(in[d]);
    }
  });
}

}  // namespace vatt::cpu
