"""vatt's built-in components: the modules whose ``@register`` decorators define them, listed once here.

The registry imports this module on its first lookup, which imports each of these; plugins are found through
entry points instead. A new module with registered components is added to this list (a test checks that
none is missing).
"""
import importlib

BUILTIN_MODULES = (
    # datasets
    "vatt.data.datasets.manifest", "vatt.data.datasets.mixture", "vatt.data.datasets.image_folder",
    "vatt.data.datasets.audioset", "vatt.data.datasets.esc50", "vatt.data.datasets.hmdb51",
    "vatt.data.datasets.howto100m", "vatt.data.datasets.kinetics", "vatt.data.datasets.moments_in_time",
    "vatt.data.datasets.msrvtt", "vatt.data.datasets.ucf101", "vatt.data.datasets.youcook2",
    "vatt.data.shards", "vatt.data.synthetic",
    # optimizers and schedules
    "vatt.engine.optim",
    # evaluators
    "vatt.evaluators.classification", "vatt.evaluators.linear_probe", "vatt.evaluators.retrieval",
    # losses
    "vatt.losses",
    # tokenizers, backbones, heads
    "vatt.models.heads", "vatt.models.patch_tokenizers", "vatt.models.t5", "vatt.models.transformer",
    "vatt.models.word_tokenizer",
    # tasks
    "vatt.tasks.pretrain", "vatt.tasks.finetune", "vatt.tasks.audio_finetune", "vatt.tasks.linear_eval",
    "vatt.tasks.zero_shot",
)

for _name in BUILTIN_MODULES:
    importlib.import_module(_name)
