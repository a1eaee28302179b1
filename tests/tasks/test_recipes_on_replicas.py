"""Each downstream recipe runs end to end on the tests' tiny replicas of its dataset: the paper config itself,
its data roots pointed at a replica, the model and the steps shrunk, started from a tiny pre-training
checkpoint; each writes results.json with its flat keys."""
import json
from pathlib import Path

import pytest
import torch

from vatt import config as cfglib
from vatt.run import main
from vatt.tasks import builders
from vatt.testing.replicas import REPLICAS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
VIT = "{type: vit, width: 32, layers: 1, mlp_dim: 64, heads: 2, dropout: 0.0}"
VIDEO_TOKENIZER = "{type: video_patches, patch_size: [2, 8, 8], frames: 4, size: 16}"
AUDIO_TOKENIZER = "{type: waveform_patches, patch_size: 128, samples: 1024}"
TEXT_TOKENIZER = "{type: words, vocab_size: 64, embed_dim: 16, max_words: 16}"
TEXT_BACKBONE = "{type: t5_text, width: 32, layers: 1, mlp_dim: 64, heads: 2, dropout: 0.0}"
VIDEO_CLIPS = {"frames": 4, "stride": 1, "fps": 10, "size": 16}  # 0.4 s of the replicas' 1.2 s videos at 10 fps
AUDIO_CLIPS = {"audio_rate": 8000, "audio_samples": 1024}
RUN = ["run.device=cpu", "run.tensorboard=false"]


def clip_overrides(part: str, root: str, clips: dict, **extra) -> list[str]:
    return [f"data.{part}.root={root}", *(f"data.{part}.{k}={v}" for k, v in {**clips, **extra}.items())]


def video_overrides(root: str) -> list[str]:
    """A paper video config's data and tower on a replica (the eval views stay 4 clips x 3 crops)."""
    return [*RUN, *clip_overrides("train", root, VIDEO_CLIPS), *clip_overrides("eval", root, VIDEO_CLIPS),
            "data.num_workers=0",
            f"model.tokenizer={VIDEO_TOKENIZER}", f"model.backbone={VIT}"]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    root = tmp_path_factory.mktemp("replicas")
    return {name: REPLICAS[name](root / name) for name in ("ucf101", "esc50", "msrvtt")}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny pre-trained VATT's weights ({"model": state_dict}): the towers the recipes below start from."""
    model = {"modalities": {
        "video": {"tokenizer": cfglib.parse_yaml(VIDEO_TOKENIZER), "backbone": cfglib.parse_yaml(VIT),
                  "head": {"type": "fac_video", "va_dim": 16, "vt_dim": 16}},
        "audio": {"tokenizer": cfglib.parse_yaml(AUDIO_TOKENIZER), "backbone": cfglib.parse_yaml(VIT),
                  "head": {"type": "linear", "dim": 16, "space": "va"}},
        "text": {"tokenizer": cfglib.parse_yaml(TEXT_TOKENIZER), "backbone": cfglib.parse_yaml(TEXT_BACKBONE),
                 "head": {"type": "linear", "dim": 16, "space": "vt"}}}}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pretrained") / "tiny.pt"
    torch.save({"model": builders.build_model(model).state_dict()}, path)
    return path


def run(config: str, tmp_path: Path, capsys, *overrides: str) -> dict:
    run_dir = tmp_path / "run"
    code = main([str(CONFIGS / config), f"run.dir={run_dir}", *overrides])
    assert code == 0, capsys.readouterr().err[-3000:]
    return json.loads((run_dir / "results.json").read_text())


def test_finetune_ucf101(replicas, checkpoint, tmp_path, capsys):
    results = run("finetune_ucf101.yaml", tmp_path, capsys, *video_overrides(replicas["ucf101"]["root"]),
                  f"model.init={checkpoint}", "model.num_classes=2", "run.steps=2", "run.batch_size=2",
                  "run.log_every=1", "schedule.warmup_steps=1", "evaluators.0.num_workers=0")
    assert set(results) >= {"finetune/ucf101/top1", "finetune/ucf101/top5"}, results
    assert (tmp_path / "run" / "init_report.json").is_file()  # the video tower came from the checkpoint


def test_audio_esc50(replicas, checkpoint, tmp_path, capsys):
    root = replicas["esc50"]["root"]
    results = run("audio_esc50.yaml", tmp_path, capsys, *RUN, *clip_overrides("train", root, AUDIO_CLIPS),
                  *clip_overrides("eval", root, AUDIO_CLIPS), "data.num_workers=0",
                  f"model.tokenizer={AUDIO_TOKENIZER}", f"model.backbone={VIT}", f"model.init={checkpoint}",
                  "model.num_classes=2", "run.steps=2", "run.batch_size=4", "run.log_every=1",
                  "schedule.warmup_steps=1", "evaluators.0.num_workers=0")
    assert "audio/esc50/top1" in results, results


def test_linear_ucf101_over_its_three_splits(replicas, checkpoint, tmp_path, capsys):
    results = run("linear_ucf101.yaml", tmp_path, capsys, *video_overrides(replicas["ucf101"]["root"]),
                  f"model.init={checkpoint}", "probe.steps=2", "probe.rank=8", "probe.svm_max_iter=5")
    for prefix in ("linear/ucf101/split1", "linear/ucf101/split2", "linear/ucf101/split3", "linear/ucf101"):
        for metric in ("top1", "top5", "svm_top1", "svm_top5"):
            assert f"{prefix}/{metric}" in results, results


def test_zero_shot_msrvtt(replicas, checkpoint, tmp_path, capsys):
    replica = replicas["msrvtt"]
    results = run("zero_shot_msrvtt.yaml", tmp_path, capsys, *RUN,
                  *clip_overrides("eval", replica["root"], VIDEO_CLIPS, vocabulary=replica["vocabulary"]),
                  f"model.init={checkpoint}",
                  f"model.modalities.video.tokenizer={VIDEO_TOKENIZER}", f"model.modalities.video.backbone={VIT}",
                  "model.modalities.video.head={type: fac_video, va_dim: 16, vt_dim: 16}",
                  f"model.modalities.text.tokenizer={TEXT_TOKENIZER}",
                  f"model.modalities.text.backbone={TEXT_BACKBONE}",
                  "model.modalities.text.head={type: linear, dim: 16, space: vt}", "evaluators.0.num_workers=0")
    for key in ("R@1", "R@5", "R@10", "median_rank"):  # "average the embeddings" and "average the similarities"
        assert f"zero_shot/msrvtt/{key}" in results and f"zero_shot/msrvtt/avg_similarity/{key}" in results, results
    assert results["zero_shot/msrvtt/pool"] == 2  # the replica's two 1k-A test videos
