"""Conversion of the authors' released TensorFlow checkpoints into vatt models."""
