"""Mamba: equal to transformers' MambaForCausalLM (logits, every gradient, cached decoding), the state, bad input."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

import pytest
import torch

from dlscratch.data import selective_copying
from dlscratch.models.mamba import Mamba, MambaConfig, TimeInvariantMixer, hf_config, to_hf_state_dict

transformers = pytest.importorskip("transformers")
from transformers.models.mamba import modeling_mamba  # noqa: E402

SMALL = MambaConfig(vocab_size=13, block_size=16, n_layer=2, d_model=16, d_state=4, d_conv=3)


def randomise(m: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # norm gains away from 1, D away from 1: a mix-up would show
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


@contextlib.contextmanager
def hf_in_float64() -> Iterator[None]:
    """transformers' Mamba casts to float32 in several places (``.float()``, RMSNorm): keep float64 as float64."""
    float_, norm_ = torch.Tensor.float, modeling_mamba.MambaRMSNorm.forward

    def keep64(self: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        return self if self.dtype == torch.float64 else float_(self, *a, **k)

    def rmsnorm(self: modeling_mamba.MambaRMSNorm, h: torch.Tensor) -> torch.Tensor:
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    torch.Tensor.float, modeling_mamba.MambaRMSNorm.forward = keep64, rmsnorm
    try:
        yield
    finally:
        torch.Tensor.float, modeling_mamba.MambaRMSNorm.forward = float_, norm_


def twins(cfg: MambaConfig) -> tuple[Mamba, torch.nn.Module]:
    ours = randomise(Mamba(cfg).double())
    hf = transformers.MambaForCausalLM(transformers.MambaConfig(**hf_config(cfg))).double()
    hf.load_state_dict(to_hf_state_dict(ours))
    return ours, hf


@pytest.mark.parametrize("cfg", [SMALL, replace(SMALL, n_layer=1, d_model=9, expand=1, d_conv=1, dt_rank=3, tie_embeddings=False),
                                 replace(SMALL, bias=True, conv_bias=False, scan="sequential")],
                         ids=["small", "odd-width-untied-k1", "biases-sequential"])
@pytest.mark.parametrize("T", [1, 11])
def test_equals_hf_logits_and_every_gradient(cfg: MambaConfig, T: int) -> None:
    ours, hf = twins(cfg)
    x, y = torch.randint(0, cfg.vocab_size, (3, T)), torch.randint(0, cfg.vocab_size, (3, T))
    with hf_in_float64():
        logits, loss = ours(x, y)
        theirs = hf(input_ids=x).logits
        torch.testing.assert_close(logits, theirs, atol=1e-12, rtol=1e-10)
        loss.backward()
        torch.nn.functional.cross_entropy(theirs.flatten(0, 1), y.flatten()).backward()
    hf_grads = {k: p.grad for k, p in hf.named_parameters()}
    ours_grads = {k if k.startswith("lm_head.") else f"backbone.{k}": p.grad for k, p in ours.named_parameters()}
    if not cfg.tie_embeddings:
        assert ours_grads.keys() == hf_grads.keys()
    for name, g in ours_grads.items():
        if g is None and name.endswith("A_log") and T == 1:  # one step from h_0 = 0 never multiplies by A_bar
            g = torch.zeros_like(hf_grads[name])
        assert g is not None, name
        torch.testing.assert_close(g, hf_grads[name], atol=1e-12, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


def test_cached_decoding_equals_the_full_pass_and_hf_cache() -> None:
    ours, hf = twins(SMALL)
    x = torch.randint(0, SMALL.vocab_size, (2, 12))
    with hf_in_float64(), torch.no_grad():
        full = hf(input_ids=x).logits
        out = hf(input_ids=x[:, :5], use_cache=True)
        hf_steps = [out.logits]
        for t in range(5, 12):
            out = hf(input_ids=x[:, t : t + 1], cache_params=out.cache_params, use_cache=True)
            hf_steps.append(out.logits)
        state = ours.new_state(2)
        sizes = [sum(s.nbytes() for s in state)]
        steps = [ours(x[:, :5], state=state)[0]]
        for t in range(5, 12):
            steps.append(ours(x[:, t : t + 1], state=state)[0])
            sizes.append(sum(s.nbytes() for s in state))
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(torch.cat(hf_steps, 1), full, atol=1e-12, rtol=1e-10)
    assert len(set(sizes)) == 1  # constant memory per token


def test_generate_with_the_state_equals_recomputation() -> None:
    m = Mamba(SMALL).eval()
    prompt = torch.randint(0, SMALL.vocab_size, (2, 3))
    a = m.generate(prompt, 10, temperature=1.0, generator=torch.Generator().manual_seed(0))
    b = m.generate(prompt, 10, temperature=1.0, generator=torch.Generator().manual_seed(0), use_cache=False)
    assert torch.equal(a, b) and a.shape == (2, 13)


def test_causal() -> None:
    m = Mamba(SMALL).double()
    x = torch.randint(0, SMALL.vocab_size, (2, 10))
    x2 = x.clone()
    x2[:, 6:] = (x2[:, 6:] + 1) % SMALL.vocab_size
    torch.testing.assert_close(m(x)[0][:, :6], m(x2)[0][:, :6])


def test_time_invariant_variant_ignores_the_content_in_its_ssm() -> None:
    m = Mamba(replace(SMALL, selective=False))
    mixer = m.layers[0].mixer
    assert isinstance(mixer, TimeInvariantMixer) and not hasattr(mixer, "x_proj")
    x = torch.randn(2, 5, mixer.config.d_inner)
    delta, B, C = mixer.ssm_params(x)
    assert torch.equal(B, mixer.B) and torch.equal(C, mixer.C) and delta.shape == (mixer.config.d_inner,)
    x, y = selective_copying(4, 12, 3, 4, generator=torch.Generator().manual_seed(0))
    _, loss = m(x, y)
    loss.backward()  # every parameter of the variant is used
    assert all(p.grad is not None for p in m.parameters())
    with pytest.raises(ValueError, match="selective=True"):
        hf_config(replace(SMALL, selective=False))


def test_init_as_mamba() -> None:
    m = Mamba(replace(SMALL, d_model=32, dt_min=0.01, dt_max=0.05))
    mixer = m.layers[0].mixer
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 0.01 - 1e-6 and dt.max() <= 0.05 + 1e-6
    torch.testing.assert_close(-torch.exp(mixer.A_log[0]), -torch.arange(1.0, 5.0))
    assert m.lm_head.weight is m.embeddings.weight


@pytest.mark.parametrize("kw, words", [({"d_state": 0}, "state_size=0"), ({"d_state": -2}, "state_size=-2"),
                                       ({"d_model": 0}, "d_model"), ({"scan": "fft"}, "'fft'"),
                                       ({"dt_min": 0.5, "dt_max": 0.1}, "dt_min=0.5, dt_max=0.1"), ({"dt_rank": -1}, "dt_rank=-1")])
def test_bad_config(kw: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        MambaConfig(**kw)  # type: ignore[arg-type]


def test_selective_copying_data() -> None:
    x, y = selective_copying(5, 10, 4, 3, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 14)
    for row_x, row_y in zip(x, y):
        data = row_x[:10][row_x[:10] > 0]
        assert torch.equal(row_y[10:], data) and bool((row_x[10:] == 4).all()) and bool((row_y[:10] == -100).all())
    with pytest.raises(ValueError, match="n_tokens=5 .* seq_len=4"):
        selective_copying(1, 4, 5, 3)
