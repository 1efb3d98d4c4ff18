"""Encoding, batching and training of the retriever and the reader (chapter 32)."""

from __future__ import annotations

import pytest
import torch

from dlscratch.models.bert import BertConfig
from dlscratch.models.bi_encoder import BiEncoder, BiEncoderConfig, SpeakerReader
from dlscratch.tokenizers import WordVocab
from dlscratch.training.rag import _pairs, embed, encode_texts, reader_inputs, train_bi_encoder, train_reader, word_ids

VOCAB = WordVocab(tuple(f"w{i}" for i in range(40)))
SMALL = BertConfig(vocab_size=VOCAB.vocab_size, max_position=16, n_layer=1, n_head=2, n_embd=16, ffn_dim=32, dropout=0.0)


def test_encode_texts_and_word_ids() -> None:
    assert word_ids("W3, w5 unknown W3!", VOCAB.stoi) == [6, 8, 6]
    assert encode_texts(["w0 w1", "w2 " * 30], VOCAB, 6) == [[1, 3, 4, 2], [1, 5, 5, 5, 5, 2]]


def test_reader_inputs_open_and_closed_book() -> None:
    ids, types = reader_inputs([[10, 11, 12], None], [[20, 21], [22]], VOCAB, 16)
    assert ids.tolist() == [[1, 10, 11, 12, 2, 20, 21, 2], [1, 22, 2, 0, 0, 0, 0, 0]]
    assert types.tolist() == [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0]]


def test_embed_keeps_the_input_order() -> None:
    model = BiEncoder(BiEncoderConfig(SMALL)).double().eval()
    seqs = [[1, 5, 2], [1, 5, 6, 7, 8, 2], [1, 9, 2], [1, 3, 4, 5, 2]]
    got = embed(model.encode_passages, seqs, batch_size=3)
    for s, v in zip(seqs, got):
        torch.testing.assert_close(v, model.encode_passages(torch.tensor([s]))[0].float())


def test_batches_hold_distinct_passages() -> None:
    positives = [0, 0, 1, 2, 2, 2, 3]
    batch = next(_pairs(positives, 4, seed=0))
    assert sorted(positives[i] for i in batch) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="batch_size=5 distinct passages, got 4"):
        next(_pairs(positives, 5, seed=0))


def test_bi_encoder_learns_to_match_passages() -> None:
    torch.manual_seed(0)
    passages = [[1, 3 + 2 * i, 4 + 2 * i, 2] for i in range(16)]  # passage i: two words of its own
    questions = [[1, 3 + 2 * i, 2] for i in range(16)]  # question i: one of them
    model = BiEncoder(BiEncoderConfig(SMALL, temperature=0.1))
    state = train_bi_encoder(model, questions, list(range(16)), passages, steps=60, batch_size=8, lr=1e-2)
    assert torch.stack(state.losses[-10:]).mean() < 0.5 * state.losses[0]
    model.eval()
    top = (embed(model.encode_questions, questions) @ embed(model.encode_passages, passages).T).argmax(1)
    assert (top == torch.arange(16)).float().mean() > 0.8


def test_reader_learns_to_read_the_name_from_the_passage() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (64,), generator=gen).tolist()
    passages = [[3 + y, *torch.randint(10, 40, (4,), generator=gen).tolist()] for y in labels]  # the name first
    questions = [torch.randint(10, 40, (3,), generator=gen).tolist() for _ in labels]
    reader = SpeakerReader(SMALL, 4)
    train_reader(reader, passages, questions, labels, VOCAB, steps=80, batch_size=16, lr=1e-2, max_len=16, closed_book=0.0)
    ids, types = reader_inputs(passages, questions, VOCAB, 16)
    with torch.no_grad():
        acc = (reader.eval()(ids, types).argmax(-1) == torch.tensor(labels)).float().mean()
    assert acc > 0.9
    with pytest.raises(ValueError, match="64, 64, 3"):
        train_reader(reader, passages, questions, labels[:3], VOCAB, steps=1)
