"""What every task shares: the config schema it declares and the validation run before anything is built."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch

from vatt import config as cfglib


class Task:
    """A recipe. Subclasses declare their config sections and implement ``build_model`` and ``run``.

    ``sections`` maps each top-level config section to the dataclass that describes its settings (``None``
    for a section that is a component node or a list of them). ``reserved`` names keys of component nodes
    that belong to the task (a loss term's ``inputs`` and ``weight``), and ``injected`` the constructor
    arguments the task supplies itself (a tokenizer's ``dim`` comes from its backbone).
    """

    sections: ClassVar[dict[str, type | None]] = {}
    reserved: ClassVar[dict[str, set[str]]] = {}
    injected: ClassVar[dict[str, set[str]]] = {}

    def validate(self, cfg: dict, source: str | None = None, need_data: bool = True) -> None:
        """Raise ConfigError with every problem in ``cfg``; nothing has been built yet.

        ``need_data=False`` (for --summary) skips the checks of what only a real run reads.
        """
        problems = cfglib.check_top_level(cfg, set(self.sections) | {"task"})
        for name, schema in self.sections.items():
            if schema is not None and name in cfg:
                problems += cfglib.check_section(schema, cfg[name], name)
        if any(schema is not None and not isinstance(cfg.get(name) or {}, dict)
               for name, schema in self.sections.items()):
            cfglib.raise_if(problems, source)  # the checks below read every settings section as a mapping
        problems += cfglib.check_components(cfg, reserved=self.reserved, injected=self.injected)
        problems += self.check(cfg)
        if need_data:
            problems += self.check_data(cfg)
        cfglib.raise_if(problems, source)

    def check(self, cfg: dict) -> list[str]:
        """Task-specific problems (missing data, inconsistent sizes); empty when the config is usable."""
        return []

    def check_data(self, cfg: dict) -> list[str]:
        """Problems that only matter when the task runs (data not configured)."""
        return []

    def build_model(self, cfg: dict) -> torch.nn.Module:
        """The freshly initialised network a validated config describes (``model.init`` is not loaded):
        what ``--summary`` counts and `vatt.load_pretrained` fills with a run's or a conversion's weights."""
        raise NotImplementedError

    def summary(self, cfg: dict) -> dict[str, Any]:
        with torch.device("meta"):  # counts parameters without allocating them
            model = self.build_model(cfg)
        return {"task": cfg["task"], "parameters": model.parameter_counts()}

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        raise NotImplementedError


def mapping(value: Any) -> dict:
    """``value`` if it is a mapping, else {} (for checks that read a part the shape checks report on)."""
    return value if isinstance(value, dict) else {}


def settings(schema: type, cfg: dict, section: str):
    """The dataclass instance for a validated settings section (defaults filled in)."""
    values = cfg.get(section) or {}
    names = {f.name for f in dataclasses.fields(schema)}
    return schema(**{k: v for k, v in values.items() if k in names})
