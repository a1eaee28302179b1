import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.tf_reference import load_npz, relative_error
from vatt.models.positions import FactorisedPositions, resize_table

WEIGHTS = "tx_fac_small_weights.npz"
BACKBONE = {"video": "vid_backbone", "audio": "aud_backbone"}


def checkpoint_table(modality: str, axis: str) -> np.ndarray:
    """A position table of the tx_fac_small checkpoint, e.g. ("video", "vertical") → [4, 64]."""
    key = (f"model/layer_with_weights-0/_base_layer/{BACKBONE[modality]}/_base/pos_embedding_lookup/"
           f"{axis}_position_embeddings/embeddings/.ATTRIBUTES/VARIABLE_VALUE")
    return load_npz(WEIGHTS)[key]


def resized64(table: np.ndarray, length: int) -> np.ndarray:
    return resize_table(torch.from_numpy(np.asarray(table, dtype=np.float64)), length).numpy()


def numpy_spline(table: np.ndarray, length: int) -> np.ndarray:
    """The README §5 spline written out independently: build the saddle-point system, np.linalg.solve it."""
    values = np.asarray(table, dtype=np.float64)
    rows = values.shape[0]
    nodes, queries = np.arange(rows) / rows, np.arange(length) / length

    def phi(a, b):
        return np.maximum(np.subtract.outer(a, b) ** 2, 1e-10) ** 1.5

    linear = np.stack([nodes, np.ones(rows)], axis=1)
    system = np.block([[phi(nodes, nodes), linear], [linear.T, np.zeros((2, 2))]])
    solution = np.linalg.solve(system, np.concatenate([values, np.zeros((2, values.shape[1]))]))
    return phi(queries, nodes) @ solution[:rows] + np.stack([queries, np.ones(length)], 1) @ solution[rows:]


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


def test_the_module_resize_is_the_release_spline():
    positions = FactorisedPositions((2, 4, 4), dim=6)
    before = [axis.detach().clone() for axis in positions.axes]
    positions.resize((2, 6, 3))
    assert isinstance(positions.axes[1], torch.nn.Parameter) and positions.axes[1].dtype == torch.float32
    torch.testing.assert_close(positions.axes[0].detach(), before[0], rtol=0, atol=0)
    torch.testing.assert_close(positions.axes[1].detach(), resize_table(before[1], 6), rtol=0, atol=0)
    torch.testing.assert_close(positions.axes[2].detach(), resize_table(before[2], 3), rtol=0, atol=0)
    np.testing.assert_allclose(positions.axes[1].detach().numpy(), numpy_spline(before[1].numpy(), 6),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, length", [("tx_fac_small_interp_reference.npz", 6),
                                          ("tx_fac_small_interp_smaller_reference.npz", 3)])
def test_video_tables_match_the_release_resize(name, length):
    reference = load_npz(name)
    assert sorted(str(k) for k in reference["meta/interpolated_tables"]) == ["video/horizontal", "video/vertical"]
    for axis in ("vertical", "horizontal"):
        source = checkpoint_table("video", axis)  # [4, 64]
        expected = reference[f"debug/video/pos_tables/{axis}"]  # [length, 64], TF's float32 resize
        assert expected.shape == (length, 64)
        assert relative_error(resized64(source, length), expected) <= 3e-6, axis
        assert relative_error(resize_table(torch.from_numpy(source), length).numpy(), expected) <= 1e-5, axis
    # the temporal axis has as many tokens as buckets: the table is used as it is
    np.testing.assert_array_equal(reference["debug/video/pos_tables/temporal"], checkpoint_table("video", "temporal"))


def test_the_fine_tuning_restore_resizes_like_the_release():
    restore = load_npz("finetune_restore_check.npz")
    for axis in ("temporal", "vertical", "horizontal"):
        source, restored = restore[f"video/{axis}/source"], restore[f"video/{axis}/restored"]
        np.testing.assert_array_equal(source, checkpoint_table("video", axis))
        assert relative_error(resized64(source, restored.shape[0]), restored) <= 3e-6, axis
    source, restored = restore["audio/temporal/source"], restore["audio/temporal/restored"]  # 50 → 75
    assert relative_error(resized64(source, restored.shape[0]), restored) <= 0.1  # TF's float32 solve is off (§5)


