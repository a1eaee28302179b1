import numpy as np
import pytest
import torch

from vatt.data import synthetic
from vatt.data.sampler import collate
from vatt.data.synthetic import (BEEPS_PER_CLIP, COLOURS, DIRECTIONS, NUM_CLASSES, PITCH_FRACTIONS, SHAPES,
                                 SyntheticClips, attributes_of, generate_clips)
from vatt.data.text import Vocabulary, split_words

SMALL = dict(frames=4, size=16, audio_samples=2048, sample_rate=8000)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def clips(cache):
    return SyntheticClips(num_clips=192, cache_dir=str(cache), **SMALL)


@pytest.fixture(scope="module")
def batch(clips):
    return collate([clips[i] for i in range(len(clips))])


def test_items_follow_the_batch_contract(clips):
    item = clips[5]
    assert set(item) == {"video", "audio", "text", "text_mask", "audio_mask", "label", "caption"}
    assert item["video"].dtype == torch.float32 and item["video"].shape == (3, 4, 16, 16)
    assert item["audio"].dtype == torch.float32 and item["audio"].shape == (2048,)
    assert item["text"].dtype == torch.int64 and item["text"].shape == (5, 16)
    assert item["text_mask"].dtype == torch.bool and item["text_mask"].shape == () and item["text_mask"]
    assert item["audio_mask"].dtype == torch.bool and item["audio_mask"]
    assert item["label"].dtype == torch.int64 and 0 <= item["label"] < NUM_CLASSES
    assert isinstance(item["caption"], str) and item["caption"]


def test_values_stay_in_range_and_ids_inside_the_vocabulary(clips, batch):
    assert batch["video"].min() >= -1 and batch["video"].max() <= 1
    assert batch["audio"].abs().max() <= 1 and batch["audio"].std() > 0.05
    assert batch["text"].min() >= 0 and batch["text"].max() < len(clips.vocabulary) <= 2**16
    assert (batch["text"][:, :, 0] > 1).all()  # every candidate starts with a known word


def test_labels_are_balanced_content_classes(clips, batch):
    counts = torch.bincount(batch["label"], minlength=NUM_CLASSES)
    assert counts.max() - counts.min() <= 1 and clips.num_classes == NUM_CLASSES == len(clips.class_names)


def test_every_candidate_caption_names_the_clip_content(clips, batch):
    colour, shape, direction = attributes_of(batch["label"].numpy())
    for n in range(0, len(clips), 7):
        for row in batch["text"][n]:
            words = set(clips.tokenizer.decode(row).split())
            assert list(COLOURS)[colour[n]] in words
            assert words & set(list(SHAPES.values())[shape[n]])
            assert any(set(p.split()) <= words for p in list(DIRECTIONS.values())[direction[n]][2])
        assert clips.tokenizer.decode(batch["text"][n, 0]) == " ".join(split_words(clips.captions[n]))


def object_mask(video):  # [N, 3, T, H, W] -> [N, T, H, W]: pixels far from the clip's median colour
    background = np.median(video.reshape(len(video), 3, -1), -1)[:, :, None, None, None]
    return np.linalg.norm(video - background, axis=1) > 0.7


def test_video_shows_the_labelled_colour_and_direction(batch):
    video = batch["video"].numpy()
    colour, _, direction = attributes_of(batch["label"].numpy())
    mask = object_mask(video).astype(np.float64)
    mean_rgb = (video * mask[:, None]).sum((2, 3, 4)) / mask[:, None].sum((2, 3, 4))  # [N, 3]
    palette = np.array(list(COLOURS.values())) * 2 - 1
    nearest = np.argmin(((mean_rgb[:, None] - palette[None]) ** 2).sum(-1), 1)
    assert (nearest == colour).mean() >= 0.95
    ys, xs = np.mgrid[: video.shape[-2], : video.shape[-1]]
    area = mask.sum((2, 3))  # [N, T]
    centre = np.stack([(mask * xs).sum((2, 3)) / area, (mask * ys).sum((2, 3)) / area], -1)  # [N, T, 2]
    units = np.array([d[:2] for d in DIRECTIONS.values()])
    assert (np.argmax((centre[:, -1] - centre[:, 0]) @ units.T, 1) == direction).mean() >= 0.95


def test_audio_pitch_follows_colour_and_beep_rate_follows_shape(batch):
    audio = batch["audio"].numpy().astype(np.float64)
    colour, shape, _ = attributes_of(batch["label"].numpy())
    samples, rate = audio.shape[1], SMALL["sample_rate"]
    peak_hz = np.abs(np.fft.rfft(audio, axis=1)).argmax(1) * rate / samples
    pitches = rate * np.array(PITCH_FRACTIONS)
    assert (np.argmin(np.abs(np.log(peak_hz[:, None] / pitches)), 1) == colour).mean() >= 0.95
    kernel = np.ones(64) / 64
    envelope = np.stack([np.convolve(np.abs(a), kernel, "same") for a in audio])  # [N, S]
    cycles = np.abs(np.fft.rfft(envelope - envelope.mean(1, keepdims=True), axis=1))[:, 1:17]  # per clip
    beeping = cycles.max(1) / samples / envelope.mean(1) > 0.15
    beeps = np.where(beeping, cycles.argmax(1) + 1, 0)
    assert (beeps == np.array(BEEPS_PER_CLIP)[shape]).mean() >= 0.95


