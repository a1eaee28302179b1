"""vatt's built-in components: importing these modules runs their ``@register`` decorators.

The registry imports this module on first lookup; plugins are found through entry points instead.
"""
import vatt.data  # noqa: F401  datasets
import vatt.engine  # noqa: F401  optimizers, schedules
import vatt.evaluators  # noqa: F401  evaluators
import vatt.losses  # noqa: F401  losses
import vatt.models  # noqa: F401  tokenizers, backbones, heads
import vatt.tasks  # noqa: F401  tasks
