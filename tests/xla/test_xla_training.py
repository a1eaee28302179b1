"""A full training step of the quickstart model on an XLA device (torch_xla's CPU PJRT client) through the trainer,
with the fused vatt ops as the recipe uses them: the same loss, gradients and updated weights as the CPU step, a
checkpoint written, and no op falling back to the CPU.

Runs in the XLA lane (.ci/xla.sh: torch 2.9.0 + torch_xla 2.9.0, PJRT_DEVICE=CPU); skipped where torch_xla is absent.
"""
from pathlib import Path

import pytest

torch_xla = pytest.importorskip("torch_xla")

import torch  # noqa: E402
import torch_xla.debug.metrics as metrics  # noqa: E402

from vatt import config as cfglib  # noqa: E402
from vatt.engine import speed  # noqa: E402
from vatt.engine.checkpoint import load_latest  # noqa: E402
from vatt.engine.parallel import data_parallel  # noqa: E402
from vatt.engine.trainer import Loop, LoopSettings  # noqa: E402
from vatt.models import multimodal  # noqa: E402
from vatt.registry import build  # noqa: E402
from vatt.tasks import builders  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCALAR_READ_BACK = "aten::_local_scalar_dense"
BATCH = 4
LR = 1e-3


def _fallbacks() -> list[str]:
    """Ops that torch_xla ran on the CPU instead of lowering them (it counts each under its name)."""
    return [name for name in metrics.counter_names()
            if name.split("::")[0] in ("aten", "vatt") and name != SCALAR_READ_BACK]


def _batch() -> dict:
    """A quickstart-shaped batch: 4 clips, 5 candidate captions each, one clip without text."""
    torch.manual_seed(1)
    cfg = cfglib.load(ROOT / "configs" / "quickstart.yaml")
    towers = builders.build_model(cfg["model"]).towers
    batch = {name: tower.tokenizer.example_input(BATCH) for name, tower in towers.items()}
    batch["text"] = torch.stack([towers["text"].tokenizer.example_input(BATCH) for _ in range(5)], dim=1)  # [B, 5, W]
    batch["text_mask"] = torch.tensor([True, True, False, True])
    batch["audio_mask"] = torch.ones(BATCH, dtype=torch.bool)
    return batch


class Recorder:
    def __init__(self):
        self.steps = {}

    def log_step(self, step, scalars):
        self.steps[step] = scalars


def _train_one_step(device: torch.device, run_dir: Path, batch: dict) -> tuple[float, dict, dict]:
    """(loss, weights after the step, gradients of the step) of the quickstart model's first step."""
    cfg = cfglib.load(ROOT / "configs" / "quickstart.yaml")
    torch.manual_seed(0)
    model = data_parallel(builders.build_model(cfg["model"]).to(device), "ddp", device)  # as the recipe does
    terms = builders.build_losses(cfg["losses"])
    speed.set_fused_ops([*model.modules(), *(term.fn for term in terms)], True)  # run.fused_ops, the default
    optimizer = build("optimizers", cfg["optimizer"], "optimizer", params=model.parameters())
    loop = Loop(model=model, loss_fn=lambda m, b: builders.total_loss(terms, m(b), b), optimizer=optimizer,
                schedule=lambda step: LR, batches=lambda start: iter([batch]), run_dir=str(run_dir),
                settings=LoopSettings(steps=1), device=device)
    loop.logger = Recorder()
    loop.fit()
    grads = {name: p.grad.cpu() for name, p in model.named_parameters() if p.grad is not None}
    return loop.logger.steps[1]["loss"], load_latest(run_dir)[1]["model"], grads


@pytest.fixture
def same_draws_on_every_device(monkeypatch):
    """DropToken draws from the CPU generator, which the trainer seeds identically for both runs (XLA's own
    generator would draw other tokens, and the two losses could not be compared)."""
    real = multimodal.draw_keep

    def draw_on_cpu(*args, device=None, **kwargs):
        return real(*args, device="cpu", **kwargs).to(device)
    monkeypatch.setattr(multimodal, "draw_keep", draw_on_cpu)


def test_a_training_step_on_xla_matches_the_cpu_step_without_fallbacks(tmp_path, same_draws_on_every_device):
    xla = torch_xla.device()  # before any backward: autograd sizes its device queues at its first backward
    batch = _batch()
    cpu_loss, cpu_weights, cpu_grads = _train_one_step(torch.device("cpu"), tmp_path / "cpu", batch)
    metrics.clear_all()
    xla_loss, xla_weights, xla_grads = _train_one_step(xla, tmp_path / "xla", batch)
    assert _fallbacks() == [], f"ops fell back to the CPU: {_fallbacks()}"
    assert abs(xla_loss - cpu_loss) <= 1e-4 * abs(cpu_loss), (xla_loss, cpu_loss)
    assert xla_weights.keys() == cpu_weights.keys() and xla_grads.keys() == cpu_grads.keys()
    for key, value in cpu_weights.items():
        assert xla_weights[key].device.type == "cpu"  # checkpoints hold CPU tensors, loadable anywhere
        # Adam's first update is about lr·sign(gradient): where a gradient is rounding noise (a key bias's is
        # zero in exact arithmetic) the two devices may step opposite ways, so weights agree to 2·lr.
        torch.testing.assert_close(xla_weights[key], value, rtol=0, atol=2.01 * LR, msg=key)
    for name, grad in cpu_grads.items():
        # float32 sums in another order: compared on each tensor's own scale, with a floor for gradients that are
        # rounding noise (a shift before BatchNorm has none in exact arithmetic)
        scale = float(grad.abs().max())
        torch.testing.assert_close(xla_grads[name], grad, rtol=0, atol=1e-4 * scale + 1e-5, msg=name)
