"""Files cut into windows: where windows start, and that a window holds what the evaluation reader reads."""
import numpy as np
import pytest
import torch

from tests.search.conftest import LONG_CLIPS
from vatt.data.clips import ClipReader
from vatt.data.decode import MediaError, MediaFile
from vatt.search.model import MediaSettings
from vatt.search.windows import check_length, read_audio_windows, read_video_windows, window_starts

MEDIA = MediaSettings(frames=8, size=32, fps=10.0, stride=1, audio_rate=8000, audio_samples=6400)


@pytest.mark.parametrize("end, stride, expected", [
    (4.0, 0.8, [0.0, 0.8, 1.6, 2.4, 3.2]),        # whole windows, back to back
    (4.1, 0.8, [0.0, 0.8, 1.6, 2.4, 3.2, 3.3]),   # the tail gets a window aligned to the end
    (2.0, 0.4, [0.0, 0.4, 0.8, 1.2]),             # overlapping
    (0.5, 0.8, [0.0]),                            # shorter than a window: one, at the start
])
def test_windows_start_every_stride_and_cover_the_tail(end, stride, expected):
    assert window_starts(0.0, end, 0.8, stride) == pytest.approx(expected)


def test_a_window_is_the_clip_the_evaluation_reader_reads(held_out):
    path = held_out.entries[0].path
    reader = ClipReader(MEDIA.clip_settings(clips=1), train=False)
    with MediaFile(path) as media:
        start = reader.starts(media.info.start, media.info.end, None, None, path)[0]
        window = read_video_windows(media, [start], MEDIA)  # [1, 3, T, S, S]
    assert window.dtype == torch.uint8 and window.shape == (1, 3, 8, 32, 32)
    assert torch.equal(window[0], reader.read(path).video)


def test_the_windows_of_a_long_video_hold_the_clips_it_was_made_of(media_dir, held_out):
    with MediaFile(media_dir / "long.mp4") as media:
        starts = window_starts(media.info.start, media.info.end, MEDIA.video_span, MEDIA.video_span)
        windows = read_video_windows(media, starts, MEDIA).float()  # [5, 3, T, S, S]
    reader = ClipReader(MEDIA.clip_settings(clips=1), train=False)
    originals = torch.stack([reader.read(held_out.entries[i].path).video for i in LONG_CLIPS]).float()
    distance = (windows[:, None] - originals[None]).abs().mean(dim=(2, 3, 4, 5))  # [window, original]
    assert distance.argmin(dim=1).tolist() == list(range(len(LONG_CLIPS)))
    assert distance.diagonal().max() < 4  # pixels: only the re-encoding differs


def test_sound_windows_are_cut_from_one_read_and_zero_padded_at_the_end(media_dir):
    with MediaFile(media_dir / "sound.wav") as media:
        starts = window_starts(media.info.start, media.info.end, MEDIA.audio_span, MEDIA.audio_span)
        windows = read_audio_windows(media, starts, MEDIA)  # [2, A]
        whole = media.audio(0.0, 2 * MEDIA.audio_samples, MEDIA.audio_rate)
    assert starts == pytest.approx([0.0, 0.5]) and windows.shape == (2, 6400)
    assert np.allclose(windows[0].numpy(), whole[:6400]) and np.allclose(windows[1].numpy(), whole[4000:10400])


def test_a_video_shorter_than_a_clip_is_unreadable(media_dir):
    with MediaFile(media_dir / "short.mp4") as media:
        with pytest.raises(MediaError, match="shorter than one clip"):
            check_length(media.info, MEDIA)
