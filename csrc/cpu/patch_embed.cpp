// vatt::patch_embed on the CPU: read only the kept raw patches, project them, add bias and positions.
//
// Rows (sample, kept slot) are processed in blocks: a block's raw patches are gathered straight from x into
// a small buffer (in parallel) and projected by one matmul into the output, which was pre-filled with
// bias + pos. Neither the full patch tensor nor the full [B, N, D] embedding is ever built. The backward
// re-gathers the patches block by block, accumulating the weight gradient, and scatters patch gradients into x
// block by block when x needs a gradient.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../vatt_ops.h"
#include "keep_indices.h"

namespace vatt::cpu {

namespace {

// Where each patch of a contiguous input lives. A patch is flattened as [C, p_1, ..., p_d] (ConvNd kernel
// order); its last axis is contiguous in x, so a patch is `runs` contiguous runs of `run` values each.
struct PatchLayout {
  int64_t batch = 0, channels = 1, num_patches = 1, patch_values = 1, run = 1, batch_stride = 0;
  std::vector<int64_t> grid, patch, axis_stride;  // per signal axis
  std::vector<int64_t> run_offsets;               // [runs]: start of each run relative to the patch origin

  PatchLayout(const at::Tensor& x, at::IntArrayRef patch_size) {
    const int64_t axes = static_cast<int64_t>(patch_size.size());
    TORCH_CHECK(axes >= 1 && (x.dim() == axes + 1 || x.dim() == axes + 2),
                "vatt::patch_embed: x of shape ", x.sizes(), " does not match patch_size ", patch_size,
                " (expected [B, C, *signal] or, for one channel, [B, *signal])");
    const bool has_channels = x.dim() == axes + 2;
    batch = x.size(0);
    channels = has_channels ? x.size(1) : 1;
    const int64_t first_axis = has_channels ? 2 : 1;
    // x is contiguous: strides follow from the sizes
    axis_stride.assign(axes, 1);
    for (int64_t a = axes - 2; a >= 0; --a) axis_stride[a] = axis_stride[a + 1] * x.size(first_axis + a + 1);
    const int64_t channel_stride = axis_stride[0] * x.size(first_axis);
    batch_stride = channel_stride * channels;
    for (int64_t a = 0; a < axes; ++a) {
      TORCH_CHECK(patch_size[a] > 0, "vatt::patch_embed: patch sizes must be positive, got ", patch_size);
      const int64_t cells = x.size(first_axis + a) / patch_size[a];  // trailing samples are ignored
      TORCH_CHECK(cells > 0, "vatt::patch_embed: patch_size ", patch_size, " does not fit x of shape ", x.sizes());
      grid.push_back(cells);
      patch.push_back(patch_size[a]);
      num_patches *= cells;
      patch_values *= patch_size[a];
    }
    patch_values *= channels;
    run = patch.back();
    // Offsets of the runs in [C, p_1, ..., p_{d-1}] order, the last patch axis being the run itself.
    run_offsets.push_back(0);
    for (int64_t a = axes - 2; a >= -1; --a) {
      const int64_t count = a >= 0 ? patch[a] : channels;
      const int64_t stride = a >= 0 ? axis_stride[a] : channel_stride;
      std::vector<int64_t> widened;
      widened.reserve(run_offsets.size() * count);
      for (int64_t i = 0; i < count; ++i)
        for (int64_t inner : run_offsets) widened.push_back(i * stride + inner);
      run_offsets.swap(widened);
    }
  }

