import io
import json

import pytest
import torch

from vatt.engine.logging import RunLogger, format_duration


class FakeClock:
    """Monotonic time that advances only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _without_timing(records):
    return [{k: v for k, v in r.items() if k not in ("time", "clips_per_s")} for r in records]


def _logger(run_dir, clock=None, **kwargs):
    args = dict(total_steps=6, batch_size=8, tensorboard=False, stream=io.StringIO(), clock=clock or FakeClock())
    return RunLogger(run_dir, **{**args, **kwargs})


def test_metrics_jsonl_has_one_flushed_line_per_call(tmp_path):
    clock = FakeClock()
    logger = _logger(tmp_path, clock)
    clock.now = 0.5
    logger.log_step(1, {"loss": torch.tensor(2.5), "loss_va": 1.0, "lr": 1e-4})
    # Readable before close: a crash right after this call loses nothing.
    first = _lines(tmp_path)[0]
    assert first["step"] == 1 and first["kind"] == "train"
    assert first["loss"] == 2.5 and first["loss_va"] == 1.0 and first["lr"] == 1e-4
    assert first["clips_per_s"] == pytest.approx(16.0)  # 1 step of 8 clips in 0.5 s
    assert isinstance(first["time"], float)

    logger.log_eval(1, {"top1": 0.75, "per_class": [0.5, 1.0]})
    logger.close()
    second = _lines(tmp_path)[1]
    assert second["kind"] == "eval" and second["top1"] == 0.75 and second["per_class"] == [0.5, 1.0]


def test_throughput_follows_the_recent_window(tmp_path):
    clock = FakeClock()
    logger = _logger(tmp_path, clock, throughput_window=2, total_steps=10)
    for step, now in ((1, 10.0), (2, 11.0), (3, 11.5)):  # one slow step, then faster ones
        clock.now = now
        logger.log_step(step, {"loss": 1.0})
    logger.close()
    assert _lines(tmp_path)[-1]["clips_per_s"] == pytest.approx(16.0)  # only steps 2→3 count


def test_progress_line_format_and_eta(tmp_path):
    clock, stream = FakeClock(), io.StringIO()
    logger = _logger(tmp_path, clock, total_steps=102, print_every=2, stream=stream)
    for step in (1, 2, 3):
        clock.now = float(step)
        logger.log_step(step, {"loss": 3.2149})
    logger.close()
    assert stream.getvalue().splitlines() == ["step 2/102 | loss 3.21 | 8.0 clips/s | ETA 1m40s"]


def test_progress_is_printed_at_the_last_step(tmp_path):
    clock, stream = FakeClock(), io.StringIO()
    logger = _logger(tmp_path, clock, total_steps=3, print_every=100, stream=stream)
    for step in (1, 2, 3):
        clock.now = float(step)
        logger.log_step(step, {"loss": 1.0})
    logger.log_eval(3, {"top1": 0.5})
    logger.close()
    assert stream.getvalue().splitlines() == ["step 3/3 | loss 1 | 8.0 clips/s | ETA 0s", "eval step 3 | top1 0.5"]


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45.4, "45s"), (100, "1m40s"), (3600, "1h00m"),
                                           (7500, "2h05m"), (float("nan"), "?")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def _run(logger, steps, eval_at=()):
    for step in steps:
        logger.log_step(step, {"loss": 1.0 / step, "lr": 0.1})
        if step in eval_at:
            logger.log_eval(step, {"top1": step / 10})


def test_resume_drops_lines_after_the_checkpoint(tmp_path):
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    with _logger(whole) as logger:
        _run(logger, range(1, 7), eval_at={2, 4})

    # First attempt dies at step 5 while writing a line; the last checkpoint was step 3.
    with _logger(crashed) as logger:
        _run(logger, range(1, 6), eval_at={2, 4})
    with open(crashed / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "kind": "tr')
    with _logger(crashed, start_step=3) as logger:
        assert [r["step"] for r in _lines(crashed)] == [1, 2, 2, 3]
        _run(logger, range(4, 7), eval_at={2, 4})

    assert _without_timing(_lines(crashed)) == _without_timing(_lines(whole))


def test_fresh_start_replaces_an_old_metrics_file(tmp_path):
    with _logger(tmp_path) as logger:
        _run(logger, range(1, 4))
    with _logger(tmp_path) as logger:
        _run(logger, [1])
    assert [r["step"] for r in _lines(tmp_path)] == [1]


def test_write_results_writes_json_atomically(tmp_path):
    with _logger(tmp_path) as logger:
        path = logger.write_results({"top1": torch.tensor(0.5), "retrieval": {"R@1": 0.1, "median_rank": 12}})
    assert path == tmp_path / "results.json"
    assert json.loads(path.read_text()) == {"top1": 0.5, "retrieval": {"R@1": 0.1, "median_rank": 12}}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_tensorboard_scalars_can_be_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    clock = FakeClock()
    with _logger(tmp_path, clock, tensorboard=True) as logger:
        for step in (1, 2):
            clock.now = float(step)
            logger.log_step(step, {"loss": 2.0, "loss_vt": 1.5, "lr": 1e-4, "grad_norm": 0.3})
        logger.log_eval(2, {"top1": 0.25, "confusion": [[1, 0], [0, 1]]})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {"loss/total", "loss/vt", "lr", "train/grad_norm", "throughput/clips_per_s", "eval/top1"}
    assert [(e.step, e.value) for e in events.Scalars("loss/vt")] == [(1, 1.5), (2, 1.5)]
    assert events.Scalars("throughput/clips_per_s")[-1].value == pytest.approx(8.0)


@pytest.mark.parametrize("kwargs, name", [({"total_steps": 0}, "total_steps"), ({"batch_size": -1}, "batch_size"),
                                          ({"print_every": 0}, "print_every"), ({"start_step": 7}, "start_step")])
def test_bad_arguments_are_value_errors_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        _logger(tmp_path, **kwargs)


def test_scalars_may_not_overwrite_the_logger_fields(tmp_path):
    with _logger(tmp_path) as logger:
        with pytest.raises(ValueError, match="step"):
            logger.log_step(1, {"step": 3})
        with pytest.raises(ValueError, match="metrics"):
            logger.log_eval(1, [0.5])


@pytest.mark.parametrize("start_step, expected", [(3, [1, 2, 3, 4]), (0, [4])])
def test_restart_hides_tensorboard_points_of_the_dead_attempt(tmp_path, start_step, expected):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with _logger(tmp_path, tensorboard=True) as logger:
        _run(logger, range(1, 6))
    # Event files are read in name order, and names start with the creation second; date the dead attempt's
    # file back so both attempts made within one second still sort as they would in a real restart.
    (dead,) = (tmp_path / "tensorboard").iterdir()
    dead.rename(dead.with_name("events.out.tfevents.0000000001." + dead.name.split(".", 4)[4]))
    with _logger(tmp_path, tensorboard=True, start_step=start_step) as logger:
        _run(logger, [4])
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/total")] == expected


def test_without_tensorboard_installed_the_run_logs_to_jsonl_and_warns(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it raises ImportError
    stream = io.StringIO()
    with RunLogger(tmp_path, total_steps=2, batch_size=4, tensorboard=True, stream=stream) as logger:
        logger.log_step(1, {"loss": 1.0})
    assert "tensorboard is not installed" in stream.getvalue()
    assert not (tmp_path / "tensorboard").exists()
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 1.0
