"""Linear probes on frozen features: the low-rank classifier, the linear SVM, and the registered evaluator."""
import pytest
import torch
from torch import nn

from vatt.errors import DataError
from vatt.evaluators import linear_probe
from vatt.evaluators.linear_probe import LinearProbe, LowRankClassifier, fit_linear_svm, fit_low_rank
from vatt.registry import get
from vatt.tasks import builders


@pytest.fixture(autouse=True)
def one_thread():
    # these fits are many tiny ops: one thread avoids paying for thread hand-offs on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n, classes=4, dim=16, spread=0.3, seed=0):
    """Gaussian blobs around random class centres: linearly separable for a small spread."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=generator) * 2
    labels = torch.arange(n) % classes
    return centres[labels] + spread * torch.randn(n, dim, generator=generator), labels


def test_low_rank_classifier_is_a_factorised_linear_map():
    lrc = LowRankClassifier(5, 3, rank=8)
    x = torch.randn(4, 5)
    torch.testing.assert_close(lrc(x), x @ (lrc.u @ lrc.v) + lrc.bias)
    # a subset of components, scaled like dropout so the expected logits match the full product
    picked = torch.tensor([1, 6])
    torch.testing.assert_close(lrc(x, picked), x @ lrc.u[:, picked] @ lrc.v[picked] * 4 + lrc.bias)


def test_each_step_trains_a_random_tenth_of_the_components(monkeypatch):
    used = []
    forward = LowRankClassifier.forward

    def spy(self, x, components=None):
        used.append(components)
        return forward(self, x, components)

    monkeypatch.setattr(LowRankClassifier, "forward", spy)
    x, y = blobs(64)
    fit_low_rank(x, y, 4, rank=128, sample_fraction=0.1, steps=5, batch_size=16)
    assert [len(c) for c in used] == [13] * 5  # round(0.1 * 128)
    assert len({tuple(c.tolist()) for c in used}) == 5  # a new draw every step
    assert all(len(set(c.tolist())) == 13 and 0 <= int(c.min()) and int(c.max()) < 128 for c in used)


def test_low_rank_classifier_learns_separable_classes():
    x, y = blobs(400)
    test_x, test_y = blobs(200, seed=0)
    lrc = fit_low_rank(x, y, 4, steps=400, lr=5e-3)
    assert (lrc(test_x).argmax(1) == test_y).float().mean() == 1.0


def test_fits_are_deterministic_given_the_seed():
    x, y = blobs(100)
    first, second = (fit_low_rank(x, y, 4, steps=20, seed=3) for _ in range(2))
    torch.testing.assert_close(first.u, second.u)


def test_svm_agrees_with_scikit_learn():
    from sklearn import svm as svm_module  # in the test extra: a missing one fails rather than skips
    x, y = blobs(300, classes=3, dim=8, spread=1.5, seed=1)  # overlapping: the margins matter
    ours = fit_linear_svm(x, y, 3, c=0.1)
    theirs = svm_module.LinearSVC(C=0.1, loss="squared_hinge", intercept_scaling=100.0, tol=1e-8, max_iter=100000)
    theirs.fit(x.numpy(), y.numpy())
    test_x, _ = blobs(300, classes=3, dim=8, spread=1.5, seed=2)
    agreement = (ours(test_x).argmax(1).numpy() == theirs.predict(test_x.numpy())).mean()
    assert agreement >= 0.97
    torch.testing.assert_close(ours.weight.detach(), torch.tensor(theirs.coef_, dtype=torch.float32),
                               atol=0.02, rtol=0.05)


class Features(nn.Module):
    """A frozen 'tower' whose feature is the clip's first 16 voxels, with the MultimodalModel interface."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.inputs = {"video": "video"}

    def features(self, batch, modalities=("video",)):
        video = batch["video"]  # [B, (V,) 16]
        return {"video": self.weight * video}


class BlobClips(torch.utils.data.Dataset):
    def __init__(self, n, seed, views=1):
        self.x, self.y = blobs(n, seed=seed)
        self.views = views
        self.num_classes = 4

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        noise = torch.randn(self.views, 16) * 0.1
        video = self.x[i] + noise if self.views > 1 else self.x[i]
        return {"video": video, "label": self.y[i]}


