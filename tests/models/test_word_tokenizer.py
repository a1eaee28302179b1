import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vatt.models.word_tokenizer import WordTokenizer


def small(**kwargs):
    args = dict(dim=8, vocab_size=20, embed_dim=6, max_words=5)
    args.update(kwargs)
    return WordTokenizer(**args)


def test_tokens_are_gelu_of_a_bias_free_projection_with_agg_first():
    tokenizer = small()
    ids = torch.tensor([[3, 4, 0, 0], [7, 0, 0, 0]])
    tokens, mask = tokenizer(ids)
    assert tokens.shape == (2, 5, 8)
    assert tokenizer.projection.bias is None
    expected_agg = F.gelu(tokenizer.projection(tokenizer.agg))
    torch.testing.assert_close(tokens[:, 0], expected_agg.expand(2, -1))
    torch.testing.assert_close(tokens[0, 1], F.gelu(tokenizer.projection(tokenizer.embedding.weight[3])))
    assert mask.tolist() == [[True, True, True, False, False], [True, True, False, False, False]]


def test_all_padding_still_leaves_agg_valid():
    _, mask = small()(torch.zeros(3, 5, dtype=torch.long))
    assert mask[:, 0].all() and not mask[:, 1:].any()


def test_embeddings_are_frozen_by_default_and_loadable():
    tokenizer = small()
    assert not tokenizer.embedding.weight.requires_grad
    assert small(freeze_embeddings=False).embedding.weight.requires_grad
    table = np.arange(120, dtype=np.float32).reshape(20, 6)
    tokenizer.load_embeddings(table)
    torch.testing.assert_close(tokenizer.embedding.weight, torch.from_numpy(table))
    with pytest.raises(ValueError, match="table must be"):
        tokenizer.load_embeddings(np.zeros((19, 6), dtype=np.float32))


def test_pre_projection_layout_projects_words_then_adds_positions_and_prepends_a_model_width_agg():
    tokenizer = small(pre_projection=True)
    assert tokenizer.agg.shape == (tokenizer.dim,) and tokenizer.projection.bias is not None
    ids = torch.tensor([[1, 2, 3]])
    tokens, mask = tokenizer(ids)
    words = torch.nn.functional.gelu(tokenizer.projection(tokenizer.embedding(ids)))  # [1, 3, D]
    torch.testing.assert_close(tokens[:, 1:], words + tokenizer.positions.table()[:3])
    torch.testing.assert_close(tokens[0, 0], tokenizer.agg)  # [AGG] after the projection, without a position
    assert mask.tolist() == [[True, True, True, True]]
    assert tokenizer.num_tokens == 5 and tokenizer.sample_ndim == 1


def test_default_layout_projects_agg_with_the_words_without_bias_or_positions():
    tokenizer = small()
    assert tokenizer.agg.shape == (6,) and tokenizer.projection.bias is None and tokenizer.positions is None
    tokens, _ = tokenizer(torch.tensor([[4]]))
    torch.testing.assert_close(tokens[0, 0], torch.nn.functional.gelu(tokenizer.projection(tokenizer.agg)))


def test_text_never_gets_droptoken():
    with pytest.raises(ValueError, match="keep"):
        small()(torch.ones(1, 5, dtype=torch.long), keep=torch.tensor([0]))


@pytest.mark.parametrize("ids", [torch.ones(1, 6, dtype=torch.long), torch.ones(5, dtype=torch.long)])
def test_ids_must_be_batched_and_at_most_max_words(ids):
    with pytest.raises(ValueError, match="max_words"):
        small()(ids)
