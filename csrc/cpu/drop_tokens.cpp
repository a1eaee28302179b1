// vatt::drop_tokens on the CPU: gather the kept rows of a token tensor; scatter-add them back in the backward.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>

#include "../vatt_ops.h"
#include "keep_indices.h"

namespace vatt::cpu {

namespace {

// Rows per parallel task: each row is D contiguous values; below ~256k values, waking threads costs more
// than it saves.
int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, 262144 / std::max<int64_t>(dim, 1)); }

}  // namespace

at::Tensor drop_tokens(const at::Tensor& tokens, const at::Tensor& keep) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // inner ATen calls skip autograd
  TORCH_CHECK(tokens.dim() == 3, "vatt::drop_tokens: tokens must be [B, N, D], got shape ", tokens.sizes());
  const int64_t batch = tokens.size(0), num_tokens = tokens.size(1), dim = tokens.size(2);
  const KeepIndices kept(keep, batch, num_tokens);
  const int64_t count = kept.kept();

  const at::Tensor source = tokens.contiguous();
  at::Tensor out = at::empty({batch, count, dim}, tokens.options());  // [B, K, D]
  const auto* src = static_cast<const char*>(source.const_data_ptr());
  auto* dst = static_cast<char*>(out.mutable_data_ptr());
  const int64_t row_bytes = dim * static_cast<int64_t>(tokens.element_size());

  at::parallel_for(0, batch * count, row_grain(dim), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / count, k = row % count;
      std::memcpy(dst + row * row_bytes, src + (b * num_tokens + kept.at(b, k)) * row_bytes, row_bytes);
    }
  });
  return out;
}

at::Tensor drop_tokens_backward(const at::Tensor& grad, const at::Tensor& keep, int64_t num_tokens) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // inner ATen calls skip autograd
  TORCH_CHECK(grad.dim() == 3, "vatt::drop_tokens_backward: grad must be [B, K, D], got shape ", grad.sizes());
  const int64_t batch = grad.size(0), count = grad.size(1), dim = grad.size(2);
  const KeepIndices kept(keep, batch, num_tokens);
  TORCH_CHECK(kept.kept() == count, "vatt::drop_tokens_backward: grad has ", count, " tokens but keep lists ",
              kept.kept());

  const at::Tensor grad_rows = grad.contiguous();
  at::Tensor grad_tokens = at::zeros({batch, num_tokens, dim}, grad.options());  // [B, N, D]
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "vatt_drop_tokens_backward", [&] {
    scatter_add_rows(grad_rows.const_data_ptr<scalar_t>(), kept, batch, dim, num_tokens,
                     grad_tokens.mutable_data_ptr<scalar_t>());
  });
  return grad_tokens;
}

TORCH_LIBRARY_IMPL(vatt, CPU, m) {
  m.impl("drop_tokens", &drop_tokens);
  m.impl("drop_tokens_backward", &drop_tokens_backward);
}

}  // namespace vatt::cpu
