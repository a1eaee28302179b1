"""Decoding real files: every container and audio format, frame-rate resampling, audio sync, failures."""
import numpy as np
import pytest

from vatt.data.decode import MediaError, MediaFile, probe
from vatt.data.encode import write_audio, write_image, write_video

FPS = 10
RATE = 16000


def ramp_video(frames=30, height=24, width=32):
    """Frame t is uniformly t·8 in red: the decoded red level says which source frame was picked."""
    video = np.zeros((frames, height, width, 3), dtype=np.uint8)
    video[..., 0] = (np.arange(frames) * 8)[:, None, None]
    return video


def clicks(seconds, rate, at=(0.5, 1.5, 2.5)):
    audio = np.zeros(round(seconds * rate), dtype=np.float32)
    width = round(0.005 * rate)
    for t in at:
        audio[round(t * rate) : round(t * rate) + width] = 0.8 * np.hanning(width)
    return audio


@pytest.mark.parametrize("extension", [".mp4", ".mkv", ".webm", ".avi", ".mov"])
def test_every_container_decodes_frames_at_the_asked_times_and_sound_in_sync(tmp_path, extension):
    rate = 48000 if extension == ".webm" else RATE  # Opus only takes some rates
    path = tmp_path / f"clip{extension}"
    write_video(path, ramp_video(), fps=FPS, audio=clicks(3.0, rate), audio_rate=rate)
    info = probe(path)
    assert info.has_video and info.has_audio and info.fps == pytest.approx(FPS)
    assert info.duration == pytest.approx(3.0, abs=0.02) and (info.width, info.height) == (32, 24)
    with MediaFile(path) as media:
        # 25 fps timeline with stride 2 over a 10 fps source: frame shown at each time
        times = 0.4 + np.arange(8) * 2 / 25
        frames = media.frames_at(times)
        assert frames.shape == (8, 24, 32, 3)
        expected = np.floor(times * FPS + 1e-6) * 8
        assert np.abs(frames[:, 5, 5, 0].astype(int) - expected).max() <= 4
        sound = media.audio(1.4, 3200, RATE)  # 0.2 s at 16 kHz around the click at 1.5 s
    assert sound.dtype == np.float32 and sound.shape == (3200,)
    assert 1.4 + np.argmax(np.abs(sound)) / RATE == pytest.approx(1.5 + 0.0025, abs=0.002)


@pytest.mark.parametrize("extension", [".wav", ".flac", ".mp3", ".ogg"])
def test_audio_only_files_decode_resampled_and_mono(tmp_path, extension):
    rate = 48000 if extension == ".ogg" else 44100
    path = tmp_path / f"sound{extension}"
    write_audio(path, clicks(3.0, rate), rate=rate)
    info = probe(path)
    assert not info.has_video and info.has_audio and info.audio_rate == rate
    with MediaFile(path) as media:
        sound = media.audio(1.0 + info.start, 16000, RATE)  # mp3 files start after the encoder delay
        with pytest.raises(MediaError, match="no video"):
            media.frames_at([0.0])
    assert 1.0 + np.argmax(np.abs(sound)) / RATE == pytest.approx(1.5 + 0.0025, abs=0.002)


def test_a_file_without_sound_gives_none_and_one_with_sound_is_in_range(tmp_path):
    silent, loud = tmp_path / "silent.mp4", tmp_path / "loud.mp4"
    write_video(silent, ramp_video(10), fps=FPS)
    write_video(loud, ramp_video(10), fps=FPS, audio=np.ones(8000), audio_rate=8000)
    with MediaFile(silent) as media:
        assert not media.info.has_audio and media.audio(0.0, 100, 8000) is None
    with MediaFile(loud) as media:
        assert np.abs(media.audio(0.0, 8000, 8000)).max() <= 1.0


def test_whole_file_decoding_answers_like_the_open_file(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, ramp_video(), fps=FPS, audio=clicks(3.0, RATE), audio_rate=RATE)
    with MediaFile(path) as media:
        whole = media.whole(RATE)
    times = np.arange(4) * 0.3 + 0.25
    with MediaFile(path) as media:
        assert np.array_equal(whole.frames_at(times), media.frames_at(times))
    np.testing.assert_allclose(whole.audio(1.4, 3200, RATE), MediaFile(path).audio(1.4, 3200, RATE), atol=2e-3)


def test_missing_corrupt_and_truncated_files_raise_media_errors_naming_them(tmp_path):
    with pytest.raises(MediaError, match="no such file") as missing:
        MediaFile(tmp_path / "absent.mp4")
    assert missing.value.path.endswith("absent.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(MediaError, match="garbage.mp4"):
        MediaFile(garbage)
    whole = tmp_path / "whole.mp4"
    write_video(whole, ramp_video(), fps=FPS, audio=clicks(3.0, RATE), audio_rate=RATE)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(MediaError, match="truncated.mp4"):
        with MediaFile(truncated) as media:
            media.frames_at([2.8])
    with MediaFile(whole) as media:
        with pytest.raises(MediaError, match="ends at"):
            media.frames_at([3.5])  # past the end of the file


def test_still_images_decode_as_one_picture(tmp_path):
    picture = np.zeros((16, 24, 3), dtype=np.uint8)
    picture[..., 2] = 200
    for name in ("a.jpg", "a.png"):
        write_image(tmp_path / name, picture)
        with MediaFile(tmp_path / name) as media:
            assert media.is_image and media.info.duration == 0
            decoded = media.still()
        assert decoded.shape == (16, 24, 3) and abs(int(decoded[..., 2].mean()) - 200) <= 3


def _stereo_wav(path, left, right, rate):
    import wave
    samples = np.round(np.stack([left, right], axis=1) * 32767).astype("<i2")  # interleaved L, R
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def test_stereo_sound_is_mixed_down_to_mono_from_both_channels(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    _stereo_wav(tmp_path / "same.wav", tone, tone, RATE)
    _stereo_wav(tmp_path / "opposite.wav", tone, -tone, RATE)
    _stereo_wav(tmp_path / "left.wav", tone, 0 * tone, RATE)
    levels = {}
    for name in ("same", "opposite", "left"):
        with MediaFile(tmp_path / f"{name}.wav") as media:
            sound = media.audio(0.0, RATE, RATE)
        assert sound.shape == (RATE,)
        levels[name] = float(np.abs(sound[1000:-1000]).max())
    assert levels["same"] > 0.3  # the channels add up ...
    assert levels["opposite"] < 0.01  # ... so opposite ones cancel: both are read, not just one
    assert 0.3 * levels["same"] < levels["left"] < 0.8 * levels["same"]  # one channel alone weighs part of it
