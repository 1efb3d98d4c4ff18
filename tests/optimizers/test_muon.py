"""Muon against torch.optim.Muon over ten steps, its Newton-Schulz iteration against the SVD, the split helper."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.optimizers import AdamW, Muon, muon_lr_scale, newton_schulz, split_muon_params
from dlscratch.optimizers.muon import NS_COEFFICIENTS

N_STEPS = 10


def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A bias-free float64 net whose weights are tall (12, 5), square (12, 12) and wide (3, 12)."""
    model = nn.Sequential(
        nn.Linear(5, 12, bias=False), nn.Tanh(), nn.Linear(12, 12, bias=False), nn.Tanh(), nn.Linear(12, 3, bias=False)
    ).double()
    x = torch.randn(32, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (32,))
    return model, x, y


def run_against_torch(kw: dict[str, Any], ns_dtype: torch.dtype | None, grouped: bool = False) -> float:
    """Train ours and torch's from the same weights; return the largest parameter gap over all steps."""
    ours_model, x, y = make_problem()
    ref_model = copy.deepcopy(ours_model)

    def params(model: nn.Module) -> Any:
        if not grouped:
            return model.parameters()
        return [{"params": [model[0].weight, model[4].weight], "lr": 0.05}, {"params": [model[2].weight]}]

    ours = Muon(params(ours_model), ns_dtype=ns_dtype, **kw)
    ref = torch.optim.Muon(params(ref_model), **kw)
    worst = 0.0
    for step in range(N_STEPS):
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        for (name, a), b in zip(ours_model.named_parameters(), ref_model.parameters()):
            worst = max(worst, (a - b).abs().max().item())
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=lambda m, s=step, n=name: f"step {s + 1}, {n}: {m}")
    assert not torch.equal(ours_model[2].weight, make_problem()[0][2].weight)  # the run moved the weights
    return worst


CASES = [
    dict(lr=0.02),  # torch's defaults otherwise: momentum 0.95, nesterov, weight_decay 0.1
    dict(lr=0.02, nesterov=False),
    dict(lr=0.02, weight_decay=0.0),
    dict(lr=0.02, weight_decay=0.0, nesterov=False, momentum=0.5),
    dict(lr=0.02, adjust_lr_fn="original"),
    dict(lr=0.01, adjust_lr_fn="match_rms_adamw", weight_decay=0.2),
    dict(lr=0.01, adjust_lr_fn="match_rms_adamw", nesterov=False, momentum=0.0),
    dict(lr=0.02, ns_steps=3, eps=1e-5, ns_coefficients=(2.0, -1.5, 0.5)),
]


@pytest.mark.parametrize("kw", CASES, ids=str)
def test_matches_torch_muon_in_bfloat16(kw: dict[str, Any]) -> None:
    """torch's own setting: float64 weights, the iteration in bfloat16 (same operations, same bits)."""
    assert run_against_torch(kw, torch.bfloat16) <= 1e-12


@pytest.mark.parametrize("kw", CASES, ids=str)
@pytest.mark.parametrize("grouped", [False, True])
def test_matches_torch_muon_in_float64(kw: dict[str, Any], grouped: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything in float64: torch.optim.Muon's hard-coded ``.bfloat16()`` is made a copy for this test."""
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())
    assert run_against_torch(kw, None, grouped=grouped) <= 1e-12


@pytest.mark.parametrize("fn", [None, "original", "match_rms_adamw"])
@pytest.mark.parametrize("shape", [(8, 2), (2, 8), (5, 5), (768, 3072)])
def test_lr_scale_matches_torch(fn: str | None, shape: tuple[int, int]) -> None:
    from torch.optim._muon import _adjust_lr

    assert muon_lr_scale(shape, fn) == _adjust_lr(1.0, fn, torch.Size(shape))
    assert muon_lr_scale((8, 2)) == 2.0 and muon_lr_scale((2, 8)) == 1.0
    assert muon_lr_scale((8, 2), "match_rms_adamw") == 0.2 * math.sqrt(8)


def test_state_dict_resume_equals_uninterrupted() -> None:
    model_a, x, y = make_problem()
    model_b = copy.deepcopy(model_a)

    def train(model: nn.Module, opt: torch.optim.Optimizer, n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

    train(model_a, Muon(model_a.parameters(), lr=0.02), 10)
    opt_b = Muon(model_b.parameters(), lr=0.02)
    train(model_b, opt_b, 4)
    saved = copy.deepcopy(opt_b.state_dict())
    opt_b = Muon(model_b.parameters(), lr=0.02)
    opt_b.load_state_dict(saved)
    train(model_b, opt_b, 6)
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)


