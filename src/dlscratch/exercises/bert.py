r"""Exercise checkers for chapter 26, "BERT" (topic prefix ``bert.``).

The number checkers recompute the answer with plain arithmetic; the function checker runs the
package's own tested :func:`~dlscratch.models.bert_inputs.pack_pair` on seeded random inputs and
compares. A wrong answer gets a hint. The reference solutions live in the tests.
"""

from __future__ import annotations

import math
import random
from typing import Any

from ..models.bert_inputs import pack_pair
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["MASKING", "BASE_SIZES", "check_unchanged_targets", "check_base_parameters", "check_pack_pair"]

# bert.unchanged_targets: BERT's masking recipe
MASKING = {"p": 0.15, "mask_frac": 0.8, "random_frac": 0.1}
# bert.base_parameters: BERT-base (Devlin et al., 2019), the encoder with its pooler, no head
BASE_SIZES = {"vocab_size": 30522, "max_position": 512, "type_vocab_size": 2, "n_layer": 12, "n_embd": 768, "ffn_dim": 3072}


def _base_count(pooler: bool = True, token_types: bool = True, layer_norms: bool = True, biases: bool = True) -> int:
    c = BASE_SIZES
    C, F, L = c["n_embd"], c["ffn_dim"], c["n_layer"]
    embed = (c["vocab_size"] + c["max_position"] + (c["type_vocab_size"] if token_types else 0)) * C + (2 * C if layer_norms else 0)
    block = 4 * C * C + 2 * C * F + ((4 * C + F + C) if biases else 0) + (4 * C if layer_norms else 0)
    return embed + L * block + ((C * C + (C if biases else 0)) if pooler else 0)


@exercise("bert.unchanged_targets")
def check_unchanged_targets(answer: Any) -> None:
    r"""The expected share of ordinary tokens that carry the loss while the input shows them unchanged: :math:`p \cdot 0.1`."""
    got = require_number(answer, "the share of tokens")
    p, m, r = MASKING["p"], MASKING["mask_frac"], MASKING["random_frac"]
    want = p * (1 - m - r)
    if math.isclose(got, want, rel_tol=0.02, abs_tol=2e-4):
        return
    hints = {
        p: "that is every chosen token; only some of them are left as they were.",
        1 - m - r: "that is the share of the *chosen* tokens that are kept; the question asks for a share of all ordinary tokens.",
        p * m: "that is the share replaced by [MASK].",
        p * r: "that is the share replaced by a random token (which the input does not show unchanged, barring a draw of the same id).",
        p * (1 - m): "a random replacement changes the input (unless it draws the same id); count only the kept tokens.",
    }
    for value, hint in hints.items():
        if math.isclose(got, value, rel_tol=0.02, abs_tol=2e-4):
            raise AssertionError(hint)
    if math.isclose(got, 100 * want, rel_tol=0.02):
        raise AssertionError("give a fraction, not a percentage.")
    raise AssertionError(f"{got:g} is not it: a token is chosen with probability p, and a chosen token is kept with probability 1 - 0.8 - 0.1.")


@exercise("bert.base_parameters")
def check_base_parameters(answer: Any) -> None:
    r"""Parameters of BERT-base's encoder with its pooler (``BASE_SIZES``), the LayerNorms and biases included."""
    got = require_number(answer, "the number of parameters")
    want = _base_count()
    if got == want:
        return
    hints = {
        _base_count(pooler=False): "add the pooler: a C x C matrix and a bias on the [CLS] vector.",
        _base_count(token_types=False): "add the token-type (segment) embedding: type_vocab_size rows of C.",
        _base_count(layer_norms=False): "add the LayerNorms: one after the embeddings and two in every block, each with a gain and a shift.",
        _base_count(biases=False): "every linear map of BERT has a bias: four in attention, two in the FFN, one in the pooler.",
        want + BASE_SIZES["n_embd"] ** 2 + 3 * BASE_SIZES["n_embd"] + BASE_SIZES["vocab_size"]: "leave out the MLM head: the question asks for the encoder and its pooler.",
    }
    if got in hints:
        raise AssertionError(hints[got])
    if abs(got - want) / want < 0.05:
        raise AssertionError(f"{got:,.0f} is close but not exact: per block 4C^2 + 2CF for the matrices, 4C + F + C biases, 4C for two LayerNorms.")
    raise AssertionError(f"{got:,.0f} is not it: embeddings (V + positions + types) x C + 2C, L blocks, and the C x C pooler with its bias.")


@exercise("bert.pack_pair")
def check_pack_pair(answer: Any) -> None:
    r"""``answer(a, b, cls_id, sep_id, max_len)`` returns ``(ids, types)`` as :func:`~dlscratch.models.bert_inputs.pack_pair`."""
    fn = require_callable(answer, "my_pack_pair")
    rng = random.Random(26)
    cases = [([5, 6, 7], [8, 9], 12), ([1, 2, 3, 4], [5, 6, 7, 8], 7), (list(range(10, 30)), [40, 41], 9)]
    for _ in range(20):
        n_a, n_b = rng.randint(1, 15), rng.randint(1, 15)
        cases.append(([rng.randint(4, 99) for _ in range(n_a)], [rng.randint(4, 99) for _ in range(n_b)], rng.randint(5, 24)))
    for a, b, max_len in cases:
        want = pack_pair(a, b, cls_id=1, sep_id=2, max_len=max_len)
        got = fn(list(a), list(b), 1, 2, max_len)
        if not isinstance(got, tuple) or len(got) != 2:
            raise AssertionError(f"return a pair (ids, types), got {type(got).__name__}")
        ids, types = list(got[0]), list(got[1])
        if (ids, types) == (list(want[0]), list(want[1])):
            continue
        case = f"for a={a}, b={b}, max_len={max_len}"
        if len(ids) > max_len:
            raise AssertionError(f"{case}: {len(ids)} ids exceed max_len; shorten the longer segment one token at a time.")
        if ids == want[0]:
            raise AssertionError(f"{case}: the ids are right, the token types are not: 0 up to and including the first [SEP], 1 after it.")
        if ids[:1] != [1] or ids[-1:] != [2]:
            raise AssertionError(f"{case}: the result starts with [CLS] and ends with [SEP].")
        raise AssertionError(f"{case}: expected ids {want[0]}, got {ids}. Drop tokens from the end of the longer segment "
                             "(from b when they are equally long) until [CLS] a [SEP] b [SEP] fits.")
