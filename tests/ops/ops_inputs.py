"""Random inputs for the vatt op tests: hypothesis strategies for the case descriptions, builders for tensors."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hypothesis import strategies as st


@dataclass
class PatchCase:
    batch: int
    channels: int | None  # None: the signal has no channel axis ([B, *signal])
    patch: tuple[int, ...]
    signal: tuple[int, ...]
    dim: int
    keep: str  # "none", "shared" or "per_sample"
    kept: list  # indices: [K] or [B][K]
    bias: bool
    pos: bool
    seed: int

    @property
    def num_patches(self) -> int:
        return math.prod(s // p for s, p in zip(self.signal, self.patch))

    def tensors(self, dtype=torch.float64, requires_grad=True):
        """(x, weight, bias, pos, keep), the float ones leaves that require grad."""
        gen = torch.Generator().manual_seed(self.seed)
        shape = (self.batch, *(() if self.channels is None else (self.channels,)), *self.signal)
        values = (self.channels or 1) * math.prod(self.patch)

        def leaf(*size):
            return torch.randn(*size, generator=gen, dtype=dtype).requires_grad_(requires_grad)

        x, weight = leaf(*shape), leaf(self.dim, values)
        bias = leaf(self.dim) if self.bias else None
        pos = leaf(self.num_patches, self.dim) if self.pos else None
        keep = None if self.keep == "none" else torch.tensor(self.kept, dtype=torch.long)
        return x, weight, bias, pos, keep


@st.composite
def patch_cases(draw, allow_duplicates: bool = True) -> PatchCase:
    axes = draw(st.integers(1, 3))
    channels = draw(st.one_of(st.none(), st.integers(1, 3)))
    patch = tuple(draw(st.integers(1, 4)) for _ in range(axes))
    grid = tuple(draw(st.integers(1, 3)) for _ in range(axes))
    # Trailing samples that fill no whole patch must be ignored.
    signal = tuple(g * p + draw(st.integers(0, p - 1)) for g, p in zip(grid, patch))
    batch = draw(st.integers(1, 3))
    count = math.prod(grid)
    keep = draw(st.sampled_from(["none", "shared", "per_sample"]))

    def index_set():
        if allow_duplicates and draw(st.booleans()):
            return draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=2 * count))
        return draw(st.permutations(range(count)))[:draw(st.integers(1, count))]

    if keep == "shared":
        kept = index_set()
    elif keep == "per_sample":
        first = index_set()  # every sample keeps the same number of tokens
        kept = [first] + [draw(st.lists(st.integers(0, count - 1), min_size=len(first), max_size=len(first)))
                          if allow_duplicates else draw(st.permutations(range(count)))[:len(first)]
                          for _ in range(batch - 1)]
    else:
        kept = []
    return PatchCase(batch, channels, patch, signal, draw(st.integers(1, 6)), keep, kept, draw(st.booleans()),
                     draw(st.booleans()), draw(st.integers(0, 2**31 - 1)))


@dataclass
class LossCase:
    batch: int
    clips: int  # G, the global batch
    offset: int  # global index of local row 0
    candidates: int
    dim: int
    temperature: float
    tile: int
    mask_all: list
    seed: int

    def tensors(self, dtype=torch.float64):
        """(v_local, t_local, v_all, t_all, mask_local, mask_all): unit vectors, the local ones a slice of the global."""
        gen = torch.Generator().manual_seed(self.seed)
        v_all = F.normalize(torch.randn(self.clips, self.dim, generator=gen, dtype=dtype), dim=-1)
        t_all = F.normalize(torch.randn(self.clips, self.candidates, self.dim, generator=gen, dtype=dtype), dim=-1)
        mask_all = torch.tensor(self.mask_all, dtype=torch.bool)
        local = slice(self.offset, self.offset + self.batch)
        return (v_all[local].clone().requires_grad_(), t_all[local].clone().requires_grad_(),
                v_all.requires_grad_(), t_all.requires_grad_(), mask_all[local].clone(), mask_all)


@st.composite
def loss_cases(draw) -> LossCase:
    batch = draw(st.integers(1, 5))
    clips = batch + draw(st.integers(0, 6))
    return LossCase(batch, clips, draw(st.integers(0, clips - batch)), draw(st.integers(1, 4)), draw(st.integers(1, 8)),
                    draw(st.sampled_from([0.01, 0.07, 0.3, 1.0, 3.0])), draw(st.integers(1, 9)),
                    draw(st.lists(st.booleans(), min_size=clips, max_size=clips)), draw(st.integers(0, 2**31 - 1)))


def grads(outputs: torch.Tensor, inputs, grad_outputs: torch.Tensor):
    """Gradients of ``outputs`` for each input that is a tensor (None where it is None)."""
    present = [t for t in inputs if t is not None]
    found = iter(torch.autograd.grad(outputs, present, grad_outputs))
    return [None if t is None else next(found) for t in inputs]


def assert_all_close(actual, expected, **tolerance):
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None
        else:
            torch.testing.assert_close(a, e, **tolerance)
