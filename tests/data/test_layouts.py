"""Every published layout, on a tiny replica made of real media files."""
import pytest
import torch

from vatt.data.sampler import SampleKey, collate
from vatt.errors import ConfigError
from vatt.registry import build
from vatt.testing.replicas import SMALL_CLIPS


@pytest.fixture(scope="module")
def replicas(layout_replicas):
    return {name: node for name, (_, node) in layout_replicas.items()}


def dataset(replicas, name, **changes):
    return build("datasets", {"type": name, **replicas[name], **changes}, f"data.{name}")


def batch(ds):
    return collate([ds[SampleKey(i, 0, 0)] for i in range(len(ds))])


def test_howto100m_reads_every_captioned_video_with_neighbouring_candidates(replicas):
    ds = dataset(replicas, "howto100m")
    b = batch(ds)
    assert len(ds) == 2 and b["text_mask"].all() and (b["text"][:, :3, 0] > 0).all() and (b["text"][:, 3:] == 0).all()
    assert b["video"].shape == (2, 3, 4, 16, 16) and not hasattr(ds, "num_classes")
    assert ds.entries[0].captions[0].start == 0.0 and ds.entries[0].captions[2].end == 3.0
    with pytest.raises(ConfigError, match="split"):
        dataset(replicas, "howto100m", split="test")


def test_audioset_is_multi_label_with_an_empty_text_block(replicas):
    ds = dataset(replicas, "audioset")
    b = batch(ds)
    assert ds.class_names == ["Speech", "Music", "Animal"] and ds.multi_label
    assert b["labels"].tolist() == [[1, 1, 0], [0, 0, 1], [0, 1, 0]]
    assert b["text"].shape == (3, 5, 16) and not b["text_mask"].any() and (b["text"] == 0).all()
    assert ds.train and not dataset(replicas, "audioset", split="eval").train


def test_kinetics_numbers_classes_from_the_train_csv_and_finds_downloader_names(replicas):
    train, val = dataset(replicas, "kinetics"), dataset(replicas, "kinetics", split="val")
    assert train.num_classes == 2 == val.num_classes and train.class_names == ["abseiling", "juggling balls"]
    assert batch(train)["label"].tolist() == [0, 1, 0, 1] and not val.train
    assert val[0]["video"].shape == (4, 3, 4, 16, 16)  # 4 evenly spaced clips by default


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_action_sets_follow_their_official_splits(replicas, name):
    seen = {}
    for number in (1, 2, 3):
        train = dataset(replicas, name, split_number=number)
        test = dataset(replicas, name, split="test", split_number=number)
        assert not {e.path for e in train.entries} & {e.path for e in test.entries}
        assert train.num_classes == 2 and batch(test)["label"].tolist() == [0, 1]
        seen[number] = {e.path for e in test.entries}
    assert len(set.union(*seen.values())) == 6 if name == "ucf101" else 4  # each split tests other videos
    with pytest.raises(ConfigError, match="split_number"):
        dataset(replicas, name, split_number=4)


def test_esc50_folds_are_audio_only(replicas):
    train, test = dataset(replicas, "esc50", fold=2), dataset(replicas, "esc50", split="test", fold=2)
    assert len(train) == 8 and len(test) == 2 and train.class_names == ["dog", "rain"]
    assert "video" not in train[0] and test[0]["audio"].shape == (4, 3200) and batch(test)["label"].tolist() == [0, 1]


def test_msrvtt_1k_a_test_pairs_each_clip_with_its_query(replicas):
    ds = dataset(replicas, "msrvtt")
    assert len(ds) == 2 and [ds[i]["caption"] for i in range(2)] == ["a person cooks dish 0", "a person cooks dish 1"]
    train = dataset(replicas, "msrvtt", split="train")
    assert len(train) == 1 and len(train.entries[0].captions) == 2


def test_youcook2_segments_are_clips_with_their_step_sentence(replicas):
    val = dataset(replicas, "youcook2", clips=1)
    assert len(val) == 4 and [(e.begin, e.end) for e in val.entries][:2] == [(0.0, 1.0), (1.0, 3.0)]
    assert val[0]["caption"] == "crack the eggs 1" and val[1]["caption"] == "whisk them in a bowl"
    assert val[0]["text_mask"] and val[0]["text"][1, 0] > 0 and (val[0]["text"][2:] == 0).all()  # its neighbour
    assert len(dataset(replicas, "youcook2", split="train")) == 2


def test_moments_in_time_and_image_folder(replicas):
    moments = dataset(replicas, "moments_in_time")
    assert moments.class_names == ["clapping", "running"] and batch(moments)["label"].tolist() == [0, 1, 0, 1]
    images = dataset(replicas, "image_folder")
    sample = images[SampleKey(0, 0, 0)]
    assert set(sample) == {"video", "label"} and sample["video"].shape == (3, 4, 16, 16)
    torch.testing.assert_close(sample["video"][:, 0], sample["video"][:, 3])  # one picture tiled in time
    val = dataset(replicas, "image_folder", split="val")
    assert not val.train and len(val) == 4 and val.class_names == images.class_names


def test_missing_root_and_missing_files_are_reported(replicas, tmp_path, caplog):
    with pytest.raises(ConfigError, match="not a folder"):
        dataset(replicas, "kinetics", root=str(tmp_path / "nowhere"))
    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\nx,abc,0,10,train\n")
    with pytest.raises(ConfigError, match="no clips found"):
        build("datasets", {"type": "kinetics", "root": str(tmp_path), **SMALL_CLIPS}, "data.train")
    assert "1 of 1 listed clips have no media file" in caplog.text
