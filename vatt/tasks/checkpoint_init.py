"""Start a downstream model from a pre-training checkpoint, matching parameters by name.

A mapping of name prefixes says which part of the checkpoint goes where (``towers.video.`` → ``towers.video.``
for a fine-tuned video tower). Inside a mapped prefix every entry must find its place with the same shape,
except the learned position tables: when the input grid changed (224² → 320² crops: 8+14+14 → 8+20+20
buckets) they are resized along their bucket axis with the release's polyharmonic spline (`resize_table`,
the same the tokenizers use when they resize their positions). Entries outside the mapped prefixes (the other
towers, the pre-training heads) are skipped, and model entries no prefix covers (a new classifier) keep their
fresh initialisation. The report lists all four groups.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vatt.engine.checkpoint import CheckpointError, load_latest
from vatt.engine.weights import WEIGHTS_NAME, read_weights
from vatt.errors import UserError
from vatt.models.positions import resize_table

# A factorised position table: one learned vector per bucket of one axis of the patch grid.
POSITION_TABLE = re.compile(r"(^|\.)positions\.axes\.\d+$")
SHOWN = 8  # entries named in an error before "... and N more"


INIT_REPORT = "init_report.json"  # what a task loaded from model.init, in its run directory


@dataclass
class InitReport:
    """What loading a checkpoint did to a model, entry by entry."""
    source: str
    loaded: list[str] = field(default_factory=list)
    resized: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)  # name → (from, to)
    skipped: list[str] = field(default_factory=list)  # checkpoint entries no mapping takes
    fresh: list[str] = field(default_factory=list)  # model entries left as initialised

    def to_dict(self) -> dict:
        return {"source": self.source, "loaded": self.loaded, "skipped": self.skipped, "fresh": self.fresh,
                "resized": {name: {"from": a, "to": b} for name, (a, b) in self.resized.items()}}

    def describe(self) -> str:
        lines = [f"initialised from {self.source}: {len(self.loaded)} entries loaded "
                 f"({len(self.resized)} resized), {len(self.skipped)} skipped, {len(self.fresh)} fresh"]
        lines += [f"  resized {name}: {a} -> {b}" for name, (a, b) in self.resized.items()]
        if self.skipped:
            lines.append(f"  skipped: {_grouped(self.skipped)}")
        if self.fresh:
            lines.append(f"  fresh: {_grouped(self.fresh)}")
        return "\n".join(lines)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def read_checkpoint(path: str | Path, where: str = "model.init") -> tuple[Path, dict[str, torch.Tensor]]:
    """The model state dict of a checkpoint file, of a run directory's latest checkpoint, or of a model
    directory written by ``python -m vatt.convert`` (its ``model.safetensors``)."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / WEIGHTS_NAME).is_file():
        source = path / WEIGHTS_NAME
        try:
            return source, read_weights(source)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
    if path.is_dir():
        try:
            found = load_latest(path)
        except CheckpointError as exc:
            raise UserError(f"{where}: {exc}") from None
        if found is None:
            raise UserError(f"{where}: {path} is a directory without checkpoints (expected a run directory "
                            f"with checkpoints/, a converted model directory with {WEIGHTS_NAME}, or a .pt file)")
        step, state = found
        source = path / "checkpoints" / f"step_{step:08d}.pt"
    elif path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # zip, pickle and storage errors all mean: not a checkpoint we can read
            raise UserError(f"{where}: {path} does not load as a checkpoint: {type(exc).__name__}: {exc}") from None
        source = path
    else:
        raise UserError(f"{where}: no checkpoint at {path} (give a .pt file or a run directory)")
    model_state = state.get("model", state) if isinstance(state, dict) else None
    if not isinstance(model_state, dict) or not all(torch.is_tensor(v) for v in model_state.values()):
        raise UserError(f"{where}: {source} holds no model state dict (expected {{'model': state_dict}})")
    return source, model_state


def load_by_name(model: torch.nn.Module, state: dict[str, torch.Tensor], mapping: dict[str, str], *,
                 source: str, where: str = "model.init") -> InitReport:
    """Copy the checkpoint entries under each source prefix of ``mapping`` to the model's target prefix.

    Raises UserError naming ``source`` and the entries when a mapped entry has no place in the model, a
    mapped model entry is missing from the checkpoint, or shapes differ other than in a position table.
    """
    targets = model.state_dict()
    report = InitReport(source=str(source))
    planned: dict[str, torch.Tensor] = {}
    unplaced, mismatched = [], {}
    for name, value in state.items():
        target = _mapped(name, mapping)
        if target is None:
            report.skipped.append(name)
        elif target not in targets:
            unplaced.append(name)
        elif value.shape == targets[target].shape:
            planned[target] = value
        elif _resizable(target, value, targets[target]):
            planned[target] = resize_table(value, targets[target].shape[0])
            report.resized[target] = (list(value.shape), list(targets[target].shape))
        else:
            shown = name if target == name else f"{name} -> {target}"
            mismatched[target] = f"{shown}: checkpoint {list(value.shape)}, model {list(targets[target].shape)}"
    covered = [t for t in targets if any(t.startswith(dst) for dst in mapping.values())]
    missing = [t for t in covered if t not in planned and t not in mismatched]
    problems = []
    if mismatched:
        problems.append("shapes differ: " + _listed(list(mismatched.values())))
    if unplaced:
        problems.append("checkpoint entries with no place in the model: " + _listed(unplaced))
    if missing:
        problems.append("model entries the checkpoint lacks: " + _listed(missing))
    if not planned and not problems:
        problems.append(f"nothing matches the prefixes {sorted(mapping)}; the checkpoint's entries start with "
                        f"{_grouped(list(state))}")
    if problems:
        raise UserError(f"{where}: {source} does not fit this model (do the tokenizer and backbone settings "
                        f"match the pre-training run?):\n  " + "\n  ".join(problems))
    with torch.no_grad():
        for target, value in planned.items():
            targets[target].copy_(value.to(targets[target].dtype))
    report.loaded = sorted(planned)
    report.fresh = sorted(t for t in targets if t not in planned)
    return report


def _mapped(name: str, mapping: dict[str, str]) -> str | None:
    for src, dst in mapping.items():
        if name.startswith(src):
            return dst + name[len(src):]
    return None


def _resizable(name: str, value: torch.Tensor, target: torch.Tensor) -> bool:
    return (POSITION_TABLE.search(name) is not None and value.dim() == 2 and target.dim() == 2
            and value.shape[1] == target.shape[1])


def _listed(names: list[str]) -> str:
    more = f" ... and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return "; ".join(names[:SHOWN]) + more


def _grouped(names: list[str]) -> str:
    """Entry counts by their first two name parts: 'towers.audio (12), heads.video (9)'."""
    counts: dict[str, int] = {}
    for name in names:
        head = ".".join(name.split(".")[:2])
        counts[head] = counts.get(head, 0) + 1
    return ", ".join(f"{head} ({n})" for head, n in counts.items())
