// vatt::patch_embed on CUDA: a gather kernel reads only the kept raw patches, cuBLAS projects them.
//
// Same plan as the CPU kernel without the blocking: the kept patches [B*K, P] (half the raw input at a 50 %
// DropToken rate) are gathered at once, projected by one matmul and added to bias + pos. The backward
// re-gathers them for the weight gradient and scatters patch gradients into x with atomics, which also sums
// a patch kept twice.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <vector>

namespace vatt::cuda {

namespace {

constexpr int kMaxAxes = 3;
constexpr int kThreads = 256;

// Where patch n of sample b starts in a contiguous x; plain values so that it can be a kernel argument.
struct PatchOrigins {
  int axes = 0;
  int64_t grid[kMaxAxes] = {}, step[kMaxAxes] = {};  // step: distance in x between neighbouring patches
  int64_t batch_stride = 0, kept = 0, num_patches = 1;
  bool shared = true;  // keep is [K] for the whole batch, else [B, K]

  __device__ int64_t operator()(int64_t row, const int64_t* keep) const {
    const int64_t b = row / kept;
    int64_t n = shared ? keep[row % kept] : keep[row];
    CUDA_KERNEL_ASSERT(n >= 0 && n < num_patches);
    int64_t offset = b * batch_stride;
    for (int a = axes - 1; a >= 0; --a) {
      offset += (n % grid[a]) * step[a];
      n /= grid[a];
    }
    return offset;
  }
};

struct Geometry {
  PatchOrigins origins;
  int64_t batch = 0, patch_values = 1;
  at::Tensor value_offsets;  // [P] int64 on the device: offset of each patch value from the patch origin
};

Geometry make_geometry(const at::Tensor& x, at::IntArrayRef patch_size, const std::optional<at::Tensor>& keep) {
  const int axes = static_cast<int>(patch_size.size());
  TORCH_CHECK(axes >= 1 && axes <= kMaxAxes && (x.dim() == axes + 1 || x.dim() == axes + 2),
              "vatt::patch_embed (CUDA): x of shape ", x.sizes(), " does not match patch_size ", patch_size);
  const bool has_channels = x.dim() == axes + 2;
  const int first_axis = has_channels ? 2 : 1;
  const int64_t channels = has_channels ? x.size(1) : 1;
  Geometry g;
  g.batch = x.size(0);
  g.origins.axes = axes;
  std::vector<int64_t> axis_stride(axes, 1);
  for (int a = axes - 2; a >= 0; --a) axis_stride[a] = axis_stride[a + 1] * x.size(first_axis + a + 1);
  const int64_t channel_stride = axis_stride[0] * x.size(first_axis);
  g.origins.batch_stride = channel_stride * channels;
  for (int a = 0; a < axes; ++a) {
    TORCH_CHECK(patch_size[a] > 0 && x.size(first_axis + a) >= patch_size[a], "vatt::patch_embed (CUDA): patch_size ",
                patch_size, " does not fit x of shape ", x.sizes());
    g.origins.grid[a] = x.size(first_axis + a) / patch_size[a];
    g.origins.step[a] = patch_size[a] * axis_stride[a];
    g.origins.num_patches *= g.origins.grid[a];
    g.patch_values *= patch_size[a];
  }
  g.patch_values *= channels;
  // Offsets in [C, p_1, ..., p_d] order (a ConvNd kernel's order), the last axis varying fastest.
  std::vector<int64_t> offsets(g.patch_values);
  for (int64_t v = 0; v < g.patch_values; ++v) {
    int64_t rest = v, offset = 0;
    for (int a = axes - 1; a >= 0; --a) {
      offset += (rest % patch_size[a]) * axis_stride[a];
      rest /= patch_size[a];
    }
    offsets[v] = offset + rest * channel_stride;
  }
  g.value_offsets = at::tensor(offsets, at::TensorOptions().dtype(at::kLong)).to(x.device());
  if (keep.has_value()) {
    TORCH_CHECK(keep->scalar_type() == at::kLong && keep->device() == x.device() &&
                    (keep->dim() == 1 || (keep->dim() == 2 && keep->size(0) == g.batch)),
                "vatt::patch_embed (CUDA): keep must be int64 [K] or [B, K] on ", x.device(), ", got ", keep->sizes(),
                " ", keep->scalar_type(), " on ", keep->device());
    g.origins.shared = keep->dim() == 1;
    g.origins.kept = keep->size(-1);
  } else {
    g.origins.kept = g.origins.num_patches;
  }
  return g;
}

int blocks_for(int64_t work) {
  return static_cast<int>(std::min<int64_t>((work + kThreads - 1) / kThreads, int64_t{1} << 16));
}

template <typename scalar_t>
__global__ void gather_patches_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ keep,
                                      const int64_t* __restrict__ value_offsets, PatchOrigins origins, int64_t rows,
                                      int64_t values, scalar_t* __restrict__ patches) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * values; i += int64_t{gridDim.x} * blockDim.x) {
    patches[i] = x[origins(i / values, keep) + value_offsets[i % values]];
  }
}

