"""The log-mel frontend: framing of the appendix's ablation, the mel filters, and values against numpy's FFT."""
import numpy as np
import pytest
import torch

from vatt_spectrogram.mel import LOG_FLOOR, LogMelSpectrogram, hz_to_mel, mel_filterbank, mel_to_hz


def test_paper_framing_at_48_khz():
    frontend = LogMelSpectrogram(sample_rate=48000)
    assert (frontend.window_length, frontend.hop_length, frontend.n_fft) == (2016, 1008, 2048)  # 42 / 21 ms
    assert frontend.num_frames(153600) == 151  # 3.2 s
    assert frontend(torch.zeros(1, 153600)).shape == (1, 151, 80)


def test_mel_scale_round_trip():
    hz = torch.tensor([0.0, 440.0, 1000.0, 8000.0], dtype=torch.float64)
    assert torch.allclose(mel_to_hz(hz_to_mel(hz)), hz)
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.1)  # the HTK scale's anchor


def test_filters_are_triangles_that_tile_the_band():
    filters = mel_filterbank(num_mels=40, n_fft=1024, sample_rate=16000).double()  # [513, 40]
    assert filters.shape == (513, 40) and (filters >= 0).all() and (filters <= 1).all()
    peaks = filters.argmax(dim=0)
    assert (peaks[1:] > peaks[:-1]).all()  # centres rise with the filter index
    # between the first and the last centre, neighbouring triangles sum to one
    inside = slice(int(peaks[0]) + 1, int(peaks[-1]))
    assert torch.allclose(filters[inside].sum(dim=1), torch.ones(1, dtype=torch.float64), atol=1e-6)


def test_too_many_bins_for_the_window_is_refused():
    with pytest.raises(ValueError, match="too many"):
        mel_filterbank(num_mels=200, n_fft=256, sample_rate=8000)


def test_a_tone_lights_the_bin_at_its_pitch():
    rate, pitch = 16000, 1000.0
    frontend = LogMelSpectrogram(sample_rate=rate, num_mels=40)
    t = torch.arange(rate) / rate
    log_mel = frontend(0.5 * torch.sin(2 * np.pi * pitch * t)[None])  # [1, frames, 40]
    centres = mel_to_hz(torch.linspace(0.0, hz_to_mel(rate / 2), 42))[1:-1]  # [40]
    loudest = int(log_mel[0].mean(dim=0).argmax())
    assert loudest == int((centres - pitch).abs().argmin())


def test_values_match_a_numpy_fft_of_each_frame():
    frontend = LogMelSpectrogram(sample_rate=8000, num_mels=32)
    wave = torch.rand(2, 3000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    got = frontend(wave).double().numpy()  # [2, frames, 32]

    n_fft, win, hop = frontend.n_fft, frontend.window_length, frontend.hop_length
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2  # the window sits in the middle of the FFT frame
    window[start:start + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    frames = np.stack([wave.double().numpy()[:, i * hop:i * hop + n_fft] for i in range(got.shape[1])], axis=1)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # [2, frames, n_fft/2+1]
    expected = np.log(power @ frontend.filters.double().numpy() + LOG_FLOOR)
    assert got.shape[1] == 1 + (3000 - n_fft) // hop
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_low_precision_input_is_transformed_in_float32():
    frontend = LogMelSpectrogram(sample_rate=8000, num_mels=32)
    wave = torch.rand(1, 2000) * 2 - 1
    out = frontend(wave.bfloat16())
    assert out.dtype == torch.float32
    assert torch.allclose(out, frontend(wave.bfloat16().float()))


def test_short_or_misshaped_waveforms_are_refused():
    frontend = LogMelSpectrogram(sample_rate=8000)
    with pytest.raises(ValueError, match="at least one FFT frame"):
        frontend(torch.zeros(1, 100))
    with pytest.raises(ValueError, match=r"\[B, S\]"):
        frontend(torch.zeros(4000))
