"""Two gloo processes on CPU: the gathered contrastive losses must give the single-process gradients."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vatt.engine.distributed import all_gather_with_grad, is_distributed, rank, world_size
from vatt.losses import mil_nce, nce

WORLD = 2
LOCAL_BATCH = 3
DIM = 4
CANDIDATES = 2
# Per scenario: loss, global text mask (None = all). Rank 1's half of the last one has no text at all,
# so the ranks hold different numbers of clips with text.
SCENARIOS = {
    "nce": (nce, None),
    "nce_masked": (nce, [True, False, True, True, True, False]),
    "mil_nce_masked": (mil_nce, [True, True, False, False, False, False]),
}


def _global_inputs(name):
    """The whole batch, identical on every process: a shared projection and its raw inputs."""
    generator = torch.Generator().manual_seed(sorted(SCENARIOS).index(name))
    batch = WORLD * LOCAL_BATCH
    projection = torch.randn(DIM, DIM, generator=generator, dtype=torch.float64)
    video = torch.randn(batch, DIM, generator=generator, dtype=torch.float64)
    text_shape = (batch, DIM) if SCENARIOS[name][0] is nce else (batch, CANDIDATES, DIM)
    text = torch.randn(*text_shape, generator=generator, dtype=torch.float64)
    return projection, video, text


def _loss_and_grads(name, rows):
    """Loss over the given global rows and the gradients of the projection, video and text inputs."""
    loss_fn, mask = SCENARIOS[name]
    projection, video, text = _global_inputs(name)
    projection.requires_grad_()
    video = video[rows].requires_grad_()
    text = text[rows].requires_grad_()
    mask = None if mask is None else torch.tensor(mask)[rows]
    loss = loss_fn(video @ projection, text @ projection, mask, 0.1)
    loss.backward()
    return loss.detach(), projection.grad, video.grad, text.grad


def _worker(process_rank, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=process_rank, world_size=WORLD)
    try:
        assert is_distributed() and rank() == process_rank and world_size() == WORLD
        local = slice(process_rank * LOCAL_BATCH, (process_rank + 1) * LOCAL_BATCH)
        results = {name: _loss_and_grads(name, local) for name in SCENARIOS}
        x = torch.arange(3.0).reshape(1, 3) + 10 * process_rank
        results["gathered"] = all_gather_with_grad(x)
        torch.save(results, os.path.join(out_dir, f"rank{process_rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def per_rank(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gloo")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


def test_gather_concatenates_in_rank_order(per_rank):
    expected = torch.tensor([[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]])
    for results in per_rank:
        assert torch.equal(results["gathered"], expected)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_ranks_reproduce_the_whole_batch_loss_and_gradients(per_rank, name):
    loss, projection_grad, video_grad, text_grad = _loss_and_grads(name, slice(None))
    losses, projection_grads, video_grads, text_grads = zip(*(results[name] for results in per_rank))
    # Data-parallel training averages over ranks: the mean loss and mean parameter gradient are the
    # single-process ones.
    assert torch.allclose(torch.stack(losses).mean(), loss, atol=1e-12)
    assert torch.allclose(torch.stack(projection_grads).mean(0), projection_grad, atol=1e-12)
    # Each rank's input gradient is d(sum of the ranks' losses)/d(its rows) = WORLD x the global one.
    assert torch.allclose(torch.cat(video_grads) / WORLD, video_grad, atol=1e-12)
    assert torch.allclose(torch.cat(text_grads) / WORLD, text_grad, atol=1e-12)


def test_single_process_is_not_distributed():
    x = torch.randn(2, 3)
    assert not is_distributed() and rank() == 0 and world_size() == 1
    assert all_gather_with_grad(x) is x
