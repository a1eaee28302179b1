"""Turning validated config nodes into objects: the model, loss terms, data, optimiser and schedule.

Components never read configs; this module is where config nodes meet constructors, and where values
one component needs from another are passed on (a tokenizer's width is its backbone's width).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import IterableDataset

from vatt.errors import ConfigError, UserError
from vatt.messages import shown
from vatt.registry import build


@dataclass
class ModalitySettings:
    """One modality of the model: how its input is tokenized, encoded and projected."""
    tokenizer: dict
    head: dict
    backbone: dict | None = None     # omitted when the model has a shared_backbone
    droptoken: float = 0.0           # share of tokens DropToken removes in training
    per_sample_drop: bool = False    # False: one draw per batch, as the release does
    input: str | None = None         # the batch key this modality reads; default: its own name
    word2vec: dict | None = None     # {path: vectors file, vocabulary: one word per line} for a words table
    post_projection: int | None = None  # VATT-MA: width of the GELU Dense after the shared backbone


def check_model(model_cfg: dict | None) -> list[str]:
    """Structure problems the signature checks can't see (which modalities, shared vs own backbones)."""
    from vatt.config import check_section
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("modalities"), dict):
        return ["model.modalities: needs a mapping of modality name → {tokenizer, backbone, head}"]
    problems = []
    shared = model_cfg.get("shared_backbone") is not None
    for name, mod in model_cfg["modalities"].items():
        where = f"model.modalities.{name}"
        problems += check_section(ModalitySettings, mod, where)
        if not isinstance(mod, dict):
            continue
        if shared and mod.get("backbone") is not None:
            problems.append(f"{where}.backbone: the model has a shared_backbone; remove this one")
        if not shared and mod.get("backbone") is None:
            problems.append(f"{where}.backbone: missing (or set model.shared_backbone)")
        rate = mod.get("droptoken", 0.0)
        if isinstance(rate, (int, float)) and not 0.0 <= rate < 1.0:
            problems.append(f"{where}.droptoken: must be in [0, 1), got {rate}")
    return problems


def build_model(model_cfg: dict):
    """The MultimodalModel a validated ``model`` section describes."""
    from vatt.models.multimodal import MultimodalModel, Tower
    shared_node = model_cfg.get("shared_backbone")
    shared = build("backbones", shared_node, "model.shared_backbone") if shared_node else None
    towers, heads, inputs = {}, {}, {}
    for name, mod in model_cfg["modalities"].items():
        inputs[name] = mod.get("input") or name
        where = f"model.modalities.{name}"
        backbone = shared if shared is not None else build("backbones", mod["backbone"], f"{where}.backbone")
        tokenizer = build("tokenizers", mod["tokenizer"], f"{where}.tokenizer", dim=backbone.width)
        try:
            towers[name] = Tower(tokenizer, backbone, droptoken_rate=float(mod.get("droptoken", 0.0)),
                                 per_sample_drop=bool(mod.get("per_sample_drop", False)),
                                 post_projection=mod.get("post_projection"))
        except ValueError as exc:
            raise ConfigError([f"{where}: {exc}"]) from exc
        if mod.get("word2vec"):
            load_word_vectors(tokenizer, mod["word2vec"], f"{where}.word2vec")
        heads[name] = build("heads", mod["head"], f"{where}.head", in_dim=towers[name].out_dim)
    return MultimodalModel(towers, heads, inputs)


def load_word_vectors(tokenizer, spec: dict, where: str) -> None:
    """Fill a words tokenizer's embedding table from a word2vec file (binary or text), row i holding the
    vector of line i of the vocabulary file; rows past the vocabulary keep their initialisation."""
    from vatt.data.text import Vocabulary
    from vatt.data.word2vec import load_word2vec
    if not hasattr(tokenizer, "load_embeddings") or set(spec) != {"path", "vocabulary"}:
        raise ConfigError([f"{where}: needs {{path, vocabulary}} on a tokenizer with a word table, got {shown(spec)}"])
    try:
        vocabulary = Vocabulary.load(spec["vocabulary"])
        table = tokenizer.embedding.weight.detach().clone()  # [V, E]
        if len(vocabulary) > table.shape[0]:
            raise ValueError(f"vocabulary {spec['vocabulary']} has {len(vocabulary)} words, more than the "
                             f"table's {table.shape[0]} rows")
        table[: len(vocabulary)] = load_word2vec(spec["path"], vocabulary, dim=table.shape[1])
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{where}: {exc}"]) from exc
    tokenizer.load_embeddings(table)


@dataclass
class LossTerm:
    """One weighted contrastive term between two embeddings, e.g. video.va against audio.va."""
    fn: Any
    inputs: tuple[tuple[str, str], tuple[str, str]]
    weight: float = 1.0
    name: str = ""
    masks: tuple[str, ...] = field(default_factory=tuple)

    def __call__(self, outputs: dict, batch: dict) -> torch.Tensor:
        (ma, sa), (mb, sb) = self.inputs
        mask = None
        for key in self.masks:
            if key in batch:
                mask = batch[key] if mask is None else mask & batch[key]
        return self.fn(outputs[ma][sa], outputs[mb][sb], mask)


