"""DropToken: which patch tokens survive a training step.

The release draws one random permutation per step and keeps the same positions for every clip of the batch;
that is the default here. A per-clip draw is offered as an option. Both use torch's global RNG, which the
trainer seeds per step so that a resumed run draws the same tokens.
"""
from __future__ import annotations

import torch


def kept_count(num_tokens: int, rate: float) -> int:
    """Tokens kept out of ``num_tokens`` at drop ``rate``: int((1 - rate) * N), 784 of 1568 at rate 0.5."""
    if not isinstance(num_tokens, int) or num_tokens < 1:
        raise ValueError(f"num_tokens must be a positive int, got {num_tokens!r}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    count = int((1.0 - rate) * num_tokens)
    if count < 1:
        raise ValueError(f"rate {rate!r} keeps no token out of num_tokens={num_tokens}")
    return count


def draw_keep(num_tokens: int, rate: float, batch_size: int, per_sample: bool = False,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Sorted indices of the kept tokens: ``[K]`` shared by the batch, or ``[B, K]`` with ``per_sample``."""
    count = kept_count(num_tokens, rate)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if device is not None and torch.device(device).type == "xla":
        # Drawn by the CPU generator (the one the trainer seeds) and uploaded: no read-back, the same tokens as
        # a CPU run, and no sorted random indices traced into the graph (torch_xla 2.9 aborts on
        # index_select with indices sorted from randperm/argsort: "Check failed: buffer != nullptr").
        return draw_keep(num_tokens, rate, batch_size, per_sample=per_sample).to(device)
    if per_sample:
        scores = torch.rand(batch_size, num_tokens, device=device)  # [B, N]
        return scores.argsort(dim=1)[:, :count].sort(dim=1).values  # [B, K]
    return torch.randperm(num_tokens, device=device)[:count].sort().values  # [K]
