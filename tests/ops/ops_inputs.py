"""Inputs for the vatt op tests: hypothesis strategies for the case descriptions, builders for tensors, and the
opcheck cases of every op (on any device, in any floating dtype)."""
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


def _leaves(*tensors, device, dtype):
    """Float tensors moved to ``device`` and ``dtype`` as leaves that require grad; others moved only."""
    return tuple(t.to(device=device, dtype=dtype).requires_grad_() if t.is_floating_point() else t.to(device)
                 for t in tensors)


def patch_embed_args(keep, device="cpu", dtype=torch.float64):
    """(x, patch_size, weight, bias, pos, keep) of a video [2, 3, 4, 8, 6] cut into 8 patches of (2, 4, 3)."""
    gen = torch.Generator().manual_seed(0)
    x, weight, bias, pos = _leaves(torch.randn(2, 3, 4, 8, 6, generator=gen), torch.randn(5, 72, generator=gen),
                                   torch.randn(5, generator=gen), torch.randn(8, 5, generator=gen),
                                   device=device, dtype=dtype)
    return x, [2, 4, 3], weight, bias, pos, None if keep is None else keep.to(device)


def loss_args(device="cpu", dtype=torch.float64):
    """contrastive_rows' arguments: 3 local clips of a global batch of 5, two candidates each, two without text."""
    gen = torch.Generator().manual_seed(1)
    video = F.normalize(torch.randn(5, 4, generator=gen, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(5, 2, 4, generator=gen, dtype=torch.float64), dim=-1)
    mask = torch.tensor([True, False, True, True, False], device=device)
    v_local, t_local, v_all, t_all = _leaves(video[:3], text[:3], video, text, device=device, dtype=dtype)
    return v_local, t_local, v_all, t_all, mask[:3], mask, 0.1, 2


def opcheck_cases(device="cpu", dtype=torch.float64) -> dict:
    """{name: (op overload, arguments)} covering every vatt op, backward ops included."""
    vatt = torch.ops.vatt
    shared, per_sample = torch.tensor([6, 1, 3], device=device), torch.tensor([[0, 7], [5, 5]], device=device)
    x, patch_size, weight, bias, pos, _ = patch_embed_args(None, device, dtype)
    (tokens,) = _leaves(torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(2)), device=device, dtype=dtype)
    grad_gen = torch.Generator().manual_seed(3)
    return {
        "patch_embed, all tokens": (vatt.patch_embed.default, (x, patch_size, weight, bias, pos, None)),
        "patch_embed, shared keep": (vatt.patch_embed.default, (x, patch_size, weight, bias, pos, shared)),
        "patch_embed, per-sample keep": (vatt.patch_embed.default, (x, patch_size, weight, bias, pos, per_sample)),
        "patch_embed, no bias or pos": (vatt.patch_embed.default,
                                        (x, patch_size, weight, None, None, torch.tensor([2], device=device))),
        "drop_tokens": (vatt.drop_tokens.default, (tokens, torch.tensor([[5, 0], [1, 1]], device=device))),
        "contrastive_rows": (vatt.contrastive_rows.default, loss_args(device, dtype)),
        "patch_embed_backward": (vatt.patch_embed_backward.default,
                                 (torch.randn(2, 3, 5, generator=grad_gen).to(device, dtype), x.detach(), patch_size,
                                  weight.detach(), shared, [True, False, True, True])),
        "drop_tokens_backward": (vatt.drop_tokens_backward.default,
                                 (torch.randn(2, 2, 3, generator=grad_gen).to(device, dtype),
                                  torch.tensor([4, 4], device=device), 6)),
    }