def check_losses(losses: Any, modalities: dict) -> list[str]:
    if not isinstance(losses, list) or not losses:
        return ["losses: needs a list of loss terms, e.g. {type: nce, inputs: [video.va, audio.va]}"]
    problems = []
    for i, node in enumerate(losses):
        inputs = node.get("inputs") if isinstance(node, dict) else None
        where = f"losses.{i}.inputs"
        if not (isinstance(inputs, list) and len(inputs) == 2 and all(isinstance(x, str) for x in inputs)):
            problems.append(f"{where}: needs two embeddings as [modality.space, modality.space], got {shown(inputs)}")
            continue
        for ref in inputs:
            modality = ref.split(".")[0]
            if "." not in ref or modality not in modalities:
                problems.append(f"{where}: {shown(ref)} does not name a modality of the model "
                                f"({', '.join(modalities)}) and a space, like 'video.va'")
        weight = node.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight < 0:
            problems.append(f"losses.{i}.weight: must be a non-negative number, got {shown(weight)}")
    return problems


def build_losses(losses: list[dict]) -> list[LossTerm]:
    terms = []
    for i, node in enumerate(losses):
        fn = build("losses", node, f"losses.{i}", reserved=("inputs", "weight"))
        a, b = (tuple(ref.split(".", 1)) for ref in node["inputs"])
        masks = tuple(f"{m}_mask" for m in dict.fromkeys((a[0], b[0])))
        terms.append(LossTerm(fn, (a, b), float(node.get("weight", 1.0)),
                              name=f"{node['type']}/{a[0]}_{b[0]}", masks=masks))
    return terms


def build_dataset(node: dict | None, where: str):
    if node is None:
        raise UserError(f"{where}: no dataset configured")
    return build("datasets", node, where)


def check_fills_a_batch(dataset, where: str, batch_size: int) -> None:
    """Every training step takes a full batch (each epoch drops its remainder), so a dataset of indexed
    samples needs at least ``run.batch_size`` of them. A stream (shards) is not counted here: an epoch that
    gives no batch stops with its own error."""
    if isinstance(dataset, IterableDataset) or len(dataset) >= batch_size:
        return
    name = getattr(dataset, "name", None) or type(dataset).__name__
    raise ConfigError([f"{where}: {name} has {len(dataset)} samples, fewer than run.batch_size ({batch_size}); "
                       f"a training step needs a full batch: lower run.batch_size or add samples"])


def total_loss(terms: list[LossTerm], outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """(Σ w·L) / Σ w, and each term's value for logging."""
    values = {t.name: t(outputs, batch) for t in terms}
    weight = sum(t.weight for t in terms)
    loss = sum(t.weight * values[t.name] for t in terms) / weight
    # left on the device: the trainer reads them back once, with the loss (on XLA only at log steps)
    return loss, {f"loss/{k}": v.detach() for k, v in values.items()}


def build_tower(tokenizer: dict, backbone: dict, where: str, *, droptoken: float = 0.0,
                per_sample_drop: bool = False, post_projection: int | None = None):
    """One modality's Tower from its tokenizer and backbone nodes (the tokenizer takes the backbone's width)."""
    from vatt.models.multimodal import Tower
    built_backbone = build("backbones", backbone, f"{where}.backbone")
    built_tokenizer = build("tokenizers", tokenizer, f"{where}.tokenizer", dim=built_backbone.width)
    try:
        return Tower(built_tokenizer, built_backbone, droptoken_rate=float(droptoken),
                     per_sample_drop=bool(per_sample_drop), post_projection=post_projection)
    except ValueError as exc:
        raise ConfigError([f"{where}: {exc}"]) from exc


# Keys of an evaluator node that hold datasets of its own (a linear probe's labelled training set). Tasks
# list them as injected for "evaluators": the config gives nodes there, build_evaluator passes the datasets.
EVALUATOR_DATASETS = frozenset({"train", "eval"})


def build_evaluator(node: dict, where: str, **injected):
    """The evaluator a config node names, its nested dataset nodes built first and passed in as objects."""
    datasets = {key: build_dataset(node[key], f"{where}.{key}")
                for key in sorted(EVALUATOR_DATASETS) if isinstance(node.get(key), dict)}
    return build("evaluators", node, where, reserved=tuple(datasets), **datasets, **injected)


def build_evaluators(cfg: dict) -> list:
    """The config's ``evaluators`` list, built."""
    return [build_evaluator(node, f"evaluators.{i}") for i, node in enumerate(cfg.get("evaluators") or [])]


def build_optimisation(cfg: dict, params, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """The ``optimizer`` over ``params`` and the ``schedule`` of its learning rate over ``total_steps``."""
    optimizer = build("optimizers", cfg["optimizer"], "optimizer", params=params)
    schedule = build("schedules", cfg["schedule"], "schedule", base_lr=optimizer.param_groups[0]["lr"],
                     total_steps=total_steps)
    return optimizer, schedule
