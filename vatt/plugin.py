"""``python -m vatt.plugin new NAME [--dir DIR]``: write a working plugin package to start from.

The skeleton is a pip-installable package ``vatt-NAME`` (import name ``vatt_NAME``) that registers one real
component, an MLP head ``NAME_mlp``, through a ``vatt.heads`` entry point, with a tiny pre-training config
that uses it and tests that pass once the package is installed. docs/plugins.md walks through it.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from string import Template

from vatt.errors import UserError

NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A vatt plugin: $component, an MLP head into one common space"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["vatt>=0.1"]

[project.optional-dependencies]
test = ["pytest"]

# One table per component kind: vatt.tokenizers, vatt.backbones, vatt.heads, vatt.losses, vatt.evaluators,
# vatt.datasets, vatt.optimizers, vatt.schedules, vatt.tasks. The name is what configs write after `type:`.
[project.entry-points."vatt.heads"]
$component = "$package.head:$cls"

[tool.setuptools.packages.find]
where = ["src"]
"""

INIT = '''\
"""$dist: a vatt plugin. vatt finds its components through entry points (pyproject.toml)."""
from $package.head import $cls

__all__ = ["$cls"]
'''

HEAD = '''\
"""$cls: a tower's [AGG] feature into one common space through a small MLP."""
from __future__ import annotations

import torch
import torch.nn as nn


class $cls(nn.Module):
    """Linear, GELU, Linear: a tower's feature [B, in_dim] into the common space ``space`` [B, dim]."""

    # The smallest valid keyword arguments: vatt's contract tests build every registered component from them.
    vatt_example = {"in_dim": 8, "dim": 4, "space": "va"}

    def __init__(self, *, in_dim: int, dim: int, space: str, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        if min(in_dim, dim, hidden_dim) < 1:
            raise ValueError(f"in_dim, dim and hidden_dim must be positive, got {in_dim}, {dim}, {hidden_dim}")
        if not space:
            raise ValueError(f"space must name a common space such as 'va' or 'vt', got {space!r}")
        self.space = space
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))

    def forward(self, feature: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.space: self.mlp(feature)}  # [B, dim]
'''

CONFIG = """\
# A few seconds of pre-training on vatt's synthetic clips, with $component as the audio head.
task: pretrain

run: {steps: 20, batch_size: 8, log_every: 5, checkpoint_every: 20, device: cpu}

data:
  train: {type: synthetic, split: train, num_clips: 32, frames: 4, size: 16, audio_samples: 512, sample_rate: 8000}

model:
  modalities:
    video:
      tokenizer: {type: video_patches, patch_size: [2, 8, 8], frames: 4, size: 16, dropout: 0.0}
      backbone: {type: vit, width: 32, layers: 1, mlp_dim: 64, heads: 2, dropout: 0.0}
      head: {type: fac_video, va_dim: 32, vt_dim: 16}
    audio:
      tokenizer: {type: waveform_patches, patch_size: 64, samples: 512, dropout: 0.0}
      backbone: {type: vit, width: 32, layers: 1, mlp_dim: 64, heads: 2, dropout: 0.0}
      head: {type: $component, dim: 32, space: va}

losses:
  - {type: nce, inputs: [video.va, audio.va]}

optimizer: {type: adam, lr: 1.0e-3}
schedule: {type: constant}
"""

TEST = '''\
"""$dist: found by vatt through its entry point, builds, trains inside a real pre-training run."""
import json
from importlib import metadata
from pathlib import Path

import torch

from vatt.registry import get
from vatt.run import main
from $package import $cls

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "$slug.yaml"


def test_registered_through_the_entry_point():
    entry = get("heads", "$component")
    assert entry.obj is $cls
    assert (entry.provider, entry.version) == ("$dist", metadata.version("$dist"))


def test_projects_into_its_space_and_trains():
    head = $cls(in_dim=8, dim=4, space="va")
    out = head(torch.randn(3, 8))
    assert list(out) == ["va"] and out["va"].shape == (3, 4)
    out["va"].square().mean().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_a_config_that_names_it_pretrains(tmp_path, monkeypatch):
    monkeypatch.setenv("VATT_CACHE", str(tmp_path / "cache"))  # where the synthetic clips are generated
    run_dir = tmp_path / "run"
    assert main([str(CONFIG), f"run.dir={run_dir}", "run.steps=3", "run.log_every=1"]) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
'''

README = """\
# $dist

A vatt plugin that adds the head `$component`: a tower's feature into one common space through
Linear, GELU, Linear.

```bash
pip install --no-build-isolation .          # vatt finds it through its entry point
python -m vatt.run --list heads             # $component  [$dist 0.1.0]
python -m pytest -q tests                   # the tests need the installed package
python -m vatt.run configs/$slug.yaml       # a few seconds of pre-training that uses it
```

In any config: `head: {type: $component, dim: 512, space: va}`.
"""


def plugin_names(name: str) -> dict[str, str]:
    """The names derived from ``name``: distribution, import package, component, class, config stem."""
    if not NAME.match(name):
        raise UserError(f"plugin name {name!r}: use lower-case letters and digits, words joined by '-' or '_', "
                        f"starting with a letter (e.g. optical-flow)")
    slug = name.replace("_", "-").removeprefix("vatt-")
    return {"slug": slug, "dist": f"vatt-{slug}", "package": "vatt_" + slug.replace("-", "_"),
            "component": slug.replace("-", "_") + "_mlp",
            "cls": "".join(word.capitalize() for word in slug.split("-")) + "MLPHead"}


def scaffold_files(names: dict[str, str]) -> dict[str, str]:
    """Relative path → content of the plugin package (see the module docstring)."""
    package = names["package"]
    files = {"pyproject.toml": PYPROJECT, "README.md": README, f"src/{package}/__init__.py": INIT,
             f"src/{package}/head.py": HEAD, f"configs/{names['slug']}.yaml": CONFIG,
             f"tests/test_{package}.py": TEST}  # unique test basename: pytest runs without __init__.py files
    return {path: Template(text).substitute(names) for path, text in files.items()}


def write_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write the skeleton into ``directory/vatt-<name>``; refuses to touch an existing folder."""
    names = plugin_names(name)
    root = Path(directory) / names["dist"]
    if root.exists():
        raise UserError(f"{root} already exists; choose another name or --dir")
    try:
        for relative, text in scaffold_files(names).items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {root}: {exc.strerror}") from None
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vatt.plugin", description="Tools for writing vatt plugins.")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="write a working plugin skeleton vatt-NAME")
    new.add_argument("name", help="plugin name, e.g. optical-flow (package vatt-optical-flow)")
    new.add_argument("--dir", default=".", help="folder to create vatt-NAME in (default: here)")
    args = parser.parse_args(argv)
    try:
        root = write_plugin(args.name, args.dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {root}\nnext: cd {root} && pip install --no-build-isolation . && python -m pytest -q tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
