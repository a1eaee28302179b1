import logging

import pytest
import torch
from torch import nn

from vatt.errors import DataError
from vatt.evaluators.retrieval import ZeroShotRetrieval
from vatt.registry import get

WORDS = 3


class ClipDataset(torch.utils.data.Dataset):
    """Sample i: a video whose first voxel is i, and two captions whose first ids are i+1 and shift+i+1."""

    def __init__(self, size, second_caption_shift=1):
        self.size = size
        self.shift = second_caption_shift

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        video = torch.zeros(3, 2, 4, 4)
        video[0, 0, 0, 0] = i
        text = torch.zeros(2, WORDS, dtype=torch.long)
        text[0, 0] = i + 1
        text[1, 0] = (i + self.shift) % self.size + 1
        return {"video": video, "text": text, "text_mask": torch.tensor(True)}


class OneHotModel(nn.Module):
    """Embeds the index carried by a sample; ``random=True`` gives unrelated random codes to each side."""

    def __init__(self, pool, random=False):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        generator = torch.Generator().manual_seed(0)
        self.video_codes = torch.randn(pool, 8, generator=generator) if random else torch.eye(pool)
        self.text_codes = torch.randn(pool, 8, generator=generator) if random else torch.eye(pool)
        self.seen = []

    def forward(self, batch, modalities=("video", "text")):
        self.seen.append((self.training, torch.is_grad_enabled(), tuple(batch["text"].shape), modalities))
        video_index = batch["video"][:, 0, 0, 0, 0].long()  # [B]
        text_index = batch["text"][..., 0] - 1  # [B, L]
        return {"video": {"vt": self.scale * self.video_codes[video_index] * 3.0},
                "text": {"vt": self.scale * self.text_codes[text_index]}}


def test_perfect_model_retrieves_every_video_and_restores_training_mode():
    model = OneHotModel(10).train()
    result = ZeroShotRetrieval(dataset_name="toy", batch_size=4).run(model, ClipDataset(10))
    assert result == {"zero_shot/toy/R@1": 1.0, "zero_shot/toy/R@5": 1.0, "zero_shot/toy/R@10": 1.0,
                      "zero_shot/toy/median_rank": 1.0, "zero_shot/toy/pool": 10}
    assert model.training
    # 10 clips in batches of 4; eval mode, no grad, one query caption per clip.
    assert [s[2] for s in model.seen] == [(4, 1, WORDS), (4, 1, WORDS), (2, 1, WORDS)]
    assert all(not training and not grad for training, grad, _, _ in model.seen)
    assert all(s[3] == ("video", "text") for s in model.seen)


def test_caption_index_picks_the_query():
    model = OneHotModel(6).eval()
    result = ZeroShotRetrieval(caption_index=1).run(model, ClipDataset(6, second_caption_shift=1))
    # The second caption of clip i describes clip i+1; one-hot similarity 0 against all other videos.
    assert result["zero_shot/synthetic/R@1"] == 0.0
    assert result["zero_shot/synthetic/median_rank"] == 6.0
    assert not model.training


def test_random_model_is_near_chance():
    pool = 100
    result = ZeroShotRetrieval(batch_size=32).run(OneHotModel(pool, random=True), ClipDataset(pool))
    assert result["zero_shot/synthetic/R@1"] <= 0.1
    assert result["zero_shot/synthetic/R@10"] <= 0.3
    assert 25 <= result["zero_shot/synthetic/median_rank"] <= 75


