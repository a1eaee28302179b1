"""The image_finetune task: found through its entry point, the paper's config, epochs, clip-shape checks."""
import importlib.metadata as metadata
from pathlib import Path

import pytest

from vatt.errors import ConfigError
from vatt.registry import get
from vatt.run import main
from vatt_image import ImageFineTune, ShapeImages, epoch_steps

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("kind, name, obj", [("tasks", "image_finetune", ImageFineTune),
                                             ("datasets", "shape_images", ShapeImages)])
def test_vatt_finds_each_part_through_its_entry_point(kind, name, obj, capsys):
    entry = get(kind, name)
    version = metadata.version("vatt-image")
    assert entry.obj is obj and (entry.provider, entry.version) == ("vatt-image", version)
    assert main(["--list", kind]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith(name))
    assert f"[vatt-image {version}]" in line


def test_the_papers_recipe_builds_and_asks_for_its_data(capsys):
    assert main([str(CONFIGS / "imagenet.yaml"), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "task: image_finetune" in out and "video/backbone" in out
    assert main([str(CONFIGS / "imagenet.yaml")]) == 2
    err = capsys.readouterr().err
    assert "data.train.root" in err and "data.eval.root" in err


def test_epochs_count_full_batches():
    assert epoch_steps(1_281_167, 512, 50) == 50 * 2502  # ImageNet's training set
    assert epoch_steps(384, 32, 10) == 120
    with pytest.raises(ConfigError, match="run.batch_size"):
        epoch_steps(20, 32, 1)


def test_clips_must_have_the_tokenizers_length_and_size(capsys):
    code = main([str(CONFIGS / "quickstart_image.yaml"), "data.train.frames=8", "data.eval.size=64", "--summary"])
    assert code == 2
    err = capsys.readouterr().err
    assert "data.train.frames: 8, but model.tokenizer.frames is 4" in err
    assert "data.eval.size: 64, but model.tokenizer.size is 48" in err


def test_epochs_must_be_positive(capsys):
    assert main([str(CONFIGS / "quickstart_image.yaml"), "training.epochs=0", "--summary"]) == 2
    assert "training.epochs: must be positive" in capsys.readouterr().err