@pytest.mark.parametrize("name, length", [("tx_fac_small_interp_audio_reference.npz", 75),
                                          ("tx_fac_small_interp_audio_shorter_reference.npz", 25)])
def test_audio_tables_match_the_release_loosely_and_are_the_exact_spline(name, length):
    reference = load_npz(name)
    assert [str(k) for k in reference["meta/interpolated_tables"]] == ["audio/temporal"]
    source = checkpoint_table("audio", "temporal")  # [50, 48]
    expected = reference["debug/audio/pos_tables/temporal"]  # [length, 48]
    ours = resized64(source, length)
    # TF solves this ill-conditioned system (|w| ~ 6e5) in float32: README §9 measured 6.9e-2 / 8.5e-2
    assert relative_error(ours, expected) <= 0.1
    # ...so the exactness is checked against an independent float64 solve of the same system
    assert relative_error(ours, numpy_spline(source, length)) <= 1e-9
    # and the spline passes through the table at the nodes: query j/length is node i/50 when j·50 = i·length
    hits = [(j, j * 50 // length) for j in range(length) if (j * 50) % length == 0]  # 25 (every 3rd / every row)
    assert len(hits) == 25
    query_rows, node_rows = zip(*hits)
    assert relative_error(ours[list(query_rows)], source[list(node_rows)]) <= 1e-9
    # float32 in, float32 out, the computation still float64
    out32 = resize_table(torch.from_numpy(source), length)
    assert out32.dtype == torch.float32
    assert relative_error(out32.numpy(), ours) <= 1e-6


def test_two_nodes_give_linear_inter_and_extrapolation():
    table = torch.tensor([[0.0, 1.0, -2.0], [1.0, 3.0, 4.0]], dtype=torch.float64)  # rows at x = 0 and 1/2
    for length in (3, 5, 8):
        x = torch.arange(length, dtype=torch.float64) / length
        expected = table[0] + (table[1] - table[0]) * (x[:, None] / 0.5)  # the line through both rows
        torch.testing.assert_close(resize_table(table, length), expected, rtol=0, atol=1e-12)


def test_the_spline_passes_through_the_rows_and_agrees_with_an_independent_solve():
    table = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    doubled = resize_table(table, 14)  # query 2i/14 = node i/7
    torch.testing.assert_close(doubled[::2], table, rtol=0, atol=1e-12)
    for length in (4, 9, 14, 20):
        np.testing.assert_allclose(resize_table(table, length).numpy(), numpy_spline(table.numpy(), length),
                                   rtol=0, atol=1e-10)


def test_same_length_returns_the_table_and_one_row_gives_a_constant():
    table = torch.randn(5, 3)
    assert resize_table(table, 5) is table
    row = torch.tensor([[0.3, -1.0, 2.0]])
    # one node: the system is singular (the slope is undetermined); its minimum-norm solution is a constant
    constant = resize_table(row, 4)
    torch.testing.assert_close(constant, row.expand(4, -1), rtol=0, atol=0)
    system = np.array([[1e-15, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # [[φ(0), c_0, 1], [c_0, 0, 0], ...]
    assert np.linalg.matrix_rank(system) == 2
    minimum_norm = np.linalg.pinv(system) @ np.array([0.3, 0.0, 0.0])  # [w, v_0, v_1]
    np.testing.assert_allclose(minimum_norm, [0.0, 0.0, 0.3], atol=1e-12)


def test_constants_are_kept_and_gradients_flow():
    torch.testing.assert_close(resize_table(torch.full((14, 3), 0.7), 20), torch.full((20, 3), 0.7))
    table = torch.randn(4, 2, requires_grad=True)
    resize_table(table, 6).sum().backward()
    assert table.grad is not None and torch.isfinite(table.grad).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="length"):
        resize_table(torch.zeros(4, 2), 0)
    with pytest.raises(ValueError, match="table"):
        resize_table(torch.zeros(4), 3)


def test_bad_grids_raise():
    with pytest.raises(ValueError, match="grid"):
        FactorisedPositions((4, 0), dim=2)
    with pytest.raises(ValueError, match="grid"):
        FactorisedPositions((4, 4), dim=2).resize((4,))
