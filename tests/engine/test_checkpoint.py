import logging
import os

import pytest
import torch

from vatt.engine import checkpoint as ckpt
from vatt.engine.checkpoint import CheckpointError, CheckpointWriteError, checkpoint_path, load_latest, save_checkpoint


def _files(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def _trained_pair(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(5, 4)).pow(2).sum().backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_of_model_and_optimizer_state(tmp_path):
    model, optimizer = _trained_pair()
    path = save_checkpoint(tmp_path, 7, {"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    assert path == tmp_path / "checkpoints" / "step_00000007.pt"
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000007.pt"

    step, state = load_latest(tmp_path)
    assert step == 7
    restored, restored_opt = _trained_pair(seed=1)
    restored.load_state_dict(state["model"])
    restored_opt.load_state_dict(state["optimizer"])
    # The same next update from both proves weights and Adam moments both came back.
    x = torch.randn(2, 4)
    for m, o in ((model, optimizer), (restored, restored_opt)):
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), restored.parameters()):
        assert torch.equal(a, b)


def test_keeps_only_the_newest_checkpoints(tmp_path):
    for step in range(1, 6):
        save_checkpoint(tmp_path, step * 100, {"step": step}, keep=2)
    assert _files(tmp_path) == ["latest", "step_00000400.pt", "step_00000500.pt"]
    assert load_latest(tmp_path)[0] == 500


def test_pruning_never_removes_the_checkpoint_latest_names(tmp_path):
    save_checkpoint(tmp_path, 10, {"w": 1})
    save_checkpoint(tmp_path, 5, {"w": 2}, keep=1)  # older step number, but the newest save
    assert load_latest(tmp_path) == (5, {"w": 2})


def test_crash_inside_torch_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"w": torch.ones(3)})

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", dies_halfway)
    with pytest.raises(CheckpointWriteError, match="disk full while writing step 2 .*the checkpoint of step 1"):
        save_checkpoint(tmp_path, 2, {"w": torch.zeros(3)})
    monkeypatch.undo()

    assert _files(tmp_path) == ["latest", "step_00000001.pt"]  # no temporary file left behind
    step, state = load_latest(tmp_path)
    assert step == 1 and torch.equal(state["w"], torch.ones(3))


def test_crash_before_latest_is_updated_resumes_from_the_old_pointer(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"w": 1})
    real_replace = os.replace

    def fail_for_pointer(src, dst):
        if str(dst).endswith("latest"):
            raise KeyboardInterrupt  # killed between the two renames
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", fail_for_pointer)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, {"w": 2})
    monkeypatch.undo()

    assert _files(tmp_path) == ["latest", "step_00000001.pt", "step_00000002.pt"]
    assert load_latest(tmp_path) == (1, {"w": 1})


def test_temporary_file_of_a_killed_save_is_ignored_then_cleaned(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": 1})
    stale = tmp_path / "checkpoints" / ".step_00000002.pt.abc123.tmp"
    stale.write_bytes(b"truncated")
    assert load_latest(tmp_path) == (1, {"w": 1})
    save_checkpoint(tmp_path, 2, {"w": 2})
    assert not stale.exists()


def test_missing_pointer_falls_back_to_newest_step_file(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": 1})
    save_checkpoint(tmp_path, 2, {"w": 2})
    (tmp_path / "checkpoints" / "latest").unlink()
    assert load_latest(tmp_path) == (2, {"w": 2})


def test_garbled_pointer_is_reported_and_step_files_are_scanned(tmp_path, caplog):
    save_checkpoint(tmp_path, 3, {"w": 3})
    (tmp_path / "checkpoints" / "latest").write_bytes(b"\xff\xfe garbage")
    with caplog.at_level(logging.WARNING, logger=ckpt.__name__):
        assert load_latest(tmp_path) == (3, {"w": 3})
    assert "latest" in caplog.text


def test_truncated_checkpoint_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    save_checkpoint(tmp_path, 1, {"w": 1})
    save_checkpoint(tmp_path, 2, {"w": 2})
    newest = checkpoint_path(tmp_path, 2)
    newest.write_bytes(newest.read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger=ckpt.__name__):
        assert load_latest(tmp_path) == (1, {"w": 1})
    assert "step_00000002.pt" in caplog.text


def test_pointer_to_a_deleted_file_falls_back(tmp_path, caplog):
    save_checkpoint(tmp_path, 1, {"w": 1})
    save_checkpoint(tmp_path, 2, {"w": 2})
    checkpoint_path(tmp_path, 2).unlink()
    with caplog.at_level(logging.WARNING, logger=ckpt.__name__):
        assert load_latest(tmp_path) == (1, {"w": 1})
    assert "step_00000002.pt" in caplog.text


def test_error_when_checkpoints_exist_but_none_loads(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": 1})
    checkpoint_path(tmp_path, 1).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="step_00000001.pt"):
        load_latest(tmp_path)


def test_no_checkpoint_yet_returns_none(tmp_path):
    assert load_latest(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    assert load_latest(tmp_path) is None


@pytest.mark.parametrize("kwargs, name", [
    ({"step": -1}, "step"), ({"step": 1.5}, "step"), ({"keep": 0}, "keep"), ({"state": [1, 2]}, "state"),
])
def test_bad_arguments_are_value_errors_naming_them(tmp_path, kwargs, name):
    args = {"step": 1, "state": {"w": 1}, **kwargs}
    with pytest.raises(ValueError, match=name):
        save_checkpoint(tmp_path, **args)
