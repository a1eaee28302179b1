"""vatt-spectrogram: a log-mel spectrogram audio tokenizer for vatt, registered as ``log_mel``.

vatt finds it through the ``vatt.tokenizers`` entry point; nothing in vatt imports this package.
"""
from vatt_spectrogram.mel import LogMelSpectrogram, mel_filterbank
from vatt_spectrogram.tokenizer import LogMelTokenizer

__all__ = ["LogMelSpectrogram", "LogMelTokenizer", "mel_filterbank"]
