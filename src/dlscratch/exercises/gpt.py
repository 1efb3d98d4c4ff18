r"""Exercise checkers for chapter 17, "GPT" (topic prefix ``gpt.``).

The cache checker recomputes the answer with plain arithmetic; the others run the package's own
tested code: :func:`~dlscratch.models.sampling.top_k_filter` and
:func:`~dlscratch.models.sampling.top_p_filter`, and the loss of :class:`~dlscratch.models.gpt.GPT`.
A wrong answer gets a hint. The reference solutions live in the tests, not here and not on the
page.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..models.gpt import GPT, GPTConfig
from ..models.sampling import top_k_filter, top_p_filter
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "PARAMS_CONFIG",
    "FILTER_LOGITS",
    "FILTER_TOP_K",
    "FILTER_TOP_P",
    "INIT_CONFIG",
    "INIT_STD",
    "INIT_SHAPE",
    "check_cache_vs_weights",
    "check_filter_probs",
    "check_sequence_nll",
    "check_init_scale_loss",
]

# gpt.cache_vs_weights: nanoGPT's shakespeare_char model (no biases, LayerNorm gains only, tied head)
PARAMS_CONFIG = {"vocab_size": 65, "block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384}
# gpt.filter_probs: logits of a 6-token vocabulary, temperature 1, top-k then top-p
FILTER_LOGITS = (2.0, 1.0, 0.5, 3.0, -1.0, 0.0)
FILTER_TOP_K = 3
FILTER_TOP_P = 0.9
# gpt.init_scale_loss: this GPT, every weight matrix N(0, INIT_STD^2), random tokens of this shape
INIT_CONFIG = {"vocab_size": 65, "block_size": 64, "n_layer": 2, "n_head": 4, "n_embd": 128}
INIT_STD = 0.2
INIT_SHAPE = (16, 65)  # x = torch.randint(0, 65, INIT_SHAPE); inputs x[:, :-1], targets x[:, 1:]


def _params(c: dict[str, int]) -> int:
    V, T, L, C = (c[k] for k in ("vocab_size", "block_size", "n_layer", "n_embd"))
    per_block = 2 * C + 3 * C * C + C * C + 8 * C * C  # two gains, q k v, out_proj, MLP up and down
    return V * C + T * C + L * per_block + C  # wte (= the head), wpe, blocks, final gain


@exercise("gpt.cache_vs_weights")
def check_cache_vs_weights(answer: Any) -> None:
    r"""Cached positions of one sequence at which the K and V caches hold as many numbers as ``PARAMS_CONFIG``'s parameters."""
    got = require_number(answer, "the number of positions")
    L, C = PARAMS_CONFIG["n_layer"], PARAMS_CONFIG["n_embd"]
    N = _params(PARAMS_CONFIG)
    want = N / (2 * L * C)  # each cached position holds a key and a value of C numbers in each of L layers
    if abs(got - want) <= 1:
        return
    if abs(got - 2 * want) <= 2:
        raise AssertionError("the cache holds keys *and* values: 2 x L x C numbers per position.")
    if abs(got - (N - PARAMS_CONFIG["block_size"] * C) / (2 * L * C)) <= 1:
        raise AssertionError("count all the parameters, the position table included.")
    if abs(got - want * PARAMS_CONFIG["n_head"]) <= PARAMS_CONFIG["n_head"]:
        raise AssertionError("the heads split the C channels: a position caches n_head x head size = C numbers per layer.")
    if abs(got - 4 * want) <= 4 or abs(got - want / 4) <= 1:
        raise AssertionError("both are float32, so the bytes per number cancel: compare numbers with numbers.")
    raise AssertionError(
        "count the parameters with eq. (params), and the cache per position with eq. (kvcost): 2 L C numbers "
        "for B = 1; divide."
    )


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




def _nll_model() -> GPT:
    with torch.random.fork_rng():  # leave the reader's random stream alone
        torch.manual_seed(17)
        model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=16)).double().eval()
    with torch.no_grad():  # sharper than at initialisation, so that a shift or a mean shows
        model.wte.weight.mul_(20)
    return model


