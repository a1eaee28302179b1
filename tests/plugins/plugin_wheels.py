"""Helpers for the plugin tests: write a tiny package, build it as a real wheel, install it where pip would.

Wheels go into a private ``site`` folder (``pip install --target``). `run_vatt` runs the command line in this
process with that folder on the path for the call alone (`vatt.testing.plugins.plugin_site`), and `run_python`
starts an interpreter that sees it, so the test session's own environment never changes.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from vatt.run import main
from vatt.testing.plugins import plugin_site

ROOT = Path(__file__).resolve().parents[2]


def write_package(root: Path, dist: str, module: str, source: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """A one-module setuptools project ``dist`` whose entry points are ``{group: {name: value}}``."""
    root.mkdir(parents=True)
    tables = "".join(f'\n[project.entry-points."{group}"]\n' + "".join(f'{n} = "{v}"\n' for n, v in names.items())
                     for group, names in entry_points.items())
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{dist}"\nversion = "0.1.0"\n{tables}\n'
        f'[tool.setuptools]\npy-modules = ["{module}"]\n')
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


def install_wheels(sources: list[Path], site: Path) -> None:
    """Build each source folder into a wheel (no build isolation: offline) and install them into ``site``."""
    wheels = site.parent / f"{site.name}-wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    for source in sources:
        subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(source)],
                       check=True, capture_output=True)
    # --no-compile: a plugin with a syntax error must still install, as pip installs it for a user
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(site),
                    *map(str, sorted(wheels.glob("*.whl")))], check=True, capture_output=True)


def run_python(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``python args`` with the wheels in ``site`` importable, run from the repository root."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def run_vatt(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m vatt.run args`` with the wheels in ``site`` installed, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with plugin_site(site), redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["vatt.run", *args], code, out.getvalue(), err.getvalue())
