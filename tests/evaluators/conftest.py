"""A real labelled, captioned dataset with one corrupt file in the middle, and the same without it."""
import json

import numpy as np
import pytest

from vatt.data.datasets.manifest import ManifestDataset
from vatt.testing.replicas import manifest as make_manifest


@pytest.fixture(scope="session")
def corrupt_and_clean(tmp_path_factory):
    """make(corrupt: bool, **overrides) -> ManifestDataset: 6 readable evaluation clips, plus (when corrupt)
    `garbage.mp4` as sample 3; labels class0..class2 and two captions per clip."""
    folder = tmp_path_factory.mktemp("eval_corrupt")
    kwargs = make_manifest(folder)
    good = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    (folder / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    bad = {**good[0], "video": "garbage.mp4"}
    (folder / "clean.jsonl").write_text("\n".join(json.dumps(line) for line in good * 2) + "\n")
    (folder / "corrupt.jsonl").write_text("\n".join(json.dumps(line) for line in good + [bad] + good) + "\n")

    def make(corrupt, **overrides):
        options = {**kwargs, "train": False, "clips": 1, **overrides}
        del options["path"]
        return ManifestDataset(str(folder / ("corrupt.jsonl" if corrupt else "clean.jsonl")), **options)

    return make
