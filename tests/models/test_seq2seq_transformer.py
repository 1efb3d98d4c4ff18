"""The encoder-decoder Transformer: decoding, causality, the loss, the config."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers.losses import cross_entropy
from dlscratch.models import Seq2SeqTransformer, Seq2SeqTransformerConfig

CFG = Seq2SeqTransformerConfig(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=32,
                               dropout=0.0)


def _model(seed: int = 0) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    m = Seq2SeqTransformer(CFG).eval()
    with torch.no_grad():  # sharpen the output so that decoding paths differ between inputs
        m.lm_head.weight.mul_(5)
    return m


def _src(B: int = 6, S: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, CFG.src_vocab_size, (B, S), generator=g)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    return src.masked_fill(torch.arange(S)[None] >= lengths[:, None], CFG.pad_id)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(seed: int) -> None:
    m, src = _model(seed), _src(seed=seed)
    greedy = m.greedy_decode(src, max_len=7)
    assert greedy.shape == (6, 7)
    assert torch.equal(m.beam_search(src, beam_size=1, max_len=7), greedy)
    assert torch.equal(m.beam_search(src, beam_size=1, max_len=7, alpha=0.6), greedy)


def _log_prob(m: Seq2SeqTransformer, src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    ids = [int(t) for t in out]
    if CFG.eos_id in ids:
        ids = ids[: ids.index(CFG.eos_id) + 1]
    tgt = torch.tensor([[CFG.bos_id, *ids]])
    with torch.inference_mode():
        logp = m(src[None], tgt[:, :-1]).log_softmax(-1)[0]
    return logp.gather(1, tgt[0, 1:, None]).sum()


def test_beam_search_finds_at_least_as_likely_outputs() -> None:
    m, src = _model(3), _src(seed=3)
    greedy, beam = m.greedy_decode(src, 6), m.beam_search(src, beam_size=4, max_len=6)
    for i in range(src.size(0)):
        assert _log_prob(m, src[i], beam[i]) >= _log_prob(m, src[i], greedy[i]) - 1e-5


def test_decoder_is_causal() -> None:
    m, src = _model(), _src(B=2)
    tgt = torch.randint(3, CFG.tgt_vocab_size, (2, 6))
    changed = tgt.clone()
    changed[:, 4] = (changed[:, 4] - 2) % (CFG.tgt_vocab_size - 3) + 3
    with torch.inference_mode():
        a, b = m(src, tgt), m(src, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert (a[:, 4:] - b[:, 4:]).abs().max() > 1e-4


def test_source_padding_is_ignored() -> None:
    m, src = _model(), _src(B=3, S=4)
    longer = torch.cat([src, torch.full((3, 3), CFG.pad_id)], dim=1)
    tgt = torch.randint(3, CFG.tgt_vocab_size, (3, 5))
    with torch.inference_mode():
        torch.testing.assert_close(m(src, tgt), m(longer, tgt))


def test_label_smoothed_loss_matches_torch() -> None:
    m, src = _model(), _src(B=4)
    tgt = torch.randint(3, CFG.tgt_vocab_size, (4, 5))
    logits = m(src, tgt[:, :-1]).flatten(0, 1)
    for eps in (0.0, 0.1, 0.3):
        torch.testing.assert_close(cross_entropy(logits, tgt[:, 1:].flatten(), label_smoothing=eps),
                                   F.cross_entropy(logits, tgt[:, 1:].flatten(), label_smoothing=eps))


def test_greedy_decode_is_reproducible() -> None:
    src = _src()
    assert torch.equal(_model(5).greedy_decode(src, 6), _model(5).greedy_decode(src, 6))


def test_gradients_reach_every_parameter() -> None:
    m = Seq2SeqTransformer(CFG).train()
    src, tgt = _src(B=3), torch.randint(3, CFG.tgt_vocab_size, (3, 4))
    m(src, tgt).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        (dict(d_model=30, nhead=4), "30"),
        (dict(d_model=9, nhead=3), "9"),
        (dict(num_decoder_layers=0), "num_decoder_layers=0"),
        (dict(dropout=1.5), "1.5"),
        (dict(src_vocab_size=-2), "-2"),
        (dict(eos_id=40), "40"),
    ],
)
def test_config_errors_name_the_value(kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Seq2SeqTransformerConfig(**kwargs)


def test_presets_and_bad_beam() -> None:
    assert Seq2SeqTransformerConfig.cpu().d_model == 64 and Seq2SeqTransformerConfig.gpu().d_model == 256
    assert Seq2SeqTransformerConfig.gpu(nhead=4).nhead == 4
    with pytest.raises(ValueError, match=r"1\.\.11 .*got 0"):
        _model().beam_search(_src(), beam_size=0, max_len=3)
    with pytest.raises(ValueError, match=f"got {CFG.tgt_vocab_size - 1}"):
        _model().beam_search(_src(), beam_size=CFG.tgt_vocab_size - 1, max_len=3)


def test_pad_and_bos_are_never_emitted() -> None:
    # the bug of issue 9: the model prefers <pad> and <bos>, decoding must still pick real tokens
    m, src = _model(), _src()
    with torch.no_grad():
        m.lm_head.bias[[CFG.pad_id, CFG.bos_id]] += 100.0
    for out in (m.greedy_decode(src, 6), m.beam_search(src, beam_size=3, max_len=6)):
        for row in out.tolist():
            live = row[: row.index(CFG.eos_id) + 1] if CFG.eos_id in row else row
            assert CFG.bos_id not in row and CFG.pad_id not in live
            assert all(t == CFG.pad_id for t in row[len(live):])
