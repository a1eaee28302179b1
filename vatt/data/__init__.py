"""Data: decoding media files, cutting and augmenting clips, text, the registered datasets (the generic
manifest, the paper's layouts, the synthetic set, mixtures, packed shards) and the training loader.

Importing this package imports the dataset modules so that their datasets are registered.
"""
from vatt.data import sampler, shards, synthetic, text  # noqa: F401  (registration side effects)
from vatt.data.datasets import (audioset, esc50, hmdb51, howto100m, image_folder, kinetics,  # noqa: F401
                                manifest, mixture, moments_in_time, msrvtt, ucf101, youcook2)
from vatt.data.sampler import SampleKey, StepBatchSampler, collate
from vatt.data.synthetic import SyntheticClips
from vatt.data.text import Vocabulary, WordTokenizer, build_vocabulary

__all__ = ["SampleKey", "StepBatchSampler", "collate", "SyntheticClips", "Vocabulary", "WordTokenizer",
           "build_vocabulary"]
