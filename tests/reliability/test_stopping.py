"""Stopping a run as a terminal or a scheduler does: SIGINT or SIGTERM to the whole process group, DataLoader
workers included, on one process and under torchrun. The step in flight finishes, its checkpoint is saved and
the run ends with one line and exit code 130; a second Ctrl-C ends it at once, keeping the last checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from vatt.data.loader import make_loader
from vatt.engine.checkpoint import checkpoint_path, load_latest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
# the quickstart shrunk to a long run of small steps, with its one DataLoader worker
ENDLESS = ["run.steps=100000", "run.batch_size=8", "run.log_every=1", "run.checkpoint_every=100000",
           "run.tensorboard=false", "data.train.num_clips=32", "evaluators=[]", "data.eval=null",
           "data.num_workers=1"]
VATT_RUN = [sys.executable, "-m", "vatt.run", str(QUICKSTART)]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vatt.run",
            str(QUICKSTART)]


def _handle_ctrl_c() -> None:
    # a test run started in the background ignores SIGINT, and its children would inherit that and ignore it too
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(command: list[str]) -> subprocess.Popen:
    """``command`` in a process group of its own, as a shell starts a foreground job."""
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            preexec_fn=_handle_ctrl_c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def train_steps(run_dir: Path) -> list[int]:
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def wait_until_training(process: subprocess.Popen, run_dir: Path, steps: int = 2) -> None:
    deadline = time.monotonic() + 240  # a safety net for a run that hangs, not a timing requirement
    while len(train_steps(run_dir)) < steps:
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"the run did not start training: {process.communicate()[1][-3000:]}")
        time.sleep(0.05)


def finish(process: subprocess.Popen) -> str:
    """What the run printed on stderr, once it and every process holding its output have ended."""
    try:
        return process.communicate(timeout=240)[1]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


def not_progress(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith("step ")]


def test_a_ctrl_c_to_the_process_group_saves_the_step_in_flight_and_ends_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    process = start([*VATT_RUN, f"run.dir={run_dir}", *ENDLESS])
    wait_until_training(process, run_dir)
    os.killpg(process.pid, signal.SIGINT)  # the main process and its DataLoader worker, as a terminal does
    err = finish(process)

    assert process.returncode == 130, err[-3000:]
    last = train_steps(run_dir)[-1]
    assert not_progress(err) == [f"stopped by SIGINT after step {last}; its checkpoint is "
                                 f"{checkpoint_path(run_dir, last)}"]
    assert load_latest(run_dir)[0] == last


def test_a_second_ctrl_c_ends_the_run_at_once_keeping_the_last_checkpoint(tmp_path):
    # Both presses come from inside the step that completes step 3, after the checkpoint of step 2: the first
    # asks for a stop at the end of the step, the second (delivered before os.killpg returns) ends it there.
    presses = (
        "import os, signal, sys\n"
        "from vatt.engine.trainer import Loop\n"
        "from vatt.run import main\n"
        "forward_backward = Loop._forward_backward\n"
        "def pressed_twice_in_step_3(self, step, batch):\n"
        "    if step == 2:\n"
        "        os.killpg(os.getpgrp(), signal.SIGINT)\n"
        "        os.killpg(os.getpgrp(), signal.SIGINT)\n"
        "    return forward_backward(self, step, batch)\n"
        "Loop._forward_backward = pressed_twice_in_step_3\n"
        "sys.exit(main(sys.argv[1:]))\n")
    run_dir = tmp_path / "run"
    process = start([sys.executable, "-c", presses, str(QUICKSTART), f"run.dir={run_dir}", *ENDLESS,
                     "run.checkpoint_every=2"])
    err = finish(process)

    assert process.returncode == 130, err[-3000:]
    assert not_progress(err) == ["interrupted; the last checkpoint in the run directory is kept"]
    assert train_steps(run_dir) == [1, 2]  # step 3 never finished
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["latest", "step_00000002.pt"]
    assert load_latest(run_dir)[0] == 2


def test_a_sigterm_to_torchrun_stops_both_processes_after_the_same_step_and_saves_it(tmp_path):
    run_dir = tmp_path / "run"
    process = start([*TORCHRUN, f"run.dir={run_dir}", *ENDLESS])
    wait_until_training(process, run_dir)
    # as a scheduler stops a job (Ctrl-C takes the same path): torchrun forwards the signal to each rank's
    # process group, DataLoader workers included
    os.killpg(process.pid, signal.SIGTERM)
    err = finish(process)

    last = train_steps(run_dir)[-1]
    stopped = f"stopped by SIGTERM after step {last}; its checkpoint is {checkpoint_path(run_dir, last)}"
    assert err.count(stopped) == 1, err[-3000:]  # said once, by rank 0
    assert load_latest(run_dir)[0] == last
    # torchrun itself reports the signal it got with a traceback of its own (SignalException, exit code 1); no
    # traceback comes from the ranks, and no DataLoader worker died
    assert f'File "{ROOT / "vatt"}' not in err
    assert "DataLoader worker" not in err and "died while reading" not in err


class Numbers(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, key):
        return {"x": torch.tensor(float(key.index))}


def test_workers_ignore_stop_signals_from_others_and_end_on_the_sigterm_of_their_main_process():
    batches = make_loader(Numbers(), batch_size=4, num_workers=1)
    next(batches)  # the worker has run its init
    worker = batches._iterator._workers[0]
    for stop in ("-INT", "-TERM"):  # from another process, as a terminal's Ctrl-C or a kill of the group
        subprocess.run(["kill", stop, str(worker.pid)], check=True)
    next(batches)
    assert worker.is_alive()
    os.kill(worker.pid, signal.SIGTERM)  # the DataLoader's terminate() of a worker that does not exit
    worker.join(timeout=60)
    assert worker.exitcode == 0
