"""vatt: self-supervised learning from raw video, audio and text with VATT (Video-Audio-Text Transformers)."""
__version__ = "0.1.0"

__all__ = ["Encoder", "load_pretrained"]


def __getattr__(name: str):
    # Imported on first use, so that `import vatt` (and every `python -m vatt.*` command) stays light.
    if name == "load_pretrained":
        from vatt.pretrained import load_pretrained
        return load_pretrained
    if name == "Encoder":
        from vatt.search.encoder import Encoder
        return Encoder
    raise AttributeError(f"module 'vatt' has no attribute {name!r}")
