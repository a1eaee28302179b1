"""Evaluators: registered components (kind "evaluators") with ``run(model, dataset) -> dict`` of flat metrics.

Importing this package registers the built-in evaluators.
"""
from vatt.evaluators.classification import ClassificationEvaluator
from vatt.evaluators.linear_probe import LinearProbe
from vatt.evaluators.retrieval import ZeroShotRetrieval

__all__ = ["ZeroShotRetrieval"]
