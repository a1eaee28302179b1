"""Motion trains beside video, audio and text from one config, with nothing in vatt that knows about it."""
import json
from pathlib import Path

import torch

import vatt
from vatt.run import main
from vatt.tasks.checkpoint_init import read_checkpoint

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart_motion.yaml"
SHORT = ["run.steps=3", "run.batch_size=8", "run.log_every=1", "run.checkpoint_every=1", "run.keep_checkpoints=3",
         "data.train.num_clips=16", "data.eval.num_clips=16", "evaluators.0.batch_size=16"]
TERMS = ["loss/nce/video_audio", "loss/mil_nce/video_text", "loss/max_margin/video_motion",
         "loss/mil_nce/motion_text"]


def test_four_modalities_train_together_from_one_config(tmp_path):
    run_dir = tmp_path / "run"
    assert main([str(CONFIG), f"run.dir={run_dir}", *SHORT]) == 0
    train = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    for record in train:
        assert all(term in record and torch.isfinite(torch.tensor(record[term])) for term in TERMS), record

    _, first = read_checkpoint(run_dir / "checkpoints" / "step_00000001.pt")
    _, last = read_checkpoint(run_dir / "checkpoints" / "step_00000003.pt")
    for modality in ("video", "audio", "text", "motion"):
        for part in ("tokenizer", "backbone", "head"):
            prefix = f"towers.{modality}.{part}." if part != "head" else f"heads.{modality}."
            # learned parameters only: batch-norm running statistics change without any gradient
            names = [k for k in last if k.startswith(prefix) and "running_" not in k and last[k].is_floating_point()]
            assert any(not torch.equal(first[k], last[k]) for k in names), f"{prefix} did not train"
    assert first["towers.motion.tokenizer.patches.projection.weight"].shape == (128, 2 * 4 * 8 * 8)  # ON/OFF


def test_vatt_itself_names_nothing_of_this_plugin():
    names = ("vatt_motion", "vatt-motion", "motion_patches", "motion_mlp", "max_margin", "frame_differences")
    sources = sorted(Path(vatt.__file__).parent.rglob("*.py"))
    assert len(sources) > 20
    mentions = [(path.name, name) for path in sources for name in names if name in path.read_text()]
    assert mentions == []
