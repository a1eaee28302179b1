"""vatt.Encoder: unit embeddings of files, tensors and sentences, batched, the clips averaged as the paper does."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vatt
from vatt.data.clips import ClipReader
from vatt.data.decode import MediaError, MediaFile
from vatt.search import Encoder, similarity


@pytest.fixture(scope="module")
def encoder(random_model):
    return vatt.Encoder(random_model, device="cpu")


def test_vatt_exports_the_encoder():
    assert vatt.Encoder is Encoder


def test_videos_sounds_and_sentences_embed_to_unit_vectors_in_their_spaces(encoder, held_out):
    paths = [e.path for e in held_out.entries[:3]]
    videos, sounds = encoder.video(paths, clips=2), encoder.audio(paths)
    words = encoder.text(["a red ball rises", "the blue square falls"])
    assert {k: tuple(v.shape) for k, v in videos.items()} == {"vt": (3, 64), "va": (3, 128)}
    assert {k: tuple(v.shape) for k, v in sounds.items()} == {"va": (3, 128)}
    assert {k: tuple(v.shape) for k, v in words.items()} == {"vt": (2, 64)}
    for z in (videos["vt"], videos["va"], sounds["va"], words["vt"]):
        assert torch.allclose(z.norm(dim=-1), torch.ones(len(z)), atol=1e-5)
    assert encoder.video([], clips=4)["vt"].shape == (0, 64)


def test_a_video_is_the_normalised_mean_of_its_clips_or_keeps_them_for_averaged_similarities(encoder, media_dir):
    path = str(media_dir / "long.mp4")
    clips = ClipReader(encoder.media.clip_settings(clips=4), train=False).read(path).video  # [4, 3, T, S, S]
    raw = encoder.model.embed("video", clips, normalise=False)["vt"]  # [4, d]
    mean = encoder.video([path], clips=4)["vt"]  # [1, d]
    views = encoder.video([path], clips=4, average="similarities")["vt"]  # [1, 4, d]
    assert torch.allclose(mean[0], F.normalize(raw.mean(dim=0), dim=0), atol=1e-5)
    assert torch.allclose(views[0], F.normalize(raw, dim=-1), atol=1e-5)
    queries = encoder.text(["a red ball rises", "a cross falls"])["vt"]  # [2, d]
    assert torch.allclose(similarity(queries, views), (queries @ views[0].T).mean(dim=-1, keepdim=True), atol=1e-6)
    assert torch.allclose(similarity(queries, mean), queries @ mean.T)


def test_tensors_embed_as_the_files_they_were_decoded_from(encoder, held_out):
    path = held_out.entries[0].path
    with MediaFile(path) as media:
        whole = media.whole(8000)
    frames = torch.from_numpy(whole.frames)  # [T, H, W, 3] uint8 at the file's 10 fps
    assert torch.allclose(encoder.video([frames], clips=1)["va"], encoder.video([path], clips=1)["va"], atol=1e-5)
    waveform = whole.sound[:6400]  # [S] at 8 kHz
    assert torch.allclose(encoder.audio([waveform], clips=1)["va"], encoder.audio([path], clips=1)["va"], atol=1e-5)
    short = encoder.audio([np.zeros(100, dtype=np.float32)])  # zero-padded to a clip
    assert short["va"].shape == (1, 128)


def test_batching_does_not_change_embeddings(random_model, held_out):
    paths = [e.path for e in held_out.entries[:5]]
    one = Encoder(random_model, batch_size=1).video(paths, clips=1)
    many = Encoder(random_model, batch_size=16, num_workers=1).video(paths, clips=1)
    assert torch.allclose(one["vt"], many["vt"], atol=1e-5)


def test_unreadable_files_and_wrong_inputs_are_named(random_model, encoder, media_dir):
    with pytest.raises(MediaError, match="broken.mp4"):
        encoder.video([str(media_dir / "long.mp4"), str(media_dir / "broken.mp4")])
    with pytest.raises(MediaError, match="broken.mp4"):  # raised intact from a DataLoader worker
        Encoder(random_model, num_workers=1).video([str(media_dir / "broken.mp4")])
    with pytest.raises(MediaError, match="short.mp4"):
        encoder.video([str(media_dir / "short.mp4")])
    with pytest.raises(ValueError, match="a list of files"):
        encoder.video(str(media_dir / "long.mp4"))
    with pytest.raises(ValueError, match="uint8 frames"):
        encoder.video([torch.zeros(3, 8, 32, 32)])
    with pytest.raises(ValueError, match="list of strings"):
        encoder.text("a red ball")
