"""The generic manifest: JSONL and CSV, relative paths, captions, labels, and clear errors."""
import json

import pytest
import torch

from vatt.data.datasets.manifest import ManifestDataset, read_manifest
from vatt.data.sampler import SampleKey, collate
from vatt.errors import ConfigError
from vatt.registry import build
from vatt.testing.replicas import SMALL_CLIPS
from vatt.testing.replicas import manifest as make_manifest


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    folder = tmp_path_factory.mktemp("manifest")
    return folder, make_manifest(folder)


def test_jsonl_entries_resolve_paths_against_the_manifest_folder(replica):
    folder, _ = replica
    entries = read_manifest(folder / "manifest.jsonl")
    assert [e.path for e in entries] == [str((folder / "clips" / f"{n}.mp4").resolve()) for n in range(3)]
    assert entries[0].begin == 0.2 and entries[0].end == 1.8 and entries[0].labels == ("class0",)
    assert [c.text for c in entries[0].captions] == ["a red clip", "then a red clip again"]


def test_samples_follow_the_contract_and_stay_inside_the_entry_range(replica):
    _, kwargs = replica
    dataset = ManifestDataset(**kwargs)
    assert len(dataset) == 3 and dataset.class_names == ["class0", "class1", "class2"] and dataset.num_classes == 3
    batch = collate([dataset[SampleKey(i, 0, 7)] for i in range(3)])
    assert batch["video"].shape == (3, 3, 4, 16, 16) and batch["audio"].shape == (3, 3200)
    assert batch["text"].shape == (3, 5, 16) and batch["text_mask"].all() and batch["audio_mask"].all()
    assert batch["label"].tolist() == [0, 1, 2] and batch["video"].dtype == torch.uint8
    assert (batch["text"][:, 2:] == 0).all()  # two captions per clip, the other candidates are padding
    for key in range(3):
        for epoch in range(4):
            sample = dataset[SampleKey(key, epoch, 0)]
            assert sample["caption"] in {c.text for c in dataset.entries[key].captions}


def test_the_same_key_gives_the_same_sample_and_epochs_differ(replica):
    _, kwargs = replica
    dataset = ManifestDataset(**kwargs)
    a, b, c = dataset[SampleKey(1, 0, 0)], dataset[SampleKey(1, 0, 0)], dataset[SampleKey(1, 1, 0)]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"])
    assert not torch.equal(a["video"], c["video"])


def test_csv_manifests_and_multi_labels(tmp_path, replica):
    folder, _ = replica
    (tmp_path / "m.csv").write_text(
        "video,start,end,caption,label\n"
        f"{folder}/clips/0.mp4,0,1.5,a red clip,red;warm\n"
        f"{folder}/clips/1.mp4,,,,green\n")
    dataset = ManifestDataset(str(tmp_path / "m.csv"), vocabulary=str(folder / "vocabulary.txt"), **SMALL_CLIPS)
    assert dataset.multi_label and dataset.class_names == ["green", "red", "warm"]
    first, second = dataset[0], dataset[1]
    assert first["labels"].tolist() == [0.0, 1.0, 1.0] and second["labels"].tolist() == [1.0, 0.0, 0.0]
    assert first["text_mask"] and not second["text_mask"] and second["caption"] == ""


def test_unlabelled_uncaptioned_manifest_has_only_signals(tmp_path, replica):
    folder, _ = replica
    (tmp_path / "m.jsonl").write_text(json.dumps({"video": str(folder / "clips" / "2.mp4")}) + "\n")
    sample = ManifestDataset(str(tmp_path / "m.jsonl"), **SMALL_CLIPS)[0]
    assert set(sample) == {"video", "audio", "audio_mask"}


@pytest.mark.parametrize("line, message", [
    ('{"start": 1}', "video"), ('{"video": "a.mp4", "start": "x"}', "start must be a number"),
    ('{"video": "a.mp4", "start": 5, "end": 2}', "end"), ("not json", "not a JSON object"),
    ('{"video": "a.mp4", "captions": [3]}', "caption"),
])
def test_bad_lines_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"video": "ok.mp4"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message) as error:
        read_manifest(path)
    assert f"{path}:2" in str(error.value)


def test_captions_without_a_vocabulary_is_a_config_error_saying_how_to_make_one(replica):
    _, kwargs = replica
    node = {"type": "manifest", "path": kwargs["path"]}
    with pytest.raises(ConfigError, match="build-vocab"):
        build("datasets", node, "data.train")
    with pytest.raises(ConfigError, match="frame"):
        build("datasets", {**node, "frame": 4}, "data.train")  # a misspelt clip setting is caught too
