// vatt::contrastive_rows on the CPU: the MIL-NCE / NCE loss of local clips against the global batch, in tiles.
//
// For local clip i (with text), s = cosine / τ of L2-normalised embeddings:
//   denominator_i = { s(v_i, t_jl) : clip j has text }  ∪  { s(v_j, t_il) : all clips j },  over all l
//   loss_i        = logsumexp(denominator_i) − logsumexp_l s(v_i, t_il)
// Masked similarities (-1e9 in the plain form) contribute exactly nothing, so rows and columns without text
// are dropped up front and the tiles need no masking. Both directions are "log-sum-exp of each row of
// Q Kᵀ": video rows against text columns, and text rows (grouped L per clip) against video columns. The
// forward keeps a running max and sum per row over column tiles (online log-sum-exp); the backward recomputes
// each tile's probabilities from the saved per-row log-sum-exp. Nothing of size B×G×L is ever stored.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "../vatt_ops.h"

namespace vatt::cpu {

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

int64_t tile_count(int64_t size, int64_t tile) { return (size + tile - 1) / tile; }

// Tiles of the side that threads split: at most an even share per thread, so a small batch uses every thread.
int64_t split_tile(int64_t size, int64_t tile) {
  return std::max<int64_t>(1, std::min(tile, tile_count(size, at::get_num_threads())));
}

// Log-sum-exp of each row of q @ kᵀ, q [M, D], k [N, D] -> [M]; -inf for every row when N = 0.
at::Tensor tiled_row_logsumexp(const at::Tensor& q, const at::Tensor& k, int64_t tile) {
  const int64_t rows = q.size(0), cols = k.size(0);
  at::Tensor lse = at::full({rows}, -kInfinity, q.options());  // [M]
  if (rows == 0 || cols == 0) return lse;
  const int64_t row_tile = split_tile(rows, tile);
  at::parallel_for(0, tile_count(rows, row_tile), 1, [&](int64_t begin, int64_t end) {
    const at::AutoDispatchBelowADInplaceOrView below_autograd;  // thread-local: worker threads need their own
    at::Tensor scores_buffer = at::empty({row_tile * std::min(tile, cols)}, q.options());
    for (int64_t t = begin; t < end; ++t) {
      const int64_t first = t * row_tile, count = std::min(row_tile, rows - first);
      const at::Tensor q_tile = q.narrow(0, first, count);              // [r, D]
      at::Tensor running_max = at::full({count}, -kInfinity, q.options());  // [r]
      at::Tensor running_sum = at::zeros({count}, q.options());             // [r]
      for (int64_t c = 0; c < cols; c += tile) {
        const int64_t width = std::min(tile, cols - c);
        at::Tensor scores = scores_buffer.narrow(0, 0, count * width).view({count, width});  // [r, c]
        at::mm_out(scores, q_tile, k.narrow(0, c, width).t());
        const at::Tensor new_max = at::maximum(running_max, at::amax(scores, 1));  // [r]
        // Rescale the sum so far to the new max, then add this tile's terms.
        running_sum.mul_((running_max - new_max).exp_());
        running_sum.add_(scores.sub_(new_max.unsqueeze(1)).exp_().sum(1));
        running_max = new_max;
      }
      lse.narrow(0, first, count).copy_(running_sum.log_().add_(running_max));
    }
  });
  return lse;
}

// With P = coef_r · exp(q kᵀ − lse_r) (each row's softmax weights over the columns, scaled by coef), adds
// P k to dq and Pᵀ q to dk. Threads split the longer side and own its slice of the gradient; the shorter
// side's gradient is summed in one buffer per thread, so its memory is threads × min(M, N) × D.
void accumulate_softmax_grads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& lse,
                              const at::Tensor& coef, int64_t tile, at::Tensor& dq, at::Tensor& dk) {
  const int64_t rows = q.size(0), cols = k.size(0), dim = q.size(1);
  if (rows == 0 || cols == 0) return;
  const bool split_rows = rows >= cols;
  const int64_t outer = split_rows ? rows : cols, inner = split_rows ? cols : rows;
  at::Tensor partial = at::zeros({at::get_num_threads(), inner, dim}, q.options());  // [threads, inner, D]
  const int64_t outer_tile = split_tile(outer, tile);
  at::parallel_for(0, tile_count(outer, outer_tile), 1, [&](int64_t begin, int64_t end) {
    const at::AutoDispatchBelowADInplaceOrView below_autograd;  // thread-local: worker threads need their own
    at::Tensor own_partial = partial[at::get_thread_num()];  // [inner, D]
    at::Tensor weights_buffer = at::empty({outer_tile * std::min(tile, inner)}, q.options());
    for (int64_t t = begin; t < end; ++t) {
      const int64_t outer_first = t * outer_tile, outer_count = std::min(outer_tile, outer - outer_first);
      for (int64_t inner_first = 0; inner_first < inner; inner_first += tile) {
        const int64_t inner_count = std::min(tile, inner - inner_first);
        const int64_t r0 = split_rows ? outer_first : inner_first, rn = split_rows ? outer_count : inner_count;
        const int64_t c0 = split_rows ? inner_first : outer_first, cn = split_rows ? inner_count : outer_count;
        const at::Tensor q_tile = q.narrow(0, r0, rn), k_tile = k.narrow(0, c0, cn);  // [r, D], [c, D]
        at::Tensor weights = weights_buffer.narrow(0, 0, rn * cn).view({rn, cn});     // [r, c]
        at::mm_out(weights, q_tile, k_tile.t());
        weights.sub_(lse.narrow(0, r0, rn).unsqueeze(1)).exp_().mul_(coef.narrow(0, r0, rn).unsqueeze(1));
        at::Tensor dq_tile = split_rows ? dq.narrow(0, r0, rn) : own_partial.narrow(0, r0, rn);  // [r, D]
        at::Tensor dk_tile = split_rows ? own_partial.narrow(0, c0, cn) : dk.narrow(0, c0, cn);  // [c, D]
        dq_tile.addmm_(weights, k_tile);
        dk_tile.addmm_(weights.t(), q_tile);
      }
    }
  });
  (split_rows ? dk : dq).add_(partial.sum(0));
}

