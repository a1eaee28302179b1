"""Evaluators: registered components (kind "evaluators") with ``run(model, dataset) -> dict`` of flat metrics."""
