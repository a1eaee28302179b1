"""Zero-shot classification: a video's embedding against its labels' sentences, in the video-text space.

Each label is put into prompt templates ("a video of {}" ...); a label's embedding is the normalised mean of
its prompts' embeddings (prompt ensembling, as CLIP does), and labels are ranked by cosine similarity with
the video's embedding (the normalised mean of its clips'). No training.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from vatt.data.decode import MediaError
from vatt.errors import UserError
from vatt.search.encoder import Encoder

DEFAULT_TEMPLATES = ("a video of {}", "{}")
SPACE = "vt"


@dataclass
class Ranked:
    label: str
    score: float


def read_labels(spec: str) -> list[str]:
    """Labels from a file (one per line) or from a comma-separated list."""
    path = Path(spec).expanduser()
    if path.is_file():
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        labels = [part.strip() for part in spec.split(",")]
    labels = [label for label in labels if label]
    if len(labels) < 2:
        raise UserError(f"--labels {spec!r}: not a file of labels (one per line) nor a list of at least two "
                        f"('cat, dog, ...')")
    if len(set(labels)) != len(labels):
        raise UserError(f"--labels {spec!r}: labels must be distinct")
    return labels


def check_templates(templates: list[str]) -> list[str]:
    bad = [t for t in templates if t.count("{}") != 1]
    if not templates or bad:
        raise UserError(f"a template must hold the label's place once as {{}}, e.g. 'a video of {{}}'; got "
                        f"{bad or templates}")
    return templates


def label_embeddings(encoder: Encoder, labels: list[str], templates: list[str]) -> torch.Tensor:
    """[C, d] unit embeddings: per label, the normalised mean over its prompts."""
    prompts = [template.format(label) for label in labels for template in templates]
    embedded = encoder.text(prompts)[SPACE].reshape(len(labels), len(templates), -1)  # [C, P, d]
    return F.normalize(embedded.mean(dim=1), dim=-1)


def classify(encoder: Encoder, videos: list[str], labels: list[str], templates: list[str] = DEFAULT_TEMPLATES,
             clips: int = 4) -> list[list[Ranked]]:
    """For each video, all labels ranked best first with their cosine scores."""
    classes = label_embeddings(encoder, labels, check_templates(list(templates)))  # [C, d]
    try:
        embedded = encoder.video(videos, clips=clips)[SPACE]  # [N, d]
    except MediaError as exc:
        raise UserError(f"cannot classify {exc}") from None
    scores = embedded @ classes.T  # [N, C] cosine
    order = scores.argsort(dim=1, descending=True)
    return [[Ranked(labels[c], float(scores[n, c])) for c in order[n].tolist()] for n in range(len(videos))]
