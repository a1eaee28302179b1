"""``python -m vatt.convert CHECKPOINT OUT_DIR [--vocabulary FILE] [--word2vec FILE] [--heads ...]``.

Converts a checkpoint of the authors' TensorFlow release (a ``ckpt-N`` prefix, or its folder) into a vatt
model directory; see docs/checkpoints.md. Bad input ends in a one-screen message and exit code 2.
"""
from __future__ import annotations

import argparse
import sys

from vatt.convert.convert import convert
from vatt.convert.release import Hyper
from vatt.errors import UserError

TOWERS = ("video", "audio", "text", "shared")


def parse_heads(text: str) -> dict[str, int]:
    """``N`` (every tower) or ``video=N,audio=N,text=N`` (``shared=N`` for the modality-agnostic model)."""
    if text.strip().isdigit():
        return {tower: int(text) for tower in TOWERS}
    heads = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in TOWERS or not value.strip().isdigit() or int(value) < 1:
            raise UserError(f"--heads {text}: expected N or tower=N pairs with towers {', '.join(TOWERS)}, "
                            f"e.g. --heads video=16,audio=12,text=8")
        heads[name] = int(value)
    return heads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vatt.convert",
        description="Convert a checkpoint of the authors' TensorFlow VATT release into a vatt model directory "
                    "(model.safetensors, config.yaml, conversion.json).")
    parser.add_argument("checkpoint", help="a TF checkpoint prefix (.../ckpt-500000) or its folder")
    parser.add_argument("out_dir", help="the directory to write")
    parser.add_argument("--vocabulary", help="the release's vocabulary (howto100m_en.txt), copied beside the model")
    parser.add_argument("--word2vec", help="the release's word2vec.pkl, loaded into the frozen word table")
    parser.add_argument("--heads", help="head counts, needed for widths other than 512/768/1024: N, or "
                                        "video=N,audio=N,text=N (shared=N for ut_fac)")
    parser.add_argument("--max-relative-distance", type=int,
                        help="T5's maximum relative distance, needed for text widths other than 512/768/1024")
    args = parser.parse_args(argv)
    try:
        hyper = Hyper(parse_heads(args.heads) if args.heads else {}, args.max_relative_distance)
        convert(args.checkpoint, args.out_dir, hyper=hyper, vocabulary=args.vocabulary, word2vec=args.word2vec)
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