def test_registered_with_a_working_example():
    entry = get("evaluators", "zero_shot_retrieval")
    evaluator = entry.obj(**entry.example)
    assert isinstance(evaluator, ZeroShotRetrieval)
    assert evaluator.run(OneHotModel(5), ClipDataset(5))["zero_shot/synthetic/R@1"] == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size"),
    ({"caption_index": -1}, "caption_index"),
    ({"dataset_name": ""}, "dataset_name"),
    ({"dataset_name": "a/b"}, "dataset_name"),
    ({"text_space": ""}, "text_space"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ZeroShotRetrieval(**kwargs)


def test_caption_index_beyond_the_candidates_is_reported():
    with pytest.raises(ValueError, match="caption_index=2"):
        ZeroShotRetrieval(caption_index=2).run(OneHotModel(3), ClipDataset(3))


def test_empty_dataset_is_reported():
    with pytest.raises(ValueError, match="dataset"):
        ZeroShotRetrieval().run(OneHotModel(3), ClipDataset(0))


class ClipEmbeddings(nn.Module):
    """Each video is 2 clips whose first two voxels are their embedding; caption id k embeds as CAPTIONS[k]."""

    CAPTIONS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, batch, modalities=("video", "text")):
        video = batch["video"]  # [B, V, 3, T, H, W]
        return {"video": {"vt": self.scale * video.flatten(2)[..., :2]},  # [B, V, 2]
                "text": {"vt": self.CAPTIONS[batch["text"][..., 0]]}}  # [B, 1, 2]


class TwoClipVideos(torch.utils.data.Dataset):
    # video 0: one clip right on caption 1's direction, one orthogonal to it; video 1: both along caption 2
    CLIPS = [[[10.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]]

    def __len__(self):
        return 2

    def __getitem__(self, i):
        video = torch.zeros(2, 3, 1, 1, 2)
        video.flatten(1)[:, :2] = torch.tensor(self.CLIPS[i])
        return {"video": video, "text": torch.tensor([[i + 1, 0, 0]])}


def test_several_clips_per_video_averaged_two_ways():
    result = ZeroShotRetrieval(dataset_name="toy", view_average="both").run(ClipEmbeddings(), TwoClipVideos())
    # mean embedding of video 0 points near caption 1 (cos 0.995 against 0.707 for video 1): found first;
    # mean similarity of video 0 to caption 1 is (1 + 0) / 2, below video 1's 0.707: found second
    assert result["zero_shot/toy/R@1"] == 1.0 and result["zero_shot/toy/median_rank"] == 1.0
    assert result["zero_shot/toy/avg_similarity/R@1"] == 0.5
    assert result["zero_shot/toy/avg_similarity/median_rank"] == 1.5
    assert result["zero_shot/toy/pool"] == 2
    only = ZeroShotRetrieval(dataset_name="toy", view_average="similarities").run(ClipEmbeddings(), TwoClipVideos())
    assert set(only) == {f"zero_shot/toy/avg_similarity/{k}" for k in ("R@1", "R@5", "R@10", "median_rank")} \
        | {"zero_shot/toy/pool"}


def test_unknown_view_average_is_named():
    with pytest.raises(ValueError, match="view_average"):
        ZeroShotRetrieval(view_average="max")


class Pixels(nn.Module):
    """Some pixels of the video and the caption's word ids as embeddings: deterministic, read-anything."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, batch, modalities=("video", "text")):
        video = batch["video"].flatten(1)[:, ::97][:, :8]  # [B, 8]
        return {"video": {"vt": self.scale * video}, "text": {"vt": self.scale * batch["text"][..., :8].float()}}


def test_an_unreadable_file_is_skipped_with_its_caption_and_counted(corrupt_and_clean, caplog):
    caplog.set_level(logging.WARNING, logger="vatt.data")
    evaluator = ZeroShotRetrieval(dataset_name="toy", batch_size=4, max_failure_rate=0.5, num_workers=1)
    result = evaluator.run(Pixels(), corrupt_and_clean(True))  # sample 3 of 7 is garbage
    clean = ZeroShotRetrieval(dataset_name="toy", batch_size=4).run(Pixels(), corrupt_and_clean(False))
    assert clean["zero_shot/toy/pool"] == 6 and clean["zero_shot/toy/R@1"] < 1
    assert result == {**clean, "zero_shot/toy/skipped": 1}  # searched over the 6 readable clips
    assert "garbage.mp4" in caplog.text


def test_too_many_unreadable_files_stop_the_retrieval_naming_them(corrupt_and_clean):
    with pytest.raises(DataError, match=r"(?s)toy: 1 of 7 samples could not be read.*garbage\.mp4"):
        ZeroShotRetrieval(dataset_name="toy", batch_size=4).run(Pixels(), corrupt_and_clean(True))
