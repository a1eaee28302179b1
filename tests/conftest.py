"""Shared by every test package: the repository on sys.path, and the quickstart run as a user makes it (once per
test session), which the task tests and the search tests both start from."""
import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
QUICKSTART = Path(ROOT) / "configs" / "quickstart.yaml"


@dataclass
class QuickstartRun:
    code: int   # the exit code of `python -m vatt.run configs/quickstart.yaml`
    dir: Path   # its run directory
    out: str    # what it printed on stdout and stderr
    err: str


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory) -> QuickstartRun:
    """`python -m vatt.run configs/quickstart.yaml` exactly as the README runs it: 600 steps and the evaluation."""
    run_dir = tmp_path_factory.mktemp("quickstart") / "run"
    from vatt.run import main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(QUICKSTART), f"run.dir={run_dir}"])
    return QuickstartRun(code, run_dir, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def pretrained(quickstart) -> Path:
    """The run directory of the pre-trained quickstart model (its checkpoints/latest is step 600)."""
    assert quickstart.code == 0, quickstart.err[-2000:]
    return quickstart.dir
