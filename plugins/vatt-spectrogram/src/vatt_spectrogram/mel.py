"""Log-mel spectrogram of a raw waveform with torch.stft: framing, Hann window, power, mel filters, log.

The framing follows the appendix's spectrogram ablation: a 42 ms STFT window moved in 21 ms steps, 80 mel
bins. The FFT length is the next power of two at or above the window, the window sits in the middle of each
FFT frame, and frames only cover whole windows (no padding at the ends), so a clip of S samples gives
``1 + (S - n_fft) // hop`` frames.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

LOG_FLOOR = 1e-6  # added before the log: silence maps to log(1e-6) ≈ -13.8 instead of -inf


def hz_to_mel(hz: torch.Tensor | float) -> torch.Tensor | float:
    """The HTK mel scale: 2595 · log10(1 + f / 700)."""
    return 2595.0 * (torch.log10(1.0 + hz / 700.0) if torch.is_tensor(hz) else math.log10(1.0 + hz / 700.0))


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(*, num_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, peak 1, as a matrix ``[n_fft // 2 + 1, num_mels]``.

    Filter m rises from centre m-1 to centre m and falls to centre m+1, the ``num_mels + 2`` centres being
    evenly spaced in mel from ``f_min`` to ``f_max`` (default: Nyquist).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}, got f_min={f_min}, "
                         f"f_max={f_max}")
    # built on the CPU even under a meta-device context (parameter counting): the empty-filter check reads values
    cpu = {"dtype": torch.float64, "device": "cpu"}
    edges = mel_to_hz(torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), num_mels + 2, **cpu))  # [M + 2] Hz
    bins = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, **cpu)  # [F] Hz
    low, centre, high = edges[:-2], edges[1:-1], edges[2:]  # each [M]
    rising = (bins[:, None] - low) / (centre - low)  # [F, M]
    falling = (high - bins[:, None]) / (high - centre)  # [F, M]
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)  # [F, M]
    empty = (filters.sum(dim=0) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"num_mels={num_mels} is too many for {n_fft // 2 + 1} FFT bins at {sample_rate} Hz: "
                         f"mel filters {empty} fall between two bins; use fewer mel bins or a longer window")
    return filters.float()


class LogMelSpectrogram(nn.Module):
    """``forward(waveform [B, S]) -> log-mel [B, frames, num_mels]`` (time-major), computed in float32."""

    def __init__(self, *, sample_rate: int, num_mels: int = 80, window_ms: float = 42.0, step_ms: float = 21.0,
                 f_min: float = 0.0, f_max: float | None = None):
        super().__init__()
        if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate < 1:
            raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
        if not isinstance(num_mels, int) or isinstance(num_mels, bool) or num_mels < 1:
            raise ValueError(f"num_mels must be a positive int, got {num_mels!r}")
        self.sample_rate = sample_rate
        self.window_length = round(sample_rate * window_ms / 1000)
        self.hop_length = round(sample_rate * step_ms / 1000)
        if self.window_length < 2 or self.hop_length < 1:
            raise ValueError(f"window_ms={window_ms} and step_ms={step_ms} at {sample_rate} Hz give a window of "
                             f"{self.window_length} and a step of {self.hop_length} samples; both must be longer")
        self.n_fft = 1 << math.ceil(math.log2(self.window_length))
        self.num_mels = num_mels
        # fixed signal processing: buffers follow the module to its device; they are not checkpointed because
        # the constructor arguments determine them
        self.register_buffer("window", torch.hann_window(self.window_length, device="cpu"), persistent=False)
        self.register_buffer("filters", mel_filterbank(num_mels=num_mels, n_fft=self.n_fft, sample_rate=sample_rate,
                                                       f_min=f_min, f_max=f_max), persistent=False)

    def num_frames(self, samples: int) -> int:
        """Frames a clip of ``samples`` samples gives (0 when it is shorter than one FFT frame)."""
        return 0 if samples < self.n_fft else 1 + (samples - self.n_fft) // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"waveform must be [B, S], got shape {tuple(waveform.shape)}")
        if waveform.shape[1] < self.n_fft:
            raise ValueError(f"waveform must hold at least one FFT frame of {self.n_fft} samples, "
                             f"got {waveform.shape[1]}")
        # STFT in float32 whatever the autocast dtype: half-precision FFTs lose the quiet mel bins
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            spectrum = torch.stft(waveform.float(), n_fft=self.n_fft, hop_length=self.hop_length,
                                  win_length=self.window_length, window=self.window, center=False,
                                  return_complex=True)  # [B, F, frames]
            power = spectrum.real.square() + spectrum.imag.square()  # [B, F, frames]
            mel = power.transpose(1, 2) @ self.filters  # [B, frames, M]
            return torch.log(mel + LOG_FLOOR)  # [B, frames, M]
