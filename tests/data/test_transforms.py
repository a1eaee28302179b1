"""Augmentation and evaluation views as torch ops."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vatt.data import transforms


def frames(t=4, h=40, w=60, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 300), st.integers(8, 300), st.integers(0, 2**32 - 1))
def test_random_crop_boxes_fit_and_follow_the_area_and_aspect_ranges(height, width, seed):
    rng = np.random.default_rng(seed)
    top, left, h, w = transforms.random_crop_box(height, width, rng, area=(0.08, 1.0), aspect=(0.5, 2.0))
    assert 0 <= top and 0 <= left and top + h <= height and left + w <= width and h > 0 and w > 0


def test_crop_statistics_match_the_spec_ranges():
    rng = np.random.default_rng(0)
    boxes = [transforms.random_crop_box(224, 224, rng) for _ in range(2000)]
    areas = np.array([h * w / 224**2 for _, _, h, w in boxes])
    aspects = np.array([w / h for _, _, h, w in boxes])
    assert areas.min() >= 0.07 and areas.max() <= 1.0 and areas.mean() < 0.6  # mostly small crops
    assert aspects.min() >= 0.45 and aspects.max() <= 2.2 and abs(np.log(aspects).mean()) < 0.1


def test_one_crop_serves_the_whole_clip():
    clip = np.repeat(frames(1), 6, axis=0)  # identical frames stay identical after the crop
    video = transforms.random_resized_crop(clip, 32, np.random.default_rng(3))
    assert video.shape == (6, 3, 32, 32) and video.dtype == torch.uint8 and video.is_contiguous()
    assert torch.equal(video[0], video[5])


def uniform(rgb, frames=2):
    """A uint8 clip [T, 3, 2, 2] of one colour."""
    return torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(frames, 3, 2, 2).contiguous()


def jitter(video, **strengths):
    steps = dict(brightness=0.0, saturation=0.0, hue=0.0, contrast=0.0)
    steps.update(strengths)
    return transforms.color_jitter(video, np.random.default_rng(0), **steps)


def test_no_jitter_leaves_the_pixels_and_changes_the_layout():
    video = torch.from_numpy(frames(3)).permute(0, 3, 1, 2).contiguous()  # [T, 3, H, W]
    out = jitter(video)
    assert out.shape == (3, 3, 40, 60) and out.dtype == torch.uint8
    assert torch.equal(out, transforms.to_clip_layout(video)) and torch.equal(out[:, 1], video[1])


def test_hue_turns_red_towards_yellow_and_a_third_turn_into_green():
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(transforms.hue_matrix(1 / 3) @ red, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    warmer = transforms.hue_matrix(0.05) @ red
    assert warmer[1] > 0.1 > warmer[2]  # green rises first: towards yellow
    grey = torch.full((3,), 0.4, dtype=torch.float64)
    torch.testing.assert_close(transforms.hue_matrix(0.17) @ grey, grey)


def test_saturation_blends_with_the_luma_and_keeps_greys():
    colour = torch.tensor([0.9, 0.2, 0.1], dtype=torch.float64)
    luma = float(transforms.LUMA @ colour)
    torch.testing.assert_close(transforms.saturation_matrix(0.0) @ colour, torch.full((3,), luma, dtype=torch.float64))
    torch.testing.assert_close(transforms.saturation_matrix(1.4) @ colour, luma + 1.4 * (colour - luma))


def test_each_step_stays_within_its_strength():
    grey = uniform((128, 128, 128))
    for seed in range(30):
        rng = np.random.default_rng(seed)
        shifted = transforms.color_jitter(grey, rng, brightness=32 / 255, saturation=0, hue=0, contrast=0)
        assert (shifted.int() - 128).abs().max() <= 32  # in grey levels
        assert shifted.min() == shifted.max()  # one draw for the whole clip
    half = torch.full((2, 3, 2, 2), 50, dtype=torch.uint8)
    half[..., 0] = 150  # two levels per frame: contrast moves them around their mean, 100
    for seed in range(30):
        out = transforms.color_jitter(half, np.random.default_rng(seed), brightness=0, saturation=0, hue=0,
                                      contrast=0.4).int()
        spread = float(out[0, 0, 0, 0] - out[0, 0, 0, 1]) / 100
        assert 0.6 - 0.01 <= spread <= 1.4 + 0.01 and float(out[0].float().mean()) == pytest.approx(100, abs=0.5)


def reference_jitter(video, seed):
    """The jitter step by step in float64 on [0, 1] (the release's order and clipping), in grey levels."""
    rng = np.random.default_rng(seed)
    x = video.double() / 255  # [T, 3, H, W]
    x = x + rng.uniform(-32 / 255, 32 / 255)
    saturated = transforms.saturation_matrix(rng.uniform(0.6, 1.4))
    turned = transforms.hue_matrix(rng.uniform(-0.2, 0.2))
    x = torch.einsum("cd,tdhw->tchw", turned @ saturated, x)
    mean = x.mean((2, 3), keepdim=True)
    x = rng.uniform(0.6, 1.4) * (x - mean) + mean
    return (x.clamp(0, 1) * 255).transpose(0, 1)  # [3, T, H, W]


def test_jitter_matches_the_step_by_step_form_to_the_nearest_grey_level():
    video = torch.from_numpy(frames(4)).permute(0, 3, 1, 2).contiguous()
    clipped = 0
    for seed in range(10):
        out = transforms.color_jitter(video, np.random.default_rng(seed))
        reference = reference_jitter(video, seed)
        assert out.dtype == torch.uint8 and out.shape == (3, 4, 40, 60)
        assert (out.double() - reference).abs().max() <= 0.5 + 1e-3  # rounding only
        clipped += int(((reference == 0) | (reference == 255)).sum())
    assert clipped > 0  # the draws reach the clipping, which saturates instead of wrapping around


def test_evaluation_views_resize_the_short_side_and_crop_centre_or_three():
    clip = np.zeros((2, 40, 80, 3), dtype=np.uint8)
    clip[:, :, :20] = 255  # a white left quarter
    centre = transforms.spatial_views(clip, 20, crops=1)
    three = transforms.spatial_views(clip, 20, crops=3)
    assert centre.shape == (1, 2, 3, 20, 20) and three.shape == (3, 2, 3, 20, 20) and centre.dtype == torch.uint8
    assert centre[..., 1:].max() < 3  # the centre of a 40-wide frame misses the left quarter
    assert three[0, :, :, :, :8].min() > 240 and torch.equal(three[1], centre[0])  # left, centre, right
    tall = transforms.spatial_views(np.zeros((1, 80, 40, 3), dtype=np.uint8), 20, crops=3)
    assert tall.shape == (3, 1, 3, 20, 20)
    with pytest.raises(ValueError, match="crops"):
        transforms.spatial_views(clip, 20, crops=2)


def test_audio_noise_has_the_release_scale():
    audio = torch.zeros(200_000)
    audio[0] = 0.5
    noisy = transforms.add_audio_noise(audio, np.random.default_rng(0), 0.01)
    assert math.isclose(float(noisy[1:].std()), 0.005, rel_tol=0.02)
    assert torch.equal(transforms.add_audio_noise(torch.zeros(10), np.random.default_rng(0)), torch.zeros(10))
