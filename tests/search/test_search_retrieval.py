"""Search with the quickstart model on its held-out synthetic clips, through the command line: text→video R@10
agrees with the quickstart's own zero-shot R@10 (same model, same pool), audio→video finds a clip's own video
well above chance, zero-shot classification beats chance by a wide margin."""
import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from vatt.search.cli import main
from vatt.search.query import Searcher

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
PREFIX = "zero_shot/synthetic"


def run(argv: list[str]):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0, argv
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def index(pretrained, tmp_path_factory) -> Path:
    """The held-out clips indexed through the quickstart config itself (its data.eval is the pool)."""
    target = tmp_path_factory.mktemp("retrieval") / "index"
    assert main(["index", str(pretrained), str(QUICKSTART), str(target), "--no-progress"]) == 0
    return target


def test_text_to_video_r10_agrees_with_the_quickstarts_zero_shot_r10(pretrained, index, held_out, tmp_path):
    reported = json.loads((pretrained / "results.json").read_text())
    pool, expected = reported[f"{PREFIX}/pool"], reported[f"{PREFIX}/R@10"]
    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(entry.captions[0].text for entry in held_out.entries) + "\n")
    answers = run(["query", str(index), "--text-file", str(captions), "-k", "10", "--json"])
    assert len(answers) == len(held_out) == pool
    found = [entry.path in {hit["path"] for hit in answer["results"]}
             for entry, answer in zip(held_out.entries, answers)]
    recall = float(np.mean(found))
    noise = 2 * math.sqrt(expected * (1 - expected) / pool)  # two standard errors of a recall over this pool
    assert abs(recall - expected) <= noise, (recall, expected)
    assert recall >= 3 * 10 / pool  # and it is a real search, not chance


def test_audio_to_video_finds_a_clips_own_video_well_above_chance(index, held_out):
    searcher = Searcher.open(index)  # in process: the command line's --audio runs this, one file per call
    found = [entry.path in {hit.path for hit in searcher.media(entry.path, "audio", k=10)}
             for entry in held_out.entries]
    chance = 10 / len(held_out)
    assert np.mean(found) >= 3 * chance, np.mean(found)


def test_zero_shot_classification_beats_chance_by_a_wide_margin(pretrained, held_out):
    clips = held_out.entries[:96]
    labels = held_out.directory / "classes.txt"
    answers = run(["classify", str(pretrained), *[e.path for e in clips], "--labels", str(labels), "--json"])
    classes = labels.read_text().split("\n")
    top1 = np.mean([a["labels"][0]["label"] == e.labels[0] for a, e in zip(answers, clips)])
    top5 = np.mean([e.labels[0] in [r["label"] for r in a["labels"][:5]] for a, e in zip(answers, clips)])
    chance = 1 / len([c for c in classes if c])
    assert top1 >= 5 * chance and top5 >= 5 * 5 * chance, (top1, top5)
    assert all(len(a["labels"]) == 96 for a in answers)
