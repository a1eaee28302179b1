"""Data: text tokenizer and vocabulary, the synthetic dataset, the resumable batch sampler and collation.

Importing this package imports its submodules so that their datasets are registered.
"""
from vatt.data import sampler, synthetic, text  # noqa: F401  (registration side effects)
from vatt.data.sampler import StepBatchSampler, collate
from vatt.data.synthetic import SyntheticClips
from vatt.data.text import Vocabulary, WordTokenizer, build_vocabulary

__all__ = ["StepBatchSampler", "collate", "SyntheticClips", "Vocabulary", "WordTokenizer", "build_vocabulary"]
