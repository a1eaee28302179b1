"""The plugin's scaled-down recipe fine-tunes a quickstart checkpoint and beats chance by a wide margin."""
import json
from pathlib import Path

import yaml

from vatt.run import main

ROOT = Path(__file__).resolve().parents[3]
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart_image.yaml"
CHANCE = 1 / 24


def test_fine_tuning_the_quickstarts_checkpoint_beats_chance(tmp_path):
    # a quickstart run directory, kept short here: the point is the path from its checkpoint to an image model
    quickstart = tmp_path / "quickstart"
    assert main([str(ROOT / "configs" / "quickstart.yaml"), f"run.dir={quickstart}", "run.steps=3",
                 "run.batch_size=8", "data.train.num_clips=16", "evaluators=[]", "data.eval=null"]) == 0

    run_dir = tmp_path / "image"
    assert main([str(CONFIG), f"model.init={quickstart}", f"run.dir={run_dir}", "run.log_every=40"]) == 0
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["run"]["steps"] == 120  # training.epochs: 10 epochs of 384 images at batch 32

    report = json.loads((run_dir / "init_report.json").read_text())
    assert len(report["loaded"]) > 20 and sorted(report["fresh"]) == ["heads.video.linear.bias", "heads.video.linear.weight"]
    grids = {name.rsplit(".", 1)[1]: (size["from"][0], size["to"][0]) for name, size in report["resized"].items()}
    assert grids == {"0": (2, 1), "1": (4, 6), "2": (4, 6)}  # 4 tiled frames, 48² instead of 8 frames at 32²

    results = json.loads((run_dir / "results.json").read_text())
    assert results["image/shapes/samples"] == 192
    assert results["image/shapes/top1"] >= 3 * CHANCE, results
    assert results["image/shapes/top5"] >= 2.5 * 5 * CHANCE, results
