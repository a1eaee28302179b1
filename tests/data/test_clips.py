"""Cutting clips: random training clips, evenly spaced evaluation views, audio in sync, the decode cache."""
import numpy as np
import pytest
import torch

from vatt.data.clips import ClipReader, ClipSettings
from vatt.data.decode import MediaError
from vatt.data.encode import write_video

FPS, RATE = 10, 8000


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """4 s at 10 fps whose grey level is the frame index·6, a click every second at 0.5, 1.5, ..."""
    path = tmp_path_factory.mktemp("clips") / "v.mp4"
    frames = np.zeros((40, 32, 48, 3), dtype=np.uint8)
    frames[:] = (np.arange(40) * 6)[:, None, None, None]  # grey: luma alone carries it, nearly exactly
    sound = np.zeros(4 * RATE, dtype=np.float32)
    for t in (0.5, 1.5, 2.5, 3.5):
        sound[int(t * RATE) : int(t * RATE) + 40] = 0.8
    write_video(path, frames, fps=FPS, audio=sound, audio_rate=RATE, crf=0)  # lossless: levels read back exactly
    return str(path)


def settings(**changes):
    base = dict(frames=4, size=16, fps=FPS, stride=2, audio_rate=RATE, brightness=0, saturation=0, hue=0,
                contrast=0, crop_area=(1.0, 1.0), crop_aspect=(1.5, 1.5), flip=False, audio_noise=0)
    return ClipSettings(**{**base, **changes})


def first_frame_index(video):
    """Source frame index of each clip frame, read back from its level (uint8 [3, T, H, W])."""
    red = video[0, :, 8, 8].float()
    return torch.round(red / 6).long().tolist()


def test_settings_derive_spans_and_check_values():
    s = settings()
    assert s.video_span == pytest.approx(0.8) and s.num_audio_samples == 6400 and s.views == 4
    assert ClipSettings(frames=32, fps=10).num_audio_samples == 153_600  # 3.2 s at 48 kHz, the paper's clip
    for bad in ({"crops": 2}, {"frames": 0}, {"crop_area": (0.5, 2.0)}, {"hue": -1}, {"crop_aspect": 3},
                {"read_video": False, "read_audio": False}, {"pad_short_audio": True}):
        with pytest.raises(ValueError):
            settings(**bad)


def test_training_clips_start_at_random_and_keep_frames_and_sound_in_sync(video):
    reader = ClipReader(settings(), train=True)
    starts = set()
    for seed in range(12):
        clip = reader.read(video, rng=np.random.default_rng(seed))
        assert clip.video.shape == (3, 4, 16, 16) and clip.audio.shape == (6400,) and clip.audio_mask
        first = first_frame_index(clip.video)
        assert np.diff(first).tolist() == [2, 2, 2]  # stride 2 on the 10 fps timeline
        start = clip.windows[0][0]
        assert first[0] == int(start * FPS + 1e-6)
        inside = [t for t in (0.5, 1.5, 2.5, 3.5) if start <= t < start + 0.79]
        if inside:  # the click heard is the one at its time in the file
            assert np.argmax(clip.audio.numpy()) / RATE + start == pytest.approx(inside[0] + 0.0025, abs=0.003)
        starts.add(round(start, 3))
    assert len(starts) > 8 and min(starts) >= 0 and max(starts) <= 4.0 - 0.8


def test_training_clip_centres_on_a_given_time_inside_the_range(video):
    clip = ClipReader(settings(), train=True).read(video, begin=1.0, end=3.0, around=2.9,
                                                   rng=np.random.default_rng(0))
    assert clip.windows[0] == pytest.approx((2.2, 3.0))


