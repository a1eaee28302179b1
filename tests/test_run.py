"""The command line: --list, --summary on every config, and user errors without tracebacks."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vatt.run import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
TABLE_1 = {"pretrain_bbs": 87.9e6, "pretrain_mbs": 155.0e6, "pretrain_lbs": 306.1e6}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_builds_with_summary(capsys, config):
    code, out, err = run_cli(capsys, config, "--summary", "--json")
    assert code == 0, err
    counts = json.loads(out)["parameters"]
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert all(v > 0 for v in counts.values())


@pytest.mark.parametrize("name,expected", sorted(TABLE_1.items()))
def test_video_tower_matches_table_1(capsys, name, expected):
    code, out, _ = run_cli(capsys, ROOT / "configs" / f"{name}.yaml", "--summary", "--json")
    counts = json.loads(out)["parameters"]
    video = counts["video/tokenizer"] + counts["video/backbone"]
    assert abs(video - expected) / expected < 0.01, video


# Every model tensor of the release's real-size checkpoints (../shared/tf_reference/*_variables.txt), without
# the BatchNorm running statistics (buffers in vatt) and the optimiser slots.
RELEASE_PARAMETERS = {"pretrain_lbs": 431_721_260, "pretrain_mbs": 280_566_572, "pretrain_bbs": 213_538_092,
                      "pretrain_ma_medium": 182_651_136}


@pytest.mark.parametrize("name,expected", sorted(RELEASE_PARAMETERS.items()))
def test_paper_configs_have_exactly_the_release_parameter_count(capsys, name, expected):
    code, out, _ = run_cli(capsys, ROOT / "configs" / f"{name}.yaml", "--summary", "--json")
    assert json.loads(out)["parameters"]["total"] == expected


def test_modality_agnostic_shares_one_backbone(capsys):
    code, out, _ = run_cli(capsys, ROOT / "configs" / "pretrain_ma_medium.yaml", "--summary", "--json")
    counts = json.loads(out)["parameters"]
    assert "shared/backbone" in counts and "video/backbone" not in counts
    assert abs(counts["shared/backbone"] - 151e6) / 151e6 < 0.02  # 12 Medium blocks + final norm


def test_paper_config_without_data_says_what_to_set(capsys, tmp_path):
    code, out, err = run_cli(capsys, ROOT / "configs" / "pretrain_lbs.yaml", f"run.dir={tmp_path}")
    assert code == 2
    assert "data.train" in err and "synthetic" in err and "Traceback" not in err


def test_all_config_problems_reported_at_once(capsys, tmp_path):
    code, _, err = run_cli(capsys, ROOT / "configs" / "pretrain_lbs.yaml",
                           "model.modalities.video.backbone.type=vit_lage", "optimizer.lrr=1",
                           "run.stepz=3", "losses.0.inputs=[video.va, smell.va]")
    assert code == 2
    for needle in ["model.modalities.video.backbone.type", "did you mean 'vit_large'", "optimizer.lrr",
                   "run.stepz", "'smell.va'"]:
        assert needle in err or needle in err.lower(), needle


def test_list_shows_kinds_and_packages(capsys):
    code, out, _ = run_cli(capsys, "--list")
    assert code == 0
    for kind in ["tokenizers:", "backbones:", "heads:", "losses:", "evaluators:", "datasets:",
                 "optimizers:", "schedules:", "tasks:"]:
        assert kind in out
    assert "video_patches" in out and "[vatt" in out
    code, out, _ = run_cli(capsys, "--list", "losses", "--json")
    listed = json.loads(out)
    assert set(listed) == {"losses", "plugin_failures", "warnings"}
    assert {"nce", "mil_nce"} <= {e["name"] for e in listed["losses"]}
    assert listed["plugin_failures"] == [] and listed["warnings"] == []
    # the built-in ones come from vatt itself; installed plugins may add more, each naming its own package
    assert {e["package"] for e in listed["losses"] if e["name"] in ("nce", "mil_nce")} == {"vatt"}


def test_unknown_kind_and_missing_config(capsys, tmp_path):
    assert run_cli(capsys, "--list", "widgets")[0] == 2
    code, _, err = run_cli(capsys, tmp_path / "missing.yaml")
    assert code == 2 and "missing.yaml" in err


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vatt.run", str(ROOT / "configs" / "pretrain_lbs.yaml"),
                           "optimizer.type=adamm"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "did you mean 'adam'" in proc.stderr.lower() and "Traceback" not in proc.stderr
