import pytest
import torch

from vatt.errors import ConfigError
from vatt.tasks.builders import build_model

TEXT = {"tokenizer": {"type": "words", "vocab_size": 8, "embed_dim": 3, "max_words": 4},
        "backbone": {"type": "t5_text", "width": 8, "layers": 1, "mlp_dim": 16, "heads": 2},
        "head": {"type": "linear", "dim": 4, "space": "vt"}}


def test_word2vec_vectors_fill_the_text_table(tmp_path):
    (tmp_path / "vocab.txt").write_text("<pad>\n<unk>\nred\ncircle\n")
    (tmp_path / "vectors.txt").write_text("2 3\nred 1 2 3\ncircle 4 5 6\n")
    spec = {"path": str(tmp_path / "vectors.txt"), "vocabulary": str(tmp_path / "vocab.txt")}
    model = build_model({"modalities": {"text": {**TEXT, "word2vec": spec}}})
    table = model.towers["text"].tokenizer.embedding.weight
    assert torch.equal(table[2], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(table[3], torch.tensor([4.0, 5.0, 6.0]))
    assert torch.equal(table[0], torch.zeros(3))
    assert not table.requires_grad  # frozen, as the release's word2vec table


def test_word2vec_errors_name_the_config_path(tmp_path):
    spec = {"path": str(tmp_path / "missing.bin"), "vocabulary": str(tmp_path / "missing.txt")}
    with pytest.raises(ConfigError, match="model.modalities.text.word2vec"):
        build_model({"modalities": {"text": {**TEXT, "word2vec": spec}}})