def test_evaluation_takes_evenly_spaced_clips_and_crops(video):
    clip = ClipReader(settings(clips=4, crops=3), train=False).read(video)
    assert clip.video.shape == (12, 3, 4, 16, 16) and clip.audio.shape == (12, 6400)
    assert [round(w[0], 3) for w in clip.windows] == [0.0, 1.067, 2.133, 3.2]
    assert torch.equal(clip.audio[0], clip.audio[2]) and not torch.equal(clip.audio[0], clip.audio[3])
    single = ClipReader(settings(clips=1, crops=1), train=False).read(video, begin=1.0, end=2.0)
    assert single.video.shape == (3, 4, 16, 16) and single.windows[0] == pytest.approx((1.1, 1.9))


def test_a_range_shorter_than_a_clip_is_a_media_error(video):
    with pytest.raises(MediaError, match="shorter than a clip"):
        ClipReader(settings(), train=True).read(video, begin=1.0, end=1.5, rng=np.random.default_rng(0))


@pytest.mark.parametrize("train", [True, False])
def test_short_audio_is_read_from_its_start_and_zero_padded_when_asked(video, train):
    """4 s of sound read as 5 s clips (like ESC-50's 5 s recordings in a 6.4 s tower)."""
    long = dict(read_video=False, audio_samples=5 * RATE, clips=1)
    with pytest.raises(MediaError, match="shorter than a clip"):
        ClipReader(settings(**long), train=train).read(video, rng=np.random.default_rng(0))
    clip = ClipReader(settings(**long, pad_short_audio=True), train=train).read(video, rng=np.random.default_rng(0))
    assert clip.audio.shape == (5 * RATE,) and clip.audio_mask
    clicks = (clip.audio.abs() > 0.4).nonzero().flatten()
    assert abs(int(clicks[0]) - RATE // 2) < 80  # the first click at 0.5 s: read from the start
    assert clip.audio[4 * RATE + 100:].abs().max() == 0  # the missing second is silence


def test_cached_whole_file_decoding_gives_the_same_samples(tmp_path, video):
    plain = ClipReader(settings(stride=1, cache_mb=0), train=True)
    cached = ClipReader(settings(stride=1, cache_mb=64), train=True)
    short = tmp_path / "short.mp4"
    frames = np.random.default_rng(0).integers(0, 255, (10, 16, 16, 3), dtype=np.uint8)
    write_video(short, frames, fps=FPS, audio=np.sin(np.arange(8000) / 5), audio_rate=RATE)
    for _ in range(2):  # the second read is served from memory
        a = cached.read(str(short), rng=np.random.default_rng(1))
    b = plain.read(str(short), rng=np.random.default_rng(1))
    assert str(short) in cached._cache
    torch.testing.assert_close(a.video, b.video)
    torch.testing.assert_close(a.audio, b.audio, atol=2e-3, rtol=0)
    cached.read(video, rng=np.random.default_rng(1))
    assert video not in cached._cache  # a long file is read clip by clip, never held whole


def test_a_file_without_sound_gives_silence_and_a_false_mask(tmp_path):
    path = tmp_path / "silent.mp4"
    write_video(path, np.zeros((10, 16, 16, 3), dtype=np.uint8), fps=FPS)
    clip = ClipReader(settings(stride=1), train=True).read(str(path), rng=np.random.default_rng(0))
    assert not clip.audio_mask and torch.equal(clip.audio, torch.zeros(6400 // 2))


def test_training_flips_about_half_the_clips_and_never_within_a_clip(tmp_path):
    path = tmp_path / "half.mp4"
    frames = np.zeros((10, 16, 16, 3), dtype=np.uint8)
    frames[:, :, :8] = 255  # a white left half
    write_video(path, frames, fps=FPS, crf=0)
    reader = ClipReader(settings(stride=1, crop_area=(1.0, 1.0), crop_aspect=(1.0, 1.0), flip=True), train=True)
    left_white = []
    for seed in range(40):
        video = reader.read(str(path), rng=np.random.default_rng(seed)).video  # [3, T, 16, 16]
        sides = video[0, :, 8, :4].float().mean(-1) > 127.5  # per frame: is the left edge white?
        assert sides.all() or not sides.any()  # one flip decision for the whole clip
        left_white.append(bool(sides[0]))
    assert 10 <= sum(left_white) <= 30
