import math

import pytest
import torch

from vatt.engine.optim import Constant, WarmupCosine, adam, adamw, set_lr, sgd
from vatt.registry import build, registry


def test_warmup_cosine_quarter_period_pretraining_shape():
    schedule = WarmupCosine(base_lr=1e-4, end_lr=5e-5, warmup_steps=10, total_steps=110, period="quarter")
    assert schedule(0) == 0.0
    assert schedule(5) == pytest.approx(5e-5)
    assert schedule(10) == pytest.approx(1e-4)
    assert schedule(60) == pytest.approx(5e-5 + 5e-5 * math.cos(math.pi / 4))
    assert schedule(110) == pytest.approx(5e-5)
    assert schedule(1000) == pytest.approx(5e-5)


def test_warmup_cosine_half_period_finetuning_shape():
    schedule = WarmupCosine(base_lr=0.005, warmup_steps=10, total_steps=110, period="half")
    assert schedule(0) == 0.0
    assert schedule(10) == pytest.approx(0.005)
    assert schedule(60) == pytest.approx(0.0025)
    assert schedule(85) == pytest.approx(0.005 * (1 + math.cos(0.75 * math.pi)) / 2)
    assert schedule(110) == pytest.approx(0.0, abs=1e-15)


def test_warmup_cosine_without_warmup_starts_at_base_lr():
    schedule = WarmupCosine(base_lr=0.2, total_steps=4)
    assert [schedule(s) for s in range(5)] == pytest.approx(
        [0.2 * math.cos(math.pi / 2 * s / 4) for s in range(5)], abs=1e-12)


def test_schedule_is_a_pure_function_of_the_step():
    schedule = WarmupCosine(base_lr=1e-4, warmup_steps=3, total_steps=20)
    forward = [schedule(s) for s in range(20)]
    assert [schedule(s) for s in reversed(range(20))] == forward[::-1]


def test_a_run_shorter_than_its_warmup_ends_inside_it():
    # a one-step trial of the 500k-step recipe (10k warm-up) is allowed and stays on the ramp
    schedule = WarmupCosine(base_lr=1e-4, end_lr=5e-5, warmup_steps=10_000, total_steps=1)
    assert schedule(1) == pytest.approx(1e-8)


def test_constant_with_warmup():
    schedule = Constant(base_lr=0.1, warmup_steps=4, total_steps=100)
    assert [schedule(s) for s in (0, 2, 4, 99)] == pytest.approx([0.0, 0.05, 0.1, 0.1])


@pytest.mark.parametrize("make, name", [
    (lambda: WarmupCosine(base_lr=1e-4, warmup_steps=-1, total_steps=10), "warmup_steps"),
    (lambda: WarmupCosine(base_lr=1e-4, total_steps=10, period="third"), "period"),
    (lambda: WarmupCosine(base_lr=-1.0, total_steps=10), "base_lr"),
    (lambda: WarmupCosine(base_lr=1e-4, total_steps=0), "total_steps"),
    (lambda: WarmupCosine(base_lr=1e-4, total_steps=10.0), "total_steps"),
    (lambda: Constant(base_lr=0.1, warmup_steps=5, total_steps=0), "total_steps"),
    (lambda: Constant(base_lr=0.1)(-1), "step"),
])
def test_schedule_arguments_are_validated(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def _loss_after_steps(optimizer_factory, steps=20):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    optimizer = optimizer_factory(model.parameters())
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses


@pytest.mark.parametrize("factory, cls", [
    (lambda p: adam(p, lr=1e-2), torch.optim.Adam),
    (lambda p: adamw(p, lr=1e-2), torch.optim.AdamW),
    (lambda p: sgd(p, lr=0.05), torch.optim.SGD),
    (lambda p: sgd(p, lr=0.05, nesterov=True, weight_decay=1e-4, fused=False), torch.optim.SGD),
])
def test_optimizers_construct_and_reduce_a_loss(factory, cls):
    assert isinstance(factory([torch.nn.Parameter(torch.zeros(1))]), cls)
    losses = _loss_after_steps(factory)
    assert losses[-1] < 0.9 * losses[0]


def test_fused_kernels_are_chosen_where_supported():
    cpu = [torch.nn.Parameter(torch.zeros(2))]
    assert adam(cpu).defaults["fused"] is True
    assert adam(cpu, fused=False).defaults["fused"] is False
    integer = [torch.zeros(2, dtype=torch.int64)]  # fused kernels need floating-point parameters
    assert not adam(integer).defaults["fused"]


def test_param_groups_are_accepted():
    backbone, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    optimizer = sgd([{"params": backbone.parameters(), "lr": 0.01}, {"params": head.parameters()}], lr=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.1]


@pytest.mark.parametrize("call, name", [
    (lambda p: adam(p, lr=-1e-3), "lr"),
    (lambda p: adam(p, betas=(0.9, 1.0)), r"betas\[1\]"),
    (lambda p: adam(p, betas=0.9), "betas"),
    (lambda p: adam(p, eps=0.0), "eps"),
    (lambda p: sgd(p, lr=0.1, momentum=0.0, nesterov=True), "nesterov"),
    (lambda p: sgd(p, lr=float("nan")), "lr"),
    (lambda p: sgd([], lr=0.1), "params"),
])
def test_optimizer_arguments_are_validated(call, name):
    with pytest.raises(ValueError, match=name):
        call([torch.nn.Parameter(torch.zeros(1))])


def test_set_lr_updates_every_group_following_a_schedule():
    optimizer = adam([{"params": [torch.nn.Parameter(torch.zeros(1))]},
                      {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": torch.tensor(0.5)}])
    tensor_lr = optimizer.param_groups[1]["lr"]
    schedule = WarmupCosine(base_lr=1e-3, warmup_steps=2, total_steps=10)
    set_lr(optimizer, schedule(1))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert optimizer.param_groups[1]["lr"] is tensor_lr and tensor_lr.item() == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="lr"):
        set_lr(optimizer, -0.1)


def test_registered_components_build_from_their_examples():
    params = [torch.nn.Parameter(torch.zeros(1))]
    for entry in registry("optimizers").entries():
        if entry.obj in (adam, adamw, sgd):
            assert isinstance(entry.obj(params, **entry.example), torch.optim.Optimizer)
    for entry in registry("schedules").entries():
        if entry.obj in (WarmupCosine, Constant):
            assert isinstance(entry.obj(**entry.example)(0), float)


def test_registry_builds_with_task_injected_arguments():
    model = torch.nn.Linear(2, 2)
    optimizer = build("optimizers", {"type": "sgd", "lr": 0.005}, "optimizer", params=model.parameters())
    assert optimizer.param_groups[0]["momentum"] == 0.9
    schedule = build("schedules", {"type": "warmup_cosine", "warmup_steps": 5, "period": "half"}, "schedule",
                     base_lr=0.005, total_steps=25)
    assert schedule(5) == pytest.approx(0.005) and schedule(25) == pytest.approx(0.0, abs=1e-15)
    constant = build("schedules", {"type": "constant"}, "schedule", base_lr=0.1, total_steps=25)
    assert constant(3) == 0.1
