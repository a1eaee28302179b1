"""Zero-shot text→video retrieval with a pre-trained model: MSR-VTT 1k-A, YouCook2 (appendix B.9).

The recipe, top to bottom: the video and text towers and heads, loaded from the pre-training checkpoint by
name (the audio tower is not needed and is skipped) → each video as 4 uniformly spaced 32-frame clips with
a 224² centre crop (the dataset's ``clips``) → captions and videos embedded in the common video-text space
S_vt → cosine similarity after averaging the 4 clip embeddings (the paper) and, as the release also
reports, after averaging the 4 clip similarities → R@1, R@5, R@10 and the median rank, written to
``results.json`` as ``zero_shot/<dataset>/...`` and to TensorBoard.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vatt.engine.logging import RunLogger
from vatt.registry import register
from vatt.tasks import builders, examples
from vatt.tasks.base import Task, mapping, settings
from vatt.tasks.checkpoint_init import INIT_REPORT, load_by_name, read_checkpoint
from vatt.tasks.run_dir import evaluation_setup
from vatt.tasks.settings import check_roots

MODEL_KEYS = ("modalities", "shared_backbone", "init")


@dataclass
class ZeroShotRunSettings:
    dir: str | None = None
    device: str = "cpu"
    threads: int | None = None
    tensorboard: bool = True


@dataclass
class ZeroShotDataSettings:
    eval: dict | None = None  # the retrieval pool; the evaluators say how many processes read it


@register("tasks", "zero_shot", example=examples.ZERO_SHOT)
class ZeroShot(Task):
    """Evaluate a pre-trained model's common spaces without training (retrieval evaluators)."""

    sections = {"run": ZeroShotRunSettings, "data": ZeroShotDataSettings, "model": None, "evaluators": None}
    injected = {"tokenizers": {"dim"}, "heads": {"in_dim"}, "evaluators": set(builders.EVALUATOR_DATASETS)}

    def check(self, cfg: dict) -> list[str]:
        problems = builders.check_model(cfg.get("model"))
        model = mapping(cfg.get("model"))
        problems += [f"model.{key}: unknown key (valid: {', '.join(MODEL_KEYS)})"
                     for key in model if key not in MODEL_KEYS]
        if not cfg.get("evaluators"):
            problems.append("evaluators: name at least one, e.g. {type: zero_shot_retrieval, dataset_name: msrvtt}")
        return problems

    def check_data(self, cfg: dict) -> list[str]:
        problems = check_roots(cfg.get("data") or {}, ("eval",))
        if not mapping(cfg.get("model")).get("init"):
            problems.append("model.init: zero-shot evaluation needs a pre-trained checkpoint (a .pt file or a "
                            "pre-training run directory)")
        return problems

    def build_model(self, cfg: dict) -> torch.nn.Module:
        return builders.build_model(_architecture(cfg["model"]))

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        run = settings(ZeroShotRunSettings, cfg, "run")
        data = settings(ZeroShotDataSettings, cfg, "data")
        device, run_dir = evaluation_setup(run, config_path, cfg)

        eval_set = builders.build_dataset(data.eval, "data.eval")
        model = self.build_model(cfg)
        source, state = read_checkpoint(cfg["model"]["init"], "model.init")
        parts = {f"{kind}.{name}.": f"{kind}.{name}." for name in model.towers for kind in ("towers", "heads")}
        report = load_by_name(model, state, parts, source=str(source))
        print(report.describe(), file=sys.stderr)
        report.write(run_dir / INIT_REPORT)
        model.to(device).eval()
        evaluators = [builders.build_evaluator(node, f"evaluators.{i}") for i, node in enumerate(cfg["evaluators"])]

        results = {k: v for evaluator in evaluators for k, v in evaluator.run(model, eval_set).items()}
        with RunLogger(run_dir, total_steps=1, batch_size=1, tensorboard=run.tensorboard) as logger:
            logger.log_eval(0, results)
            logger.write_results(results)
        return results


def _architecture(model_cfg: dict) -> dict:
    """The model section without ``init``: what builders.build_model reads."""
    return {key: value for key, value in model_cfg.items() if key != "init"}
