"""The motion plugin's parts: ON/OFF frame differences, the tokenizer, the head, the max-margin loss."""
import importlib.metadata as metadata

import pytest
import torch

from vatt.registry import get
from vatt.run import main
from vatt_motion import MaxMarginRankingLoss, MotionHead, MotionPatchTokenizer, frame_differences, max_margin_ranking

COMPONENTS = [("tokenizers", "motion_patches", MotionPatchTokenizer), ("heads", "motion_mlp", MotionHead),
              ("losses", "max_margin", MaxMarginRankingLoss)]


@pytest.mark.parametrize("kind, name, obj", COMPONENTS, ids=[c[1] for c in COMPONENTS])
def test_vatt_finds_each_part_through_its_entry_point(kind, name, obj, capsys):
    entry = get(kind, name)
    version = metadata.version("vatt-motion")
    assert entry.obj is obj and (entry.provider, entry.version) == ("vatt-motion", version)
    assert main(["--list", kind]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith(name))
    assert f"[vatt-motion {version}]" in line


def moving_square(step: int) -> torch.Tensor:
    """A white 2×2 square on black moving ``step`` pixels right per frame: [1, 3, 3, 8, 8]."""
    video = -torch.ones(1, 3, 3, 8, 8)
    for t in range(3):
        video[:, :, t, 3:5, 1 + step * t:3 + step * t] = 1.0
    return video


def test_a_square_moving_right_lights_on_ahead_and_off_behind():
    change = frame_differences(moving_square(1))  # [1, 2, 3, 8, 8]
    on, off = change[0, 0], change[0, 1]
    assert change.shape == (1, 2, 3, 8, 8) and (change[:, :, 0] == 0).all()  # frame 0 has no predecessor
    assert on[1].nonzero()[:, 1].unique().tolist() == [3]  # the column the square moved onto
    assert off[1].nonzero()[:, 1].unique().tolist() == [1]  # the column it left
    assert on[1].max() == pytest.approx(2.0)  # black (-1) to white (+1)


def test_static_colour_and_texture_give_no_motion():
    video = torch.rand(1, 3, 1, 8, 8).expand(-1, -1, 4, -1, -1) * 2 - 1  # one random frame, repeated
    assert frame_differences(video).abs().max() == 0


def test_tokenizer_keeps_the_videos_patch_grid_and_reads_the_video():
    tok = MotionPatchTokenizer(dim=8, patch_size=[4, 8, 8], frames=8, size=32, dropout=0.0)
    assert tok.num_tokens == 2 * 4 * 4 and tok.sample_ndim == 4
    tokens, mask = tok(tok.example_input(2))
    assert tokens.shape == (2, 33, 8) and mask is None
    with pytest.raises(ValueError, match=r"\[B, 3, 8, 32, 32\]"):
        tok(torch.zeros(2, 2, 8, 32, 32))


def test_tokens_see_the_direction_of_motion():
    torch.manual_seed(0)
    tok = MotionPatchTokenizer(dim=8, patch_size=[1, 8, 8], frames=3, size=8, dropout=0.0).eval()
    right, left = moving_square(1), moving_square(1).flip(-1)
    assert not torch.allclose(tok(right)[0], tok(left)[0])  # same content, mirrored motion


def test_head_projects_into_every_space():
    head = MotionHead(in_dim=8, spaces={"va": 6, "vt": 4}, hidden_dim=5)
    out = head(torch.randn(3, 8))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"va": (3, 6), "vt": (3, 4)}
    with pytest.raises(ValueError, match="spaces"):
        MotionHead(in_dim=8, spaces={})


def reference_loss(a, b, margin):
    """The loss written out pair by pair."""
    a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
    n, rows = len(a), []
    for i in range(n):
        terms = [max(0.0, margin - float(a[i] @ b[i]) + float(a[i] @ b[j])) +
                 max(0.0, margin - float(a[i] @ b[i]) + float(b[i] @ a[j])) for j in range(n) if j != i]
        rows.append(sum(terms) / (2 * len(terms)))
    return sum(rows) / n


def test_loss_matches_the_pairwise_definition():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    assert max_margin_ranking(a, b, margin=0.3).item() == pytest.approx(reference_loss(a, b, 0.3), rel=1e-5)


def test_loss_is_zero_once_every_positive_wins_by_the_margin():
    basis = torch.eye(4)
    assert max_margin_ranking(basis, basis, margin=0.5) == 0  # positives 1, negatives 0
    # pairs shifted by one: each positive at 0, one negative at 1 (costs 1.5), two at 0 (0.5 each), both ways
    swapped = max_margin_ranking(basis, basis.roll(1, dims=0), margin=0.5)
    assert swapped.item() == pytest.approx((1.5 + 0.5 + 0.5) * 2 / 6)


def test_masked_clips_are_neither_anchors_nor_negatives():
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    mask = torch.tensor([True, False, True, True, False, True])
    whole = MaxMarginRankingLoss(margin=0.2)(a, b, mask)
    assert whole.item() == pytest.approx(max_margin_ranking(a[mask], b[mask], margin=0.2).item(), rel=1e-6)


def test_loss_refuses_bad_margins_and_shapes():
    for margin in (0, -1, 3, float("nan"), True):
        with pytest.raises(ValueError, match="margin"):
            MaxMarginRankingLoss(margin=margin)
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        max_margin_ranking(torch.zeros(2, 3), torch.zeros(3, 3))
