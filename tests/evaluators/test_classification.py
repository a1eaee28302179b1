"""Classification evaluation: multi-view logits averaged, top-1/top-5 or mAP/AUC/d′, labels checked."""
import logging

import pytest
import torch
from torch import nn

from vatt.data.decode import MediaError
from vatt.errors import DataError
from vatt.evaluators.classification import ClassificationEvaluator
from vatt.registry import get

CLASSES = 3
# three views of one video; only the last one alone picks class 0, their mean does
VIEWS = torch.tensor([[1.0, 0.0, 1.2], [1.0, 1.2, 0.0], [1.0, 0.0, 0.0]])


class ViewLogits(nn.Module):
    """A stand-in for a fine-tuned MultimodalModel: a clip's logits are its first C voxels, scaled."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.inputs = {"video": "video"}
        self.seen = []

    def forward(self, batch, modalities=("video",)):
        video = batch["video"]  # [B, (V,) 3, T, H, W]
        self.seen.append((self.training, torch.is_grad_enabled(), tuple(video.shape)))
        lead = video.shape[:-4]
        logits = self.scale * video.reshape(*lead, -1)[..., :CLASSES]  # [B, (V,) C]
        return {"video": {"logits": logits}}


class Clips(torch.utils.data.Dataset):
    """Each sample holds ``views`` (or one clip when None) whose voxels are the logits to predict."""

    def __init__(self, logits, labels, multi_hot=False, views=True):
        self.logits, self.labels, self.multi_hot, self.views = logits, labels, multi_hot, views

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        clips = self.logits[i]  # [V, C] or [C]
        shape = (*clips.shape[:-1], 3, 1, 1, 1)
        video = torch.zeros(*shape).reshape(*clips.shape[:-1], -1)
        video[..., :CLASSES] = clips
        key = "labels" if self.multi_hot else "label"
        return {"video": video.reshape(shape), key: self.labels[i], "caption": f"clip {i}"}


def test_logits_are_averaged_over_views_before_scoring():
    model = ViewLogits().train()
    dataset = Clips(VIEWS.expand(4, 3, 3), torch.zeros(4, dtype=torch.long))
    result = ClassificationEvaluator(dataset_name="toy", batch_size=3).run(model, dataset)
    assert result == {"finetune/toy/top1": 1.0, "finetune/toy/top5": 1.0, "finetune/toy/samples": 4}
    each_view = ClassificationEvaluator(dataset_name="toy").run(model, Clips(VIEWS, torch.zeros(3).long()))
    assert each_view["finetune/toy/top1"] == pytest.approx(1 / 3)  # the same clips scored one by one
    assert model.training  # restored
    assert all(not training and not grad for training, grad, _ in model.seen)
    assert model.seen[0][2] == (3, 3, 3, 1, 1, 1)  # batches of 3 videos x 3 views


def test_top_k_counts_ties_against_the_model():
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    result = ClassificationEvaluator(dataset_name="toy", top_k=[1, 2]).run(
        ViewLogits(), Clips(logits, torch.tensor([0, 1]), views=False))
    assert result["finetune/toy/top1"] == 0.5 and result["finetune/toy/top2"] == 0.5


def test_multi_label_sets_report_map_auc_and_d_prime():
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    logits = targets * 4 - 2  # a perfect ranking in every class
    evaluator = ClassificationEvaluator(dataset_name="audioset", prefix="audio")
    result = evaluator.run(ViewLogits(), Clips(logits, targets, multi_hot=True, views=False))
    assert result["audio/audioset/mAP"] == 1.0 and result["audio/audioset/AUC"] == 1.0
    assert set(result) == {"audio/audioset/mAP", "audio/audioset/AUC", "audio/audioset/d_prime",
                           "audio/audioset/samples"}


def test_a_label_outside_the_classes_names_the_sample():
    dataset = Clips(torch.zeros(3, CLASSES), torch.tensor([0, 2, 5]), views=False)
    with pytest.raises(ValueError, match=r"kinetics400: sample 2 has label 5, outside the model's 3 classes"):
        ClassificationEvaluator(dataset_name="kinetics400").run(ViewLogits(), dataset)


def test_samples_without_labels_are_reported():
    class Unlabelled(Clips):
        def __getitem__(self, i):
            return {"video": super().__getitem__(i)["video"]}

    with pytest.raises(ValueError, match="'label'"):
        ClassificationEvaluator(dataset_name="toy").run(ViewLogits(), Unlabelled(torch.zeros(2, 3), [0, 0]))


def test_an_unreadable_file_is_skipped_counted_and_left_out_of_the_metrics(corrupt_and_clean, caplog):
    caplog.set_level(logging.WARNING, logger="vatt.data")
    evaluator = ClassificationEvaluator(dataset_name="toy", batch_size=4, max_failure_rate=0.5)
    logits, targets = evaluator.predict(ViewLogits(), corrupt_and_clean(True))  # sample 3 of 7 is garbage
    clean_logits, clean_targets = evaluator.predict(ViewLogits(), corrupt_and_clean(False))
    assert torch.equal(targets, clean_targets) and torch.equal(logits, clean_logits)  # the 6 readable ones
    result = evaluator.run(ViewLogits(), corrupt_and_clean(True))
    clean = evaluator.run(ViewLogits(), corrupt_and_clean(False))
    assert result == {**clean, "finetune/toy/skipped": 1} and clean["finetune/toy/samples"] == 6
    assert "garbage.mp4" in caplog.text and "1 of 7 samples could not be read" in caplog.text


def test_too_many_unreadable_files_stop_the_evaluation_naming_them(corrupt_and_clean):
    with pytest.raises(DataError, match=r"(?s)toy: 1 of 7 samples could not be read.*1\.00%.*garbage\.mp4"):
        ClassificationEvaluator(dataset_name="toy").run(ViewLogits(), corrupt_and_clean(True))


def test_registered_with_a_working_example():
    entry = get("evaluators", "classification")
    evaluator = entry.obj(**entry.example)
    result = evaluator.run(ViewLogits(), Clips(torch.eye(3), torch.arange(3), views=False))
    assert result["finetune/toy/top1"] == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset_name": "a/b"}, "dataset_name"),
    ({"dataset_name": "x", "batch_size": 0}, "batch_size"),
    ({"dataset_name": "x", "top_k": []}, "top_k"),
    ({"dataset_name": "x", "prefix": ""}, "prefix"),
    ({"dataset_name": "x", "max_failure_rate": 1.5}, "max_failure_rate"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassificationEvaluator(**kwargs)


def test_a_bad_label_after_a_skipped_file_is_named_by_its_dataset_index():
    class Unreadable(Clips):
        def __getitem__(self, i):
            if i == 1:
                raise MediaError(f"clip{i}.mp4", "corrupt data")
            return super().__getitem__(i)

    dataset = Unreadable(torch.zeros(5, CLASSES), torch.tensor([0, 1, 2, 7, 0]), views=False)
    evaluator = ClassificationEvaluator(dataset_name="toy", batch_size=2, max_failure_rate=0.5)
    with pytest.raises(ValueError, match=r"toy: sample 3 has label 7"):  # row 2 of the readable ones
        evaluator.run(ViewLogits(), dataset)
