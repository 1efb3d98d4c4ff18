r"""Exercise checkers for chapter 17, "GPT" (topic prefix ``gpt.``).

The number checkers recompute the answer with plain arithmetic; the sampling checker runs the
package's own tested :func:`~dlscratch.models.sampling.top_k_filter` and
:func:`~dlscratch.models.sampling.top_p_filter`. A wrong answer gets a hint. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..models.sampling import top_k_filter, top_p_filter
from .answers import require_number
from .core import exercise

__all__ = [
    "PARAMS_CONFIG",
    "CACHE_CONFIG",
    "FILTER_LOGITS",
    "FILTER_TOP_K",
    "FILTER_TOP_P",
    "GENERATE_TOKENS",
    "check_num_parameters",
    "check_kv_cache_bytes",
    "check_filter_probs",
    "check_recompute_ratio",
]

# gpt.num_parameters: nanoGPT's shakespeare_char model (no biases, LayerNorm gains only, tied head)
PARAMS_CONFIG = {"vocab_size": 65, "block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384}
# gpt.kv_cache_bytes: that model, 8 sequences, the whole context cached, float32
CACHE_CONFIG = {"n_layer": 6, "n_head": 6, "n_embd": 384, "batch_size": 8, "context": 256, "bytes_per_number": 4}
# gpt.filter_probs: logits of a 6-token vocabulary, temperature 1, top-k then top-p
FILTER_LOGITS = (2.0, 1.0, 0.5, 3.0, -1.0, 0.0)
FILTER_TOP_K = 3
FILTER_TOP_P = 0.9
# gpt.recompute_ratio: tokens generated from a one-token prompt (all within the context)
GENERATE_TOKENS = 512


@exercise("gpt.num_parameters")
def check_num_parameters(answer: Any) -> None:
    r"""Total parameters of ``PARAMS_CONFIG``: embeddings, blocks, final LayerNorm, the tied head once."""
    got = require_number(answer, "the number of parameters")
    V, T, L, C = (PARAMS_CONFIG[k] for k in ("vocab_size", "block_size", "n_layer", "n_embd"))
    per_block = 0
    per_block += C  # norm1 gain
    per_block += 3 * C * C  # q_proj, k_proj, v_proj: C -> C each
    per_block += C * C  # attention out_proj
    per_block += C  # norm2 gain
    per_block += C * 4 * C + 4 * C * C  # MLP up and down
    want = V * C + T * C + L * per_block + C  # wte (= lm_head), wpe, blocks, norm_f
    if got == want:
        return
    if got == want - T * C:
        raise AssertionError("that is the count without the position table (what nanoGPT prints); include wpe.")
    if got == want + V * C:
        raise AssertionError("the head shares its weight with the token embedding: count that (V, C) matrix once.")
    if got > want and (got - want) % C == 0 and got - want <= L * 11 * C + C:
        raise AssertionError("this recipe has no biases: LayerNorm has a gain only and Linear layers have no bias.")
    if got == want - L * 2 * C - C:
        raise AssertionError("the LayerNorm gains are parameters too (two per block, one final).")
    raise AssertionError(
        f"{got:,.0f} is not it. Per block: two LayerNorm gains (C each), the query, key and value maps "
        "(3 x C x C), the output projection (C x C) and the MLP (C x 4C and 4C x C); add wte, wpe and the final LayerNorm."
    )


@exercise("gpt.kv_cache_bytes")
def check_kv_cache_bytes(answer: Any) -> None:
    r"""Bytes of the K and V caches of ``CACHE_CONFIG`` (every layer, every head, the whole context)."""
    got = require_number(answer, "the size in bytes")
    c = CACHE_CONFIG
    per_token = 2 * c["n_layer"] * c["n_embd"]  # K and V, all layers; heads x head size = n_embd
    want = per_token * c["batch_size"] * c["context"] * c["bytes_per_number"]
    if got == want:
        return
    if got == want / 2:
        raise AssertionError("the cache holds keys *and* values: two tensors per layer.")
    if got == want / c["bytes_per_number"]:
        raise AssertionError("that counts numbers; a float32 takes 4 bytes.")
    if got == want / c["n_head"]:
        raise AssertionError("every head caches its own keys and values: n_head x head size = n_embd per token.")
    if got == want / c["n_layer"]:
        raise AssertionError("every layer has its own cache.")
    if got == want / c["batch_size"]:
        raise AssertionError("each of the 8 sequences needs its own cache.")
    raise AssertionError(f"{got:,.0f} bytes is not it: count layers x (K and V) x batch x positions x n_embd x bytes.")


def _probs(logits: torch.Tensor) -> list[float]:
    return torch.softmax(logits, dim=-1).tolist()


@exercise("gpt.filter_probs")
def check_filter_probs(answer: Any) -> None:
    r"""The sampling distribution over the 6 tokens after top-k = 3, then top-p = 0.9 (temperature 1)."""
    try:
        got = [float(v) for v in answer]
    except (TypeError, ValueError) as err:
        raise AssertionError(f"give a list of {len(FILTER_LOGITS)} probabilities, got {answer!r}.") from err
    if len(got) != len(FILTER_LOGITS):
        raise AssertionError(f"give one probability per token: {len(FILTER_LOGITS)} numbers, got {len(got)}.")
    z = torch.tensor(FILTER_LOGITS, dtype=torch.float64)
    top_k, top_p = top_k_filter(z, FILTER_TOP_K), top_p_filter(z, FILTER_TOP_P)
    want = _probs(top_p_filter(top_k, FILTER_TOP_P))  # the package's sampler: top-k, then top-p

    def close(a: list[float], b: list[float]) -> bool:
        return all(abs(x - y) <= 2e-3 for x, y in zip(a, b))

    if close(got, want):
        return
    if abs(sum(got) - 1.0) > 1e-2:
        raise AssertionError(f"your numbers sum to {sum(got):.4f}: renormalise over the tokens you keep.")
    if close(got, _probs(z)):
        raise AssertionError("that is the plain softmax: now drop the tokens top-k and top-p remove.")
    if close(got, _probs(top_k)):
        raise AssertionError(
            "that is the distribution after top-k alone (or after top-p applied first): apply top-p to the "
            "renormalised top-k distribution."
        )
    if close(got, _probs(top_k_filter(top_p, FILTER_TOP_K))):
        raise AssertionError("order matters: top-k first, then top-p on the distribution top-k left.")
    raise AssertionError(
        "not yet. Keep the 3 largest logits, take their softmax, sort it, keep tokens while the mass "
        "*before* them is below 0.9, then renormalise; give the result in vocabulary order (0 elsewhere)."
    )


@exercise("gpt.recompute_ratio")
def check_recompute_ratio(answer: Any) -> None:
    r"""Token positions run through the model without / with a KV cache, for ``GENERATE_TOKENS`` new tokens."""
    got = require_number(answer, "the ratio")
    without = with_cache = 0
    length = 1  # the one-token prompt
    for step in range(GENERATE_TOKENS):
        without += length  # the whole sequence again
        with_cache += length if step == 0 else 1  # the prompt once, then only the newest token
        length += 1
    want = without / with_cache
    if math.isclose(got, want, rel_tol=1e-9):
        return
    if math.isclose(got, without, rel_tol=1e-9):
        raise AssertionError(f"{without:,} is the count without the cache; divide by the count with it.")
    if abs(got - want) <= 2:
        raise AssertionError("close: check the first and last steps (the prompt has one token; the last step sees 512).")
    raise AssertionError(
        "not yet. Without the cache, step s runs the model on all s + 1 tokens so far; with it, on one token."
    )
