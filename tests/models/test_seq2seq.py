"""Encoder-decoder with additive attention: the attention against its formula, padding masked,
the teacher-forcing loss against a per-example per-step computation, beam 1 = greedy, and
reproducible, batch-independent decoding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.data.toy_seq import DATE_VOCAB, date_split, encode_pairs
from dlscratch.models.seq2seq import AdditiveAttention, Seq2Seq, Seq2SeqConfig

PAD, BOS, EOS = DATE_VOCAB.pad_id, DATE_VOCAB.bos_id, DATE_VOCAB.eos_id


@pytest.fixture
def model() -> Seq2Seq:
    torch.manual_seed(0)
    m = Seq2Seq(Seq2SeqConfig(DATE_VOCAB.vocab_size, n_embd=8, n_hidden=11, attn_size=7)).double()
    with torch.no_grad():  # bigger weights than the init, so the decoder's choices are not all alike
        for p in m.parameters():
            p.mul_(3.0)
    return m.eval()


@pytest.fixture
def batch():
    pairs = date_split(40, 10, seed=5).train[:6] + [("1 jan 2000", "2000-01-01"), ("7", "7")]
    return encode_pairs(pairs, DATE_VOCAB)


def test_additive_attention_matches_its_formula_and_masks_padding() -> None:
    B, S, Hq, Hk, A = 3, 5, 4, 6, 7
    att = AdditiveAttention(Hq, Hk, A).double()
    q, k = torch.randn(B, Hq, dtype=torch.float64), torch.randn(B, S, Hk, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 1])
    mask = torch.arange(S)[None, :] < lengths[:, None]
    context, w = att(q, k, mask)
    Wq, Wk, bk, v = att.W_q.weight, att.W_k.weight, att.W_k.bias, att.v.weight[0]
    for b in range(B):
        n = int(lengths[b])
        e = torch.stack([v @ torch.tanh(Wq @ q[b] + Wk @ k[b, j] + bk) for j in range(n)])  # v^T tanh(W_q q + W_k k)
        want = torch.softmax(e, dim=0)
        torch.testing.assert_close(w[b, :n], want)
        assert (w[b, n:] == 0).all()
        torch.testing.assert_close(context[b], want @ k[b, :n])
    torch.testing.assert_close(w.sum(-1), torch.ones(B, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(3, 5\), got \(3, 4\)"):
        att(q, k, mask[:, :4])


def test_teacher_forcing_weights_sum_to_one_and_ignore_padding(model: Seq2Seq, batch) -> None:
    logits, w = model(batch.src, batch.src_len, batch.tgt_in)
    B, T = batch.tgt_in.shape
    assert logits.shape == (B, T, DATE_VOCAB.vocab_size) and w.shape == (B, T, batch.src.shape[1])
    torch.testing.assert_close(w.sum(-1), torch.ones(B, T, dtype=torch.float64))
    pad = batch.src == PAD  # (B, S)
    assert pad.any() and (w.masked_select(pad[:, None, :].expand_as(w)) == 0).all()


def test_teacher_forcing_loss_equals_per_example_per_step_computation(model: Seq2Seq, batch) -> None:
    loss = model.loss(batch.src, batch.src_len, batch.tgt_in, batch.tgt_out)
    total, count = torch.zeros((), dtype=torch.float64), 0
    for n in range(len(batch)):  # each example alone, without padding
        S = int(batch.src_len[n])
        tgt = batch.tgt_out[n][batch.tgt_out[n] != PAD]  # y_1 .. y_m, EOS
        enc = model.encode(batch.src[n : n + 1, :S], batch.src_len[n : n + 1])
        state, prev = enc.state, torch.tensor([BOS])
        for y in tgt:
            logits, state, _ = model.decode_step(prev, state, enc)
            total -= torch.log_softmax(logits[0], dim=-1)[y]
            count += 1
            prev = y.view(1)  # teacher forcing: feed the true token
    torch.testing.assert_close(loss, total / count)


def test_beam_one_equals_greedy(model: Seq2Seq, batch) -> None:
    greedy, _ = model.greedy_decode(batch.src, batch.src_len, max_len=12)
    beam, _ = model.beam_search(batch.src, batch.src_len, beam_size=1, max_len=12)
    assert torch.equal(beam, greedy)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_beam_score_is_the_log_probability_of_its_output(model: Seq2Seq, batch, beam_size: int) -> None:
    tokens, score = model.beam_search(batch.src, batch.src_len, beam_size=beam_size, max_len=12)
    for n in range(len(batch)):
        seq = tokens[n].tolist()
        seq = seq[: seq.index(EOS) + 1] if EOS in seq else seq
        tgt_in = torch.tensor([[BOS, *seq[:-1]]])
        logits, _ = model(batch.src[n : n + 1], batch.src_len[n : n + 1], tgt_in)
        logp = F.log_softmax(logits[0], dim=-1).gather(1, torch.tensor(seq)[:, None]).sum()
        torch.testing.assert_close(score[n], logp)


def test_decoding_is_reproducible_and_independent_of_the_batch(model: Seq2Seq, batch) -> None:
    a, wa = model.greedy_decode(batch.src, batch.src_len, max_len=12)
    b, wb = model.greedy_decode(batch.src, batch.src_len, max_len=12)
    assert torch.equal(a, b) and torch.equal(wa, wb)
    beam, _ = model.beam_search(batch.src, batch.src_len, beam_size=3, max_len=12)
    for n in range(len(batch)):
        S = int(batch.src_len[n])
        alone, _ = model.greedy_decode(batch.src[n : n + 1, :S], batch.src_len[n : n + 1], max_len=12)
        assert alone[0].tolist() == a[n, : alone.shape[1]].tolist()
        assert (a[n, alone.shape[1] :] == PAD).all()
        alone_beam, _ = model.beam_search(batch.src[n : n + 1, :S], batch.src_len[n : n + 1], beam_size=3, max_len=12)
        assert alone_beam[0].tolist() == beam[n, : alone_beam.shape[1]].tolist()


def test_after_eos_only_padding(model: Seq2Seq, batch) -> None:
    for decode in (lambda: model.greedy_decode(batch.src, batch.src_len, 12)[0],
                   lambda: model.beam_search(batch.src, batch.src_len, 3, 12)[0]):
        for row in decode().tolist():
            if EOS in row:
                assert all(t == PAD for t in row[row.index(EOS) + 1 :])
            assert PAD not in row[: row.index(EOS) if EOS in row else len(row)]


def test_bad_arguments(model: Seq2Seq, batch) -> None:
    with pytest.raises(ValueError, match=rf"1\.\.{DATE_VOCAB.vocab_size - 2} .*got 0"):
        model.beam_search(batch.src, batch.src_len, beam_size=0)
    with pytest.raises(ValueError, match=f"got {DATE_VOCAB.vocab_size - 1}"):
        model.beam_search(batch.src, batch.src_len, beam_size=DATE_VOCAB.vocab_size - 1)
    with pytest.raises(ValueError, match=r"values in 1\.\.12"):
        model.encode(batch.src, batch.src_len + 5)
    with pytest.raises(ValueError, match="positive"):
        Seq2SeqConfig(DATE_VOCAB.vocab_size, n_hidden=0)
    with pytest.raises(ValueError, match="eos_id=40"):
        Seq2SeqConfig(DATE_VOCAB.vocab_size, eos_id=40)


def test_greedy_attention_is_the_decoders_reading_of_its_own_output(model: Seq2Seq, batch) -> None:
    tokens, weights = model.greedy_decode(batch.src, batch.src_len, max_len=12)
    with torch.inference_mode():
        enc = model.encode(batch.src, batch.src_len)  # step by step, as the decoder ran
    state, y = enc.state, torch.full((len(batch),), BOS)
    for t in range(tokens.shape[1]):
        with torch.inference_mode():
            _, state, w = model.decode_step(y, state, enc)
        torch.testing.assert_close(weights[:, t], w)
        y = tokens[:, t]