template <typename scalar_t>
__global__ void scatter_add_patches_kernel(const scalar_t* __restrict__ patches, const int64_t* __restrict__ keep,
                                           const int64_t* __restrict__ value_offsets, PatchOrigins origins,
                                           int64_t rows, int64_t values, scalar_t* __restrict__ grad_x) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * values; i += int64_t{gridDim.x} * blockDim.x) {
    gpuAtomicAdd(grad_x + origins(i / values, keep) + value_offsets[i % values], patches[i]);
  }
}

at::Tensor kept_indices(const Geometry& g, const std::optional<at::Tensor>& keep, const at::Tensor& x) {
  return keep.has_value() ? keep->contiguous() : at::arange(g.origins.num_patches, x.options().dtype(at::kLong));
}

at::Tensor gather_patches(const at::Tensor& input, const Geometry& g, const at::Tensor& keep) {
  const int64_t rows = g.batch * g.origins.kept;
  at::Tensor patches = at::empty({rows, g.patch_values}, input.options());  // [B*K, P]
  if (rows == 0) return patches;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "vatt_gather_patches_cuda", [&] {
    gather_patches_kernel<scalar_t><<<blocks_for(rows * g.patch_values), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        input.const_data_ptr<scalar_t>(), keep.const_data_ptr<int64_t>(), g.value_offsets.const_data_ptr<int64_t>(),
        g.origins, rows, g.patch_values, patches.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return patches;
}

}  // namespace

at::Tensor patch_embed(const at::Tensor& x, at::IntArrayRef patch_size, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& pos,
                       const std::optional<at::Tensor>& keep) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const c10::cuda::CUDAGuard device_guard(x.device());
  const at::Tensor input = x.contiguous();
  const Geometry g = make_geometry(input, patch_size, keep);
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == g.patch_values, "vatt::patch_embed (CUDA): weight must be [D, ",
              g.patch_values, "], got ", weight.sizes());
  const at::Tensor indices = kept_indices(g, keep, input);
  at::Tensor out = at::matmul(gather_patches(input, g, indices), weight.t());  // [B*K, D]
  if (bias.has_value()) out.add_(*bias);
  out = out.view({g.batch, g.origins.kept, weight.size(0)});  // [B, K, D]
  if (pos.has_value()) out.add_(pos->index_select(0, indices.reshape(-1)).view({-1, g.origins.kept, weight.size(0)}));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> patch_embed_backward(
    const at::Tensor& grad, const at::Tensor& x, at::IntArrayRef patch_size, const at::Tensor& weight,
    const std::optional<at::Tensor>& keep, std::array<bool, 4> output_mask) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const c10::cuda::CUDAGuard device_guard(x.device());
  const at::Tensor input = x.contiguous();
  const Geometry g = make_geometry(input, patch_size, keep);
  const at::Tensor indices = kept_indices(g, keep, input);
  const int64_t rows = g.batch * g.origins.kept, dim = weight.size(0);
  const at::Tensor grad_rows = grad.reshape({rows, dim});  // [B*K, D]

  at::Tensor grad_x, grad_weight, grad_bias, grad_pos;
  if (output_mask[2]) grad_bias = grad_rows.sum(0);
  if (output_mask[3]) {
    const at::Tensor per_slot = g.origins.shared ? grad.sum(0) : grad_rows;  // [K, D] or [B*K, D]
    grad_pos = at::zeros({g.origins.num_patches, dim}, grad.options()).index_add_(0, indices.reshape(-1), per_slot);
  }
  if (output_mask[1]) grad_weight = grad_rows.t().matmul(gather_patches(input, g, indices));  // [D, P]
  if (output_mask[0]) {
    grad_x = at::zeros_like(input);
    const at::Tensor patch_grads = grad_rows.matmul(weight).contiguous();  // [B*K, P]
    if (rows > 0) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "vatt_scatter_patches_cuda", [&] {
        scatter_add_patches_kernel<scalar_t>
            <<<blocks_for(rows * g.patch_values), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
                patch_grads.const_data_ptr<scalar_t>(), indices.const_data_ptr<int64_t>(),
                g.value_offsets.const_data_ptr<int64_t>(), g.origins, rows, g.patch_values,
                grad_x.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
  }
  return {grad_x, grad_weight, grad_bias, grad_pos};
}

TORCH_LIBRARY_IMPL(vatt, CUDA, m) {
  m.impl("patch_embed", &patch_embed);
  m.impl("patch_embed_backward", &patch_embed_backward);
}

}  // namespace vatt::cuda
