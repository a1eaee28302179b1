"""The VATT model: tokenizers, transformers, heads and the multimodal model."""
from vatt.models.multimodal import MultimodalModel, Tower

__all__ = ["MultimodalModel", "Tower"]
