import pytest
import torch
import torch.nn.functional as F

from vatt.models.positions import FactorisedPositions, resample_cubic


def test_table_is_the_layer_normed_sum_of_the_axis_vectors_in_row_major_order():
    positions = FactorisedPositions((2, 3, 4), dim=5)
    table = positions.table()
    assert table.shape == (24, 5)
    t, h, w = positions.axes
    cell = 1 * 12 + 2 * 4 + 3  # (t=1, h=2, w=3)
    expected = F.layer_norm(t[1] + h[2] + w[3], (5,), positions.norm.weight, positions.norm.bias, eps=1e-6)
    torch.testing.assert_close(table[cell], expected)


def test_resize_interpolates_each_axis_and_leaves_unchanged_axes_alone():
    positions = FactorisedPositions((8, 14, 14), dim=4)
    time_table = positions.axes[0]
    positions.resize((8, 20, 20))
    assert positions.grid == (8, 20, 20) and positions.num_positions == 3200
    assert positions.axes[0] is time_table
    assert positions.table().shape == (3200, 4)


def test_cubic_resampling_keeps_constants_and_is_smooth_on_a_ramp():
    constant = torch.full((14, 3), 0.7)
    torch.testing.assert_close(resample_cubic(constant, 20), torch.full((20, 3), 0.7))
    ramp = torch.linspace(0, 1, 14)[:, None].repeat(1, 2)  # [14, 2]
    up = resample_cubic(ramp, 20)
    assert up.shape == (20, 2)
    assert torch.all(up[1:, 0] >= up[:-1, 0])  # order along the axis is preserved
    assert up[0, 0] < 0.05 and up[-1, 0] > 0.95


def test_bad_grids_raise():
    with pytest.raises(ValueError, match="grid"):
        FactorisedPositions((4, 0), dim=2)
    with pytest.raises(ValueError, match="grid"):
        FactorisedPositions((4, 4), dim=2).resize((4,))
