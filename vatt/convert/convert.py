"""Convert one of the authors' TensorFlow checkpoints into a vatt model directory.

``convert(checkpoint, out_dir)`` reads the variable list, plans the mapping (`vatt.convert.release`), builds
the vatt model the plan's config describes, fills every parameter and buffer from the checkpoint (strictly:
nothing left over on either side), and writes ``model.safetensors``, ``config.yaml`` (a complete config with a
runnable task), ``conversion.json`` (what went where) and, when given, the vocabulary.
"""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vatt import config as cfglib
from vatt.convert.release import Hyper, Plan, Rule, is_model_variable, plan, strip
from vatt.convert.tf_checkpoint import TFCheckpoint
from vatt.engine.weights import WEIGHTS_NAME, save_weights, unique_state
from vatt.errors import UserError
from vatt.registry import registry

CONFIG_NAME = "config.yaml"
REPORT_NAME = "conversion.json"
VOCABULARY_NAME = "vocabulary.txt"
LAYOUTS = {
    "copy": "as is",
    "transpose": "transposed: Dense kernel [in, out] -> weight [out, in]",
    "patch_kernel": "permuted: Conv kernel [*patch, C, D] -> [D, C, *patch], flattened to [D, C*prod(patch)]",
}


@dataclass
class Conversion:
    out_dir: Path
    kind: str
    converted: int           # checkpoint variables written
    left_out: dict[str, int]  # by kind


def arrange(value: np.ndarray, layout: str) -> np.ndarray:
    """One checkpoint array in vatt's layout."""
    if layout == "transpose":
        return value.T
    if layout == "patch_kernel":  # [*patch, C, D]: D first, then C, then the patch axes, as a ConvNd weight
        order = (value.ndim - 1, value.ndim - 2, *range(value.ndim - 2))
        return value.transpose(order).reshape(value.shape[-1], -1)
    return value


