// Public C++ surface of the vatt ops: the CPU kernels behind the `vatt::` schemas (vatt/ops/schemas.def,
// registered by vatt_ops.cpp).
//
// C++ users normally call the ops through the dispatcher (`torch::Dispatcher` / `c10::Dispatcher`), which
// picks the CPU or CUDA kernel; the functions are declared here so that a program linking the library can
// also call the CPU kernels directly (the ctest in csrc/test does both).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Optional.h>

#include <array>
#include <tuple>

namespace vatt {

// Version string of the torch the library was compiled against, e.g. "2.13.0+cpu".
const char* built_for_torch();

namespace cpu {

// x: video [B, C, T, H, W], waveform [B, S] or 2-D map [B, C, F, T]; weight [D, P]; bias [D]; pos [N, D];
// keep: none, [K] shared by the batch, or [B, K] per sample. Returns the kept patch embeddings [B, K, D].
at::Tensor patch_embed(const at::Tensor& x, at::IntArrayRef patch_size, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& pos,
                       const std::optional<at::Tensor>& keep);

// Gradients for (x, weight, bias, pos); an entry of output_mask that is false gives an undefined tensor.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> patch_embed_backward(
    const at::Tensor& grad, const at::Tensor& x, at::IntArrayRef patch_size, const at::Tensor& weight,
    const std::optional<at::Tensor>& keep, std::array<bool, 4> output_mask);

// tokens [B, N, D], keep [K] or [B, K] -> [B, K, D].
at::Tensor drop_tokens(const at::Tensor& tokens, const at::Tensor& keep);
at::Tensor drop_tokens_backward(const at::Tensor& grad, const at::Tensor& keep, int64_t num_tokens);

// Per-row MIL-NCE / NCE of local clips against the global batch; returns (loss [B], log-sum-exp of each
// row's denominator [B], kept for the backward). Both are 0 on rows whose clip has no text.
std::tuple<at::Tensor, at::Tensor> contrastive_rows(const at::Tensor& v_local, const at::Tensor& t_local,
                                                    const at::Tensor& v_all, const at::Tensor& t_all,
                                                    const at::Tensor& mask_local, const at::Tensor& mask_all,
                                                    double temperature, int64_t tile_size);

// Gradients for (v_local, t_local, v_all, t_all), recomputing the similarity tiles.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> contrastive_rows_backward(
    const at::Tensor& grad_loss, const at::Tensor& row_lse, const at::Tensor& v_local,
    const at::Tensor& t_local, const at::Tensor& v_all, const at::Tensor& t_all, const at::Tensor& mask_local,
    const at::Tensor& mask_all, double temperature, int64_t tile_size);

}  // namespace cpu
}  // namespace vatt
