"""Contrastive losses of VATT: NCE between video and audio, MIL-NCE between video and its candidate texts.

Both are the same computation: NCE is MIL-NCE with one candidate per clip. For clip i, with s = cosine / τ,

    positives   = s(v_i, t_il)                                  for l = 1..L
    denominator = s(v_i, t_jl) for all j, l  together with  s(v_j, t_il) for all j, l
    loss_i      = logsumexp(denominator) - logsumexp(positives)

so the positives appear in the denominator (once per direction). Clips whose second modality is missing
(mask False) have every similarity that involves their text set to `vatt.ops.MASKED_LOGIT` (-1e9: finite, so
a fully masked row stays finite), their own loss set to 0, and the batch mean taken over the clips that do have
text. `contrastive_rows` writes this out in plain PyTorch; ``fused=True`` computes the same rows with the tiled
`vatt.ops.contrastive_rows`, which the tests hold to it.

Under torch.distributed the j above runs over the GLOBAL batch: embeddings and masks are gathered from all
ranks with gradient, and each rank computes the loss of its own rows only. Each rank returns

    world_size * sum(local loss_i over clips with text) / (number of clips with text in the global batch),

i.e. the mean of its local rows when no text is missing. Data-parallel training averages gradients over
ranks, so the update equals the gradient of the single-process loss on the global batch, also when the
ranks hold different numbers of text-less clips (a per-rank denominator would not give that). The mean of
the returned values over ranks is the global-batch loss.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vatt import ops
from vatt.engine.distributed import all_gather_with_grad, world_size
from vatt.registry import register

DEFAULT_TEMPERATURE = 0.07


def nce(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None,
        temperature: float = DEFAULT_TEMPERATURE, fused: bool = False) -> torch.Tensor:
    """Symmetric NCE between paired embeddings ``x`` [B, D] and ``y`` [B, D] (need not be normalised).

    ``mask`` [B] bool marks the clips whose ``y`` exists (None: all). Returns a scalar.
    """
    _check_matrix("x", x)
    _check_matrix("y", y)
    if y.shape != x.shape:
        raise ValueError(f"y must have the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")
    mask = _as_mask("mask", mask, x.shape[0], x.device)  # [B]
    return mil_nce(x, y.unsqueeze(1), mask, temperature, fused)  # y as [B, 1, D]: one candidate per clip


def mil_nce(video: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None = None,
            temperature: float = DEFAULT_TEMPERATURE, fused: bool = False) -> torch.Tensor:
    """MIL-NCE between ``video`` [B, D] and the L candidate texts of each clip ``text`` [B, L, D].

    Embeddings need not be normalised. ``text_mask`` [B] bool (or 0/1) marks the clips that have text
    (None: all). Returns a scalar; 0 with a gradient path when no clip in the (global) batch has text.
    A text [B, D] is one candidate per clip (L = 1), which is NCE. ``fused`` computes the rows with the tiled
    ``vatt.ops.contrastive_rows`` instead of plain PyTorch.
    """
    _check_matrix("video", video)
    if text.dim() == 2:
        text = text.unsqueeze(1)  # [B, 1, D]
    if text.dim() != 3 or text.shape[0] != video.shape[0] or text.shape[2] != video.shape[1]:
        raise ValueError(f"text must be [B, L, D] = [{video.shape[0]}, L, {video.shape[1]}] to match video, "
                         f"got {tuple(text.shape)}")
    if text.shape[1] == 0:
        raise ValueError(f"text must hold at least one candidate per clip, got shape {tuple(text.shape)}")
    _check_temperature(temperature)
    mask_local = _as_mask("text_mask", text_mask, video.shape[0], video.device)  # [B]

    # Low-precision inputs are compared in float32: -1e9 and exp() of 1/τ-scaled logits overflow in half.
    dtype = torch.promote_types(video.dtype, torch.float32)
    v_local = F.normalize(video.to(dtype), dim=-1)  # [B, D]
    t_local = F.normalize(text.to(dtype), dim=-1)  # [B, L, D]
    v_all = all_gather_with_grad(v_local)  # [N, D], N = world * B
    t_all = all_gather_with_grad(t_local)  # [N, L, D]
    mask_all = all_gather_with_grad(mask_local.to(dtype)) > 0.5  # [N]

    rows_of = ops.contrastive_rows if fused else contrastive_rows  # same rows; the fused op never stores B×N×L logits
    rows = rows_of(v_local, t_local, v_all, t_all, mask_local, mask_all, temperature)  # [B], 0 without text
    with_text = mask_all.sum().clamp(min=1).to(rows.dtype)
    return rows.sum() * (world_size() / with_text)


def contrastive_rows(v_local: torch.Tensor, t_local: torch.Tensor, v_all: torch.Tensor, t_all: torch.Tensor,
                     mask_local: torch.Tensor, mask_all: torch.Tensor, temperature: float) -> torch.Tensor:
    """Loss of each local clip against all clips of the global batch, in plain PyTorch: [B], 0 for clips without text.

    v_local [B, D], t_local [B, L, D]: this rank's L2-normalised embeddings (also contained in v_all [N, D],
    t_all [N, L, D]). mask_local [B], mask_all [N]: bool, clip has text. Builds the B×N·L similarity matrices
    that the tiled `vatt.ops.contrastive_rows` avoids; its gradients come from autograd.
    """
    rows, candidates, _ = t_local.shape
    clips = v_all.shape[0]
    masked = torch.full((), ops.MASKED_LOGIT, dtype=v_local.dtype, device=v_local.device)

    # Video i against every candidate of every clip j; text-less clips' columns are masked.
    video_to_text = v_local @ t_all.reshape(clips * candidates, -1).T / temperature  # [B, N*L]
    video_to_text = torch.where(mask_all.repeat_interleave(candidates), video_to_text, masked)  # [B, N*L]
    # Every video j against the candidates of clip i; the whole row is masked if clip i has no text.
    text_to_video = t_local.reshape(rows * candidates, -1) @ v_all.T  # [B*L, N]
    text_to_video = text_to_video.reshape(rows, candidates * clips)  # [B, L*N]
    text_to_video = torch.where(mask_local[:, None], text_to_video / temperature, masked)  # [B, L*N]
    positives = torch.einsum("bd,bld->bl", v_local, t_local) / temperature  # [B, L]

    denominator = torch.logsumexp(torch.cat([video_to_text, text_to_video], dim=1), dim=1)  # [B]
    loss = denominator - torch.logsumexp(positives, dim=1)  # [B]
    return torch.where(mask_local, loss, torch.zeros_like(loss))


def _check_matrix(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a non-empty [B, D] tensor, got {shape}")


def _check_temperature(temperature: float) -> None:
    is_number = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not (is_number and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")


def _as_mask(name: str, mask: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(batch, dtype=torch.bool, device=device)
    mask = torch.as_tensor(mask, device=device)
    if mask.shape != (batch,):
        raise ValueError(f"{name} must have shape [{batch}], got {tuple(mask.shape)}")
    return mask.bool()  # [B]


class ContrastiveLoss:
    """A configured contrastive loss: ``loss(a, b, mask=None)`` is ``function(a, b, mask, temperature, fused)``,
    with ``function`` set by each registered subclass."""

    def __init__(self, *, temperature: float = DEFAULT_TEMPERATURE):
        _check_temperature(temperature)
        self.temperature = temperature
        self.fused_ops = False  # True: the tiled vatt.ops kernel (recipes switch it with run.fused_ops)

    def __call__(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.function(a, b, mask, self.temperature, self.fused_ops)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(temperature={self.temperature})"


@register("losses", "nce", example={})
class NCELoss(ContrastiveLoss):
    """Symmetric NCE (video-audio): ``loss(a [B, D], b [B, D], mask [B] = None)``."""

    function = staticmethod(nce)


@register("losses", "mil_nce", example={})
class MILNCELoss(ContrastiveLoss):
    """MIL-NCE (video-text): ``loss(video [B, D], text [B, L, D], text_mask [B] = None)``."""

    function = staticmethod(mil_nce)
