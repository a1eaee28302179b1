"""The plugin's config pre-trains end to end through vatt's command line, with log-mel audio."""
import json
from pathlib import Path

import torch

from vatt.run import main
from vatt.tasks.checkpoint_init import read_checkpoint

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart_spectrogram.yaml"
SHORT = ["run.steps=3", "run.batch_size=8", "run.log_every=1", "run.checkpoint_every=1", "run.keep_checkpoints=3",
         "data.train.num_clips=16", "data.eval.num_clips=16", "evaluators.0.batch_size=16"]


def test_the_config_pretrains_and_evaluates_with_log_mel_audio(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([str(CONFIG), f"run.dir={run_dir}", *SHORT]) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["loss/nce/video_audio"])) for r in train)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["zero_shot/synthetic/pool"] == 16 and "zero_shot/synthetic/R@10" in results

    _, first = read_checkpoint(run_dir / "checkpoints" / "step_00000001.pt")
    _, last = read_checkpoint(run_dir / "checkpoints" / "step_00000003.pt")
    spectrogram_patches = [k for k in last if k.startswith("towers.audio.tokenizer.patches.")]
    assert "towers.audio.tokenizer.patches.positions.axes.1" in spectrogram_patches  # the (time, mel) table
    assert last["towers.audio.tokenizer.patches.positions.axes.1"].shape == (16, 128)  # 80 bins / 5
    moved = [k for k in spectrogram_patches if not torch.equal(first[k], last[k])]
    assert "towers.audio.tokenizer.patches.projection.weight" in moved  # trained through the spectrogram


def test_the_full_size_ablation_config_builds(capsys):
    config = CONFIG.parent / "pretrain_lbs_spectrogram.yaml"
    assert main([str(config), "--summary", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["parameters"]
    width = 768  # ViT-Base audio tower
    projection = 16 * 5 * width + width  # one 16-frame × 5-bin patch → width, with bias
    positions = (9 + 16) * width + 2 * width  # (time, mel) tables of the 9 × 16 grid and their LayerNorm
    assert counts["audio/tokenizer"] == projection + positions + width  # + [AGG]
