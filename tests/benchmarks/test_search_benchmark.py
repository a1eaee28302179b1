"""benchmarks/search.py as a user runs it, at its smallest (--quick, the quickstart model, small matrices): JSON
with the indexing rates of each stage and of the pipeline, the exact query latency, and the approximate index's
recall (or why it was skipped); every stage really handled its windows and every query found its k rows (no
timing is asserted)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_search_benchmark_reports_every_figure(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search.py"), "--quick", "--models", "quickstart",
                           "--rows", "20000", "--ann-rows", "20000", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    indexing = report["indexing"]["quickstart"]
    assert indexing["windows"] == 2 * 3 and indexing["rounds"] == 1  # 2 files of 2.4 s, one round
    assert indexing["windows_processed"] == {"decode_alone": 6, "forward_alone": 6, "pipeline": 6}
    rates = indexing["windows_per_s"]
    assert set(rates) == {"decode_alone", "forward_alone", "pipeline"} and all(r > 0 for r in rates.values())
    assert indexing["slowest_stage"] in ("decode", "forward") and indexing["pipeline_vs_slowest_stage"] > 0
    assert indexing["target"] == 0.8 and isinstance(indexing["meets_target"], bool)
    query = report["query"]
    assert query["rows"] == 20000 and query["dim"] == 256 and query["dtype"] == "float16" and query["memory_mapped"]
    assert query["queries"] == 5 and query["fewest_found"] == query["k"] == 10
    assert query["median_ms"] > 0 and query["p90_ms"] > 0 and query["per_file_median_ms"] > 0
    assert query["target_ms"] == 50 and isinstance(query["meets_target"], bool)
    ann = report["approximate"]
    if "skipped" in ann:
        assert "faiss" in ann["skipped"]
        return
    assert ann["rows"] == 20000 and "not 10 M" in ann["note"]
    for data in ("uniform", "clustered"):
        assert ann[data]["index"].startswith("IVF") and 0 <= ann[data]["recall_at_10"] <= 1
        assert ann[data]["median_ms"] > 0
