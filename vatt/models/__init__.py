"""The VATT model: tokenizers, transformers, heads and the multimodal model.

Importing this package runs the ``@register`` decorators of its components.
"""
from vatt.models import heads, patch_tokenizers, t5, transformer, word_tokenizer  # noqa: F401
from vatt.models.multimodal import MultimodalModel, Tower

__all__ = ["MultimodalModel", "Tower"]
