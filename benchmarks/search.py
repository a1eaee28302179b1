"""Search speed on this machine's CPUs; prints JSON.

    python benchmarks/search.py [--quick] [--models quickstart,lbs] [--rows 1000000] [--ann-rows 1000000]

indexing   windows per second of `python -m vatt.search index` (the pipeline: decoding in DataLoader workers
           overlapped with the forward pass in this process, files committed to the index) for the quickstart
           model and for the LBS-sized model (random weights: speed does not depend on them), beside each
           stage alone with the same resources: decoding (the same workers, no augmentation, no model) and the
           forward pass (this process, on batches decoded beforehand). The pipeline should reach at least 0.8
           of its slowest stage. Rounds alternate the three; the best round of each is reported, so that load
           from other processes skews no variant alone. The LBS forward pass is slow on CPUs: few windows.
query      exact top-10 over `--rows` stored windows (random unit vectors, 256-d, float16, memory-mapped, read in
           chunks; vatt.search.exact, as `query` runs it) against the 50 ms goal, and the per-file variant
approximate  the faiss index (`index --approximate`, the `ann` extra): recall@10 against exact search and its
           latency (candidates re-ranked exactly), on `--ann-rows` vectors, uniformly random (the worst case: no
           neighbourhood structure) and clustered (as embeddings of similar windows are)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vatt import config as cfglib  # noqa: E402
from vatt.data.encode import write_video  # noqa: E402
from vatt.registry import registry  # noqa: E402
from vatt.search import approximate, exact  # noqa: E402
from vatt.search.indexer import Job, build_index, window_loader  # noqa: E402
from vatt.search.model import SearchModel  # noqa: E402
from vatt.search.vectors import VectorFile  # noqa: E402

TARGET_RATIO = 0.8
TARGET_QUERY_MS = 50.0
DIM, K = 256, 10
SOURCE_FPS, WIDTH, HEIGHT = 30, 640, 360
MODELS = {  # config, source files, seconds each, batch size
    "quickstart": (ROOT / "configs" / "quickstart.yaml", 6, 8.0, 32),
    "lbs": (ROOT / "configs" / "pretrain_lbs.yaml", 1, 12.8, 1),  # 4 windows of 3.2 s
}
QUICK = {"quickstart": (2, 2.4), "lbs": (1, 3.2)}


def write_sources(directory: Path, count: int, seconds: float) -> list[str]:
    """`count` H.264 files of `seconds` at 640x360, 30 fps: smooth drifting blobs (what cameras film)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = round(seconds * SOURCE_FPS)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH] / HEIGHT
    paths = []
    for n in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        video = np.empty((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
        for t in range(frames):
            shift = 0.05 * t
            for c in range(3):
                video[t, :, :, c] = (127 + 100 * np.sin(3 * x + 2 * y * (c + 1) + phase[c] + shift)).astype(np.uint8)
        path = directory / f"source_{n}.mp4"
        write_video(path, video, fps=SOURCE_FPS, crf=23)
        paths.append(str(path))
    return paths


def load_model(name: str) -> SearchModel:
    cfg = cfglib.load(MODELS[name][0])
    torch.manual_seed(0)
    model = registry("tasks").get(cfg["task"], where="task").obj().build_model(cfg)
    return SearchModel(model, cfg)


def jobs_of(paths: list[str]) -> list[Job]:
    return [Job(n, p, os.path.getsize(p), os.stat(p).st_mtime_ns) for n, p in enumerate(paths)]


def decode_alone(model: SearchModel, paths: list[str], batch_size: int, workers: int) -> tuple[float, list]:
    """Windows per second of the workers reading windows with nothing else running; the batches they read."""
    started = time.perf_counter()
    batches = [b for b in window_loader(model, jobs_of(paths), stride=None, batch_size=batch_size,
                                        num_workers=workers) if b.inputs is not None]
    seconds = time.perf_counter() - started
    return sum(len(b.files) for b in batches) / seconds, batches


def forward_alone(model: SearchModel, batches: list) -> tuple[float, int]:
    """Windows per second of the forward pass over decoded batches; the windows it embedded."""
    started = time.perf_counter()
    embedded = 0
    for batch in batches:
        vectors = model.embed(batch.kind, batch.inputs)  # {space: [n, d]}
        embedded += min(len(v) for v in vectors.values())
    return embedded / (time.perf_counter() - started), embedded


def pipeline(model: SearchModel, paths: list[str], batch_size: int, workers: int,
             directory: Path) -> tuple[float, int]:
    """Windows per second of `build_index`; the windows it indexed."""
    summary, index = build_index(model, paths, directory, batch_size=batch_size, num_workers=workers, progress=False)
    index.close()
    return summary.windows / summary.seconds, summary.windows


def bench_indexing(name: str, quick: bool, rounds: int, workers: int, scratch: Path) -> dict:
    config, count, seconds, batch_size = MODELS[name]
    if quick:
        count, seconds = QUICK[name]
    paths = write_sources(scratch / f"{name}_media", count, seconds)
    model = load_model(name)
    best = {"decode": 0.0, "forward": 0.0, "pipeline": 0.0}
    processed = {"decode_alone": 0, "forward_alone": 0, "pipeline": 0}  # windows each stage really handled
    for round_ in range(rounds):
        rate, batches = decode_alone(model, paths, batch_size, workers)
        windows = sum(len(b.files) for b in batches)
        processed["decode_alone"] += windows
        best["decode"] = max(best["decode"], rate)
        rate, embedded = forward_alone(model, batches)
        processed["forward_alone"] += embedded
        best["forward"] = max(best["forward"], rate)
        rate, indexed = pipeline(model, paths, batch_size, workers, scratch / f"{name}_index_{round_}")
        processed["pipeline"] += indexed
        best["pipeline"] = max(best["pipeline"], rate)
    slowest = min(("decode", "forward"), key=lambda stage: best[stage])
    ratio = best["pipeline"] / best[slowest]
    media = model.media
    return {"config": str(config.relative_to(ROOT)), "weights": "random (speed does not depend on them)",
            "clip": {"frames": media.frames, "size": media.size, "fps": media.fps, "span_s": media.video_span},
            "source": f"{count} H.264 file(s) of {seconds} s at {WIDTH}x{HEIGHT}, {SOURCE_FPS} fps",
            "windows": windows, "windows_processed": processed, "batch_size": batch_size, "workers": workers,
            "rounds": rounds,
            "windows_per_s": {"decode_alone": round(best["decode"], 3), "forward_alone": round(best["forward"], 3),
                              "pipeline": round(best["pipeline"], 3)},
            "slowest_stage": slowest, "pipeline_vs_slowest_stage": round(ratio, 3), "target": TARGET_RATIO,
            "meets_target": ratio >= TARGET_RATIO}


def unit_vectors(rows: int, rng: np.random.Generator, centres: np.ndarray | None = None) -> np.ndarray:
    x = rng.standard_normal((rows, DIM)).astype(np.float32)
    if centres is not None:  # around random centres, as windows of similar content lie
        x = centres[rng.integers(0, len(centres), rows)] + 0.6 * x
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def stored_matrix(path: Path, rows: int, seed: int, clustered: bool) -> np.ndarray:
    """`rows` unit vectors written as an index stores them, then memory-mapped (read once: a warm cache)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((rows // 200 + 1, DIM)).astype(np.float32) if clustered else None
    file = VectorFile(path, DIM)
    for first in range(0, rows, 100_000):
        file.append(unit_vectors(min(100_000, rows - first), rng, centres).astype(np.float16))
    matrix = file.read(rows)
    exact.coarse_scores(matrix, torch.zeros(DIM))  # page the file in, as a serving process has it
    return matrix


def timed(function, repeats: int) -> tuple[list[float], list]:
    times, results = [], []
    for n in range(repeats):
        started = time.perf_counter()
        results.append(function(n))
        times.append((time.perf_counter() - started) * 1000)
    return times, results


def queries(count: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(unit_vectors(count, np.random.default_rng(seed)))  # [Q, d]


def bench_query(rows: int, repeats: int, scratch: Path) -> dict:
    matrix = stored_matrix(scratch / "query.f16", rows, seed=1, clustered=False)
    asked = queries(repeats, seed=2)
    plain, answers = timed(lambda n: exact.top_k(matrix, asked[n], K), repeats)
    files = np.random.default_rng(3).integers(0, max(1, rows // 20), rows)  # ~20 windows a file
    per_file, per_file_answers = timed(lambda n: exact.top_k(matrix, asked[n], K, groups=files), repeats)
    median = statistics.median(plain)
    return {"rows": rows, "dim": DIM, "dtype": "float16", "memory_mapped": True, "chunk_rows": exact.CHUNK_ROWS,
            "k": K, "queries": repeats, "torch_threads": torch.get_num_threads(),
            "fewest_found": min(len(found) for _, found in answers + per_file_answers),
            "median_ms": round(median, 2), "p90_ms": round(float(np.percentile(plain, 90)), 2),
            "per_file_median_ms": round(statistics.median(per_file), 2), "target_ms": TARGET_QUERY_MS,
            "meets_target": median <= TARGET_QUERY_MS}


def bench_approximate(rows: int, repeats: int, scratch: Path) -> dict:
    if not approximate.available():
        return {"skipped": "faiss-cpu is not installed (pip install faiss-cpu, the 'ann' extra)"}
    import faiss
    report = {"library": f"faiss {faiss.__version__}", "rows": rows,
              "note": f"built on {rows:,} vectors, not 10 M: 10 M float16 vectors of 256-d are 5 GB, and training "
                      f"their inverted file ({approximate.lists_for(10_000_000):,} lists) on {os.cpu_count()} CPU "
                      f"cores takes far longer than a benchmark run"}
    for data in ("uniform", "clustered"):
        matrix = stored_matrix(scratch / f"ann_{data}.f16", rows, seed=4, clustered=data == "clustered")
        started = time.perf_counter()
        index = approximate.train(matrix)
        built = time.perf_counter() - started
        asked = queries(repeats, seed=5) if data == "uniform" else torch.from_numpy(
            matrix[np.random.default_rng(6).choice(rows, repeats)].astype(np.float32))
        count = approximate.candidates_for(K)

        def search(n):
            rows_ = np.sort(index.candidates(asked[n], count))
            return exact.rank(rows_, exact.exact_scores(matrix, rows_, asked[n]), K)[1]

        latency, found = timed(search, repeats)
        truth = [exact.top_k(matrix, q, K)[1] for q in asked]
        recall = np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth)])
        report[data] = {"index": index.description,
                        "lists": getattr(index.faiss_index, "nlist", None),
                        "probes": getattr(index.faiss_index, "nprobe", None), "candidates_reranked": count,
                        "build_s": round(built, 1), "recall_at_10": round(float(recall), 3),
                        "median_ms": round(statistics.median(latency), 2)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test of the benchmark")
    parser.add_argument("--models", default="quickstart,lbs")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ann-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the quickstart indexing variants")
    parser.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 1)))
    parser.add_argument("--out", help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; known: {', '.join(MODELS)}")
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        scratch = Path(scratch)
        report = {"cpus": os.cpu_count(), "quick": args.quick, "indexing": {}}
        for name in names:
            rounds = 1 if name == "lbs" or args.quick else args.rounds
            print(f"indexing with the {name} model ...", file=sys.stderr, flush=True)
            report["indexing"][name] = bench_indexing(name, args.quick, rounds, args.workers, scratch)
        print("exact query ...", file=sys.stderr, flush=True)
        report["query"] = bench_query(args.rows, 5 if args.quick else 30, scratch)
        print("approximate index ...", file=sys.stderr, flush=True)
        report["approximate"] = bench_approximate(args.ann_rows, 5 if args.quick else 30, scratch)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
