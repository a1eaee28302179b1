// vatt::drop_tokens on CUDA: one thread per copied value; the backward adds rows back with atomics, so a token
// kept twice gets both gradients.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace vatt::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t work) {
  return static_cast<int>(std::min<int64_t>((work + kThreads - 1) / kThreads, int64_t{1} << 16));
}

// Row of tokens [B, N, D] that kept slot `row` (= b * K + k) reads.
__device__ __forceinline__ int64_t source_row(int64_t row, const int64_t* keep, int64_t kept, int64_t num_tokens,
                                              bool shared) {
  const int64_t index = shared ? keep[row % kept] : keep[row];
  CUDA_KERNEL_ASSERT(index >= 0 && index < num_tokens);
  return (row / kept) * num_tokens + index;
}

template <typename scalar_t>
__global__ void gather_rows_kernel(const scalar_t* __restrict__ tokens, const int64_t* __restrict__ keep, int64_t rows,
                                   int64_t kept, int64_t num_tokens, int64_t dim, bool shared, scalar_t* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * dim; i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = tokens[source_row(i / dim, keep, kept, num_tokens, shared) * dim + i % dim];
  }
}

template <typename scalar_t>
__global__ void scatter_add_rows_kernel(const scalar_t* __restrict__ grad, const int64_t* __restrict__ keep,
                                        int64_t rows, int64_t kept, int64_t num_tokens, int64_t dim, bool shared,
                                        scalar_t* __restrict__ grad_tokens) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * dim; i += int64_t{gridDim.x} * blockDim.x) {
    gpuAtomicAdd(grad_tokens + source_row(i / dim, keep, kept, num_tokens, shared) * dim + i % dim, grad[i]);
  }
}

void check_keep(const at::Tensor& keep, int64_t batch, const at::Tensor& like) {
  TORCH_CHECK(keep.scalar_type() == at::kLong && keep.device() == like.device() &&
                  (keep.dim() == 1 || (keep.dim() == 2 && keep.size(0) == batch)),
              "vatt::drop_tokens (CUDA): keep must be int64 [K] or [B, K] with B = ", batch, " on ", like.device(),
              ", got ", keep.sizes(), " ", keep.scalar_type(), " on ", keep.device());
}

}  // namespace

at::Tensor drop_tokens(const at::Tensor& tokens, const at::Tensor& keep) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const c10::cuda::CUDAGuard device_guard(tokens.device());
  TORCH_CHECK(tokens.dim() == 3, "vatt::drop_tokens (CUDA): tokens must be [B, N, D], got ", tokens.sizes());
  check_keep(keep, tokens.size(0), tokens);
  const at::Tensor source = tokens.contiguous(), indices = keep.contiguous();
  const int64_t batch = tokens.size(0), num_tokens = tokens.size(1), dim = tokens.size(2), kept = keep.size(-1);
  at::Tensor out = at::empty({batch, kept, dim}, tokens.options());  // [B, K, D]
  if (out.numel() == 0) return out;
  AT_DISPATCH_ALL_TYPES_AND3(at::kHalf, at::kBFloat16, at::kBool, tokens.scalar_type(), "vatt_drop_tokens_cuda", [&] {
    gather_rows_kernel<scalar_t><<<blocks_for(out.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        source.const_data_ptr<scalar_t>(), indices.const_data_ptr<int64_t>(), batch * kept, kept, num_tokens, dim,
        keep.dim() == 1, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor drop_tokens_backward(const at::Tensor& grad, const at::Tensor& keep, int64_t num_tokens) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const c10::cuda::CUDAGuard device_guard(grad.device());
  check_keep(keep, grad.size(0), grad);
  const at::Tensor grad_rows = grad.contiguous(), indices = keep.contiguous();
  const int64_t batch = grad.size(0), kept = grad.size(1), dim = grad.size(2);
  at::Tensor grad_tokens = at::zeros({batch, num_tokens, dim}, grad.options());  // [B, N, D]
  if (grad.numel() == 0) return grad_tokens;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "vatt_drop_tokens_backward_cuda", [&] {
    scatter_add_rows_kernel<scalar_t><<<blocks_for(grad.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        grad_rows.const_data_ptr<scalar_t>(), indices.const_data_ptr<int64_t>(), batch * kept, kept, num_tokens, dim,
        keep.dim() == 1, grad_tokens.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_tokens;
}

TORCH_LIBRARY_IMPL(vatt, CUDA, m) {
  m.impl("drop_tokens", &drop_tokens);
  m.impl("drop_tokens_backward", &drop_tokens_backward);
}

}  // namespace vatt::cuda