def test_bfloat16_buffer_stays_the_running_average() -> None:
    """torch 2.13 normalises a bfloat16 buffer in place when nesterov=False; ours keeps the average."""
    p = nn.Parameter(torch.randn(4, 6, dtype=torch.bfloat16))
    opt = Muon([p], lr=0.02, momentum=0.9, nesterov=False)
    expected = torch.zeros(4, 6, dtype=torch.bfloat16)
    for _ in range(3):
        p.grad = torch.randn(4, 6, dtype=torch.bfloat16)
        expected.lerp_(p.grad, 0.1)
        opt.step()
    assert torch.equal(opt.state[p]["momentum_buffer"], expected)


# --- the Newton-Schulz iteration -------------------------------------------------------------

SHAPES = [(16, 32), (32, 16), (24, 24), (1, 9), (9, 1), (64, 128)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_newton_schulz_is_the_scalar_quintic_on_the_singular_values(shape: tuple[int, int]) -> None:
    """An independent formulation: U diag(p(sigma / ||G||_F)) V^T with p the quintic applied 5 times."""
    G = torch.randn(shape, dtype=torch.float64)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    s = S / G.norm()
    a, b, c = NS_COEFFICIENTS
    for _ in range(5):
        s = a * s + b * s**3 + c * s**5
    torch.testing.assert_close(newton_schulz(G), U @ torch.diag(s) @ Vh, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype, band", [(None, (0.68, 1.21)), (torch.bfloat16, (0.64, 1.25))], ids=["f64", "bf16"])
@pytest.mark.parametrize("shape", [(16, 32), (32, 16), (64, 128), (8, 200)], ids=str)
def test_newton_schulz_singular_values_land_in_the_band(
    shape: tuple[int, int], dtype: torch.dtype | None, band: tuple[float, float]
) -> None:
    G = torch.randn(shape, dtype=torch.float64)
    assert torch.linalg.svdvals(G).min() / G.norm() >= 0.002  # the band's precondition (see docstring)
    O = newton_schulz(G, dtype=dtype)
    assert O.dtype == (dtype or torch.float64) and O.shape == G.shape
    sv = torch.linalg.svdvals(O.double())
    assert band[0] <= sv.min() and sv.max() <= band[1], (sv.min().item(), sv.max().item())
    # ... and it is far closer to the polar factor U V^T than the normalised input is
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    polar = U @ Vh
    rel = lambda X: ((X.double() - polar).norm() / polar.norm()).item()  # noqa: E731
    assert rel(O) < 0.25 and rel(O) < 0.5 * rel(G / G.norm()), (rel(O), rel(G / G.norm()))


@pytest.mark.parametrize("shape", [(16, 32), (32, 16), (20, 20)], ids=str)
def test_newton_schulz_with_convergent_coefficients_reaches_the_polar_factor(shape: tuple[int, int]) -> None:
    """With the classical quintic (15/8, -10/8, 3/8) the iteration converges to U V^T."""
    G = torch.randn(shape, dtype=torch.float64)
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    O = newton_schulz(G, steps=60, coefficients=(15 / 8, -10 / 8, 3 / 8))
    torch.testing.assert_close(O, U @ Vh, rtol=0, atol=1e-10)


def test_newton_schulz_leaves_its_input_alone_and_matches_torch() -> None:
    from torch.optim._muon import _zeropower_via_newtonschulz

    G = torch.randn(7, 3, dtype=torch.float64)
    before = G.clone()
    ours = newton_schulz(G, dtype=torch.bfloat16)
    assert torch.equal(G, before)
    assert torch.equal(ours, _zeropower_via_newtonschulz(G, NS_COEFFICIENTS, 5, 1e-7))


# --- bad input -------------------------------------------------------------------------------

BAD_OPTIONS = [
    (dict(lr=-0.1), "lr=-0.1"),
    (dict(lr=float("nan")), "lr=nan"),
    (dict(momentum=1.0), "momentum=1.0"),
    (dict(momentum=-0.5), "momentum=-0.5"),
    (dict(weight_decay=-0.01), "weight_decay=-0.01"),
    (dict(nesterov="yes"), "nesterov='yes'"),
    (dict(ns_coefficients=(3.0, -4.0)), "ns_coefficients=(3.0, -4.0)"),
    (dict(ns_steps=100), "ns_steps=100"),
    (dict(ns_steps=2.5), "ns_steps=2.5"),
    (dict(eps=-1e-7), "eps=-1e-07"),
    (dict(adjust_lr_fn="rms"), "adjust_lr_fn='rms'"),
    (dict(ns_dtype="bf16"), "ns_dtype='bf16'"),
]


@pytest.mark.parametrize("kw, needle", BAD_OPTIONS, ids=str)
def test_bad_options_raise_value_error_naming_them(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError) as info:
        Muon(make_problem()[0].parameters(), **kw)
    assert needle in str(info.value), str(info.value)


def test_non_matrix_parameters_are_refused_naming_their_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        Muon([nn.Parameter(torch.zeros(7))])
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        Muon([nn.Parameter(torch.zeros(3, 3)), nn.Parameter(torch.zeros(2, 3, 4))])
    opt = Muon([nn.Parameter(torch.zeros(3, 3))])
    with pytest.raises(ValueError, match=r"shape \(\)"):
        opt.add_param_group({"params": nn.Parameter(torch.tensor(1.0))})
    assert len(opt.param_groups) == 1  # the bad group was not added
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        newton_schulz(torch.zeros(5))
    with pytest.raises(ValueError, match="steps=-1"):
        newton_schulz(torch.zeros(2, 2), steps=-1)


# --- the Muon / AdamW split, and training ----------------------------------------------------


def test_split_on_gpt_gives_muon_the_hidden_matrices_only() -> None:
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=8))
    muon_params, adamw_params = split_muon_params(model)
    names = {id(p): n for n, p in model.named_parameters()}
    muon_names = sorted(names[id(p)] for p in muon_params)
    assert muon_names == sorted(
        f"blocks.{i}.{m}.weight"
        for i in range(2)
        for m in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.up", "mlp.down")
    )
    assert {names[id(p)] for p in adamw_params} >= {"wte.weight", "wpe.weight", "norm_f.weight"}
    assert len(muon_params) + len(adamw_params) == len(list(model.parameters()))  # each once
    assert all(p.ndim == 2 for p in muon_params)


