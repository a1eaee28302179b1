"""vatt: self-supervised learning from raw video, audio and text with VATT (Video-Audio-Text Transformers)."""
__version__ = "0.1.0"
