"""The config sections that recipes share (``run``, ``data``, a downstream ``model`` tower) and their checks.

Types are checked by the registry from these dataclasses and ranges from their fields' declarations
(`vatt.ranges`); what is written here is only what neither can say: allowed names.
"""
from __future__ import annotations

from dataclasses import dataclass

from vatt.engine import speed
from vatt.engine.parallel import PARALLEL_MODES
from vatt.messages import shown
from vatt.ranges import at_least, within


@dataclass
class RunSettings:
    dir: str | None = None           # default: runs/<config file name>
    seed: int = at_least(0, 0)
    steps: int = at_least(1, 1000)
    batch_size: int = at_least(1, 32)  # the global batch, over all processes
    log_every: int = at_least(1, 10)
    checkpoint_every: int = at_least(1, 500)
    keep_checkpoints: int = at_least(1, 3)
    eval_every: int = at_least(0, 0, "0 evaluates only at the end")
    device: str = "cpu"              # cpu, cuda, cuda:1, or auto
    threads: int | None = at_least(1, None)  # torch intra-op threads; None keeps torch's default
    max_grad_norm: float | None = None
    tensorboard: bool = True
    max_bad_steps: int = at_least(1, 10)  # steps in a row with a NaN/Inf loss (each skipped) before the run stops
    # several processes (torchrun): how the model is spread, and how long a collective may wait for the others
    parallel: str = "ddp"            # ddp (replicas) or fsdp (FSDP2 fully_shard: sharded parameters)
    collective_timeout: float = 900.0  # seconds
    # speed switches
    precision: str = "fp32"          # fp32 or bf16 (autocast)
    fused_ops: bool = True           # the fused vatt ops where the model and losses can use them
    sdpa: bool = True                # F.scaled_dot_product_attention; False: explicit softmax(QKᵀ/√d)V
    compile: bool = False            # torch.compile each tower
    activation_checkpointing: bool = False  # recompute each transformer layer in backward (less memory)


@dataclass
class DataSettings:
    train: dict | None = None        # a dataset node
    eval: dict | None = None         # the held-out dataset evaluators read
    num_workers: int = at_least(0, 0, "0 reads the data in the main process")
    # share of the training samples that may fail to read before the run stops
    max_failed_share: float = within(0, 1, 0.01, "0.01 stops the run once 1 % of the samples failed to read")


@dataclass
class TowerSettings:
    """The tower a downstream task uses, and the pre-training checkpoint it starts from."""
    tokenizer: dict
    backbone: dict
    modality: str = "video"
    init: str | None = None           # a checkpoint file or a pre-training run directory; None: from scratch
    init_modality: str | None = None  # the checkpoint's tower to load (default: modality)
    post_projection: int | None = None  # the modality-agnostic model's GELU Dense after its shared backbone
    droptoken: float = 0.0


@dataclass(kw_only=True)
class ClassifierSettings(TowerSettings):
    num_classes: int                  # must match the data's num_classes
    classifier_dropout: float = 0.5


def check_run(cfg: dict) -> list[str]:
    """Values of a training run's ``run`` section that its types can't judge."""
    run = cfg.get("run") or {}
    return [f"run.{key}: must be one of {', '.join(allowed)}, got {shown(run[key])}"
            for key, allowed in (("parallel", PARALLEL_MODES), ("precision", tuple(speed.PRECISIONS)))
            if key in run and run[key] not in allowed]


def check_tower(cfg: dict) -> list[str]:
    rate = (cfg.get("model") or {}).get("droptoken", 0.0)
    if isinstance(rate, (int, float)) and not 0.0 <= rate < 1.0:
        return [f"model.droptoken: must be in [0, 1), got {rate}"]
    return []


def check_roots(data: dict, parts: tuple[str, ...]) -> list[str]:
    """Paper configs leave each dataset's ``root`` null: say which to set."""
    problems = []
    for part in parts:
        node = data.get(part)
        if node is None:
            problems.append(f"data.{part}: no dataset configured")
        elif isinstance(node, dict) and "root" in node and node["root"] is None:
            problems.append(f"data.{part}.root: where is your copy of {node.get('type')}? Set it, e.g. "
                            f"data.{part}.root=/data/{node.get('type')} (or try a configs/*_synthetic.yaml)")
    return problems
