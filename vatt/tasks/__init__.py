"""Tasks: one readable recipe per file, registered by name (``task: pretrain`` in a config)."""
from vatt.tasks import (
    audio_finetune,  # noqa: F401
    finetune,  # noqa: F401
    linear_eval,  # noqa: F401
    pretrain,  # noqa: F401
    zero_shot,  # noqa: F401
)
