"""Tasks: one readable recipe per file, registered by name (``task: pretrain`` in a config)."""
