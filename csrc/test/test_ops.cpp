// ctest for the vatt C++ library: each op, called through the dispatcher, against its plain libtorch form
// (forward) and libtorch autograd of that form (backward). Prints one line per check and a closing count.
#include <torch/torch.h>

#include <iostream>
#include <string>

#include "vatt_ops.h"

namespace {

int passed = 0, failed = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok      " : "FAILED  ") << what << "\n";
  (ok ? passed : failed) += 1;
}

bool close(const at::Tensor& a, const at::Tensor& b) { return a.sizes() == b.sizes() && at::allclose(a, b, 1e-9, 1e-9); }

template <typename Signature>
c10::TypedOperatorHandle<Signature> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

using Optional = const std::optional<at::Tensor>&;

void test_patch_embed() {
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  const auto x = torch::randn({2, 3, 8, 32, 50}, f64);  // the last 2 samples of width fill no patch
  const auto weight = torch::randn({16, 3 * 4 * 16 * 16}, f64).requires_grad_();
  const auto bias = torch::randn({16}, f64).requires_grad_();
  const auto pos = torch::randn({2 * 2 * 3, 16}, f64).requires_grad_();
  const auto keep = torch::tensor({7, 0, 11, 4}, torch::kLong);

  // The release's form: Conv3d with stride = kernel over every patch, add positions, keep the DropToken set.
  const auto conv = torch::conv3d(x, weight.view({16, 3, 4, 16, 16}), bias, {4, 16, 16});
  const auto expected = (conv.flatten(2).transpose(1, 2) + pos).index_select(1, keep);  // [2, 4, 16]
  const auto out = op<at::Tensor(const at::Tensor&, at::IntArrayRef, const at::Tensor&, Optional, Optional, Optional)>(
                       "vatt::patch_embed")
                       .call(x, {4, 16, 16}, weight.detach(), bias.detach(), pos.detach(), keep);
  check(close(out, expected.detach()), "patch_embed equals conv3d, add positions, then keep");

  const auto grad = torch::randn_like(expected);
  expected.backward(grad);
  auto [grad_x, grad_weight, grad_bias, grad_pos] =
      op<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                                                                      const at::Tensor&, Optional, std::array<bool, 4>)>(
          "vatt::patch_embed_backward")
          .call(grad, x, {4, 16, 16}, weight.detach(), keep, {false, true, true, true});
  check(!grad_x.defined(), "patch_embed_backward skips the input gradient when not asked for");
  check(close(grad_weight, weight.grad()) && close(grad_bias, bias.grad()) && close(grad_pos, pos.grad()),
        "patch_embed_backward equals autograd of the conv3d form");
}

void test_drop_tokens() {
  const auto tokens = torch::randn({3, 7, 5}, torch::kDouble).requires_grad_();
  const auto keep = torch::tensor({6, 0, 2, 2, 1, 4, 0, 0, 5}, torch::kLong).view({3, 3});
  const auto expected = tokens.gather(1, keep.unsqueeze(2).expand({3, 3, 5}));
  const auto out = op<at::Tensor(const at::Tensor&, const at::Tensor&)>("vatt::drop_tokens").call(tokens.detach(), keep);
  check(close(out, expected.detach()), "drop_tokens equals gather");

  const auto grad = torch::randn_like(expected);
  expected.backward(grad);
  const auto grad_tokens =
      op<at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt)>("vatt::drop_tokens_backward").call(grad, keep, 7);
  check(close(grad_tokens, tokens.grad()), "drop_tokens_backward adds repeated indices up");
}

// The plain form: every similarity in two [B, G·L] matrices, masked, and one log-sum-exp per row.
at::Tensor plain_contrastive(const at::Tensor& v, const at::Tensor& t, const at::Tensor& mask, double temperature) {
  const int64_t clips = v.size(0), candidates = t.size(1);
  const auto text_columns = t.reshape({clips * candidates, -1});
  const auto masked = torch::full({}, -1e9, v.options());
  const auto video_to_text = torch::where(mask.repeat_interleave(candidates), v.matmul(text_columns.t()) / temperature, masked);
  const auto text_to_video =
      torch::where(mask.unsqueeze(1), text_columns.matmul(v.t()).reshape({clips, -1}) / temperature, masked);
  const auto positives = (t * v.unsqueeze(1)).sum(-1) / temperature;  // [B, L]
  const auto loss = torch::cat({video_to_text, text_to_video}, 1).logsumexp(1) - positives.logsumexp(1);
  return torch::where(mask, loss, torch::zeros_like(loss));
}

void test_contrastive_rows() {
  const auto v = torch::nn::functional::normalize(torch::randn({6, 8}, torch::kDouble),
                                                  torch::nn::functional::NormalizeFuncOptions().dim(-1))
                     .requires_grad_();
  const auto t = torch::nn::functional::normalize(torch::randn({6, 3, 8}, torch::kDouble),
                                                  torch::nn::functional::NormalizeFuncOptions().dim(-1))
                     .requires_grad_();
  const auto mask = torch::tensor({true, false, true, true, false, true});
  const auto expected = plain_contrastive(v, t, mask, 0.1);
  auto [loss, row_lse] =
      op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const at::Tensor&, double, int64_t)>("vatt::contrastive_rows")
          .call(v.detach(), t.detach(), v.detach(), t.detach(), mask, mask, 0.1, 4);
  check(close(loss, expected.detach()), "contrastive_rows equals the plain masked log-sum-exp form");

  const auto grad = torch::randn_like(expected);
  expected.backward(grad);
  auto grads = op<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
      const at::Tensor&, const at::Tensor&, double, int64_t)>("vatt::contrastive_rows_backward")
                   .call(grad, row_lse, v.detach(), t.detach(), v.detach(), t.detach(), mask, mask, 0.1, 4);
  // v and t play both the local and the global role here, so their gradients are the sums of both.
  check(close(std::get<0>(grads) + std::get<2>(grads), v.grad()) && close(std::get<1>(grads) + std::get<3>(grads), t.grad()),
        "contrastive_rows_backward equals autograd of the plain form");
}

}  // namespace

int main() {
  torch::manual_seed(0);
  check(std::string(vatt::built_for_torch()).size() > 0, std::string("built for torch ") + vatt::built_for_torch());
  test_patch_embed();
  test_drop_tokens();
  test_contrastive_rows();
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
