"""Models and media for the search tests.

`pretrained` is the quickstart run (tests/conftest.py) and `held_out` the synthetic test clips its
evaluation searched; `random_model` / `other_model` are untrained quickstart-sized models saved as model
folders (fast, for everything but retrieval quality); `media_dir` is a fresh folder of user media: a long
video made of five held-out clips, a nested copy of one, a sound file, a corrupt file and a too-short video.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vatt import config as cfglib
from vatt.data.decode import MediaFile
from vatt.data.encode import write_audio, write_video
from vatt.engine.weights import save_weights
from vatt.registry import registry
from vatt.tasks import builders

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
FPS, RATE = 10, 8000
LONG_CLIPS = (3, 1, 4, 5, 9)  # held-out clips concatenated into long.mp4, 0.8 s each


def save_model(directory: Path, seed: int) -> Path:
    """An untrained quickstart model written as a model folder (config.yaml + model.safetensors)."""
    cfg = cfglib.load(QUICKSTART)
    torch.manual_seed(seed)
    model = registry("tasks").get(cfg["task"], where="task").obj().build_model(cfg)
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(cfglib.dump(cfg))
    save_weights(model, directory / "model.safetensors")
    return directory


@pytest.fixture(scope="session")
def random_model(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("models") / "random", seed=0)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("models") / "other", seed=1)


@pytest.fixture(scope="session")
def held_out():
    """The quickstart's evaluation set: the synthetic test split its config names."""
    return builders.build_dataset(cfglib.load(QUICKSTART)["data"]["eval"], "data.eval")


def concatenate(paths: list[str], out: Path) -> None:
    """One video (and its sound) made of the files one after the other."""
    frames, sounds = [], []
    for path in paths:
        with MediaFile(path) as media:
            whole = media.whole(RATE)
        frames.append(whole.frames)  # [T, H, W, 3]
        sounds.append(whole.sound[: round(len(whole.frames) / FPS * RATE)])
    write_video(out, np.concatenate(frames), fps=FPS, audio=np.concatenate(sounds), audio_rate=RATE, crf=12)


@pytest.fixture(scope="session")
def media_template(tmp_path_factory, held_out) -> Path:
    root = tmp_path_factory.mktemp("media")
    concatenate([held_out.entries[i].path for i in LONG_CLIPS], root / "long.mp4")
    (root / "nested").mkdir()
    shutil.copy(held_out.entries[7].path, root / "nested" / "clip.mp4")
    t = np.arange(int(1.3 * RATE)) / RATE
    write_audio(root / "sound.wav", 0.5 * np.sin(2 * np.pi * 440 * t), rate=RATE)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with MediaFile(held_out.entries[2].path) as media:
        write_video(root / "short.mp4", media.whole(None).frames[:4], fps=FPS)  # 0.4 s, half a clip
    (root / "notes.txt").write_text("not media")
    return root


@pytest.fixture
def media_dir(media_template, tmp_path) -> Path:
    copy = tmp_path / "media"
    shutil.copytree(media_template, copy)
    return copy
