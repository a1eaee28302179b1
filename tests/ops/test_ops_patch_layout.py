"""The patch layout every implementation shares: which values form patch n, in which order."""
import torch

from vatt.ops.patch_layout import normalise_patch_size, patchify


def test_video_patch_order_is_time_then_height_then_width_and_channels_first_within_a_patch():
    x = torch.arange(2 * 4 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 4, 6)  # [B, C, T, H, W]
    patches = patchify(x, (2, 2, 3))  # grid 2 x 2 x 2
    assert patches.shape == (1, 8, 2 * 2 * 2 * 3)
    # patch 5 = (t=1, h=0, w=1); its first value is channel 0, frame 2, row 0, column 3
    assert patches[0, 5, 0] == x[0, 0, 2, 0, 3]
    # the second channel's block starts after pt*ph*pw values
    assert patches[0, 5, 12] == x[0, 1, 2, 0, 3]


def test_an_int_patch_size_is_one_axis_and_waveform_patches_drop_the_tail():
    wave = torch.arange(10, dtype=torch.float32).view(1, 10)
    patches = patchify(wave, normalise_patch_size(4))
    assert patches.tolist() == [[[0, 1, 2, 3], [4, 5, 6, 7]]]