def arranged_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The shape `arrange` gives an array of ``shape``, computed without any array (full-size word tables)."""
    if layout == "transpose":
        return tuple(reversed(shape))
    if layout == "patch_kernel":
        return (shape[-1], int(np.prod(shape[:-1])))
    return tuple(shape)


def full_config(result: Plan, out_dir: Path) -> dict:
    """A complete vatt config for the converted model, whose task runs as it is (`_header` says how)."""
    if result.kind.endswith("_classifier"):
        modality = result.model["modality"]
        task = "finetune" if modality == "video" else "audio_finetune"
        model = {**result.model, "init": str(out_dir), "classifier_dropout": 0.5 if modality == "video" else 0.0}
        return {"task": task, "run": {"steps": 1000, "batch_size": 32, "device": "auto"},
                "data": {"train": None, "eval": None}, "model": model,
                "optimizer": {"type": "sgd", "lr": 0.005, "momentum": 0.9},
                "schedule": {"type": "warmup_cosine", "warmup_steps": 100, "end_lr": 0.0, "period": "half"},
                "evaluators": [{"type": "classification", "dataset_name": "eval", "prefix": modality,
                                "modality": modality}]}
    video = result.model["modalities"]["video"]["tokenizer"]
    audio = result.model["modalities"]["audio"]["tokenizer"]
    height = video["size"][0]
    data = {"type": "synthetic", "split": "test", "num_clips": 64, "frames": video["frames"],
            "size": height + height % 2, "audio_samples": audio["samples"], "sample_rate": 48000}
    return {"task": "zero_shot", "run": {"device": "auto"}, "data": {"eval": data},
            "model": {**result.model, "init": str(out_dir)},
            "evaluators": [{"type": "zero_shot_retrieval", "dataset_name": "synthetic", "batch_size": 8,
                            "view_average": "both"}]}


def _header(result: Plan, checkpoint: Path, out_dir: Path) -> str:
    lines = [f"# vatt config of {checkpoint} ({result.kind}), written by python -m vatt.convert.",
             f"# Load it in Python with vatt.load_pretrained({str(out_dir)!r})."]
    if result.kind.endswith("_classifier"):
        lines += ["# Its task fine-tunes the converted model further: set data.train and data.eval (and",
                  "# model.num_classes if your labels differ), then: python -m vatt.run THIS_FILE"]
    else:
        lines += ["# As it is, `python -m vatt.run THIS_FILE` runs zero-shot retrieval on the embedded synthetic",
                  "# clips (a check that the model runs end to end). On MSR-VTT with the release's vocabulary:",
                  f"#   python -m vatt.run configs/zero_shot_msrvtt.yaml model.init={out_dir} \\",
                  f"#     data.eval.root=/data/msrvtt data.eval.vocabulary={out_dir / VOCABULARY_NAME}"]
    return "\n".join(lines) + "\n"


def _left_out(variables: dict) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for key in variables:
        if is_model_variable(key):
            continue
        kind = ("optimizer slots" if ".OPTIMIZER_SLOT" in key else "optimizer state" if key.startswith("optimizer/")
                else "checkpoint bookkeeping")
        groups.setdefault(kind, []).append(strip(key))
    return groups


def _rows(target: torch.Tensor, rule: Rule) -> slice:
    if rule.part is None:
        return slice(None)
    index, count = rule.part
    block = target.shape[0] // count
    return slice(index * block, (index + 1) * block)


def check_fit(model: torch.nn.Module, rules: list[Rule], shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Check on shapes alone (no weights needed) that the rules fill every parameter and buffer of vatt's
    model exactly once and that each source fits its target. Raises UserError naming every problem; returns
    the buffers no checkpoint variable fills (BatchNorm's ``num_batches_tracked`` counters, set to 0)."""
    targets, _ = unique_state(model)
    needed = {rule.target: rule.part[1] if rule.part else 1 for rule in rules}  # row blocks per target
    filled: dict[str, set[int]] = {}
    problems = []
    for rule in rules:
        target = targets.get(rule.target)
        if target is None:
            problems.append(f"{rule.source} -> {rule.target}: vatt's model has no such entry")
            continue
        shape, expected = arranged_shape(shapes[rule.source], rule.layout), tuple(target[_rows(target, rule)].shape)
        if shape != expected:
            problems.append(f"{rule.source} -> {rule.target}: {list(shape)} does not fit {list(expected)}")
        filled.setdefault(rule.target, set()).add(rule.part[0] if rule.part else 0)
    counters = [name for name in targets if name.endswith("num_batches_tracked") and name not in filled]
    unfilled = [name for name in targets
                if name not in counters and len(filled.get(name, ())) != needed.get(name, 1)]
    if unfilled:
        problems.append(f"vatt parameters or buffers the checkpoint does not fill: {', '.join(unfilled[:12])}"
                        + (f" ... and {len(unfilled) - 12} more" if len(unfilled) > 12 else ""))
    if problems:
        raise UserError("the checkpoint does not map onto vatt's model:\n  " + "\n  ".join(problems[:20]))
    return counters


def fill(model: torch.nn.Module, rules: list[Rule], read) -> list[dict]:
    """Copy every rule's source (``read(source) -> ndarray``) into a model `check_fit` accepted; returns one
    report entry per source."""
    targets, _ = unique_state(model)
    entries = []
    for rule in rules:
        target, rows = targets[rule.target], _rows(targets[rule.target], rule)
        value = torch.from_numpy(np.ascontiguousarray(arrange(read(rule.source), rule.layout)))
        with torch.no_grad():
            target[rows].copy_(value.to(target.dtype))
        entry = {"source": rule.source, "target": rule.target, "shape": list(target.shape),
                 "layout": LAYOUTS[rule.layout]}
        if rule.part is not None:
            entry["rows"] = [rows.start, rows.stop]
        entries.append(entry)
    return entries


