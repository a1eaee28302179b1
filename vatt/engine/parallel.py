"""Data parallelism on torch.distributed: global batch statistics, DDP or FSDP2, and checkpoints that reshard.

`data_parallel(model, mode, device)` returns what the trainer steps. With one process it is the model itself
(on XLA with its BatchNorms made `GlobalBatchNorm`s, see below). With several, every BatchNorm first becomes a
`GlobalBatchNorm` (statistics of the global batch, as one process on the whole batch would compute them), then

- ``ddp``: DistributedDataParallel replicates the model and averages gradients;
- ``fsdp``: FSDP2's ``fully_shard`` shards every transformer layer and the rest of the model over the processes
  (parameters, gradients and optimiser state each held once across the job).

`full_state` and `load_full_state` move the model and optimiser state as full, unsharded tensors named by
parameter path, so a checkpoint written by N processes (either mode) loads on M processes or on one.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn as nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_model_state_dict, set_optimizer_state_dict

from vatt.engine.distributed import all_reduce_with_grad, broadcast_from_main, is_distributed, world_size
from vatt.engine.speed import transformer_blocks

PARALLEL_MODES = ("ddp", "fsdp")


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch: in training the mean and variance are those of all processes' samples
    together (gradients flow through the sums to every process), and the running variance is the unbiased one,
    as torch's BatchNorm keeps it. In evaluation it is the ordinary BatchNorm. Same parameters and buffers as
    nn.BatchNorm*d, so state dicts are interchangeable."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"GlobalBatchNorm needs [B, C, ...] inputs, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]  # every axis but the channels
        shape = [1, -1] + [1] * (x.dim() - 2)  # broadcasts a [C] statistic over x
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # statistics in float32 at least (bf16 autocast)
        local_count = xf.new_full((1,), x.numel() // x.shape[1])
        sums = all_reduce_with_grad(torch.cat([xf.sum(dims), local_count]))  # [C + 1]
        count = sums[-1].detach()
        mean = sums[:-1] / count  # [C]
        centred = xf - mean.view(shape)
        var = all_reduce_with_grad(centred.square().sum(dims)) / count  # [C], biased, as normalisation uses
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1).clamp(min=1))
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), factor)


def synchronise_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``module`` by a GlobalBatchNorm holding the very same parameters and buffers."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            synced = GlobalBatchNorm(child.num_features, eps=child.eps, momentum=child.momentum,
                                     affine=child.affine, track_running_stats=child.track_running_stats,
                                     device="meta")
            for key, value in (*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)):
                setattr(synced, key, value)
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            synchronise_batchnorm(child)
    return module


def data_parallel(model: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """The module to train on this process (see the module docstring). Build the optimiser from its parameters
    afterwards: FSDP replaces them by sharded ones."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"mode must be one of {', '.join(PARALLEL_MODES)}, got {mode!r}")
    if device.type == "xla":
        synchronise_batchnorm(model)  # torch_xla's BatchNorm keeps a biased running variance; ours does not
    if not is_distributed():
        return model
    synchronise_batchnorm(model)
    if mode == "ddp":
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method
    # The towers hand on [AGG] rows and the model reshapes its outputs: views FSDP warns about in case something
    # modifies them in place, which nothing in vatt does.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(device.type, (world_size(),))
    for block in transformer_blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    if hasattr(model, "features"):  # evaluators may call features() instead of forward()
        register_fsdp_forward_method(model, "features")
    return model


def _options(**kwargs) -> StateDictOptions:
    # Full tensors are gathered to rank 0 only (cpu_offload) and, on loading, sent from rank 0 to the others.
    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kwargs)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``{"model": ..., "optimizer": ...}`` as full tensors on the CPU, named by parameter path (no DDP or
    FSDP wrapper names, optimiser state keyed by parameter name). Every process must call it; under
    torch.distributed only rank 0 receives the tensors."""
    model_state, optimizer_state = get_state_dict(model, optimizer, options=_options())
    return {"model": model_state, "optimizer": optimizer_state}


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any] | None) -> None:
    """Load a `full_state` into a model and optimiser on any number of processes and in either mode. Every
    process must call it; under torch.distributed only rank 0 needs ``state`` (the others pass None)."""
    options = _options(broadcast_from_rank0=True) if is_distributed() else _options()
    state = state if state is not None else {"model": {}, "optimizer": {}}
    # two calls: given an empty model state (ranks > 0), set_state_dict would skip the model altogether
    set_model_state_dict(model, state["model"], options=options)
    # An optimiser without per-parameter state (SGD without momentum) has nothing to restore but its
    # hyperparameters, which come from the config; torch cannot place an empty full state on devices.
    if broadcast_from_main(bool(state["optimizer"].get("state"))):
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=options)
