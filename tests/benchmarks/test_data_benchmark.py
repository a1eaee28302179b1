"""benchmarks/data.py as a user runs it, at its smallest (--quick): a generated source, packed into shards, read
both ways with and without augmentation; JSON with the rates per variant and the ratios the issue asks for."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {"decode_video", "decode_video_no_augment", "packed_shards", "packed_shards_no_augment"}


@pytest.mark.parametrize("content", ["noise", "smooth"])
def test_the_data_benchmark_reports_every_variant(tmp_path, content):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data.py"), "--quick", "--seconds", "8",
                           "--content", content, "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert report["source"]["content"] == content and report["clip"]["audio_samples"] == 153600
    for rates in (report["clips_per_cpu_s"], report["clips_per_wall_s"]):
        assert set(rates) == VARIANTS and all(rate > 0 for rate in rates.values()), rates
    packed, decoded = report["clips_per_cpu_s"]["packed_shards"], report["clips_per_cpu_s"]["decode_video"]
    assert report["packed_vs_target"] == pytest.approx(packed / report["target_per_core"], abs=1e-3)
    assert report["packed_vs_decode"] == pytest.approx(packed / decoded, abs=0.01)
    worker = report["loader_worker_clips_per_wall_s"]  # the training path, through a DataLoader worker
    assert worker > 0 and report["loader_worker_vs_target"] == pytest.approx(worker / 17.0, abs=1e-3)
    assert any((tmp_path / "shards").glob("*.tar"))  # the shards were really packed and read