def test_same_label_clips_are_closer_than_different_label_clips(batch):
    video = batch["video"].numpy()
    mask = object_mask(video).astype(np.float64)
    feature = (video * mask[:, None]).sum((2, 3, 4)) / mask[:, None].sum((2, 3, 4))  # [N, 3] object colour
    distance = np.linalg.norm(feature[:, None] - feature[None], axis=-1)
    labels = batch["label"].numpy()
    same = labels[:, None] == labels[None]
    np.fill_diagonal(same, False)
    different = labels[:, None] != labels[None]
    assert distance[same].mean() < 0.5 * distance[different].mean()


def test_generation_is_deterministic_and_seeded():
    args = dict(split="train", num_clips=12, candidates=3, no_text_fraction=0.25, seed=7, **SMALL)
    first, second = generate_clips(**args), generate_clips(**args)
    for key in ("video", "audio", "text", "text_mask", "label"):
        assert first[key].tobytes() == second[key].tobytes()
    assert first["captions"] == second["captions"]
    other = generate_clips(**{**args, "seed": 8})
    assert first["video"].tobytes() != other["video"].tobytes()


def test_train_and_test_splits_are_disjoint(cache, clips):
    test = SyntheticClips(split="test", num_clips=64, cache_dir=str(cache), **SMALL)
    train_videos = {clips._video[i].tobytes() for i in range(len(clips))}
    assert not any(test._video[i].tobytes() in train_videos for i in range(len(test)))
    assert test.directory != clips.directory and test.vocabulary == clips.vocabulary


def test_second_construction_reads_the_cache(cache, clips, capsys, monkeypatch):
    monkeypatch.setattr(synthetic, "generate_clips", lambda **_: pytest.fail("regenerated a valid cache"))
    again = SyntheticClips(num_clips=192, cache_dir=str(cache), **SMALL)
    assert capsys.readouterr().err == ""
    assert again._video.tobytes() == clips._video.tobytes() and again.captions == clips.captions
    assert Vocabulary.load(again.vocabulary_path) == clips.vocabulary


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "drop_manifest", "drop_file"])
def test_corrupt_or_partial_cache_is_regenerated(tmp_path, capsys, damage):
    built = SyntheticClips(num_clips=8, cache_dir=str(tmp_path), **SMALL)
    assert "generating 8 synthetic train clips" in capsys.readouterr().err
    video_file = built.directory / "video.npy"
    data = video_file.read_bytes()
    if damage == "truncate":
        video_file.write_bytes(data[: len(data) // 2])
    elif damage == "flip_byte":
        video_file.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "drop_manifest":
        (built.directory / "manifest.json").unlink()
    else:
        video_file.unlink()
    rebuilt = SyntheticClips(num_clips=8, cache_dir=str(tmp_path), **SMALL)
    assert "generating" in capsys.readouterr().err
    assert rebuilt._video.tobytes() == built._video.tobytes() and video_file.read_bytes() == data
    assert not list(built.directory.glob("*.tmp"))


def test_default_cache_follows_vatt_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VATT_CACHE", str(tmp_path))
    built = SyntheticClips(num_clips=4, **SMALL)
    assert built.directory.parent == tmp_path / "synthetic" and (built.directory / "manifest.json").is_file()


def test_no_text_fraction_removes_text_from_exactly_that_share(tmp_path):
    built = SyntheticClips(num_clips=40, no_text_fraction=0.25, cache_dir=str(tmp_path), **SMALL)
    b = collate([built[i] for i in range(len(built))])
    missing = ~b["text_mask"]
    assert missing.sum() == 10 and b["audio_mask"].all()
    assert (b["text"][missing] == 0).all() and (b["text"][~missing][:, :, 0] > 1).all()
    assert all((c == "") == bool(m) for c, m in zip(b["caption"], missing))
    assert not SyntheticClips(num_clips=8, no_text_fraction=1.0, cache_dir=str(tmp_path), **SMALL)[0]["text_mask"]


@pytest.mark.parametrize("kwargs, name", [
    (dict(split="val"), "split"),
    (dict(num_clips=0), "num_clips"),
    (dict(size=4), "size"),
    (dict(candidates=0), "candidates"),
    (dict(no_text_fraction=1.5), "no_text_fraction"),
    (dict(seed=-1), "seed"),
])
def test_bad_arguments_raise_value_error_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        SyntheticClips(cache_dir=str(tmp_path), **kwargs)


def test_registered_example_builds_a_dataset(tmp_path, monkeypatch):
    from vatt.registry import get

    monkeypatch.setenv("VATT_CACHE", str(tmp_path))
    entry = get("datasets", "synthetic")
    dataset = entry.obj(**entry.example)
    assert entry.obj is SyntheticClips and len(dataset) == entry.example["num_clips"]
    assert dataset[0]["video"].shape[1:] == (entry.example["frames"], entry.example["size"], entry.example["size"])
