"""Text-to-text helpers: the tokenizer's specials, encoding, the relative-step loop, exact match, bad input."""

from __future__ import annotations

import pytest
import torch

from dlscratch.models.t5 import T5, T5Config
from dlscratch.training.text2text import T5_SPECIALS, RelativeStepLR, encode_text2text, exact_match, sentinel_ids, t5_tokenizer, train_text2text

TEXT = "one two three four five six seven eight nine ten. fresh rotten! " * 20


@pytest.fixture(scope="module")
def tok():  # noqa: ANN201
    return t5_tokenizer(TEXT, vocab_size=300, num_sentinels=4)


def test_specials_and_encoding(tok) -> None:  # noqa: ANN001
    pad, eos, bos = (tok.special_tokens[s] for s in T5_SPECIALS)
    assert sentinel_ids(tok).tolist() == [tok.special_tokens[f"<extra_id_{i}>"] for i in range(4)]
    data = encode_text2text(tok, ["digits: one", "digits: two three four"], ["1", "234"], max_input=3)
    assert data.src.shape == (2, 4) and bool((data.src[:, 3] == eos).all())  # cut to 3 tokens, then </s>
    assert data.tgt_in[:, 0].tolist() == [bos, bos] and tok.decode(data.tgt_out[1, :-1].tolist()) == "234"
    assert data.tgt_out[0].tolist() == tok.encode("1") + [eos] + [pad] * (data.tgt_out.size(1) - 2)
    sub = data.take(torch.tensor([0]))
    assert sub.tgt_out.shape[1] == len(tok.encode("1")) + 1 and sub.pad_id == pad


def test_training_fits_a_tiny_task_and_exact_match_counts(tok) -> None:  # noqa: ANN001
    pad, eos, bos = (tok.special_tokens[s] for s in T5_SPECIALS)
    cfg = T5Config(vocab_size=tok.vocab_size, d_model=32, num_heads=2, d_kv=16, d_ff=64, num_layers=1, num_decoder_layers=1,
                   pad_id=pad, eos_id=eos, bos_id=bos)
    model = T5(cfg)
    inputs, outputs = ["say: one", "say: two"], ["fresh", "rotten"]
    data = encode_text2text(tok, inputs, outputs)
    losses = train_text2text(model, lambda step: (data.src, data.tgt_in, data.tgt_out), 60, 3e-2, pad_id=pad, warmup=5)
    assert losses[-1] < 0.1 * losses[0]
    acc, preds = exact_match(model, tok, data, outputs, max_len=6)
    assert acc == 1.0 and preds == outputs
    acc, _ = exact_match(model, tok, data, ["fresh", "fresh"], max_len=6, beam_size=2)
    assert acc == 0.5


def test_bad_input_is_refused(tok) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="num_sentinels must be a positive integer, got 0"):
        t5_tokenizer(TEXT, 300, num_sentinels=0)
    with pytest.raises(ValueError, match="need as many outputs as inputs.*got 2 and 1"):
        encode_text2text(tok, ["a", "b"], ["c"])
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        train_text2text(torch.nn.Linear(1, 1), lambda s: None, 0, 1e-3, pad_id=0)


def test_relative_step_sets_each_tensors_rate_from_its_own_rms() -> None:
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(1e-5 * torch.randn(5))]
    opt = torch.optim.AdamW([{"params": [w]} for w in weights], lr=0.1)
    sched = RelativeStepLR(opt, lambda t: 1.0 / (t + 1), min_scale=1e-3)
    for t in range(3):
        rms = [float(w.detach().square().mean().sqrt()) for w in weights]
        got = [g["lr"] for g in opt.param_groups]
        assert got == pytest.approx([0.1 / (t + 1) * max(1e-3, r) for r in rms])
        assert got[1] == pytest.approx(0.1 / (t + 1) * 1e-3)  # a tiny tensor gets the floor
        sum((w * torch.randn_like(w)).sum() for w in weights).backward()
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="one tensor per parameter group, got groups of \\[2\\]"):
        RelativeStepLR(torch.optim.AdamW(weights, lr=0.1), lambda t: 1.0)