@exercise("gpt.sequence_nll")
def check_sequence_nll(answer: Any) -> None:
    r"""``answer(model, ids)`` = per row, the total NLL (nats) of tokens 1..N-1 given their prefixes.

    Compared with the model's own loss (``model(x, y)[1]``, a mean) times the number of
    predictions, row by row, on a seeded small GPT and random token ids.
    """
    fn = require_callable(answer, "sequence_nll(model, ids)")
    model = _nll_model()
    gen = torch.Generator().manual_seed(18)
    for B, N in ((3, 16), (2, 5), (4, 2), (2, 17)):
        ids = torch.randint(0, model.config.vocab_size, (B, N), generator=gen)
        with torch.no_grad():
            want = torch.stack([model(ids[b : b + 1, :-1], ids[b : b + 1, 1:])[1] * (N - 1) for b in range(B)])
            got = fn(model, ids.clone())
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a tensor of shape (B,) = ({B},), got {type(got).__name__}.")
        if tuple(got.shape) != (B,):
            raise AssertionError(f"return one total per sequence, shape (B,) = ({B},); got {tuple(got.shape)}.")
        got = got.detach().to(torch.float64)
        if torch.allclose(got, want, atol=1e-6, rtol=1e-6):
            continue
        if torch.allclose(got, want / (N - 1), atol=1e-6, rtol=1e-6):
            raise AssertionError("that is the mean per token; the total sums over the N - 1 predictions.")
        if torch.allclose(got, want / math.log(2), atol=1e-6, rtol=1e-6):
            raise AssertionError("give it in nats, with the natural logarithm (log_softmax), not in bits.")
        with torch.no_grad():
            logits = model(ids)[0] if N <= model.config.block_size else None
        if logits is not None:
            unshifted = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none").sum(1)
            if torch.allclose(got, unshifted, atol=1e-6, rtol=1e-6):
                raise AssertionError("the logits at position t predict token t + 1: feed ids[:, :-1] and score ids[:, 1:].")
        raise AssertionError(
            f"wrong totals for ids of shape {(B, N)}: logits = model(ids[:, :-1])[0], then minus the log-softmax "
            "at each target ids[:, 1:], summed over positions."
        )


def _init_loss(seed: int, std: float = INIT_STD) -> float:
    with torch.random.fork_rng():  # leave the reader's random stream alone
        torch.manual_seed(seed)
        model = GPT(GPTConfig(**INIT_CONFIG)).eval()
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() >= 2:  # the embeddings (one of them the head) and every linear weight
                    torch.nn.init.normal_(p, std=std)
            x = torch.randint(0, INIT_CONFIG["vocab_size"], INIT_SHAPE)
            return model(x[:, :-1], x[:, 1:])[1].item()


@exercise("gpt.init_scale_loss")
def check_init_scale_loss(answer: Any) -> None:
    r"""The loss at initialisation when every weight matrix is drawn with std ``INIT_STD`` = 0.2 (ten times GPT-2's)."""
    got = require_number(answer, "the loss")
    want = sum(_init_loss(s) for s in range(2)) / 2  # one draw varies by about 1 %
    if math.isclose(got, want, rel_tol=0.05):
        return
    V = INIT_CONFIG["vocab_size"]
    if abs(got - math.log(V)) < 0.1:
        raise AssertionError(
            f"ln V = {math.log(V):.2f} is the loss of a uniform prediction, what std 0.02 gives. Larger weights make "
            "larger logits: a random model that is confident, and confidently wrong. Measure it."
        )
    if math.isclose(got, _init_loss(0, std=1.0), rel_tol=0.1):
        raise AssertionError("that looks like std 1; the exercise draws the weights with std 0.2.")
    raise AssertionError(
        f"measure it: GPT(GPTConfig(**INIT_CONFIG)), torch.nn.init.normal_(p, std={INIT_STD}) for every parameter "
        f"with p.dim() >= 2, x = torch.randint(0, {V}, {INIT_SHAPE}), loss = model(x[:, :-1], x[:, 1:])[1]."
    )
