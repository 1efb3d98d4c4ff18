r"""Exercise checkers for chapter 14, "Tokenization" (topic prefix ``tok.``).

Every checker recomputes the answer independently (plain Python on bytes and strings, never the
package's tokenizers) and raises :class:`AssertionError` with a hint when the reader's answer
differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from .answers import require_callable
from .core import NotAttempted, exercise

__all__ = [
    "APPLY_MERGES",
    "APPLY_TEXT",
    "BYTES_TEXT",
    "check_apply_merges",
    "check_byte_tokens",
    "check_pair_counts",
    "check_merge",
]

# tok.apply_merges: these merges, learned in this order, applied to one pre-tokenized chunk
APPLY_MERGES = (("h", "e"), ("t", "h"), ("th", "e"), ("e", "r"), (" ", "the"), ("he", "r"))
APPLY_TEXT = " there"

# tok.byte_tokens: how many tokens the byte-level tokenizer without merges makes of this string
BYTES_TEXT = "naïve café: 東京 🙂"


def _apply_in_order(text: str, merges: tuple[tuple[str, str], ...]) -> list[str]:
    tokens = list(text)
    for a, b in merges:  # each merge once, in the learned order, left to right
        out, i = [], 0
        while i < len(tokens):
            if i + 1 < len(tokens) and tokens[i] == a and tokens[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(tokens[i])
                i += 1
        tokens = out
    return tokens


@exercise("tok.apply_merges")
def check_apply_merges(answer: Any) -> None:
    r"""The tokens of ``APPLY_TEXT`` after applying ``APPLY_MERGES`` in order, as a list of strings."""
    if not isinstance(answer, (list, tuple)) or not all(isinstance(t, str) for t in answer):
        raise AssertionError(f"give the tokens as a list of strings, e.g. [' ', 'th', 'ere'], got {answer!r}.")
    got = list(answer)
    want = _apply_in_order(APPLY_TEXT, APPLY_MERGES)
    if got == want:
        return
    if "".join(got) != APPLY_TEXT:
        raise AssertionError(f"the tokens must concatenate back to {APPLY_TEXT!r}; yours give {''.join(got)!r}.")
    if any(t not in {c for c in APPLY_TEXT} | {a + b for a, b in APPLY_MERGES} for t in got):
        raise AssertionError("every token must be a single character or the result of one of the merges.")
    reordered = _apply_in_order(APPLY_TEXT, APPLY_MERGES[1:] + APPLY_MERGES[:1])
    if got == reordered or "th" in got:
        raise AssertionError(
            "apply the merges in the order they were learned: ('h', 'e') comes first and uses up the 'h', "
            "so ('t', 'h') no longer finds a pair."
        )
    raise AssertionError("not quite: go through the merge list once, top to bottom, merging every adjacent occurrence.")


@exercise("tok.byte_tokens")
def check_byte_tokens(answer: Any) -> None:
    r"""The number of tokens of ``BYTES_TEXT`` with the 256 byte tokens and no merges."""
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise AssertionError(f"give a whole number of tokens, got {answer!r}.")
    want = len(BYTES_TEXT.encode("utf-8"))
    if answer == want:
        return
    if answer == len(BYTES_TEXT):
        raise AssertionError("that is the number of characters; a byte-level tokenizer sees UTF-8 bytes.")
    raise AssertionError(
        "count the UTF-8 bytes per character: 1 for ASCII (spaces and ':' included), 2 for 'ï' and 'é', "
        "3 for most CJK characters, 4 for emoji."
    )


def _pairs_reference(ids: list[int]) -> Counter:
    return Counter(zip(ids, ids[1:]))


@exercise("tok.pair_counts")
def check_pair_counts(answer: Any) -> None:
    r"""``answer(ids)`` returns a dict mapping each adjacent pair ``(a, b)`` to its count."""
    require_callable(answer, "get_pair_counts")
    rng = random.Random(7)
    cases = [[1, 2, 3, 1, 2], [7, 7, 7], [], [4], [5, 6, 5, 6, 5]]
    cases += [[rng.randrange(4) for _ in range(rng.randint(2, 30))] for _ in range(20)]
    for ids in cases:
        got = answer(list(ids))
        if got is None:
            raise NotAttempted
        want = _pairs_reference(ids)
        try:
            got_d = {tuple(k): v for k, v in dict(got).items() if v}
        except (TypeError, ValueError) as err:
            raise AssertionError(f"return a dict {{(a, b): count}}, got {got!r}.") from err
        if got_d == dict(want):
            continue
        if ids == [7, 7, 7] and got_d.get((7, 7)) == 1:
            raise AssertionError("pairs overlap when counting: [7, 7, 7] holds (7, 7) twice, at positions 0 and 1.")
        raise AssertionError(f"for ids = {ids} expected {dict(want)}, got {got_d}.")


@exercise("tok.merge")
def check_merge(answer: Any) -> None:
    r"""``answer(ids, pair, new_id)`` replaces each occurrence of ``pair``, left to right, no overlaps."""
    require_callable(answer, "merge")
    rng = random.Random(11)
    cases = [([1, 2, 3, 1, 2], (1, 2), 9), ([7, 7, 7], (7, 7), 9), ([7, 7, 7, 7], (7, 7), 9), ([], (1, 2), 9),
             ([1], (1, 2), 9), ([2, 1], (1, 2), 9), ([3, 1, 2], (1, 2), 4)]
    cases += [([rng.randrange(3) for _ in range(rng.randint(0, 25))], (rng.randrange(3), rng.randrange(3)), 99)
              for _ in range(30)]
    for ids, pair, new_id in cases:
        got = answer(list(ids), pair, new_id)
        if got is None:
            raise NotAttempted
        want, i = [], 0
        while i < len(ids):
            if tuple(ids[i : i + 2]) == pair:
                want.append(new_id)
                i += 2
            else:
                want.append(ids[i])
                i += 1
        if list(got) == want:
            continue
        if ids == [7, 7, 7]:
            raise AssertionError(
                f"merge([7, 7, 7], (7, 7), 9) should be [9, 7]: occurrences do not overlap, scan left to "
                f"right; got {list(got)}."
            )
        raise AssertionError(f"merge({ids}, {pair}, {new_id}) should be {want}, got {list(got)}.")