  // Offset in x of the first value of patch n (row-major over the grid) of sample b.
  int64_t origin(int64_t b, int64_t n) const {
    int64_t offset = b * batch_stride;
    for (int64_t a = static_cast<int64_t>(grid.size()) - 1; a >= 0; --a) {
      offset += (n % grid[a]) * patch[a] * axis_stride[a];
      n /= grid[a];
    }
    return offset;
  }
};

// A block is 512 rows (more when patches are so short that 512 fill under 256 KiB): small next to the kept
// patches of a batch (~40 MB for 4 VATT clips) and to the output, yet enough rows that the matmul's repacking
// of its large operand (the [P, D] weight) stays a small part of each block's work.
constexpr int64_t kBufferBytes = int64_t{256} << 10;
constexpr int64_t kMinBlockRows = 512;

int64_t rows_per_block(int64_t rows, int64_t patch_values, int64_t element_size) {
  return std::max<int64_t>(1, std::min(rows, std::max(kBufferBytes / (patch_values * element_size), kMinBlockRows)));
}

// Calls visit(v, length, x_offset) for the values [begin, end) of the patch starting at `origin` in x, cut where
// they leave one contiguous run of x: values v .. v+length-1 are x[x_offset .. x_offset+length-1].
template <typename Visit>
void for_each_run(const PatchLayout& layout, int64_t origin, int64_t begin, int64_t end, const Visit& visit) {
  for (int64_t v = begin; v < end;) {
    const int64_t in_run = v % layout.run, length = std::min(layout.run - in_run, end - v);
    visit(v, length, origin + layout.run_offsets[v / layout.run] + in_run);
    v += length;
  }
}

// Below ~256k values, waking threads costs more than it saves.
int64_t grain(int64_t work_per_item) { return std::max<int64_t>(1, 262144 / std::max<int64_t>(work_per_item, 1)); }

// Copies values [first_value, first_value + width) of the patch of `row` into target [width].
template <typename scalar_t>
void copy_patch(const scalar_t* x, const PatchLayout& layout, const KeepIndices& kept, int64_t row,
                int64_t first_value, int64_t width, scalar_t* target) {
  const int64_t b = row / kept.kept();
  // Plain loops rather than memcpy: runs are short (8-16 values for video), where a call costs more.
  for_each_run(layout, layout.origin(b, kept.at(b, row % kept.kept())), first_value, first_value + width,
               [&](int64_t v, int64_t length, int64_t offset) {
                 for (int64_t i = 0; i < length; ++i) target[v - first_value + i] = x[offset + i];
               });
}

// Copies values [first_value, first_value + width) of the patches of rows [first_row, first_row + count) into
// patches [count, width].
template <typename scalar_t>
void gather_patches(const scalar_t* x, const PatchLayout& layout, const KeepIndices& kept, int64_t first_row,
                    int64_t count, int64_t first_value, int64_t width, scalar_t* patches) {
  at::parallel_for(0, count, grain(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      copy_patch(x, layout, kept, first_row + r, first_value, width, patches + r * width);
  });
}

// Adds patch_grads [count, P] of rows [first_row, first_row + count) into grad_x at their patches.
template <typename scalar_t>
void scatter_add_patches(const scalar_t* patch_grads, const PatchLayout& layout, const KeepIndices& kept,
                         int64_t first_row, int64_t count, scalar_t* grad_x) {
  // Threads split the P values of a patch, never the rows: a patch kept twice is then added by one thread.
  at::parallel_for(0, layout.patch_values, grain(count), [&](int64_t begin, int64_t end) {
    for (int64_t r = 0; r < count; ++r) {
      const int64_t row = first_row + r, b = row / kept.kept();
      const scalar_t* source = patch_grads + r * layout.patch_values;
      for_each_run(layout, layout.origin(b, kept.at(b, row % kept.kept())), begin, end,
                   [&](int64_t v, int64_t length, int64_t offset) {
                     for (int64_t i = 0; i < length; ++i) grad_x[offset + i] += source[v + i];
                   });
    }
  });
}

// Forward, one block of rows in one parallel pass: gathers their patches [count, P] and starts their outputs
// [count, D] at bias + pos[patch] (either may be absent); the projection is added to the outputs afterwards.
template <typename scalar_t>
void prepare_block(const scalar_t* x, const scalar_t* bias, const scalar_t* pos, const PatchLayout& layout,
                   const KeepIndices& kept, int64_t first_row, int64_t count, int64_t dim, scalar_t* patches,
                   scalar_t* out) {
  at::parallel_for(0, count, grain(layout.patch_values + dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t row = first_row + r, b = row / kept.kept();
      copy_patch(x, layout, kept, row, 0, layout.patch_values, patches + r * layout.patch_values);
      const scalar_t* position = pos == nullptr ? nullptr : pos + kept.at(b, row % kept.kept()) * dim;
      scalar_t* target = out + r * dim;
      for (int64_t d = 0; d < dim; ++d) {
        target[d] = (bias == nullptr ? scalar_t(0) : bias[d]) + (position == nullptr ? scalar_t(0) : position[d]);
      }
    }
  });
}

// bias [D] or pos [N, D] as a contiguous tensor of x's dtype, or undefined when absent.
at::Tensor checked_addend(const std::optional<at::Tensor>& addend, at::IntArrayRef shape, const at::Tensor& x,
                          const char* name) {
  if (!addend.has_value()) return at::Tensor();
  TORCH_CHECK(addend->sizes() == shape && addend->scalar_type() == x.scalar_type() && addend->device().is_cpu(),
              "vatt::patch_embed: ", name, " must be a CPU ", x.scalar_type(), " tensor of shape ", shape, ", got ",
              addend->scalar_type(), " ", addend->sizes(), " on ", addend->device());
  return addend->contiguous();
}

void check_parameters(const at::Tensor& x, const PatchLayout& layout, const at::Tensor& weight) {
  TORCH_CHECK(x.device().is_cpu() && weight.device().is_cpu(), "vatt::patch_embed: CPU kernel got tensors on ",
              x.device(), " and ", weight.device());
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == layout.patch_values, "vatt::patch_embed: weight must be [D, ",
              layout.patch_values, "] for patches of ", layout.patch_values, " values, got shape ", weight.sizes());
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), "vatt::patch_embed: weight dtype ", weight.scalar_type(),
              " differs from x dtype ", x.scalar_type());
}

