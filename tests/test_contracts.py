"""Registry-driven contract tests: every registered component, built-in or plugin, is built from its
``example`` and checked against the contract of its kind (docs/architecture.md)."""
import copy
import math

import pytest
import torch

from vatt.models.droptoken import draw_keep
from vatt.registry import registry


def entries(kind):
    return pytest.mark.parametrize("entry", registry(kind).entries(), ids=lambda e: e.name)


def build_small(entry, **injected):
    """Build on the meta device first: a full-size example (vit_large) is only shape-checked there."""
    with torch.device("meta"):
        meta = entry.obj(**entry.example, **injected)
    params = sum(p.numel() for p in meta.parameters()) if isinstance(meta, torch.nn.Module) else 0
    if params > 30_000_000:
        return meta, True
    torch.manual_seed(0)
    return entry.obj(**entry.example, **injected), False


def assert_trains(module, output):
    output.float().square().mean().backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@entries("tokenizers")
def test_tokenizer_contract(entry):
    tok, _ = build_small(entry)
    tok.eval()
    x = tok.example_input(3)
    assert x.dim() == 1 + tok.sample_ndim
    tokens, mask = tok(x)
    assert tokens.shape == (3, 1 + tok.num_tokens, tok.dim)
    assert mask is None or (mask.dtype == torch.bool and mask.shape == tokens.shape[:2] and mask[:, 0].all())
    if tok.supports_droptoken:
        keep = draw_keep(tok.num_tokens, 0.5, 3)
        kept, _ = tok(x, keep)
        assert torch.allclose(kept[:, 1:], tokens[:, 1 + keep], atol=1e-6)  # drop = embed all, then gather
        assert torch.equal(kept[:, 0], tokens[:, 0])  # [AGG] is never dropped
    else:
        with pytest.raises(ValueError):
            tok(x, torch.arange(1))
    tok.train()
    assert_trains(tok, tok(x)[0])


@entries("backbones")
def test_backbone_contract(entry):
    backbone, meta = build_small(entry)
    device = "meta" if meta else "cpu"
    tokens = torch.randn(2, 5, backbone.width, device=device, requires_grad=not meta)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2], device=device)
    out = backbone(tokens, mask)
    assert out.shape == (2, 5, backbone.width)
    if not meta:
        backbone.eval()
        # padded tokens change nothing for the valid ones
        other = tokens.detach().clone()
        other[1, 3:] = torch.randn(2, backbone.width)
        assert torch.allclose(backbone(tokens, mask)[1, :3], backbone(other, mask)[1, :3], atol=1e-5)
        backbone.train()
        assert_trains(backbone, backbone(tokens, mask))


@entries("heads")
def test_head_contract(entry):
    head, _ = build_small(entry)
    in_dim = entry.example["in_dim"]
    out = head(torch.randn(4, in_dim))
    assert isinstance(out, dict) and out
    for space, z in out.items():
        assert isinstance(space, str) and z.dim() == 2 and z.shape[0] == 4
    assert_trains(head, torch.cat(list(out.values()), dim=1))


@entries("losses")
def test_loss_contract(entry):
    loss_fn = entry.obj(**entry.example)
    a = torch.randn(4, 8, requires_grad=True)
    b = torch.randn(4, 8, requires_grad=True)
    value = loss_fn(a, b, torch.tensor([True, True, False, True]))
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    # permuting the batch permutes nothing in the loss
    perm = torch.tensor([2, 0, 3, 1])
    again = loss_fn(a[perm], b[perm], torch.tensor([True, True, False, True])[perm])
    assert torch.allclose(value, again, atol=1e-5)


@entries("datasets")
def test_dataset_contract(entry, tmp_path, monkeypatch):
    from vatt.testing.replicas import REPLICAS  # layouts need files: a tiny replica of each stands in

    monkeypatch.setenv("VATT_CACHE", str(tmp_path))
    example = REPLICAS[entry.name](tmp_path / "replica") if entry.name in REPLICAS else entry.example
    dataset = entry.obj(**example)
    if isinstance(dataset, torch.utils.data.IterableDataset):  # a stream: no length, no indexing
        sample = next(iter(dataset))
    else:
        assert len(dataset) > 0
        sample = dataset[0]
    assert isinstance(sample, dict) and any(torch.is_tensor(v) for v in sample.values())


