"""Run directories under stress: a full disk while saving, a read-only directory, two runs on one directory,
a run killed outright, checkpoints that no longer load or no longer fit the model. Each ends in a one-screen
error (exit code 2) or recovers, and never loses a checkpoint already saved."""
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from vatt import config
from vatt.engine import run_lock
from vatt.engine.checkpoint import checkpoint_path, load_latest
from vatt.run import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
TINY = ["run.batch_size=8", "run.log_every=1", "run.checkpoint_every=2", "run.tensorboard=false",
        "data.train.num_clips=32", "evaluators=[]", "data.eval=null", "data.num_workers=0"]
ONE_SCREEN = 12  # lines


def run(run_dir: Path, capsys, *overrides: str) -> tuple[int, str]:
    code = main([str(QUICKSTART), f"run.dir={run_dir}", *TINY, *overrides])
    return code, capsys.readouterr().err


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def saved_config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def assert_one_screen(err: str) -> None:
    assert "Traceback" not in err and len(err.splitlines()) <= ONE_SCREEN, err


class FullDisk:
    """A file on a disk with ``room`` bytes left: a write beyond them fails as the kernel fails it."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def test_a_full_disk_while_saving_is_one_error_that_keeps_the_last_checkpoint_and_resumes(tmp_path, capsys,
                                                                                           monkeypatch):
    run_dir = tmp_path / "run"
    real_save = torch.save
    saves = []

    def disk_full_at_the_second_save(obj, f, **kwargs):
        saves.append(f)
        return real_save(obj, FullDisk(f, room=100_000) if len(saves) == 2 else f, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_at_the_second_save)
    code, err = run(run_dir, capsys, "run.steps=4")
    assert code == 2
    assert_one_screen(err)
    assert (f"error: no space left on device while writing step 4 to {checkpoint_path(run_dir, 4)}; the "
            f"checkpoint of step 2 ({checkpoint_path(run_dir, 2)}) is intact") in err
    assert files(run_dir / "checkpoints") == ["latest", "step_00000002.pt"]  # the temporary file is gone
    assert load_latest(run_dir)[0] == 2

    monkeypatch.undo()  # space freed
    code, err = run(run_dir, capsys, "run.steps=4")
    assert code == 0 and f"resuming {run_dir} from step 2" in err
    assert load_latest(run_dir)[0] == 4


class FullAfter:
    """A text file on a disk that fills up after ``lines`` writes."""

    def __init__(self, f, lines: int):
        self.f, self.lines = f, lines

    def write(self, text: str) -> int:
        if self.lines == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.lines -= 1
        return self.f.write(text)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_a_full_disk_while_logging_is_one_error_that_keeps_the_last_checkpoint_and_resumes(tmp_path, capsys,
                                                                                            monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setattr("vatt.engine.logging.open", lambda *a, **k: FullAfter(open(*a, **k), lines=2), raising=False)
    code, err = run(run_dir, capsys, "run.steps=4")
    assert code == 2
    assert_one_screen(err)
    assert (f"error: no space left on device while writing {run_dir / 'metrics.jsonl'}. To continue, free some "
            f"space and run the same command: it resumes from the last checkpoint") in err
    assert load_latest(run_dir)[0] == 2  # the step 3 line was refused: the checkpoint of step 2 stands

    monkeypatch.undo()  # space freed
    code, err = run(run_dir, capsys, "run.steps=4")
    assert code == 0 and f"resuming {run_dir} from step 2" in err
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line["kind"] == "train"] == [1, 2, 3, 4]


@pytest.fixture
def modes_bind_root_too(monkeypatch):
    """As root, a directory's mode does not stop writes; there, creating a file in a directory whose mode
    forbids writing fails as it fails for everyone else."""
    if os.geteuid() != 0:
        return
    real_open = os.open

    def open_as_a_user(path, flags, *args, **kwargs):
        folder = os.path.dirname(os.path.abspath(path))
        if flags & os.O_CREAT and not os.path.exists(path) and not os.stat(folder).st_mode & stat.S_IWUSR:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_as_a_user)


@pytest.mark.parametrize("read_only", [".", "checkpoints"])
def test_a_read_only_run_directory_stops_the_run_before_anything_is_built(tmp_path, capsys, monkeypatch,
                                                                          modes_bind_root_too, read_only):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("task: pretrain\n")
    folder = (run_dir / read_only).resolve()
    monkeypatch.setattr("vatt.tasks.builders.build_dataset", lambda *_: pytest.fail("training was being set up"))
    folder.chmod(0o555)
    try:
        code, err = run(run_dir, capsys, "run.steps=2")
    finally:
        folder.chmod(0o755)
    assert code == 2
    assert_one_screen(err)
    assert f"error: run.dir: cannot write in {run_dir / read_only if read_only != '.' else run_dir} " \
           f"(Permission denied)" in err
    assert files(run_dir) == ["checkpoints", "config.yaml"] and not files(run_dir / "checkpoints")
    assert (run_dir / "config.yaml").read_text() == "task: pretrain\n"


def test_a_disk_too_full_for_the_config_stops_the_run_before_anything_is_built(tmp_path, capsys, monkeypatch):
    real_atomic_write = config.atomic_write

    def full(path, write):  # the disk fills up while the config is written
        return real_atomic_write(path, lambda f: write(FullDisk(f, room=10)))

    monkeypatch.setattr(config, "atomic_write", full)
    monkeypatch.setattr("vatt.tasks.builders.build_dataset", lambda *_: pytest.fail("training was being set up"))
    run_dir = tmp_path / "run"
    code, err = run(run_dir, capsys, "run.steps=2")
    assert code == 2
    assert_one_screen(err)
    assert f"error: run.dir: cannot write {run_dir / 'config.yaml'} (No space left on device)" in err
    assert not [p for p in run_dir.iterdir() if p.is_file() and p.name != run_lock.LOCK_NAME]  # no half-written file


def test_a_second_run_on_a_busy_directory_stops_at_once_and_a_killed_run_leaves_no_stale_lock(tmp_path, capsys):
    run_dir = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "vatt.run", str(QUICKSTART), f"run.dir={run_dir}", *TINY,
                              "run.steps=100000", "run.checkpoint_every=1", "data.num_workers=1"],
                             cwd=ROOT, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240  # a safety net for a run that hangs, not a timing requirement
        while (load_latest(run_dir) or (0,))[0] < 2:
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()[-3000:]
            time.sleep(0.05)

        code, err = run(run_dir, capsys, "run.steps=100000")
        assert code == 2
        assert_one_screen(err)
        assert f"error: run.dir: {run_dir} is in use by another run (pid {first.pid} on host " in err

        # killed outright, the main process only: its DataLoader worker lives on for a while, orphaned
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        saved = load_latest(run_dir)[0]
        code, err = run(run_dir, capsys, f"run.steps={saved + 1}")
        assert code == 0, err
        assert f"resuming {run_dir} from step {saved}" in err
    finally:
        os.killpg(first.pid, signal.SIGKILL)
    assert run_lock.LOCK_NAME in files(run_dir)  # beside the checkpoints, not among what resuming and pruning look at
    assert files(run_dir / "checkpoints") == ["latest", *(f"step_{s:08d}.pt" for s in range(saved - 1, saved + 2))]


def test_a_torchrun_job_on_a_busy_directory_stops_every_process_with_one_error(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_lock.hold(run_dir)  # this process is the other run
    try:
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                               "-m", "vatt.run", str(QUICKSTART), f"run.dir={run_dir}", *TINY, "run.steps=2"],
                              cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                              timeout=240)
    finally:
        run_lock.release(run_dir)
    assert done.returncode != 0  # torchrun reports its processes' exit code 2 as a failure of its own
    assert done.stderr.count(f"error: run.dir: {run_dir} is in use by another run (pid {os.getpid()} ") == 1
    assert f'File "{ROOT / "vatt"}' not in done.stderr  # rank 1 did not die waiting for rank 0 in a collective
    assert not (run_dir / "checkpoints").exists()


def test_a_run_directory_whose_checkpoints_all_fail_to_load_is_one_error_naming_them(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"model": {"w": torch.ones(2)}}, run_dir / "checkpoints" / "step_00000004.pt")
    whole = (run_dir / "checkpoints" / "step_00000004.pt").read_bytes()
    (run_dir / "checkpoints" / "step_00000004.pt").write_bytes(whole[: len(whole) // 2])  # cut short
    torch.save({"model": Path("planted")}, run_dir / "checkpoints" / "step_00000002.pt")  # not weights only
    (run_dir / "checkpoints" / "latest").write_text("step_00000004.pt\n")

    code, err = run(run_dir, capsys, "run.steps=6")
    assert code == 2
    assert_one_screen(err)
    assert f"error: no checkpoint in {run_dir / 'checkpoints'} loads" in err
    for name in ("step_00000004.pt", "step_00000002.pt"):
        assert f"  {name}: " in err
    assert "The run cannot resume: move them out of" in err


@pytest.mark.parametrize("change, named", [
    ("video.backbone.mlp_dim=64", "parameters have other shapes (checkpoint -> model): "
                                  "towers.video.backbone.blocks.0.mlp_in.weight [256, 128] -> [64, 128]"),
    ("audio.backbone.layers=3", "parameters of the model are missing from the checkpoint: "
                                "towers.audio.backbone.blocks.2.")], ids=["wider", "deeper"])
def test_resuming_after_the_architecture_changed_names_the_parameters_and_the_config_keys(tmp_path, capsys,
                                                                                          change, named):
    run_dir = tmp_path / "run"
    assert run(run_dir, capsys, "run.steps=2")[0] == 0
    before = saved_config(run_dir)

    code, err = run(run_dir, capsys, "run.steps=4", f"model.modalities.{change}")
    assert code == 2
    assert_one_screen(err)
    assert f"the checkpoint of step 2 ({checkpoint_path(run_dir, 2)}) does not fit this model" in err
    assert named in err
    assert f"The config changed since that run at model.modalities.{change.split('=')[0]}; run.steps: " in err
    assert load_latest(run_dir)[0] == 2
    assert saved_config(run_dir) == before  # the config of the run whose checkpoints these are


def test_resuming_with_fewer_steps_than_the_checkpoint_names_both_and_keeps_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run(run_dir, capsys, "run.steps=4")[0] == 0
    code, err = run(run_dir, capsys, "run.steps=2")
    assert code == 2
    assert_one_screen(err)
    assert "run.steps: 2 is below step 4 of the run directory's latest checkpoint" in err
    assert "set run.steps to at least 4" in err
    assert load_latest(run_dir)[0] == 4 and saved_config(run_dir)["run"]["steps"] == 4
    assert run(run_dir, capsys, "run.steps=6")[0] == 0  # the run goes on from its checkpoint
    assert load_latest(run_dir)[0] == 6 and saved_config(run_dir)["run"]["steps"] == 6
