"""What the rest of vatt needs to know about torch.distributed: who am I, how many are we, and a gather
that keeps the autograd graph (for contrastive negatives drawn from the global batch).

Outside an initialised process group of two or more ranks every function answers as a single process.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the default group; 0 when not distributed."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of ranks in the default group; 1 when not distributed."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's tensor along dim 0, letting gradients flow back to each owner.

    Rank s computes its own loss L_s from the gathered tensor, so the gradient that rank r's local
    slice should receive is d(sum_s L_s)/d x_r = sum_s (grad of the gathered tensor on rank s)[slice r].
    Backward therefore all-reduces (sums) the incoming gradient over ranks and keeps the local slice.
    Data-parallel averaging of the parameter gradients then yields d(mean_s L_s)/d params.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.local_rows = x.shape[0]
        ctx.rank = dist.get_rank()
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=0)  # [world * B, ...]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # all_reduce works in place; the incoming gradient may be shared with other graph nodes.
        grad = grad.contiguous().clone()  # [world * B, ...]
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.local_rows
        return grad[start:start + ctx.local_rows]  # [B, ...]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` [B, ...] concatenated in rank order as [world * B, ...], differentiable.

    All ranks must pass the same shape (drop the last uneven batch). Returns ``x`` itself when not
    distributed.
    """
    if not is_distributed():
        return x
    return _AllGatherWithGrad.apply(x)
