"""Zero-shot text→video retrieval (MSR-VTT, YouCook2 style): each caption searches all videos of a dataset.

The model is used as it comes out of pre-training: no fine-tuning, only the common video-text space. Both
sides are L2-normalised and compared by cosine similarity; ranks and recalls follow `vatt.metrics`
(1-based ranks, ties counted against the model, recalls as fractions in [0, 1]).

A video may come as several clips (``video`` [V, 3, T, H, W]: the paper's 4 uniformly spaced clips). Two
ways to score it, both in the release: average the V raw embeddings, then normalise and compare (the
paper's numbers), or compare each normalised clip embedding and average the V similarities.

Samples are read as training reads them (`vatt.data.loader.read_once`): a sample that cannot be read is
skipped with its caption, logged with its path and counted; the pool is the readable samples and the
result reports ``zero_shot/<dataset_name>/skipped`` when any was. More than ``max_failure_rate`` (1 %)
unreadable stops the evaluation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vatt.data.failures import DEFAULT_MAX_FAILURE_RATE, check_failure_rate
from vatt.data.loader import read_once
from vatt.metrics import retrieval_metrics
from vatt.ranges import require
from vatt.registry import register

REPORTED = ("R@1", "R@5", "R@10", "median_rank")
VIEW_AVERAGES = ("embeddings", "similarities", "both")
SIMILARITY_AVERAGE_KEY = "avg_similarity"  # results of averaging similarities: <prefix>/avg_similarity/R@K


@register("evaluators", "zero_shot_retrieval", example={"batch_size": 4})
class ZeroShotRetrieval:
    """Text→video retrieval over a dataset of clips with captions; query i's true video is video i.

    ``run(model, dataset)`` takes a MultimodalModel and a map-style dataset of sample dicts with "video"
    [3, T, H, W] or [V, 3, T, H, W] (V clips) and "text" [L, W] (candidate captions; ``caption_index``
    picks the query), and returns ``zero_shot/<dataset_name>/{R@1, R@5, R@10, median_rank, pool}`` (pool:
    number of videos searched, the readable ones; ``.../skipped`` is added when some were not) from averaged
    embeddings. ``view_average`` "similarities" reports the averaged similarities under
    ``zero_shot/<dataset_name>/avg_similarity/...`` instead, "both" reports both.
    """

    def __init__(self, *, dataset_name: str = "synthetic", batch_size: int = 64, video_space: str = "vt",
                 text_space: str = "vt", caption_index: int = 0, view_average: str = "embeddings",
                 num_workers: int = 0, max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE):
        if not isinstance(dataset_name, str) or not dataset_name or "/" in dataset_name:
            raise ValueError(f"dataset_name must be a non-empty name without '/', got {dataset_name!r}")
        require(1, whole=True, batch_size=batch_size)
        require(0, whole=True, caption_index=caption_index)
        for name, space in (("video_space", video_space), ("text_space", text_space)):
            if not isinstance(space, str) or not space:
                raise ValueError(f"{name} must be a non-empty string, got {space!r}")
        if view_average not in VIEW_AVERAGES:
            raise ValueError(f"view_average must be one of {', '.join(VIEW_AVERAGES)}, got {view_average!r}")
        check_failure_rate(max_failure_rate)
        self.dataset_name = dataset_name
        self.batch_size = batch_size
        self.video_space = video_space
        self.text_space = text_space
        self.caption_index = caption_index
        self.view_average = view_average
        self.num_workers = num_workers  # processes reading (decoding) the videos
        self.max_failure_rate = max_failure_rate

    def run(self, model: torch.nn.Module, dataset) -> dict[str, float]:
        if len(dataset) == 0:
            raise ValueError(f"dataset must hold at least one sample, got {dataset!r} with none")
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                videos, captions, skipped = self._embed(model, dataset)  # [N, V, d] raw, [N, d] normalised
        finally:
            model.train(was_training)
        pool = len(videos)
        prefix = f"zero_shot/{self.dataset_name}"
        result = {}
        if self.view_average in ("embeddings", "both"):
            mean_video = F.normalize(videos.mean(dim=1), dim=-1)  # [N, d]
            result.update(_reported(captions @ mean_video.T, prefix))  # [N queries, N videos], cosine
        if self.view_average in ("similarities", "both"):
            per_clip = torch.einsum("qd,nvd->qnv", captions, F.normalize(videos, dim=-1))  # [Q, N, V] cosine
            result.update(_reported(per_clip.mean(dim=-1), f"{prefix}/{SIMILARITY_AVERAGE_KEY}"))
        result[f"{prefix}/pool"] = pool
        if skipped:
            result[f"{prefix}/skipped"] = skipped
        return result

    def _embed(self, model: torch.nn.Module, dataset) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(raw video embeddings [N, V, d], normalised caption embeddings [N, d], samples skipped) of the N
        readable samples, in the dataset's order."""
        device = _device_of(model)
        videos, captions = [], []
        reading = read_once(dataset, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=list,
                            max_failure_rate=self.max_failure_rate,
                            what=f"zero-shot evaluation of {self.dataset_name}")
        for indices, samples in reading:
            batch = {
                "video": torch.stack([torch.as_tensor(s["video"]) for s in samples]).to(device),  # [B, (V,) 3, T, H, W]
                "text": torch.stack([self._query(s["text"], index) for index, s in zip(indices, samples)])
                .to(device),  # [B, 1, W]
            }
            outputs = model(batch, modalities=("video", "text"))
            video = outputs["video"][self.video_space]  # [B, d] or [B, V, d]
            video = video if video.dim() == 3 else video[:, None]  # [B, V, d]
            caption = outputs["text"][self.text_space].reshape(len(samples), -1)  # [B, 1, d] -> [B, d]
            if video.shape[-1] != caption.shape[-1]:
                raise ValueError(f"video space {self.video_space!r} {tuple(video.shape)} and text space "
                                 f"{self.text_space!r} {tuple(caption.shape)} must have the same width")
            videos.append(video.float().cpu())
            captions.append(F.normalize(caption.float(), dim=-1).cpu())
        if not videos:
            raise ValueError(f"zero-shot evaluation of {self.dataset_name}: none of the {len(dataset)} samples "
                             f"could be read")
        return torch.cat(videos), torch.cat(captions), reading.skipped

    def _query(self, text, index: int) -> torch.Tensor:
        text = torch.as_tensor(text)
        if text.dim() != 2:
            raise ValueError(f"sample {index}: text must be [L, W] candidate captions, got {tuple(text.shape)}")
        if self.caption_index >= text.shape[0]:
            raise ValueError(f"caption_index={self.caption_index} but sample {index} has only "
                             f"{text.shape[0]} candidate captions")
        return text[self.caption_index:self.caption_index + 1]  # [1, W]: keeps the model's [B, L, W] layout

    def __repr__(self) -> str:
        return (f"ZeroShotRetrieval(dataset_name={self.dataset_name!r}, batch_size={self.batch_size}, "
                f"video_space={self.video_space!r}, text_space={self.text_space!r}, "
                f"caption_index={self.caption_index}, view_average={self.view_average!r})")


def _reported(similarity: torch.Tensor, prefix: str) -> dict[str, float]:
    metrics = retrieval_metrics(similarity)
    return {f"{prefix}/{key}": metrics[key] for key in REPORTED}


def _device_of(model: torch.nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")
