r"""Byte-level byte-pair encoding (BPE), trained from scratch (chapter 14, "Tokenization").

Text is turned into UTF-8 bytes, so the 256 byte values are the base vocabulary and every string
can be encoded. Training repeatedly merges the most frequent adjacent pair of tokens into a new
token, as in Sennrich et al. (2016), on bytes, as in GPT-2 (Radford et al., 2019).
Pairs never cross the chunks of a pre-tokenization regex (so a word and the space before it may
merge, but a word and the following punctuation never do), and special tokens such as
``"<|endoftext|>"`` are atomic: they are cut out of the text before anything else.

Token ids: ``0..255`` are the bytes, ``256 + i`` is the token made by merge ``i``, and the special
tokens come last.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .base import EndOfTextSpecials

__all__ = ["GPT2_SPLIT_PATTERN", "ByteBPETokenizer", "pair_counts", "merge_pair", "train_merges"]

# GPT-2's pre-tokenization regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# written for the standard `re` module, which has no \p{...} classes: \p{L} (letters) becomes
# [^\W\d_] (word characters that are not decimal digits or "_"), \p{N} becomes \d (decimal digits).
# Differences: non-decimal numerals such as "²" or "Ⅻ" count as letters here, and combining marks
# (a decomposed "é") count as punctuation. Every character matches some branch, so the chunks
# always concatenate back to the text.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

_FORMAT = "dlscratch-byte-bpe"  # the "format" field of a saved tokenizer
_VERSION = 1

Pair = tuple[int, int]


def pair_counts(ids: Sequence[int], counts: dict[Pair, int] | None = None, weight: int = 1) -> dict[Pair, int]:
    r"""Count the adjacent pairs of ``ids`` (overlapping: ``[a, a, a]`` holds ``(a, a)`` twice).

    Args:
        ids: a token sequence.
        counts: a dict to add to (updated in place); a new one when omitted.
        weight: how much each occurrence adds (the number of times the sequence occurs).

    Returns:
        ``counts``, mapping each pair ``(ids[t], ids[t + 1])`` to its (weighted) count.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    r"""Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    Occurrences do not overlap: ``merge_pair([a, a, a], (a, a), n)`` is ``[n, a]``.
    """
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_merges(chunk_counts: Mapping[bytes, int], num_merges: int, *, verbose: bool = False) -> list[Pair]:
    r"""Learn up to ``num_merges`` BPE merges from pre-tokenized chunks and their counts.

    Each step merges the most frequent pair (ties: the smallest ``(a, b)``) into token
    ``256 + step``, where chunk :math:`w` occurs :math:`n_w` times and holds the pair
    :math:`c_{ab}(w)` times:

    .. math::

        (a^*, b^*) = \operatorname{arg\,max}_{(a, b)} \sum_w n_w \, c_{ab}(w) .

    Instead of recounting all pairs after every merge, the counts are updated
    incrementally: an index from each pair to the chunks containing it gives the few chunks a
    merge changes, only their pairs are re-counted, and a heap with lazy deletion finds the next
    most frequent pair. The result equals recounting from scratch at every step.

    Args:
        chunk_counts: each distinct chunk (as UTF-8 bytes) and how often it occurs.
        num_merges: how many merges to learn; training stops early if no pair is left.
        verbose: print every merge.

    Returns:
        The merges, in the order learned; merge ``i`` created token ``256 + i``.
    """
    words = [list(chunk) for chunk in chunk_counts]  # each distinct chunk as a list of token ids
    freqs = list(chunk_counts.values())
    stats: dict[Pair, int] = defaultdict(int)  # pair -> weighted count over all chunks
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> chunks that (may) contain it
    for w, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            stats[pair] += freqs[w]
            where[pair].add(w)
    heap = [(-count, pair) for pair, count in stats.items()]  # max-heap on count, then min pair
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < num_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        if stats.get(pair, 0) != -neg_count:
            continue  # a stale entry: this pair's count has changed since it was pushed
        new_id = 256 + len(merges)
        merges.append(pair)
        if verbose:
            print(f"merge {len(merges)}: {pair} -> {new_id} ({-neg_count} occurrences)")
        changed: set[Pair] = set()
        for w in where.pop(pair):
            ids = words[w]
            new = merge_pair(ids, pair, new_id)
            if len(new) == len(ids):
                continue  # the index was stale: this chunk no longer holds the pair
            f = freqs[w]
            for p in zip(ids, ids[1:]):  # take the chunk's old pairs out ...
                stats[p] -= f
                changed.add(p)
            for p in zip(new, new[1:]):  # ... and its new pairs in
                stats[p] += f
                changed.add(p)
                where[p].add(w)
            words[w] = new
        for p in changed:
            if stats[p] > 0:
                heapq.heappush(heap, (-stats[p], p))
            else:
                del stats[p]
        assert pair not in stats, "a merged pair survived the merge"
    return merges


