"""T5: equal to transformers' T5ForConditionalGeneration (float64, logits and every gradient), decoding, bad input."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from dlscratch.models.decoding import beam_search
from dlscratch.models.t5 import T5, T5Config, hf_config, to_hf_state_dict

transformers = pytest.importorskip("transformers")
from transformers.models.t5 import modeling_t5  # noqa: E402

CONFIGS = [
    T5Config(vocab_size=40, d_model=24, num_heads=3, d_kv=8, d_ff=40, num_layers=2, num_decoder_layers=3,
             relative_attention_num_buckets=8, relative_attention_max_distance=20),
    T5Config(vocab_size=33, d_model=20, num_heads=2, d_kv=7, d_ff=24, num_layers=1, num_decoder_layers=1,
             relative_attention_num_buckets=32, relative_attention_max_distance=128, pad_id=5, eos_id=3, bos_id=7),
]


@contextlib.contextmanager
def hf_in_float64() -> Iterator[None]:
    """transformers' T5LayerNorm computes the mean square in float32; compute it in the input's dtype."""
    saved = modeling_t5.T5LayerNorm.forward

    def rmsnorm(self: modeling_t5.T5LayerNorm, h: torch.Tensor) -> torch.Tensor:
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    modeling_t5.T5LayerNorm.forward = rmsnorm
    try:
        yield
    finally:
        modeling_t5.T5LayerNorm.forward = saved


def twins(cfg: T5Config) -> tuple[T5, torch.nn.Module]:
    ours = T5(cfg).double()
    with torch.no_grad():  # norm gains away from 1: a mix-up would show
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    hf_cfg = transformers.T5Config(**hf_config(cfg))
    hf_cfg._attn_implementation = "eager"
    hf = transformers.T5ForConditionalGeneration(hf_cfg).double().eval()
    hf.load_state_dict(to_hf_state_dict(ours))
    return ours.eval(), hf


def batch(cfg: T5Config, S: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    specials = {cfg.pad_id, cfg.eos_id, cfg.bos_id}
    ok = torch.tensor([i for i in range(cfg.vocab_size) if i not in specials])
    src = ok[torch.randint(len(ok), (3, S))]
    src[1, max(1, S // 2) :] = cfg.pad_id  # a padded source (never all padding)
    tgt = ok[torch.randint(len(ok), (3, T))]
    tgt[:, 0] = cfg.bos_id
    return src, tgt


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("S, T", [(9, 6), (1, 1), (150, 4)])
def test_equals_hf_logits_and_every_gradient(cfg: T5Config, S: int, T: int) -> None:
    ours, hf = twins(cfg)
    src, tgt = batch(cfg, S, T)
    with hf_in_float64():
        a = ours(src, tgt)
        b = hf(input_ids=src, attention_mask=(src != cfg.pad_id).long(), decoder_input_ids=tgt).logits
    torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    cot = torch.randn_like(a)
    (a * cot).sum().backward()
    (b * cot).sum().backward()
    ours_grads = {k: p.grad for k, p in to_hf_state_dict(ours).items()}
    hf_params = dict(hf.named_parameters())
    assert set(hf_params) <= set(ours_grads)
    for name, p in hf_params.items():
        assert p.grad is not None, name
        torch.testing.assert_close(ours_grads[name], p.grad, atol=1e-12, rtol=1e-10, msg=lambda m, n=name: f"{n}: {m}")
    assert len({id(p) for p in ours.parameters()}) == len(hf_params)  # the same parameters, one by one


def test_unscaled_attention_and_rescaled_tied_output() -> None:
    cfg = CONFIGS[0]
    model = T5(cfg).double().eval()
    src, tgt = batch(cfg, 8, 5)
    memory, pad = model.encode(src)
    h = model.decoder(model.shared(tgt), memory=memory, memory_pad=pad)
    torch.testing.assert_close(model(src, tgt), h @ model.shared.weight.T / cfg.d_model**0.5)
    attn = model.encoder.blocks[0].self_attn
    x = torch.randn(2, 5, cfg.d_model, dtype=torch.float64)
    q = attn.q(x).view(2, 5, cfg.num_heads, cfg.d_kv).transpose(1, 2)
    k = attn.k(x).view(2, 5, cfg.num_heads, cfg.d_kv).transpose(1, 2)
    v = attn.v(x).view(2, 5, cfg.num_heads, cfg.d_kv).transpose(1, 2)
    want = attn.o((q @ k.transpose(-1, -2)).softmax(-1).matmul(v).transpose(1, 2).reshape(2, 5, -1))  # no 1/sqrt(hs)
    torch.testing.assert_close(attn(x), want)


def test_decoder_is_causal_and_padding_is_ignored() -> None:
    cfg = CONFIGS[0]
    model = T5(cfg).double().eval()
    src, tgt = batch(cfg, 8, 6)
    base = model(src, tgt)
    changed = tgt.clone()
    changed[:, 4] = (changed[:, 4] + 1) % cfg.vocab_size
    torch.testing.assert_close(model(src, changed)[:, :4], base[:, :4])
    longer = torch.cat([src, torch.full((3, 5), cfg.pad_id)], dim=1)  # more padding changes nothing
    torch.testing.assert_close(model(longer, tgt), base)


def test_greedy_generation_is_beam_search_of_width_one() -> None:
    cfg = CONFIGS[1]
    model = T5(cfg).eval()
    src, _ = batch(cfg, 7, 2)
    greedy = model.generate(src, 6)
    beam, _ = beam_search(model._step, None, model.encode(src), 1, 6, vocab_size=cfg.vocab_size,
                          bos_id=cfg.bos_id, eos_id=cfg.eos_id, pad_id=cfg.pad_id)
    assert torch.equal(greedy, beam[:, : greedy.size(1)])
    assert model.generate(src, 6, beam_size=3).shape[0] == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(d_model=0), "d_model must be a positive integer"),
    (dict(num_heads=2.5), "num_heads must be a positive integer"),
    (dict(dropout_rate=1.0), r"dropout_rate must be in \[0, 1\)"),
    (dict(bos_id=0), "special ids must differ"),
    (dict(eos_id=500), "eos_id=500 is not a valid id"),
])
def test_bad_config_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        T5Config(**kwargs)
