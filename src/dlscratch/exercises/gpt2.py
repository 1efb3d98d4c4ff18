r"""Exercise checkers for chapter 27, "GPT-1 and GPT-2" (topic prefix ``gpt2.``).

The function checkers run the package's own tested code on seeded random inputs and compare:
:func:`~dlscratch.models.gpt2_hf.from_hf_gpt2_state_dict` for the split of ``c_attn`` and
:func:`~dlscratch.models.zero_shot.continuation_logprobs` for the label-word score. The number
checker builds the model on the ``meta`` device and counts. A wrong answer gets a hint. The
reference solutions live in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..models.gpt import GPT, GPTConfig
from ..models.gpt2_hf import from_hf_gpt2_state_dict
from ..models.zero_shot import continuation_logprobs
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["GPT2_MEDIUM", "check_split_c_attn", "check_medium_parameters", "check_continuation_logprob"]

# gpt2.medium_parameters: Hugging Face's gpt2-medium (tied head)
GPT2_MEDIUM = {"vocab_size": 50257, "n_positions": 1024, "n_layer": 24, "n_head": 16, "n_embd": 1024}


def _medium_count(tied: bool = True) -> int:
    c = GPT2_MEDIUM
    with torch.device("meta"):
        cfg = GPTConfig(vocab_size=c["vocab_size"], block_size=c["n_positions"], n_layer=c["n_layer"], n_head=c["n_head"],
                        n_embd=c["n_embd"], bias=True, activation="gelu_tanh", tie_embeddings=tied)
        return sum(p.numel() for p in GPT(cfg).parameters())


@exercise("gpt2.split_c_attn")
def check_split_c_attn(answer: Any) -> None:
    r"""``answer(weight, bias)``: Hugging Face's ``c_attn`` (Conv1D, ``(C, 3C)`` and ``(3C,)``) -> ``[(W_q, b_q), (W_k, b_k), (W_v, b_v)]``, Linear layout."""
    fn = require_callable(answer, "my_split_c_attn")
    gen = torch.Generator().manual_seed(27)
    for C, nh in ((8, 2), (12, 3), (4, 1)):
        w = torch.randn(C, 3 * C, generator=gen, dtype=torch.float64)
        b = torch.randn(3 * C, generator=gen, dtype=torch.float64)
        cfg = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=nh, n_embd=C, bias=True)
        state = {k: torch.zeros_like(v) for k, v in _hf_template(cfg).items()}
        state["h.0.attn.c_attn.weight"], state["h.0.attn.c_attn.bias"] = w, b
        ref = from_hf_gpt2_state_dict(state, cfg)
        want = [(ref[f"blocks.0.attn.{p}.weight"], ref[f"blocks.0.attn.{p}.bias"]) for p in ("q_proj", "k_proj", "v_proj")]
        got = fn(w.clone(), b.clone())
        if not isinstance(got, (list, tuple)) or len(got) != 3 or not all(isinstance(g, (list, tuple)) and len(g) == 2 for g in got):
            raise AssertionError("return three pairs [(W_q, b_q), (W_k, b_k), (W_v, b_v)].")
        if all(torch.equal(g[0], wt[0]) and torch.equal(g[1], wt[1]) for g, wt in zip(got, want)):
            continue
        if all(isinstance(g[0], torch.Tensor) and g[0].shape == wt[0].shape and torch.equal(g[0], wt[0].t()) for g, wt in zip(got, want)):
            raise AssertionError("each weight is transposed: Conv1D stores (in, out), nn.Linear (out, in). Transpose once, before or after the split.")
        if all(isinstance(g[0], torch.Tensor) and g[0].shape == wt[0].shape for g, wt in zip(got, want)) and torch.equal(got[0][0], want[2][0]):
            raise AssertionError("the order inside c_attn is queries, keys, values.")
        if isinstance(got[0][0], torch.Tensor) and got[0][0].shape != want[0][0].shape:
            raise AssertionError(f"W_q must be (C, C) = {tuple(want[0][0].shape)}, got {tuple(got[0][0].shape)}.")
        raise AssertionError(f"wrong values for C={C}: transpose the (C, 3C) weight to (3C, C), then cut rows [0, C), [C, 2C), [2C, 3C); cut the bias alike.")


