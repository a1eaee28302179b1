"""`python -m vatt.data COMMAND`: tools for datasets.

    build-vocab CORPUS... --out FILE [--size 65536]   the vocabulary of the most frequent caption words
    check CONFIG_OR_MANIFEST [--limit N] [--json]     read every entry (or N of them, also --sample N) and
                                                      report; a config's packed shards too
          [--frames 32 --fps 10 --stride 1 --size 224]  (the clip to cut from a manifest's entries)
    pack MANIFEST OUT/ [--fps 10] [--workers N]       convert a manifest into tar shards of JPEG frames

A corpus is a text file (one caption per line), a manifest (.jsonl, .csv: its captions) or a JSON file (every
string under a "text", "sentence" or "caption" key, as in HowTo100M's caption file or YouCook2's annotations).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from vatt.errors import UserError


def _json_texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("text", "sentence", "caption") and isinstance(value, str):
                yield value
            elif key in ("text", "sentences", "captions") and isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
                yield from (t for v in value if not isinstance(v, str) for t in _json_texts(v))
            else:
                yield from _json_texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _json_texts(value)


def corpus_texts(path: Path) -> Iterator[str]:
    from vatt.data.datasets.manifest import read_manifest
    if not path.is_file():
        raise UserError(f"corpus file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".csv"):
        for entry in read_manifest(path):
            yield from (caption.text for caption in entry.captions)
    elif suffix == ".json":
        yield from _json_texts(json.loads(path.read_text(encoding="utf-8")))
    else:
        with path.open(encoding="utf-8") as handle:
            yield from handle


def build_vocab(args: argparse.Namespace) -> int:
    from vatt.data.text import Vocabulary, build_vocabulary
    texts = (text for path in args.corpus for text in corpus_texts(Path(path)))
    vocabulary = Vocabulary(build_vocabulary(texts, max_size=args.size))
    vocabulary.save(args.out)
    print(f"wrote {len(vocabulary)} words ({len(vocabulary) - 2} + <pad>, <unk>) to {args.out}")
    return 0


def _datasets_to_check(target: Path, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(name, dataset) pairs: the manifest itself (one clip per entry, cut as the options say), or every
    dataset node under a config's `data`."""
    from vatt.data.clips import ClipSettings
    from vatt.data.datasets.base import ClipDataset
    from vatt.data.datasets.manifest import read_manifest
    if target.suffix.lower() in (".jsonl", ".csv"):
        settings = ClipSettings(frames=args.frames, fps=args.fps, stride=args.stride, size=args.size,
                                audio_rate=args.audio_rate, train=False, clips=1)
        return [(str(target), ClipDataset(read_manifest(target), settings, name=str(target)))]
    from vatt import config as cfglib
    from vatt.registry import build
    cfg = cfglib.load(target)
    found = []

    def visit(node: Any, where: str) -> None:
        if not isinstance(node, dict) or "type" not in node:
            return
        if node["type"] == "mixture":
            for i, child in enumerate(node.get("datasets") or []):
                visit(child, f"{where}.datasets.{i}")
            return
        found.append((where, build("datasets", node, where, reserved=("weight",))))

    for key, node in (cfg.get("data") or {}).items():
        visit(node, f"data.{key}")
    if not found:
        raise UserError(f"{target}: no dataset under `data` to check")
    return found


def check(args: argparse.Namespace) -> int:
    from vatt.data.check import check_dataset, entry_count, format_summary, summarize
    from vatt.data.datasets.base import ClipDataset
    from vatt.data.shards import ShardDataset
    summaries = []
    for name, dataset in _datasets_to_check(Path(args.target), args):
        if not isinstance(dataset, (ClipDataset, ShardDataset)):
            print(f"{name}: {type(dataset).__name__} is not read from media files or shards; skipped",
                  file=sys.stderr)
            continue
        reports = check_dataset(dataset, limit=args.limit, seed=args.seed)
        summaries.append(summarize(name, entry_count(dataset), reports))
    if args.json:
        print(json.dumps(summaries, indent=1))
    else:
        print("\n".join(format_summary(s) for s in summaries))
    return 1 if any(s["unreadable"] for s in summaries) else 0


def pack(args: argparse.Namespace) -> int:
    from vatt.data.pack import pack_manifest
    written = pack_manifest(args.manifest, args.out, fps=args.fps, size=args.size, audio_rate=args.audio_rate,
                            clips_per_shard=args.clips_per_shard, workers=args.workers, qscale=args.qscale)
    print(f"{written['clips']} clips in {written['shards']} shards under {args.out} "
          f"({written['skipped']} unreadable entries skipped, {written['reused']} shards already done)")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vatt.data", description="Dataset tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    vocab = commands.add_parser("build-vocab", help="build a vocabulary file from caption corpora")
    vocab.add_argument("corpus", nargs="+", help="text files, manifests (.jsonl/.csv) or caption JSON files")
    vocab.add_argument("--out", required=True, help="vocabulary file to write")
    vocab.add_argument("--size", type=int, default=2**16, help="entries, <pad> and <unk> included (2^16)")
    vocab.set_defaults(run=build_vocab)
    checker = commands.add_parser("check", help="read every entry of a dataset and report")
    checker.add_argument("target", help="a config file (its data section) or a manifest (.jsonl/.csv)")
    checker.add_argument("--limit", "--sample", type=int, default=None, metavar="N",
                         help="check N random entries instead of all")
    checker.add_argument("--seed", type=int, default=0)
    checker.add_argument("--json", action="store_true", help="print the full report as JSON")
    clip = checker.add_argument_group("the clip cut from each manifest entry (a config says it itself)")
    clip.add_argument("--frames", type=int, default=32)
    clip.add_argument("--fps", type=float, default=10.0)
    clip.add_argument("--stride", type=int, default=1)
    clip.add_argument("--size", type=int, default=224)
    clip.add_argument("--audio-rate", type=int, default=48000)
    checker.set_defaults(run=check)
    packer = commands.add_parser("pack", help="convert a manifest into tar shards of JPEG frames and audio")
    packer.add_argument("manifest")
    packer.add_argument("out")
    packer.add_argument("--fps", type=float, default=10.0)
    packer.add_argument("--size", type=int, default=256, help="short side of the stored frames")
    packer.add_argument("--audio-rate", type=int, default=48000)
    packer.add_argument("--clips-per-shard", type=int, default=256)
    packer.add_argument("--workers", type=int, default=1)
    packer.add_argument("--qscale", type=int, default=3, help="JPEG quantiser, 2 (best) to 31")
    packer.set_defaults(run=pack)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.run(args)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