// What the forward and the backward share: the contiguous input, where its patches lie, which are kept, and
// the checked projection width D.
struct EmbedProblem {
  at::Tensor input;
  PatchLayout layout;
  KeepIndices kept;
  int64_t dim = 0, rows = 0;  // D and the B*K kept rows

  EmbedProblem(const at::Tensor& x, at::IntArrayRef patch_size, const at::Tensor& weight,
               const std::optional<at::Tensor>& keep)
      : input(x.contiguous()), layout(input, patch_size), kept(keep, layout.batch, layout.num_patches) {
    check_parameters(input, layout, weight);
    dim = weight.size(0);
    rows = layout.batch * kept.kept();
  }
};

}  // namespace

at::Tensor patch_embed(const at::Tensor& x, at::IntArrayRef patch_size, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& pos,
                       const std::optional<at::Tensor>& keep) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // inner ATen calls skip autograd
  const EmbedProblem problem(x, patch_size, weight, keep);
  const at::Tensor& input = problem.input;
  const PatchLayout& layout = problem.layout;
  const KeepIndices& kept = problem.kept;
  const int64_t dim = problem.dim, rows = problem.rows;

  const at::Tensor bias_values = checked_addend(bias, {dim}, input, "bias");
  const at::Tensor pos_values = checked_addend(pos, {layout.num_patches, dim}, input, "pos");

  at::Tensor out = at::empty({layout.batch, kept.kept(), dim}, x.options());  // [B, K, D]
  if (rows == 0) return out;
  at::Tensor out_rows = out.view({rows, dim});  // [B*K, D]
  const at::Tensor weight_t = weight.t();       // [P, D]
  const int64_t values = layout.patch_values, block = rows_per_block(rows, values, x.element_size());
  at::Tensor patches = at::empty({block, values}, x.options());  // [block, P]
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "vatt_patch_embed", [&] {
    const scalar_t* bias_data = bias_values.defined() ? bias_values.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* pos_data = pos_values.defined() ? pos_values.const_data_ptr<scalar_t>() : nullptr;
    for (int64_t first = 0; first < rows; first += block) {
      const int64_t count = std::min(block, rows - first);
      prepare_block(input.const_data_ptr<scalar_t>(), bias_data, pos_data, layout, kept, first, count, dim,
                    patches.mutable_data_ptr<scalar_t>(), out_rows.mutable_data_ptr<scalar_t>() + first * dim);
      out_rows.narrow(0, first, count).addmm_(patches.narrow(0, 0, count), weight_t);
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> patch_embed_backward(
    const at::Tensor& grad, const at::Tensor& x, at::IntArrayRef patch_size, const at::Tensor& weight,
    const std::optional<at::Tensor>& keep, std::array<bool, 4> output_mask) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // inner ATen calls skip autograd
  const EmbedProblem problem(x, patch_size, weight, keep);
  const at::Tensor& input = problem.input;
  const PatchLayout& layout = problem.layout;
  const KeepIndices& kept = problem.kept;
  const int64_t dim = problem.dim, rows = problem.rows;
  TORCH_CHECK(grad.dim() == 3 && grad.size(0) == layout.batch && grad.size(1) == kept.kept() && grad.size(2) == dim,
              "vatt::patch_embed_backward: grad must be [", layout.batch, ", ", kept.kept(), ", ", dim, "], got ",
              grad.sizes());
  const at::Tensor grad_rows = grad.reshape({rows, dim}).contiguous();  // [B*K, D]

  at::Tensor grad_x, grad_weight, grad_bias, grad_pos;
  if (output_mask[2]) grad_bias = grad_rows.sum(0);  // [D]
  if (output_mask[3]) {
    // Summed in float for half inputs: a position can collect the gradient of every sample.
    at::Tensor sums = at::zeros({layout.num_patches, dim}, grad.options().dtype(at::toOpMathType(grad.scalar_type())));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "vatt_patch_embed_grad_pos", [&] {
      scatter_add_rows(grad_rows.const_data_ptr<scalar_t>(), kept, layout.batch, dim, 0,
                       sums.mutable_data_ptr<at::opmath_type<scalar_t>>());
    });
    grad_pos = sums.to(grad.scalar_type());  // [N, D]
  }
  if (rows == 0) {
    if (output_mask[0]) grad_x = at::zeros_like(input);
    if (output_mask[1]) grad_weight = at::zeros_like(weight);
    return {grad_x, grad_weight, grad_bias, grad_pos};
  }
  const int64_t values = layout.patch_values, element_size = x.element_size();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "vatt_patch_embed_backward", [&] {
    const scalar_t* x_data = input.const_data_ptr<scalar_t>();
    const int64_t block = rows_per_block(rows, values, element_size);
    if (output_mask[1]) {
      // grad_weight = Σ over blocks of grad_rows[block]ᵀ @ patches[block], summed in float for half inputs
      const auto sum_type = at::toOpMathType(x.scalar_type());
      at::Tensor sums = at::zeros(weight.sizes(), weight.options().dtype(sum_type));  // [D, P]
      at::Tensor patches = at::empty({block, values}, x.options());                   // [block, P]
      for (int64_t first = 0; first < rows; first += block) {
        const int64_t count = std::min(block, rows - first);
        gather_patches(x_data, layout, kept, first, count, 0, values, patches.mutable_data_ptr<scalar_t>());
        sums.addmm_(grad_rows.narrow(0, first, count).t().to(sum_type), patches.narrow(0, 0, count).to(sum_type));
      }
      grad_weight = sums.to(weight.scalar_type());
    }
    if (output_mask[0]) {
      grad_x = at::zeros_like(input);
      at::Tensor patch_grads = at::empty({block, values}, x.options());  // [block, P]
      for (int64_t first = 0; first < rows; first += block) {
        const int64_t count = std::min(block, rows - first);
        at::Tensor block_grads = patch_grads.narrow(0, 0, count);
        at::mm_out(block_grads, grad_rows.narrow(0, first, count), weight);  // [count, P]
        scatter_add_patches(block_grads.const_data_ptr<scalar_t>(), layout, kept, first, count,
                            grad_x.mutable_data_ptr<scalar_t>());
      }
    }
  });
  return {grad_x, grad_weight, grad_bias, grad_pos};
}

TORCH_LIBRARY_IMPL(vatt, CPU, m) {
  m.impl("patch_embed", &patch_embed);
  m.impl("patch_embed_backward", &patch_embed_backward);
}

}  // namespace vatt::cpu
