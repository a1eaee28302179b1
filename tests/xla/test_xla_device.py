"""``run.device: xla`` resolves through torch_xla (which registers the device with torch), and says what to install
where torch_xla is missing. The first test runs in any venv; the second in the XLA lane (.ci/xla.sh)."""
import sys

import pytest

from vatt.errors import UserError
from vatt.tasks.run_dir import resolve_device


def test_xla_without_torch_xla_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_xla", None)  # import torch_xla now raises ImportError
    with pytest.raises(UserError, match=r"run.device: 'xla' needs torch_xla.*pip install torch_xla"):
        resolve_device("xla")


def test_xla_resolves_to_torch_xla_s_device():
    torch_xla = pytest.importorskip("torch_xla")
    import torch
    device = resolve_device("xla")
    assert device == torch_xla.device() and device.type == "xla"
    assert torch.zeros(2, device=device).device.type == "xla"  # usable: torch_xla registered it
    assert resolve_device("xla:0") == torch_xla.device(0)
