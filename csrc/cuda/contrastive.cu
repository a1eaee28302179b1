// vatt::contrastive_rows on CUDA: the tiled MIL-NCE of csrc/cpu/contrastive.cpp, as a loop over column tiles
// with every row of a tile computed at once by cuBLAS (memory: rows × tile per step, never rows × G·L).
//
// Unlike the CPU kernel, clips without text are masked (column scores at -1e9, row weights at 0) instead of
// dropped: dropping needs nonzero(), which would synchronise the host with the GPU at every step.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

namespace vatt::cuda {

namespace {

constexpr double kMaskedLogit = -1e9;

// Log-sum-exp of each row of q @ kᵀ [M, N], masked columns at -1e9: [M].
at::Tensor tiled_row_logsumexp(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& column_ok,
                               int64_t tile) {
  at::Tensor lse = at::full({q.size(0)}, -std::numeric_limits<double>::infinity(), q.options());  // [M]
  for (int64_t first = 0; first < k.size(0); first += tile) {
    const int64_t width = std::min(tile, k.size(0) - first);
    at::Tensor scores = at::mm(q, k.narrow(0, first, width).t());  // [M, w]
    if (column_ok.has_value()) scores.masked_fill_(column_ok->narrow(0, first, width).logical_not(), kMaskedLogit);
    lse = at::logaddexp(lse, scores.logsumexp(1));
  }
  return lse;
}

// With P = coef · exp(q kᵀ − lse) per row (0 on masked columns), adds P k to dq and Pᵀ q to dk.
void accumulate_softmax_grads(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& column_ok,
                              const at::Tensor& lse, const at::Tensor& coef, int64_t tile, at::Tensor& dq,
                              at::Tensor& dk) {
  for (int64_t first = 0; first < k.size(0); first += tile) {
    const int64_t width = std::min(tile, k.size(0) - first);
    const at::Tensor k_tile = k.narrow(0, first, width);  // [w, D]
    at::Tensor weights = at::mm(q, k_tile.t()).sub_(lse.unsqueeze(1)).exp_().mul_(coef.unsqueeze(1));  // [M, w]
    if (column_ok.has_value()) weights.masked_fill_(column_ok->narrow(0, first, width).logical_not(), 0.0);
    dq.addmm_(weights, k_tile);
    dk.narrow(0, first, width).addmm_(weights.t(), q);
  }
}

// The inputs in the compute dtype (float64 stays, the rest is float32), queries pre-scaled by 1/τ.
struct Problem {
  at::Tensor video, video_scaled, text_scaled, text_rows, video_all, text_columns, column_ok;
  int64_t batch, candidates, dim, clips;
  double scale;

  Problem(const at::Tensor& v_local, const at::Tensor& t_local, const at::Tensor& v_all, const at::Tensor& t_all,
          const at::Tensor& mask_all, double temperature, int64_t tile_size)
      : batch(t_local.size(0)), candidates(t_local.size(1)), dim(t_local.size(2)), clips(v_all.size(0)),
        scale(1.0 / temperature) {
    TORCH_CHECK(temperature > 0 && tile_size > 0, "vatt::contrastive_rows (CUDA): temperature and tile_size must be "
                "positive, got ", temperature, " and ", tile_size);
    const at::ScalarType promoted = at::promote_types(at::promote_types(v_local.scalar_type(), t_local.scalar_type()),
                                                      at::promote_types(v_all.scalar_type(), t_all.scalar_type()));
    const at::ScalarType dtype = promoted == at::kDouble ? at::kDouble : at::kFloat;
    video = v_local.to(dtype);                                        // [B, D]
    video_scaled = video * scale;                                     // [B, D]
    text_scaled = t_local.to(dtype) * scale;                          // [B, L, D]
    text_rows = text_scaled.reshape({batch * candidates, dim});       // [B·L, D]
    video_all = v_all.to(dtype).contiguous();                         // [G, D]
    text_columns = t_all.to(dtype).reshape({clips * candidates, dim});  // [G·L, D]
    column_ok = per_text(mask_all);                                   // [G·L]
  }

