"""The synthetic set: real H.264/AAC files plus a manifest, read back through the manifest dataset, whose
decoded content still carries the colour, shape, direction and pitch its captions name."""
import json

import av
import numpy as np
import pytest
import torch

from vatt.data import synthetic
from vatt.data.sampler import SampleKey, collate
from vatt.data.synthetic import BEEPS_PER_CLIP, COLOURS, DIRECTIONS, NUM_CLASSES, PITCH_FRACTIONS, SHAPES, SyntheticClips, attributes_of, generate_clips
from vatt.data.text import Vocabulary
from vatt.models.multimodal import pixels_to_model_range

SMALL = dict(frames=4, size=16, audio_samples=2048, sample_rate=8000)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def clips(cache):
    return SyntheticClips(num_clips=192, cache_dir=str(cache), train=False, **SMALL)  # decoded, not augmented


@pytest.fixture(scope="module")
def batch(clips):
    return collate([clips[i] for i in range(len(clips))])


def test_clips_are_h264_and_aac_mp4_files_listed_in_a_manifest(clips):
    lines = [json.loads(line) for line in (clips.directory / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 192 and all(len(line["captions"]) == 5 for line in lines)
    with av.open(str(clips.directory / lines[0]["video"])) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        assert container.streams.video[0].average_rate == synthetic.FPS
    assert clips.entries[0].path == str((clips.directory / lines[0]["video"]).resolve())


def test_items_follow_the_batch_contract(clips):
    item = clips[5]
    assert set(item) == {"video", "audio", "text", "text_mask", "audio_mask", "label", "caption"}
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (3, 4, 16, 16)  # pixels
    assert item["audio"].dtype == torch.float32 and item["audio"].shape == (2048,)
    assert item["text"].dtype == torch.int64 and item["text"].shape == (5, 16)
    assert item["text_mask"].dtype == torch.bool and item["text_mask"].shape == () and item["text_mask"]
    assert item["audio_mask"].dtype == torch.bool and item["audio_mask"]
    assert item["label"].dtype == torch.int64 and 0 <= item["label"] < NUM_CLASSES
    assert isinstance(item["caption"], str) and item["caption"]


def test_training_items_are_augmented_without_changing_the_content(cache, clips):
    train = SyntheticClips(num_clips=192, cache_dir=str(cache), **SMALL)
    assert train.train and train.settings.flip is False and train.settings.hue == 0.0
    a, b = train[SampleKey(3, 0, 0)], train[SampleKey(3, 1, 0)]
    assert a["video"].shape == clips[3]["video"].shape and not torch.equal(a["video"], b["video"])
    assert a["video"].dtype == torch.uint8 and torch.equal(a["text"], clips[3]["text"])


def test_values_stay_in_range_and_ids_inside_the_vocabulary(clips, batch):
    video = pixels_to_model_range(batch["video"])
    assert video.min() >= -1 and video.max() <= 1 and video.min() < -0.5 and video.max() > 0.5
    assert batch["audio"].abs().max() <= 1 and batch["audio"].std() > 0.05
    assert batch["text"].min() >= 0 and batch["text"].max() < len(clips.vocabulary) <= 2**16
    assert (batch["text"][:, :, 0] > 1).all()  # every candidate starts with a known word


def test_labels_are_balanced_content_classes(clips, batch):
    counts = torch.bincount(batch["label"], minlength=NUM_CLASSES)
    assert counts.max() - counts.min() <= 1 and clips.num_classes == NUM_CLASSES == len(clips.class_names)
    assert batch["label"].tolist() == clips.labels.tolist()


def test_every_candidate_caption_names_the_clip_content(clips, batch):
    colour, shape, direction = attributes_of(batch["label"].numpy())
    for n in range(0, len(clips), 7):
        for row in batch["text"][n]:
            words = set(clips.tokenizer.decode(row).split())
            assert list(COLOURS)[colour[n]] in words
            assert words & set(list(SHAPES.values())[shape[n]])
            assert any(set(p.split()) <= words for p in list(DIRECTIONS.values())[direction[n]][2])
        assert clips.tokenizer.decode(batch["text"][n, 0]) == clips.tokenizer.decode(
            clips.tokenizer.encode(batch["caption"][n]))


def object_mask(video):  # [N, 3, T, H, W] -> [N, T, H, W]: pixels far from the clip's median colour
    background = np.median(video.reshape(len(video), 3, -1), -1)[:, :, None, None, None]
    return np.linalg.norm(video - background, axis=1) > 0.7


def test_video_shows_the_labelled_colour_and_direction(batch):
    video = pixels_to_model_range(batch["video"]).numpy()
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
    video = pixels_to_model_range(batch["video"]).numpy()
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
    for key in ("video", "audio", "label"):
        assert first[key].tobytes() == second[key].tobytes()
    assert first["captions"] == second["captions"]
    other = generate_clips(**{**args, "seed": 8})
    assert first["video"].tobytes() != other["video"].tobytes()


def test_decoding_keeps_the_generated_signals(clips, batch):
    made = generate_clips(split="train", num_clips=192, candidates=5, no_text_fraction=0.0, seed=0, **SMALL)
    video = made["video"].astype(np.float32) / 127.5 - 1  # [N, 3, T, H, W]
    audio = made["audio"].astype(np.float32) / 32767
    decoded = pixels_to_model_range(batch["video"]).numpy()
    assert np.abs(decoded - video).mean() < 0.15  # the pixel noise is what the codec smooths
    assert np.abs(batch["audio"].numpy() - audio).mean() < 0.03


def test_train_and_test_splits_are_disjoint(cache, clips):
    test = SyntheticClips(split="test", num_clips=64, cache_dir=str(cache), **SMALL)
    train_videos = {clips[i]["video"].numpy().tobytes() for i in range(len(clips))}
    assert not any(test[i]["video"].numpy().tobytes() in train_videos for i in range(len(test)))
    assert test.directory != clips.directory and test.vocabulary == clips.vocabulary and not test.train
    assert test[0]["video"].shape == (3, 4, 16, 16)  # one view: a file is exactly one clip


def test_second_construction_reads_the_files(cache, clips, capsys, monkeypatch):
    monkeypatch.setattr(synthetic, "write_clip_files", lambda *_: pytest.fail("regenerated a complete set"))
    again = SyntheticClips(num_clips=192, cache_dir=str(cache), train=False, **SMALL)
    assert capsys.readouterr().err == ""
    assert torch.equal(again[7]["video"], clips[7]["video"]) and again.entries == clips.entries
    assert Vocabulary.load(again.vocabulary_path) == clips.vocabulary


@pytest.mark.parametrize("damage", ["truncate", "drop_params", "drop_file"])
def test_damaged_or_partial_sets_are_regenerated(tmp_path, capsys, damage):
    built = SyntheticClips(num_clips=8, cache_dir=str(tmp_path), **SMALL)
    assert "generating 8 synthetic train clips" in capsys.readouterr().err
    clip_file = built.directory / "clips" / "00003.mp4"
    data = clip_file.read_bytes()
    if damage == "truncate":
        clip_file.write_bytes(data[: len(data) // 2])
    elif damage == "drop_params":
        (built.directory / "params.json").unlink()
    else:
        clip_file.unlink()
    SyntheticClips(num_clips=8, cache_dir=str(tmp_path), **SMALL)
    assert "generating" in capsys.readouterr().err
    assert clip_file.read_bytes() == data and not list(tmp_path.glob("*.building-*"))


def test_default_cache_follows_vatt_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VATT_CACHE", str(tmp_path))
    built = SyntheticClips(num_clips=4, **SMALL)
    assert built.directory.parent == tmp_path / "synthetic" and (built.directory / "manifest.jsonl").is_file()


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
    (dict(size=17), "even"),
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
