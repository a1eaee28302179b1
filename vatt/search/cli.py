"""`python -m vatt.search index | query | classify | serve`: search your own media with a trained VATT."""
from __future__ import annotations

import argparse
import json
import os
import sys

from vatt.errors import UserError
from vatt.messages import reason

DEFAULT_PORT = 8000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vatt.search",
                                     description="Embed your own videos and sounds with a trained VATT; search them.")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="embed every window of a folder, manifest or dataset config")
    index.add_argument("model", help="a converted model folder or a training run's directory")
    index.add_argument("source", help="a folder (searched recursively), a manifest (.jsonl/.csv) or a dataset config")
    index.add_argument("index_dir", help="the index folder (created, or updated with new and changed files)")
    index.add_argument("--stride", type=float, help="seconds between window starts (default: one clip span)")
    index.add_argument("--split", default="eval", help="the data section a config's dataset is read from")
    index.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    index.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 1)),
                       help="DataLoader processes decoding files")
    index.add_argument("--approximate", action="store_true", help="also build a faiss approximate index")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")

    query = commands.add_parser("query", help="the windows that best match a text, a sound or a video")
    query.add_argument("index_dir")
    query.add_argument("text", nargs="*", help="one or more sentences (each its own query)")
    given = query.add_mutually_exclusive_group()
    given.add_argument("--audio", metavar="FILE", help="audio→video: windows that sound like FILE")
    given.add_argument("--video", metavar="FILE", help="video→video: windows like the video FILE")
    given.add_argument("--text-file", metavar="FILE", help="one text query per line")
    query.add_argument("-k", type=int, default=10, help="results per query")
    query.add_argument("--per-file", action="store_true", help="the best window of each file")
    query.add_argument("--kind", choices=("video", "audio", "all"), default="video",
                       help="windows searched by --audio/--video: of video files, of sound files, or both")
    query.add_argument("--approximate", action="store_true", help="use the index's faiss approximate index")
    query.add_argument("--json", action="store_true", help="print JSON")

    classify = commands.add_parser("classify", help="zero-shot classification of videos into labels")
    classify.add_argument("model")
    classify.add_argument("videos", nargs="+", metavar="VIDEO")
    classify.add_argument("--labels", required=True, help="a file with one label per line, or 'a, b, c'")
    classify.add_argument("--template", action="append", help="prompt template with {} (repeatable; default: "
                                                              "'a video of {}' and '{}')")
    classify.add_argument("--top", type=int, default=5, help="labels shown per video")
    classify.add_argument("--clips", type=int, default=4, help="clips averaged per video")
    classify.add_argument("--json", action="store_true")

    serve = commands.add_parser("serve", help="a local web page to search an index")
    serve.add_argument("index_dir")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")

    for sub in (index, query, classify, serve):
        sub.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    for sub in (query, serve):
        sub.add_argument("--model", help="the index's model, when it has moved since indexing")
    return parser


def run_index(args) -> None:
    from vatt.search.indexer import build_index
    from vatt.search.model import SearchModel
    from vatt.search.sources import media_files
    model = SearchModel.load(args.model, args.device)
    paths = media_files(args.source, args.split)
    summary, index = build_index(model, paths, args.index_dir, stride=args.stride, batch_size=args.batch_size,
                                 num_workers=args.workers, progress=not args.no_progress,
                                 approximate_index=args.approximate)
    print("\n".join(summary.lines(index.directory, index.counts())))


def _queries(args) -> list[str]:
    if args.text_file:
        try:
            with open(args.text_file, encoding="utf-8") as handle:
                return [line.strip() for line in handle if line.strip()]
        except OSError as exc:
            raise UserError(f"--text-file {args.text_file}: {exc.strerror}") from None
    return args.text


def run_query(args) -> None:
    from vatt.search.query import Searcher, check_k
    check_k(args.k)
    texts = _queries(args)
    media = args.audio or args.video
    if not texts and not media:
        raise UserError("query: give a text, --text-file, --audio FILE or --video FILE")
    if texts and media:
        raise UserError("query: give either text or a file, not both")
    searcher = Searcher.open(args.index_dir, args.model, args.device, approximate_search=args.approximate)
    if media:
        kinds = ("video", "audio") if args.kind == "all" else (args.kind,)
        modality = "audio" if args.audio else "video"
        answers = [(media, searcher.media(media, modality, args.k, args.per_file, kinds))]
    else:
        answers = list(zip(texts, searcher.text(texts, args.k, args.per_file)))
    if args.json:
        print(json.dumps([{"query": q, "results": [h.to_dict() for h in hits]} for q, hits in answers], indent=1))
        return
    for query, hits in answers:
        if len(answers) > 1 or media:
            print(f"{query}:")
        for rank, hit in enumerate(hits, 1):
            print(f"{rank:3d}. {hit.path}  {hit.start:.2f}–{hit.end:.2f} s  {hit.score:.3f}")
        if not hits:
            print("  (no results: the index holds no windows of this kind)")


def run_classify(args) -> None:
    from vatt.search.classify import DEFAULT_TEMPLATES, classify, read_labels
    from vatt.search.encoder import Encoder
    if args.top < 1 or args.clips < 1:
        raise UserError("--top and --clips must be at least 1")
    labels = read_labels(args.labels)
    encoder = Encoder(args.model, args.device)
    ranked = classify(encoder, args.videos, labels, args.template or list(DEFAULT_TEMPLATES), clips=args.clips)
    if args.json:
        print(json.dumps([{"video": v, "labels": [{"label": r.label, "score": r.score} for r in ranks]}
                          for v, ranks in zip(args.videos, ranked)], indent=1))
        return
    for video, ranks in zip(args.videos, ranked):
        print(f"{video}:")
        for r in ranks[:args.top]:
            print(f"  {r.score:.3f}  {r.label}")


def run_serve(args) -> None:
    from vatt.search.query import Searcher
    from vatt.search.server import serve
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be from 1 to 65535, got {args.port}")
    serve(Searcher.open(args.index_dir, args.model, args.device), host=args.host, port=args.port)


COMMANDS = {"index": run_index, "query": run_query, "classify": run_classify, "serve": run_serve}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
        return 0
    except UserError as exc:  # as vatt.run reports it
        print(f"error: {exc}", file=sys.stderr)
        if exc.__cause__ is not None:
            print(f"  caused by {reason(exc.__cause__)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; every file indexed so far is kept" if args.command == "index" else "interrupted",
              file=sys.stderr)
        return 130
