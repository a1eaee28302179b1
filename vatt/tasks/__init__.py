"""Tasks: one readable recipe per file, registered by name (``task: pretrain`` in a config)."""
from vatt.tasks import pretrain  # noqa: F401