@entries("optimizers")
def test_optimizer_contract(entry):
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = entry.obj(params=[weight], **entry.example)
    weight.sum().backward()
    optimizer.step()
    assert not torch.equal(weight.detach(), torch.ones(3))


@entries("schedules")
def test_schedule_contract(entry):
    schedule = entry.obj(**entry.example)
    total = entry.example.get("total_steps", 100)
    values = [schedule(step) for step in range(total + 1)]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert max(values) <= entry.example["base_lr"] + 1e-12


class SpacesHead(torch.nn.Module):
    """One head giving every space an evaluator may read: S_va, S_vt and class logits."""

    def __init__(self, in_dim: int, classes: int):
        super().__init__()
        self.spaces = torch.nn.ModuleDict({"va": torch.nn.Linear(in_dim, 6), "vt": torch.nn.Linear(in_dim, 4),
                                           "logits": torch.nn.Linear(in_dim, classes)})

    def forward(self, feature):
        return {space: layer(feature) for space, layer in self.spaces.items()}


@pytest.fixture(scope="module")
def evaluation_setup(tmp_path_factory):
    """The contract model (video, audio and text towers built from the registry; each head gives va, vt and
    logits over the dataset's classes) and a tiny labelled, captioned synthetic test split."""
    from vatt.models.multimodal import MultimodalModel, Tower
    dataset = registry("datasets").get("synthetic").obj(
        split="test", num_clips=6, frames=4, size=16, audio_samples=512,
        cache_dir=str(tmp_path_factory.mktemp("contract_synthetic")))
    tokenizers = {"video": ("video_patches", {"patch_size": [2, 8, 8], "frames": 4, "size": 16}),
                  "audio": ("waveform_patches", {"patch_size": 64, "samples": 512}),
                  "text": ("words", {"vocab_size": len(dataset.vocabulary), "embed_dim": 6,
                                     "max_words": dataset[0]["text"].shape[-1]})}
    torch.manual_seed(0)
    towers, heads = {}, {}
    for modality, (name, kwargs) in tokenizers.items():
        backbone = registry("backbones").get("vit").obj(width=8, layers=1, mlp_dim=16, heads=2, dropout=0.0)
        tokenizer = registry("tokenizers").get(name).obj(dim=8, **kwargs)
        towers[modality] = Tower(tokenizer, backbone)
        heads[modality] = SpacesHead(8, dataset.num_classes)
    return MultimodalModel(towers, heads), dataset


@entries("evaluators")
def test_evaluator_contract(entry, evaluation_setup):
    """Built from its example (the datasets a task injects replaced by the tiny one), an evaluator runs on the
    contract model and reports finite numbers named <prefix>/<dataset_name>/<metric>."""
    from vatt.tasks.builders import EVALUATOR_DATASETS
    model, dataset = evaluation_setup
    kwargs = {**entry.example, **{key: dataset for key in EVALUATOR_DATASETS if key in entry.example}}
    evaluator = entry.obj(**kwargs)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    results = evaluator.run(model, dataset)
    assert isinstance(results, dict) and results
    for key, value in results.items():
        assert isinstance(key, str) and key.count("/") >= 2, key
        assert f"/{evaluator.dataset_name}/" in f"/{key}", key
        assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
        if key.rsplit("/", 1)[1] in ("samples", "pool"):  # every sample was read and scored
            assert value == len(dataset), (key, value)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())  # evaluation changes no weight


@entries("tasks")
def test_task_contract(entry):
    """A task's example config validates (without data), its summary counts the parameters of the model it
    builds, and its validation does refuse a broken config."""
    from vatt.errors import ConfigError
    task, example = entry.obj(), copy.deepcopy(entry.example)
    assert example.get("task") == entry.name
    task.validate(example, source="example", need_data=False)
    counts = task.summary(example)["parameters"]
    model = task.build_model(example)
    assert counts["total"] == sum(p.numel() for p in model.parameters()) > 0
    assert all(isinstance(n, int) and n > 0 for n in counts.values())
    with pytest.raises(ConfigError, match="bogus"):
        task.validate({**example, "bogus": {}}, need_data=False)
    with pytest.raises(ConfigError):
        task.validate({**example, "model": 5}, need_data=False)