class ByteBPETokenizer(EndOfTextSpecials):
    r"""A byte-level BPE tokenizer: pre-tokenization regex, learned merges, atomic special tokens.

    Build one with :meth:`train` (or :meth:`load`); the constructor only stores its arguments.

    Args:
        merges: the learned pairs, in order; merge ``i`` makes token ``256 + i`` and may only use
            tokens that exist before it.
        pattern: the pre-tokenization regex (standard :mod:`re` syntax); pairs never cross chunks.
        special_tokens: strings that are always one token each, with ids after the merges.
    """

    def __init__(
        self, merges: Sequence[Pair], pattern: str = GPT2_SPLIT_PATTERN, special_tokens: Sequence[str] = ()
    ) -> None:
        self.merges: list[Pair] = [(int(a), int(b)) for a, b in merges]
        vocab = [bytes([i]) for i in range(256)]
        for i, (a, b) in enumerate(self.merges):
            if not (0 <= a < 256 + i and 0 <= b < 256 + i):
                raise ValueError(f"merge {i} = {(a, b)} uses a token that does not exist yet (ids < {256 + i})")
            vocab.append(vocab[a] + vocab[b])
        self.pattern = pattern
        try:
            self._split_re = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"invalid pre-tokenization pattern {pattern!r}: {err}") from err
        specials = list(special_tokens)
        if len(set(specials)) != len(specials) or any(not isinstance(s, str) or not s for s in specials):
            raise ValueError(f"special tokens must be distinct non-empty strings, got {specials!r}")
        self.special_tokens: dict[str, int] = {s: len(vocab) + i for i, s in enumerate(specials)}
        self._vocab: list[bytes] = vocab + [s.encode("utf-8") for s in specials]  # id -> bytes
        self._ranks: dict[Pair, int] = {pair: 256 + i for i, pair in enumerate(self.merges)}  # pair -> new id
        longest_first = sorted(specials, key=len, reverse=True)  # "<|a|>b" must win over "<|a|>"
        self._special_re = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")") if specials else None
        self._cache: dict[str, list[int]] = {}  # chunk -> ids, filled by encode

    @property
    def vocab_size(self) -> int:
        r"""The number of token ids: 256 bytes + merges + special tokens."""
        return len(self._vocab)

    def token_bytes(self, token_id: int) -> bytes:
        r"""The bytes token ``token_id`` stands for."""
        if not 0 <= token_id < len(self._vocab):
            raise ValueError(f"token id {token_id} is outside the vocabulary (0..{len(self._vocab) - 1})")
        return self._vocab[token_id]

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        *,
        pattern: str = GPT2_SPLIT_PATTERN,
        special_tokens: Sequence[str] = (),
        verbose: bool = False,
    ) -> ByteBPETokenizer:
        r"""Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        The text is cut at the special tokens (which are removed: no merge ever spans or contains
        one), each piece is split by ``pattern``, and the distinct chunks are counted once; the
        merges are then learned by :func:`train_merges`. Training is deterministic, so training
        to a smaller size gives exactly the first merges of a larger run (see :meth:`truncate`).

        Raises:
            ValueError: if ``vocab_size`` is below 256 + the number of special tokens.
        """
        if vocab_size < 256 + len(special_tokens):
            raise ValueError(
                f"vocab_size={vocab_size} is too small: 256 byte tokens + {len(special_tokens)} special "
                f"tokens need at least {256 + len(special_tokens)}"
            )
        tok = cls([], pattern, special_tokens)
        chunks: Counter[str] = Counter()
        for piece, special_id in tok._pieces(text, allow_special=True):
            if special_id is None:  # special tokens are dropped from the training text
                chunks.update(tok._split(piece))
        chunk_counts = {c.encode("utf-8"): n for c, n in chunks.items()}
        merges = train_merges(chunk_counts, vocab_size - 256 - len(special_tokens), verbose=verbose)
        return cls(merges, pattern, special_tokens)

    def truncate(self, vocab_size: int) -> ByteBPETokenizer:
        r"""The tokenizer with only the first ``vocab_size - 256 - len(special_tokens)`` merges."""
        n = vocab_size - 256 - len(self.special_tokens)
        if not 0 <= n <= len(self.merges):
            raise ValueError(f"vocab_size={vocab_size} must lie in {256 + len(self.special_tokens)}..{self.vocab_size}")
        return ByteBPETokenizer(self.merges[:n], self.pattern, list(self.special_tokens))

    # ------------------------------------------------------------------ encoding
    def _pieces(self, text: str, allow_special: bool) -> list[tuple[str, int | None]]:
        r"""Cut ``text`` at the special tokens: ``(piece, None)`` for text, ``(s, id)`` for a special."""
        if self._special_re is None or not allow_special:
            return [(text, None)]
        parts = self._special_re.split(text)  # odd positions hold the special tokens
        return [(p, self.special_tokens[p] if i % 2 else None) for i, p in enumerate(parts) if p]

    def _split(self, text: str) -> list[str]:
        chunks = self._split_re.findall(text)
        if sum(map(len, chunks)) != len(text):
            raise ValueError(f"the pre-tokenization pattern {self.pattern!r} skips characters of the text")
        return chunks

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            # the earliest-learned merge among the adjacent pairs; applying merges this way is
            # the same as applying the whole merge list in order
            pair = min(zip(ids, ids[1:]), key=lambda p: self._ranks.get(p, 1 << 62))
            if pair not in self._ranks:
                break
            ids = merge_pair(ids, pair, self._ranks[pair])
        return ids

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        r"""Token ids of ``text``.

        Args:
            text: any string that UTF-8 can encode (lone surrogates cannot be).
            allow_special: when ``False``, special-token strings are encoded as ordinary text.
        """
        out: list[int] = []
        for piece, special_id in self._pieces(text, allow_special):
            if special_id is not None:
                out.append(special_id)
                continue
            for chunk in self._split(piece):
                ids = self._cache.get(chunk)
                if ids is None:
                    ids = self._encode_chunk(chunk)
                    if len(self._cache) < 1 << 18:  # bounded memory
                        self._cache[chunk] = ids
                out.extend(ids)
        return out

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        r"""The bytes the ids stand for, concatenated."""
        ids = list(ids)
        n = len(self._vocab)
        for i in ids:
            if not 0 <= i < n:
                raise ValueError(f"token id {i!r} is outside the vocabulary (0..{n - 1})")
        return b"".join([self._vocab[i] for i in ids])

    def decode(self, ids: Iterable[int]) -> str:
        r"""Text of ``ids``: the bytes decoded as UTF-8 with ``errors="replace"``.

        ``decode(encode(s)) == s`` for every string. An arbitrary id sequence may cut a multi-byte
        character (a single token of a 4-byte emoji, say); such invalid bytes become U+FFFD "�"
        instead of raising, as in GPT-2.
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> None:
        r"""Write the tokenizer as JSON, atomically (a temporary file renamed into place)."""
        path = Path(path)
        data = {
            "format": _FORMAT,
            "version": _VERSION,
            "pattern": self.pattern,
            "special_tokens": list(self.special_tokens),
            "merges": [list(p) for p in self.merges],
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ByteBPETokenizer:
        r"""Read a tokenizer written by :meth:`save`.

        Raises:
            ValueError: naming ``path`` if the file is not a valid saved tokenizer.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("version") != _VERSION:
                raise ValueError(f"not a {_FORMAT} version {_VERSION} file")
            merges = [(a, b) for a, b in data["merges"]]
            if not all(isinstance(x, int) for p in merges for x in p):
                raise ValueError("merges must be pairs of integers")
            return cls(merges, data["pattern"], data["special_tokens"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise ValueError(f"{os.fspath(path)} is not a saved ByteBPETokenizer: {err}") from err
