"""Zero-shot retrieval with a pre-trained checkpoint: the video and text towers load by name (audio skipped),
both ways of averaging a video's clips are reported, and a missing checkpoint is a clear error."""
import json
from pathlib import Path

from vatt.run import main

ROOT = Path(__file__).resolve().parents[2]
ZERO_SHOT = ROOT / "configs" / "zero_shot_synthetic.yaml"
REPORTED = ("R@1", "R@5", "R@10", "median_rank")


def test_pretrained_model_retrieves_far_above_chance(pretrained, tmp_path):
    assert main([str(ZERO_SHOT), f"run.dir={tmp_path}", f"model.init={pretrained}"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    prefix = "zero_shot/synthetic"
    assert set(results) == {f"{prefix}/{k}" for k in REPORTED} | {f"{prefix}/avg_similarity/{k}" for k in REPORTED} \
        | {f"{prefix}/pool"}
    chance_r10 = 10 / results[f"{prefix}/pool"]
    assert results[f"{prefix}/R@10"] >= 3 * chance_r10, results
    assert results[f"{prefix}/median_rank"] < results[f"{prefix}/pool"] / 4
    # one clip per synthetic video: averaging embeddings or similarities is the same thing
    assert all(results[f"{prefix}/{k}"] == results[f"{prefix}/avg_similarity/{k}"] for k in REPORTED)
    report = json.loads((tmp_path / "init_report.json").read_text())
    assert not report["fresh"] and not report["resized"]
    assert {name.split(".")[1] for name in report["skipped"]} == {"audio"}
    assert any((tmp_path / "tensorboard").iterdir())


def test_without_a_checkpoint_it_says_what_to_set(tmp_path, capsys):
    assert main([str(ZERO_SHOT), f"run.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "model.init: zero-shot evaluation needs a pre-trained checkpoint" in err and "Traceback" not in err


def test_paper_configs_name_the_dataset_root(tmp_path, capsys):
    assert main([str(ROOT / "configs" / "zero_shot_youcook2.yaml"), f"run.dir={tmp_path}", "model.init=x"]) == 2
    assert "data.eval.root" in capsys.readouterr().err
