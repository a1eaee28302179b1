"""Data: decoding media files, cutting and augmenting clips, text, the registered datasets (the generic
manifest, the paper's layouts, the synthetic set, mixtures, packed shards) and the training loader."""
from vatt.data.sampler import SampleKey, StepBatchSampler, collate
from vatt.data.synthetic import SyntheticClips
from vatt.data.text import Vocabulary, WordTokenizer, build_vocabulary

__all__ = ["SampleKey", "StepBatchSampler", "collate", "SyntheticClips", "Vocabulary", "WordTokenizer",
           "build_vocabulary"]