  at::Tensor per_text(const at::Tensor& per_clip) const {  // [n] -> [n·L]
    return per_clip.unsqueeze(1).expand({per_clip.size(0), candidates}).reshape({-1});
  }
  at::Tensor positive_logits() const { return (text_scaled * video.unsqueeze(1)).sum(-1); }  // [B, L]
};

}  // namespace

std::tuple<at::Tensor, at::Tensor> contrastive_rows(const at::Tensor& v_local, const at::Tensor& t_local,
                                                    const at::Tensor& v_all, const at::Tensor& t_all,
                                                    const at::Tensor& mask_local, const at::Tensor& mask_all,
                                                    double temperature, int64_t tile_size) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const c10::cuda::CUDAGuard device_guard(v_local.device());
  const Problem p(v_local, t_local, v_all, t_all, mask_all, temperature, tile_size);
  const at::Tensor video_to_text = tiled_row_logsumexp(p.video_scaled, p.text_columns, p.column_ok, tile_size);
  const at::Tensor text_to_video =
      tiled_row_logsumexp(p.text_rows, p.video_all, std::nullopt, tile_size).view({p.batch, p.candidates}).logsumexp(1);
  const at::Tensor denominator = at::logaddexp(video_to_text, text_to_video);  // [B]
  const at::Tensor loss = denominator - p.positive_logits().logsumexp(1);      // [B]
  const at::Tensor zero = at::zeros({}, loss.options());
  return {at::where(mask_local, loss, zero), at::where(mask_local, denominator, zero)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> contrastive_rows_backward(
    const at::Tensor& grad_loss, const at::Tensor& row_lse, const at::Tensor& v_local,
    const at::Tensor& t_local, const at::Tensor& v_all, const at::Tensor& t_all, const at::Tensor& mask_local,
    const at::Tensor& mask_all, double temperature, int64_t tile_size) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const c10::cuda::CUDAGuard device_guard(v_local.device());
  const Problem p(v_local, t_local, v_all, t_all, mask_all, temperature, tile_size);
  const auto dtype = p.video.scalar_type();
  const at::Tensor coef = at::where(mask_local, grad_loss.to(dtype), at::zeros({}, p.video.options()));  // [B]
  // Rows without text get lse = +inf, so exp(s − lse) = 0 there instead of overflowing.
  const at::Tensor lse = at::where(mask_local, row_lse.to(dtype),
                                   at::full({}, std::numeric_limits<double>::infinity(), p.video.options()));

  at::Tensor grad_video = at::zeros_like(p.video), grad_text_columns = at::zeros_like(p.text_columns);
  accumulate_softmax_grads(p.video_scaled, p.text_columns, p.column_ok, lse, coef, tile_size, grad_video,
                           grad_text_columns);
  at::Tensor grad_text = at::zeros_like(p.text_rows), grad_video_all = at::zeros_like(p.video_all);
  accumulate_softmax_grads(p.text_rows, p.video_all, std::nullopt, p.per_text(lse), p.per_text(coef), tile_size,
                           grad_text, grad_video_all);
  grad_video.mul_(p.scale);  // queries were pre-scaled by 1/τ: d s / d query = key / τ
  grad_text.mul_(p.scale);

  const at::Tensor weights = p.positive_logits().softmax(1).mul_(coef.unsqueeze(1));  // [B, L]
  grad_video.sub_((weights.unsqueeze(2) * p.text_scaled).sum(1));
  grad_text.sub_((weights.unsqueeze(2) * p.video_scaled.unsqueeze(1)).reshape({p.batch * p.candidates, p.dim}));
  return {grad_video.to(v_local.scalar_type()), grad_text.view(t_local.sizes()).to(t_local.scalar_type()),
          grad_video_all.to(v_all.scalar_type()), grad_text_columns.view(t_all.sizes()).to(t_all.scalar_type())};
}

TORCH_LIBRARY_IMPL(vatt, CUDA, m) {
  m.impl("contrastive_rows", &contrastive_rows);
  m.impl("contrastive_rows_backward", &contrastive_rows_backward);
}

}  // namespace vatt::cuda