def test_split_excludes_a_tied_head_and_takes_a_predicate() -> None:
    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(10, 6)
            self.hidden = nn.Linear(6, 6)
            self.out = nn.Linear(6, 10, bias=False)
            self.out.weight = self.tok.weight  # tied: an embedding, not a hidden matrix

    m = Tiny()
    muon_params, adamw_params = split_muon_params(m)
    assert [id(p) for p in muon_params] == [id(m.hidden.weight)]
    assert [id(p) for p in adamw_params] == [id(m.tok.weight), id(m.hidden.bias)]
    seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    muon_params, _ = split_muon_params(seq, exclude=lambda name: name == "4")
    assert [id(p) for p in muon_params] == [id(seq[0].weight), id(seq[2].weight)]
    muon_params, _ = split_muon_params(seq, exclude=("0", "4"))
    assert [id(p) for p in muon_params] == [id(seq[2].weight)]


def train_mlp(use_muon: bool, steps: int = 60) -> tuple[float, float]:
    """A small MLP on a fixed teacher-labelled batch: hidden matrices with Muon, the rest with AdamW."""
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x @ torch.randn(10, 4) + 0.5 * torch.tanh(x @ torch.randn(10, 4))).argmax(-1)
    model = nn.Sequential(nn.Linear(10, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 4))
    muon_params, adamw_params = split_muon_params(model, exclude=lambda name: name == "4")
    opts: list[torch.optim.Optimizer] = [AdamW(adamw_params, lr=3e-3, weight_decay=0.0)]
    if use_muon:
        opts.append(Muon(muon_params, lr=0.02, weight_decay=0.0))
    else:
        for p in muon_params:
            p.requires_grad_(False)  # the baseline: hidden matrices frozen at their initial values
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        for opt in opts:
            opt.zero_grad()
        loss.backward()
        for opt in opts:
            opt.step()
    return losses[0], F.cross_entropy(model(x), y).item()


def test_muon_trains_an_mlp() -> None:
    first, last = train_mlp(use_muon=True)
    _, frozen = train_mlp(use_muon=False)
    assert last < 0.3 * first, (first, last)
    assert last < 0.7 * frozen, (last, frozen)  # Muon's hidden-layer updates do real work