// The inputs reduced to the clips that take part: rows and columns with text, in the compute dtype.
struct ContrastiveProblem {
  at::Tensor rows, cols;    // [B'], [G']: indices of local / global clips with text
  at::Tensor video;         // [B', D] local videos with text
  at::Tensor video_scaled;  // [B', D] the same / τ (the queries of the video→text direction)
  at::Tensor text_scaled;   // [B', L, D] their candidate texts / τ
  at::Tensor text_columns;  // [G'·L, D] every candidate text of every global clip with text
  at::Tensor video_all;     // [G, D] every global video
  int64_t candidates = 1;
  double scale = 1.0;

  ContrastiveProblem(const at::Tensor& v_local, const at::Tensor& t_local, const at::Tensor& v_all,
                     const at::Tensor& t_all, const at::Tensor& mask_local, const at::Tensor& mask_all,
                     double temperature, int64_t tile_size) {
    TORCH_CHECK(v_local.dim() == 2 && t_local.dim() == 3 && v_all.dim() == 2 && t_all.dim() == 3,
                "vatt::contrastive_rows: expected v_local [B, D], t_local [B, L, D], v_all [G, D], t_all [G, L, D]; "
                "got ", v_local.sizes(), ", ", t_local.sizes(), ", ", v_all.sizes(), ", ", t_all.sizes());
    const int64_t batch = v_local.size(0), dim = v_local.size(1), global = v_all.size(0);
    candidates = t_local.size(1);
    TORCH_CHECK(t_local.size(0) == batch && t_local.size(2) == dim && v_all.size(1) == dim &&
                    t_all.size(0) == global && t_all.size(1) == candidates && t_all.size(2) == dim,
                "vatt::contrastive_rows: inconsistent shapes v_local ", v_local.sizes(), ", t_local ", t_local.sizes(),
                ", v_all ", v_all.sizes(), ", t_all ", t_all.sizes());
    TORCH_CHECK(mask_local.scalar_type() == at::kBool && mask_all.scalar_type() == at::kBool &&
                    mask_local.sizes() == at::IntArrayRef{batch} && mask_all.sizes() == at::IntArrayRef{global},
                "vatt::contrastive_rows: masks must be bool [B] and [G], got ", mask_local.sizes(), " ",
                mask_local.scalar_type(), " and ", mask_all.sizes(), " ", mask_all.scalar_type());
    TORCH_CHECK(temperature > 0 && std::isfinite(temperature), "vatt::contrastive_rows: temperature must be positive, got ",
                temperature);
    TORCH_CHECK(tile_size > 0, "vatt::contrastive_rows: tile_size must be positive, got ", tile_size);
    TORCH_CHECK(global > 0 || batch == 0, "vatt::contrastive_rows: the global batch is empty");

    const at::ScalarType dtype = compute_dtype(v_local, t_local, v_all, t_all);
    scale = 1.0 / temperature;
    rows = at::nonzero(mask_local).squeeze(1);
    cols = at::nonzero(mask_all).squeeze(1);
    video = v_local.to(dtype).index_select(0, rows);                     // [B', D]
    video_scaled = video * scale;                                        // [B', D]
    text_scaled = t_local.to(dtype).index_select(0, rows).mul_(scale);  // [B', L, D]
    text_columns = t_all.to(dtype).index_select(0, cols).view({cols.size(0) * candidates, dim});  // [G'·L, D]
    video_all = v_all.to(dtype).contiguous();                            // [G, D]
  }

