"""benchmarks/data.py as a user runs it, at its smallest (--quick): a generated source, packed into shards, read
both ways with and without augmentation and through a DataLoader worker; the JSON report has a rate for every
variant, and every variant really read its clips (no timing is asserted)."""
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
    # --quick: a warm-up round and 1 timed round of 3 clips each, every clip checked as a 32 x 224² video
    assert (report["rounds"], report["clips_per_round"]) == (1, 3)
    assert report["clips_read"] == {name: 2 * 3 for name in VARIANTS | {"loader_worker"}}
    for rates in (report["clips_per_cpu_s"], report["clips_per_wall_s"]):
        assert set(rates) == VARIANTS and all(rate > 0 for rate in rates.values()), rates
    assert report["loader_worker_clips_per_wall_s"] > 0  # the training path, through a DataLoader worker
    assert report["target_per_core"] == 17.0
    for ratio in ("packed_vs_target", "loader_worker_vs_target", "packed_vs_decode"):
        assert isinstance(report[ratio], float) and report[ratio] > 0, ratio
    assert any((tmp_path / "shards").glob("*.tar"))  # the shards were really packed and read
