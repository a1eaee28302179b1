"""A split file that names a missing video is a config error naming the file and the entry, unless the
dataset is told to skip missing entries (partial downloads); the tasks' data sections report it as such."""
import logging
import os

import pytest

from vatt.errors import ConfigError
from vatt.registry import build
from vatt.testing.replicas import REPLICAS


@pytest.fixture(scope="module")
def ucf101(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf101")
    return REPLICAS["ucf101"](root)


def test_a_split_file_naming_a_missing_video_is_an_error_naming_file_and_entry(ucf101):
    victim = "Basketball/v_Basketball_g02_c01.avi"  # in trainlist01 (group 1 is split 1's test set)
    path = os.path.join(ucf101["root"], "UCF-101", victim)
    hidden = path + ".away"
    os.rename(path, hidden)
    try:
        with pytest.raises(ConfigError) as error:
            build("datasets", {"type": "ucf101", **ucf101}, "data.train")
        message = str(error.value)
        assert "data.train" in message and "trainlist01.txt" in message and victim in message, message
        assert "skip_missing" in message  # and the way out for partial downloads
    finally:
        os.rename(hidden, path)


def test_skip_missing_leaves_missing_entries_out_with_a_warning(ucf101, caplog):
    victim = "Basketball/v_Basketball_g02_c01.avi"
    path = os.path.join(ucf101["root"], "UCF-101", victim)
    complete = build("datasets", {"type": "ucf101", **ucf101}, "data.train")
    os.rename(path, path + ".away")
    try:
        with caplog.at_level(logging.WARNING, logger="vatt.data"):
            partial = build("datasets", {"type": "ucf101", **ucf101, "skip_missing": True}, "data.train")
    finally:
        os.rename(path + ".away", path)
    assert len(partial) == len(complete) - 1
    assert "1 of 4 listed clips have no media file" in caplog.text and victim in caplog.text
    assert "trainlist01.txt" in caplog.text


def test_a_wrong_skip_missing_is_a_config_error(ucf101):
    with pytest.raises(ConfigError, match="skip_missing"):
        build("datasets", {"type": "ucf101", **ucf101, "skip_missing": "sometimes"}, "data.train")


def test_a_task_reports_the_missing_video_of_its_data_section(ucf101, tmp_path, capsys):
    from tests.tasks.test_recipes_on_replicas import CONFIGS, video_overrides
    from vatt.run import main
    victim = "ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi"
    path = os.path.join(ucf101["root"], "UCF-101", victim)
    os.rename(path, path + ".away")
    try:
        code = main([str(CONFIGS / "linear_ucf101.yaml"), f"run.dir={tmp_path / 'run'}",
                     *video_overrides(ucf101["root"]), "probe.steps=2", "probe.svm_max_iter=5"])
    finally:
        os.rename(path + ".away", path)
    err = capsys.readouterr().err
    assert code != 0 and "data.train" in err and "trainlist01.txt" in err and victim in err, err
