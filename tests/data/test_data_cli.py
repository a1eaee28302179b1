"""`python -m vatt.data`: build-vocab and check."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from vatt.data.__main__ import main
from vatt.data.encode import write_video
from vatt.data.text import Vocabulary
from vatt.testing.replicas import REPLICAS

CLIP = ["--frames", "4", "--size", "16"]  # 0.4 s clips at 10 fps


def test_build_vocab_counts_words_over_text_manifest_and_json_corpora(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("Stir the pan.\nstir THE soup\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"video": "x.mp4", "captions": ["the pan, the pot"]}) + "\n")
    (tmp_path / "c.json").write_text(json.dumps({"vid": {"start": [0], "end": [1], "text": ["pan pan pan"]},
                                                 "yc": {"annotations": [{"sentence": "soup"}]}}))
    out = tmp_path / "vocab.txt"
    assert main(["build-vocab", str(tmp_path / "a.txt"), str(tmp_path / "m.jsonl"), str(tmp_path / "c.json"),
                 "--out", str(out)]) == 0
    assert Vocabulary.load(out).words == ["<pad>", "<unk>", "pan", "the", "soup", "stir", "pot"]
    assert main(["build-vocab", str(tmp_path / "a.txt"), "--out", str(out), "--size", "4"]) == 0
    assert Vocabulary.load(out).words == ["<pad>", "<unk>", "stir", "the"]
    assert main(["build-vocab", str(tmp_path / "absent.txt"), "--out", str(out)]) == 2
    assert "absent.txt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def mixed_manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("check")
    REPLICAS["manifest"](folder)
    write_video(folder / "silent.mp4", np.zeros((12, 16, 16, 3), dtype=np.uint8), fps=25)
    (folder / "broken.mp4").write_bytes(b"\0" * 3000)
    lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    lines += [{"video": "silent.mp4"}, {"video": "broken.mp4"}, {"video": "gone.mp4"}]
    (folder / "mixed.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return folder


def test_check_reports_unreadable_files_audio_durations_fps_captions_and_throughput(mixed_manifest, capsys):
    assert main(["check", str(mixed_manifest / "mixed.jsonl"), "--json", *CLIP]) == 1
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["entries"] == 6 and summary["readable"] == 4
    assert sorted(bad["path"].rsplit("/", 1)[1] for bad in summary["unreadable"]) == ["broken.mp4", "gone.mp4"]
    assert any("no such file" in bad["reason"] for bad in summary["unreadable"])
    assert [p.rsplit("/", 1)[1] for p in summary["without_audio"]] == ["silent.mp4"]
    assert summary["fps"] == {"10": 3, "25": 1}
    assert summary["duration_s"]["max"] == pytest.approx(2.0, abs=0.05)
    assert summary["captions_per_clip"]["max"] == 2 and summary["clips_per_s"] > 0


def test_check_prints_a_readable_summary_and_samples_with_limit(mixed_manifest, capsys):
    main(["check", str(mixed_manifest / "mixed.jsonl"), *CLIP])
    text = capsys.readouterr().out
    assert "6 of 6 entries checked, 4 readable, 2 unreadable" in text and "gone.mp4: no such file" in text
    assert "decode throughput" in text and "without audio: 1" in text
    main(["check", str(mixed_manifest / "mixed.jsonl"), "--limit", "2", "--json", *CLIP])
    assert json.loads(capsys.readouterr().out)[0]["checked"] == 2


def test_check_reads_every_dataset_of_a_config(tmp_path, capsys):
    kinetics = REPLICAS["kinetics"](tmp_path / "kinetics")
    config = {"task": "pretrain", "data": {"train": {"type": "kinetics", **kinetics},
                                           "eval": {"type": "kinetics", **kinetics, "split": "val"}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["check", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    assert "data.train: 4 of 4 entries checked, 4 readable, 0 unreadable" in out and "data.eval" in out


def test_the_module_runs_as_a_program():
    done = subprocess.run([sys.executable, "-m", "vatt.data", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "build-vocab" in done.stdout and "check" in done.stdout
