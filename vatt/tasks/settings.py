"""The config sections that recipes share (``run``, ``data``, a downstream ``model`` tower) and their checks.

Types are checked by the registry from these dataclasses; what is written here is only what a type cannot
say: allowed names and ranges.
"""
from __future__ import annotations

from dataclasses import dataclass

from vatt.engine import speed
from vatt.engine.parallel import PARALLEL_MODES


@dataclass
class RunSettings:
    dir: str | None = None           # default: runs/<config file name>
    seed: int = 0
    steps: int = 1000
    batch_size: int = 32
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    eval_every: int = 0              # 0: evaluate only at the end
    device: str = "cpu"              # cpu, cuda, cuda:1, or auto
    threads: int | None = None       # torch intra-op threads; None keeps torch's default
    max_grad_norm: float | None = None
    tensorboard: bool = True
    max_bad_steps: int = 10          # steps in a row with a NaN/Inf loss (each skipped) before the run stops
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
    num_workers: int = 0
    max_failed_share: float = 0.01   # share of the training samples that may fail to read before the run stops


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
    problems = [f"run.{key}: must be one of {', '.join(allowed)}, got {run[key]!r}"
                for key, allowed in (("parallel", PARALLEL_MODES), ("precision", tuple(speed.PRECISIONS)))
                if key in run and run[key] not in allowed]
    if isinstance(run.get("max_bad_steps"), int) and run["max_bad_steps"] < 1:
        problems.append(f"run.max_bad_steps: must be at least 1, got {run['max_bad_steps']}")
    return problems


def check_data_settings(cfg: dict) -> list[str]:
    """Values of the data section the type checks can't judge (shared by the tasks that train)."""
    share = (cfg.get("data") or {}).get("max_failed_share")
    if isinstance(share, (int, float)) and not isinstance(share, bool) and not 0.0 <= share <= 1.0:
        return [f"data.max_failed_share: must be a share in [0, 1] (0.01 stops the run once 1 % of the samples "
                f"failed to read), got {share!r}"]
    return []


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