  // float64 stays float64; everything else is computed in float32 (exp of 1/τ-scaled logits needs its range).
  static at::ScalarType compute_dtype(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                                      const at::Tensor& d) {
    const at::ScalarType promoted =
        at::promote_types(at::promote_types(a.scalar_type(), b.scalar_type()), at::promote_types(c.scalar_type(), d.scalar_type()));
    TORCH_CHECK(at::isFloatingType(promoted), "vatt::contrastive_rows: embeddings must be floating point, got ", promoted);
    return promoted == at::kDouble ? at::kDouble : at::kFloat;
  }

  // Each text row (clip i, candidate l) stands for clip i: its per-clip values repeated L times.
  at::Tensor per_text(const at::Tensor& per_clip) const { return per_clip.repeat_interleave(candidates); }

  at::Tensor text_rows() const { return text_scaled.view({rows.size(0) * candidates, video.size(1)}); }  // [B'·L, D]

  at::Tensor positive_logits() const {
    return (text_scaled * video.unsqueeze(1)).sum(-1);  // [B', L]
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor> contrastive_rows(const at::Tensor& v_local, const at::Tensor& t_local,
                                                    const at::Tensor& v_all, const at::Tensor& t_all,
                                                    const at::Tensor& mask_local, const at::Tensor& mask_all,
                                                    double temperature, int64_t tile_size) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // inner ATen calls skip autograd
  const ContrastiveProblem p(v_local, t_local, v_all, t_all, mask_local, mask_all, temperature, tile_size);
  const int64_t clips = p.rows.size(0);

  const at::Tensor video_to_text = tiled_row_logsumexp(p.video_scaled, p.text_columns, tile_size);  // [B']
  const at::Tensor text_to_video =
      tiled_row_logsumexp(p.text_rows(), p.video_all, tile_size)  // [B'·L]
          .view({clips, p.candidates})
          .logsumexp(1);  // [B']
  const at::Tensor denominator = at::logaddexp(video_to_text, text_to_video);  // [B']
  const at::Tensor positives = p.positive_logits().logsumexp(1);                // [B']

  const auto options = p.video.options();
  at::Tensor loss = at::zeros({v_local.size(0)}, options).index_copy_(0, p.rows, denominator - positives);
  at::Tensor row_lse = at::zeros({v_local.size(0)}, options).index_copy_(0, p.rows, denominator);
  return {loss, row_lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> contrastive_rows_backward(
    const at::Tensor& grad_loss, const at::Tensor& row_lse, const at::Tensor& v_local,
    const at::Tensor& t_local, const at::Tensor& v_all, const at::Tensor& t_all, const at::Tensor& mask_local,
    const at::Tensor& mask_all, double temperature, int64_t tile_size) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // inner ATen calls skip autograd
  const ContrastiveProblem p(v_local, t_local, v_all, t_all, mask_local, mask_all, temperature, tile_size);
  const int64_t clips = p.rows.size(0), dim = p.video.size(1);
  const auto options = p.video.options();
  TORCH_CHECK(grad_loss.sizes() == row_lse.sizes() && grad_loss.sizes() == at::IntArrayRef{v_local.size(0)},
              "vatt::contrastive_rows_backward: grad_loss and row_lse must be [B], got ", grad_loss.sizes(), " and ",
              row_lse.sizes());
  const at::Tensor coef = grad_loss.to(options.dtype()).index_select(0, p.rows);     // [B']
  const at::Tensor denominator = row_lse.to(options.dtype()).index_select(0, p.rows);  // [B']

  // Denominator terms: d loss_i / d s = coef_i · softmax weight of s in row i.
  at::Tensor grad_video = at::zeros({clips, dim}, options);                // [B', D]
  at::Tensor grad_text_columns = at::zeros_like(p.text_columns);           // [G'·L, D]
  accumulate_softmax_grads(p.video_scaled, p.text_columns, denominator, coef, tile_size, grad_video,
                           grad_text_columns);
  at::Tensor grad_text = at::zeros({clips * p.candidates, dim}, options);  // [B'·L, D]
  at::Tensor grad_video_all = at::zeros_like(p.video_all);                 // [G, D]
  accumulate_softmax_grads(p.text_rows(), p.video_all, p.per_text(denominator), p.per_text(coef),
                           tile_size, grad_text, grad_video_all);
  // The queries were pre-scaled by 1/τ, so d s / d query = k / τ; the keys' gradients already carry it.
  grad_video.mul_(p.scale);
  grad_text.mul_(p.scale);

  // Positive terms enter with a minus sign: d loss_i / d s_il = −coef_i · softmax_l(s_i·).
  const at::Tensor weights = p.positive_logits().softmax(1).mul_(coef.unsqueeze(1));        // [B', L]
  grad_video.sub_((weights.unsqueeze(2) * p.text_scaled).sum(1));                           // [B', D]
  grad_text.sub_((weights.unsqueeze(2) * p.video_scaled.unsqueeze(1)).view({clips * p.candidates, dim}));

  at::Tensor grad_v_local = at::zeros(v_local.sizes(), options).index_copy_(0, p.rows, grad_video);
  at::Tensor grad_t_local =
      at::zeros(t_local.sizes(), options).index_copy_(0, p.rows, grad_text.view({clips, p.candidates, dim}));
  at::Tensor grad_t_all =
      at::zeros(t_all.sizes(), options).index_copy_(0, p.cols, grad_text_columns.view({p.cols.size(0), p.candidates, dim}));
  return {grad_v_local.to(v_local.scalar_type()), grad_t_local.to(t_local.scalar_type()),
          grad_video_all.to(v_all.scalar_type()), grad_t_all.to(t_all.scalar_type())};
}

TORCH_LIBRARY_IMPL(vatt, CPU, m) {
  m.impl("contrastive_rows", &contrastive_rows);
  m.impl("contrastive_rows_backward", &contrastive_rows_backward);
}

}  // namespace vatt::cpu
