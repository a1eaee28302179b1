"""A model folder read for search: media settings from its config, its vocabulary, its fingerprint."""
import pytest

from vatt import config as cfglib
from vatt.data.synthetic import caption_vocabulary
from vatt.data.text import Vocabulary
from vatt.errors import UserError
from vatt.search.model import SearchModel, fingerprint, media_settings


def test_media_settings_come_from_the_towers_and_the_data_section(random_model):
    model = SearchModel.load(random_model)
    media = model.media
    assert (media.frames, media.size, media.audio_samples) == (8, 32, 6400)  # the tokenizers'
    assert (media.fps, media.stride, media.audio_rate) == (10.0, 1, 8000)  # the synthetic set's
    assert media.video_span == pytest.approx(0.8) and media.audio_span == pytest.approx(0.8)


def test_a_dataset_node_deciding_fps_stride_and_rate_wins_and_arguments_win_over_it(random_model):
    model = SearchModel.load(random_model).model
    cfg = {"data": {"eval": {"type": "msrvtt", "root": "x", "fps": 25, "stride": 2, "audio_rate": 16000}}}
    media = media_settings(cfg, model)
    assert (media.fps, media.stride, media.audio_rate) == (25.0, 2, 16000)
    assert media_settings(cfg, model, fps=30, audio_rate=44100).fps == 30.0
    paper = media_settings({"data": {}}, model)  # nothing said: the paper's clip defaults
    assert (paper.fps, paper.stride, paper.audio_rate) == (10.0, 1, 48000)


def test_the_vocabulary_is_the_model_folders_own_file_before_any_other(random_model, tmp_path):
    assert SearchModel.load(random_model).tokenizer.encode("a red ball").tolist()[:3] == \
        [caption_vocabulary().index[w] for w in ("a", "red", "ball")]  # the synthetic set's generated one
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.yaml", "model.safetensors"):
        (folder / name).symlink_to(random_model / name)
    Vocabulary(["<pad>", "<unk>", "ball", "red", "a"]).save(folder / "vocabulary.txt")
    assert SearchModel.load(folder).tokenizer.encode("a red ball").tolist()[:3] == [4, 3, 2]


def test_without_any_vocabulary_text_is_a_clear_error(random_model):
    model = SearchModel.load(random_model)
    bare = SearchModel(model.model, {"model": cfglib.load(random_model / "config.yaml")["model"]})
    with pytest.raises(UserError, match="no vocabulary found"):
        bare.tokenizer


def test_the_fingerprint_tells_weights_apart_not_files(random_model, other_model):
    first, again = SearchModel.load(random_model), SearchModel.load(random_model)
    assert first.fingerprint == again.fingerprint == fingerprint(again.model)
    assert SearchModel.load(other_model).fingerprint != first.fingerprint


def test_a_folder_that_is_no_model_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such model folder"):
        SearchModel.load(tmp_path / "missing")
    with pytest.raises(UserError, match="no config.yaml"):
        SearchModel.load(tmp_path)
