"""Tasks: one readable recipe per file, registered by name (``task: pretrain`` in a config)."""
from vatt.tasks import pretrain  # noqa: F401
from vatt.tasks import finetune  # noqa: F401
from vatt.tasks import audio_finetune  # noqa: F401
from vatt.tasks import linear_eval  # noqa: F401
from vatt.tasks import zero_shot  # noqa: F401