def _hf_template(cfg: GPTConfig) -> dict[str, torch.Tensor]:
    r"""Zero tensors with the names and shapes of a one-block ``GPT2LMHeadModel`` state dict."""
    C, V, P = cfg.n_embd, cfg.vocab_size, cfg.block_size
    shapes = {"wte.weight": (V, C), "wpe.weight": (P, C), "ln_f.weight": (C,), "ln_f.bias": (C,),
              "h.0.ln_1.weight": (C,), "h.0.ln_1.bias": (C,), "h.0.ln_2.weight": (C,), "h.0.ln_2.bias": (C,),
              "h.0.attn.c_attn.weight": (C, 3 * C), "h.0.attn.c_attn.bias": (3 * C,),
              "h.0.attn.c_proj.weight": (C, C), "h.0.attn.c_proj.bias": (C,),
              "h.0.mlp.c_fc.weight": (C, 4 * C), "h.0.mlp.c_fc.bias": (4 * C,),
              "h.0.mlp.c_proj.weight": (4 * C, C), "h.0.mlp.c_proj.bias": (C,)}
    return {k: torch.zeros(s, dtype=torch.float64) for k, s in shapes.items()}


@exercise("gpt2.medium_parameters")
def check_medium_parameters(answer: Any) -> None:
    r"""Parameters of GPT-2 medium (``GPT2_MEDIUM``), the tied head counted once."""
    got = require_number(answer, "the number of parameters")
    c = GPT2_MEDIUM
    want = _medium_count()
    if got == want:
        return
    V, P, L, C = c["vocab_size"], c["n_positions"], c["n_layer"], c["n_embd"]
    if got == _medium_count(tied=False):
        raise AssertionError("the head is tied to the token embedding: count that (V, C) matrix once.")
    if got == want - P * C:
        raise AssertionError("add the position table W_P, (n_positions, C).")
    if got == want - L * 9 * C - 2 * C:
        raise AssertionError("add the biases and the LayerNorm shifts (GPT-2 has both).")
    if got == want - 2 * C:
        raise AssertionError("add the final LayerNorm (gain and shift).")
    if math.isclose(got, want, rel_tol=0.02):
        raise AssertionError(f"{got:,.0f} is close: per block 12 C^2 + 13 C (4 matrices in attention and MLP, their biases, 2 LayerNorms).")
    raise AssertionError(f"{got:,.0f} is not it: V C + n_positions C + L (12 C^2 + 13 C) + 2 C.")


@exercise("gpt2.continuation_logprob")
def check_continuation_logprob(answer: Any) -> None:
    r"""``answer(model, prompt, continuation)`` -> the float :math:`\log P(\text{continuation} \mid \text{prompt})`, summed over its tokens."""
    fn = require_callable(answer, "my_continuation_logprob")
    torch.manual_seed(27)
    model = GPT(GPTConfig(vocab_size=11, block_size=12, n_layer=1, n_head=2, n_embd=8)).double().eval()
    gen = torch.Generator().manual_seed(27)
    for n_prompt, n_cont in ((3, 1), (1, 3), (5, 4)):
        prompt = torch.randint(0, 11, (n_prompt,), generator=gen).tolist()
        cont = torch.randint(0, 11, (n_cont,), generator=gen).tolist()
        want = continuation_logprobs(model, [prompt], [cont])[0].item()
        with torch.no_grad():
            got = require_number(fn(model, list(prompt), list(cont)), "the log-probability")
        if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-4):
            continue
        if got > 0:
            raise AssertionError("a log-probability is at most 0: take log_softmax of the logits, not the logits.")
        with torch.no_grad():
            logp = model(torch.tensor([prompt + cont]))[0].log_softmax(-1)[0]  # (T, V)
        shifted = sum(logp[n_prompt + j, cont[j]].item() for j in range(n_cont - 1))
        if n_cont > 1 and math.isclose(got, shifted + logp[-1, cont[-1]].item(), rel_tol=1e-4, abs_tol=1e-4):
            raise AssertionError("off by one: the logits at position t predict token t + 1; continuation token j is read at n_prompt + j - 1.")
        if n_cont > 1 and math.isclose(got, logp[n_prompt - 1, cont[0]].item(), rel_tol=1e-4, abs_tol=1e-4):
            raise AssertionError("sum over every token of the continuation, not only the first.")
        raise AssertionError(
            f"wrong value for a prompt of {n_prompt} and a continuation of {n_cont} tokens: run the model on prompt + continuation "
            "and add log_softmax(logits)[n_prompt - 1 + j, continuation[j]] over j."
        )
