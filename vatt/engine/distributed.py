"""What the rest of vatt needs to know about torch.distributed: joining the process group a launcher
describes, who am I, how many are we, this process's share of a global batch, and collectives that keep the
autograd graph (contrastive negatives from the global batch, synchronised batch statistics).

Outside an initialised process group of two or more ranks every function answers as a single process.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Iterable, Iterator

import torch
import torch.distributed as dist

# The launcher's description of the job (torchrun sets all of them; a single process sets none).
_WORLD_SIZE, _RANK, _LOCAL_RANK = "WORLD_SIZE", "RANK", "LOCAL_RANK"
BACKENDS = {"cuda": "nccl", "xla": "xla"}  # every other device type uses gloo


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the default group; 0 when not distributed."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of ranks in the default group; 1 when not distributed."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """The one process that logs, prints and writes the run directory."""
    return rank() == 0


def launched_world_size() -> int:
    """How many processes the launcher (torchrun) started; 1 when run as a plain process."""
    return int(os.environ.get(_WORLD_SIZE, "1"))


def process_device(device: torch.device) -> torch.device:
    """The device of this process: ``cuda`` without an index means the GPU of this process's local rank."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get(_LOCAL_RANK, "0")))
    return device


@contextlib.contextmanager
def process_group(device: torch.device, timeout_s: float) -> Iterator[torch.device]:
    """Join the process group the launcher describes for the duration of a run; yields this process's device.

    Nothing happens for a single process, or when the caller already initialised a group (which it then
    keeps owning). The backend follows the device: NCCL on CUDA, XLA's on XLA devices, gloo otherwise.
    ``timeout_s`` bounds every collective, so a crashed or stuck process ends the job with an error instead of
    leaving the others waiting forever.
    """
    device = process_device(device)
    if dist.is_initialized() or launched_world_size() <= 1:
        yield device
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    options = {"backend": BACKENDS.get(device.type, "gloo"), "timeout": datetime.timedelta(seconds=timeout_s)}
    if device.type == "xla":
        import torch_xla.distributed.xla_backend  # noqa: F401  (registers the "xla" backend)
        options["init_method"] = "xla://"
    dist.init_process_group(**options)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def local_batch_size(global_batch_size: int) -> int:
    """This process's share of a global batch; the batch must split evenly over the processes."""
    world = world_size()
    if global_batch_size % world:
        raise ValueError(f"the batch of {global_batch_size} clips does not split evenly over {world} processes")
    return global_batch_size // world


class ShardedBatchSampler:
    """This process's slice of each global batch: rank r of W gets indices [r·B/W, (r+1)·B/W).

    ``batches`` yields the global batches' sample indices (a `StepBatchSampler`), identical on every process,
    so the slices never overlap and together are the global batch, whatever the number of processes.
    """

    def __init__(self, batches: Iterable[list[int]], process_rank: int | None = None,
                 processes: int | None = None):
        self.batches = batches
        self.rank = rank() if process_rank is None else process_rank
        self.world = world_size() if processes is None else processes
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank must be in [0, {self.world}), got {self.rank}")

    def __iter__(self) -> Iterator[list[int]]:
        for indices in self.batches:
            if len(indices) % self.world:
                raise ValueError(f"a batch of {len(indices)} clips does not split evenly over {self.world} "
                                 f"processes")
            size = len(indices) // self.world
            yield list(indices[self.rank * size:(self.rank + 1) * size])


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over all ranks (a new tensor; no gradient); ``x`` itself when not distributed."""
    if not is_distributed():
        return x
    x = x.detach().clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def broadcast_from_main(value):
    """Rank 0's ``value`` (any picklable object) on every rank; ``value`` itself when not distributed."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def raise_on_every_process(problem: Exception | None) -> None:
    """Raise, on every process, the error the main process met (its ``problem``; None: it met none; what the
    others pass is ignored), so that none of them waits for the main process in a collective it left. Only the
    main process's copy says ``report = True``: the command line prints the error once."""
    problem = broadcast_from_main(problem)
    if problem is not None:
        problem.report = is_main_process()
        raise problem


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first (creating caches, say), then the others run it."""
    if is_distributed() and not is_main_process():
        dist.barrier()
    try:
        yield
    finally:
        if is_distributed() and is_main_process():
            dist.barrier()


class _AllReduceWithGrad(torch.autograd.Function):
    """Sum over ranks that every rank uses: the gradient of rank r's input is the sum of all ranks' gradients
    of the result (each rank's loss depends on every rank's input through the sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # all_reduce works in place; the incoming gradient may be shared
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over all ranks, differentiable; ``x`` itself when not distributed."""
    if not is_distributed():
        return x
    return _AllReduceWithGrad.apply(x)


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's tensor along dim 0, letting gradients flow back to each owner.

    Rank s computes its own loss L_s from the gathered tensor, so the gradient that rank r's local
    slice should receive is d(sum_s L_s)/d x_r = sum_s (grad of the gathered tensor on rank s)[slice r].
    Backward therefore all-reduces (sums) the incoming gradient over ranks and keeps the local slice.
    Data-parallel averaging of the parameter gradients then yields d(mean_s L_s)/d params.

    Ranks may hold different numbers of rows (a data loader that dropped an unreadable sample): the row
    counts are gathered first, and every part is padded to the largest for the gather itself.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        counts = [torch.zeros((), dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
        dist.all_gather(counts, torch.tensor(x.shape[0], device=x.device))
        counts = [int(c) for c in counts]
        ctx.start = sum(counts[:dist.get_rank()])
        ctx.local_rows = x.shape[0]
        padded = x.new_zeros((max(counts), *x.shape[1:]))
        padded[:x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
        return torch.cat([part[:count] for part, count in zip(parts, counts)], dim=0)  # [sum of B_r, ...]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # all_reduce works in place; the incoming gradient may be shared with other graph nodes.
        grad = grad.contiguous().clone()  # [sum of B_r, ...], the same shape on every rank
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start:ctx.start + ctx.local_rows]  # [B, ...]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` [B_r, ...] concatenated in rank order as [sum of B_r, ...], differentiable.

    Ranks may pass different numbers of rows; the other dims must agree. Returns ``x`` itself when not
    distributed.
    """
    if not is_distributed():
        return x
    return _AllGatherWithGrad.apply(x)