def test_linear_probe_reports_both_classifiers_on_the_held_out_set():
    probe = LinearProbe(train=BlobClips(200, seed=0), dataset_name="blobs", steps=300, lr=5e-3)
    result = probe.run(Features(), BlobClips(100, seed=0, views=3))  # views are averaged
    assert set(result) == {f"linear/blobs/{k}" for k in ("top1", "top5", "svm_top1", "svm_top5")}
    assert result["linear/blobs/top1"] == 1.0 and result["linear/blobs/svm_top1"] == 1.0


def test_features_of_random_labels_do_not_generalise():
    class Shuffled(BlobClips):
        def __getitem__(self, i):
            return {**super().__getitem__(i), "label": torch.tensor((i * 7 + i // 4) % 4)}

    result = LinearProbe(train=Shuffled(200, seed=0), classifiers=["svm"]).run(Features(), Shuffled(200, seed=1))
    assert result["linear/synthetic/svm_top1"] < 0.5


def test_build_evaluator_builds_the_nested_training_set_first(monkeypatch, tmp_path):
    monkeypatch.setenv("VATT_CACHE", str(tmp_path))
    node = {"type": "linear_probe", "dataset_name": "tiny", "steps": 2, "classifiers": ["low_rank"],
            "train": {"type": "synthetic", "num_clips": 8, "frames": 4, "size": 16, "audio_samples": 512}}
    probe = builders.build_evaluator(node, "evaluators.1")
    assert isinstance(probe, LinearProbe) and len(probe.train) == 8 and probe.train.num_classes == 96
    assert probe.fit_settings["steps"] == 2


def test_build_evaluator_reports_a_missing_training_set():
    from vatt.errors import ConfigError
    with pytest.raises(ConfigError, match=r"evaluators.0: linear_probe needs 'train'"):
        builders.build_evaluator({"type": "linear_probe"}, "evaluators.0")


def test_registered_with_a_working_example():
    entry = get("evaluators", "linear_probe")
    probe = entry.obj(**entry.example)
    assert probe.fit_settings["steps"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"classifiers": ["knn"]}, "classifiers"),
    ({"sample_fraction": 0.0}, "sample_fraction"),
    ({"rank": 0}, "rank"),
    ({"lr": -1.0}, "lr"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinearProbe(train=BlobClips(8, seed=0), **kwargs)


def test_multi_hot_sets_are_refused():
    class MultiHot(BlobClips):
        def __getitem__(self, i):
            return {"video": self.x[i], "labels": torch.ones(4)}

    with pytest.raises(ValueError, match="single-label"):
        linear_probe.extract_features(Features(), MultiHot(4, seed=0), modality="video")


class PixelFeatures(Features):
    """Frozen 'tower' over real clips: 16 of the clip's voxels."""

    def features(self, batch, modalities=("video",)):
        video = batch["video"]  # [B, (V,) 3, T, H, W]
        return {"video": self.weight * video.reshape(*video.shape[:-4], -1)[..., ::61][..., :16]}


def test_unreadable_files_are_skipped_and_counted_on_both_sets(corrupt_and_clean):
    settings = dict(dataset_name="toy", classifiers=["svm"], svm_max_iter=20, feature_batch_size=4)
    result = LinearProbe(train=corrupt_and_clean(True), max_failure_rate=0.5, **settings).run(
        PixelFeatures(), corrupt_and_clean(True))  # sample 3 of 7 is garbage in both
    clean = LinearProbe(train=corrupt_and_clean(False), **settings).run(PixelFeatures(), corrupt_and_clean(False))
    assert result == {**clean, "linear/toy/skipped": 1, "linear/toy/train_skipped": 1}
    report = {}
    features, labels = linear_probe.extract_features(PixelFeatures(), corrupt_and_clean(True), modality="video",
                                                     max_failure_rate=0.5, report=report)
    assert features.shape == (6, 16) and labels.tolist() == [0, 1, 2, 0, 1, 2] and report["skipped"] == 1
    assert report["failures"][0].path.endswith("garbage.mp4")
    with pytest.raises(DataError, match="garbage.mp4"):
        linear_probe.extract_features(PixelFeatures(), corrupt_and_clean(True), modality="video")