def convert(checkpoint: str | Path, out_dir: str | Path, *, hyper: Hyper | None = None,
            vocabulary: str | Path | None = None, word2vec: str | Path | None = None) -> Conversion:
    ckpt = TFCheckpoint.open(checkpoint)
    variables = {name: shape for name, (_, shape) in ckpt.variables().items()}
    result = plan(variables, hyper)
    out_dir = Path(out_dir).expanduser().resolve()
    cfg = full_config(result, out_dir)
    task = registry("tasks").get(cfg["task"], where="task").obj()
    task.validate(cfg, source="the converted config", need_data=False)
    print(f"converting {ckpt.prefix} ({result.kind}, {len(result.rules)} variables)", file=sys.stderr)
    model = task.build_model(cfg)
    by_name = {strip(k): k for k in variables}
    counters = check_fit(model, result.rules, {strip(k): shape for k, shape in variables.items()})
    for name in counters:
        model.get_buffer(name).zero_()
    entries = fill(model, result.rules, lambda source: ckpt.read(by_name[source]))
    table_note = _text_table(model, result, vocabulary, word2vec)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_weights(model, out_dir / WEIGHTS_NAME, metadata={"source": str(ckpt.prefix), "kind": result.kind})
    (out_dir / CONFIG_NAME).write_text(_header(result, ckpt.prefix, out_dir) + cfglib.dump(cfg))
    if vocabulary is not None:
        shutil.copyfile(vocabulary, out_dir / VOCABULARY_NAME)
    left_out = _left_out(variables)
    report = {"source": str(ckpt.prefix), "kind": result.kind, "variables": entries,
              "not_from_checkpoint": {name: "set to 0 (a PyTorch BatchNorm counter)" for name in counters},
              "left_out": {kind: {"count": len(names), "names": names} for kind, names in left_out.items()},
              **table_note}
    (out_dir / REPORT_NAME).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out_dir / WEIGHTS_NAME}, {CONFIG_NAME}, {REPORT_NAME}: {len(entries)} variables converted, "
          + ", ".join(f"{len(v)} {k}" for k, v in left_out.items()) + " left out", file=sys.stderr)
    return Conversion(out_dir, result.kind, len(entries), {k: len(v) for k, v in left_out.items()})


def _text_table(model, result: Plan, vocabulary, word2vec) -> dict:
    """Check the vocabulary against the word table, and load the release's word2vec.pkl into it."""
    if vocabulary is None and word2vec is None:
        return {}
    if result.kind not in ("tx_fac", "ut_fac"):
        raise UserError(f"--vocabulary and --word2vec are for models with a text tower; this is a {result.kind}")
    from vatt.data.text import Vocabulary
    from vatt.data.word2vec import load_word2vec_pickle
    tokenizer = model.towers["text"].tokenizer
    rows = tokenizer.embedding.weight.shape[0]
    note = {}
    if vocabulary is not None:
        try:
            size = len(Vocabulary.load(vocabulary))
        except ValueError as exc:
            raise UserError(f"--vocabulary: {exc}") from None
        if size != rows:
            raise UserError(f"--vocabulary {vocabulary}: {size} words, but the checkpoint's word table has "
                            f"{rows} rows (row i is the vector of word i); use the vocabulary it was trained with")
        note["vocabulary"] = {"file": str(vocabulary), "words": size}
    if word2vec is not None:
        try:
            table = load_word2vec_pickle(word2vec)
        except ValueError as exc:
            raise UserError(f"--word2vec: {exc}") from None
        if tuple(table.shape) != tuple(tokenizer.embedding.weight.shape):
            raise UserError(f"--word2vec {word2vec}: its table is {list(table.shape)}, the checkpoint's word "
                            f"table {list(tokenizer.embedding.weight.shape)}")
        tokenizer.load_embeddings(torch.from_numpy(np.asarray(table, dtype=np.float32)))
        note["word2vec"] = {"file": str(word2vec), "shape": list(table.shape),
                            "target": "towers.text.tokenizer.embedding.weight"}
    return note
