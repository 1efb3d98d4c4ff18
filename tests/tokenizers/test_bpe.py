"""Byte-level BPE: lossless round trips, the same merges as a naive trainer, atomic specials, files."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from dlscratch.tokenizers import GPT2_SPLIT_PATTERN, ByteBPETokenizer, merge_pair, pair_counts

EOT = "<|endoftext|>"

CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
    "We know't, we know't. Let us kill him, and we'll have corn at our own price. Is't a verdict?\n"
    "Café naïve — 東京 🙂🙂 1234 5678 foo_bar  \t tabs\r\nand CRLF.\n"
)


def random_corpus(seed: int, n_words: int = 400) -> str:
    """Words over a tiny alphabet: many ties and many overlapping pairs such as 'aaaa'."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("aab") for _ in range(rng.randint(1, 6))) for _ in range(n_words)]
    return " ".join(words)


def random_unicode(seed: int, n: int = 200) -> str:
    """A seeded string of code points from many blocks (ASCII, controls, Latin, CJK, emoji, ...)."""
    rng = random.Random(seed)
    blocks = [(0x00, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF), (0x1F600, 0x1F64F)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(blocks)  # no surrogates (U+D800..U+DFFF): UTF-8 cannot encode them
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


# ---------------------------------------------------------------- an independent naive BPE
def naive_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out: list[int] = []
    i = 0
    while i < len(ids):
        if ids[i : i + 2] == list(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def naive_train(pieces: list[str], num_merges: int) -> list[tuple[int, int]]:
    """Recount every pair of every chunk before every merge; ties go to the smallest pair."""
    chunks = [list(c.encode("utf-8")) for p in pieces for c in re.findall(GPT2_SPLIT_PATTERN, p)]
    merges = []
    for k in range(num_merges):
        stats = Counter(pair for ids in chunks for pair in zip(ids, ids[1:]))
        if not stats:
            break
        best = max(stats.values())
        pair = min(p for p, c in stats.items() if c == best)
        chunks = [naive_merge(ids, pair, 256 + k) for ids in chunks]
        merges.append(pair)
    return merges


def naive_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Apply the whole merge list, in the learned order, to every chunk."""
    out = []
    for chunk in re.findall(GPT2_SPLIT_PATTERN, text):
        ids = list(chunk.encode("utf-8"))
        for k, pair in enumerate(merges):
            ids = naive_merge(ids, pair, 256 + k)
        out.extend(ids)
    return out


@pytest.fixture(scope="module")
def tok() -> ByteBPETokenizer:
    return ByteBPETokenizer.train(CORPUS * 3, 256 + 60 + 1, special_tokens=[EOT])


# ---------------------------------------------------------------- training
@pytest.mark.parametrize(
    "text", [CORPUS, random_corpus(0), random_corpus(1) + "\n" + CORPUS], ids=["shakespeare", "aab-0", "mixed"]
)
def test_merges_equal_naive_recount(text: str) -> None:
    n = 80
    ours = ByteBPETokenizer.train(text, 256 + n)
    assert ours.merges == naive_train([text], n)


def test_training_runs_out_of_pairs_and_stops() -> None:
    tok = ByteBPETokenizer.train("ab ab", 10_000)
    assert tok.merges == naive_train(["ab ab"], 10_000)  # (a, b), then (' ', ab): two merges
    assert tok.vocab_size == 256 + len(tok.merges) == 258


def test_smaller_vocabulary_is_a_prefix() -> None:
    text = random_corpus(2) + CORPUS
    big = ByteBPETokenizer.train(text, 256 + 90)
    small = ByteBPETokenizer.train(text, 256 + 30)
    assert small.merges == big.merges[:30]
    assert big.truncate(256 + 30).encode(text) == small.encode(text)


def test_merged_tokens_are_concatenations(tok: ByteBPETokenizer) -> None:
    for k, (a, b) in enumerate(tok.merges):
        assert tok.token_bytes(256 + k) == tok.token_bytes(a) + tok.token_bytes(b)


# ---------------------------------------------------------------- encoding
@pytest.mark.parametrize("text", [CORPUS, random_corpus(3), "aaaaaaa bbbb aaab", "Speak, speak. Resolved!"])
def test_encode_applies_merges_in_learned_order(tok: ByteBPETokenizer, text: str) -> None:
    assert tok.encode(text) == naive_encode(text, tok.merges)


def test_encoding_the_training_text_compresses(tok: ByteBPETokenizer) -> None:
    assert len(tok.encode(CORPUS)) < len(CORPUS.encode("utf-8")) / 1.5


ROUND_TRIP = {
    "empty": "",
    "ascii": "Hello, world! It's 2024.",
    "accents": "Crème brûlée, naïve café, Ångström, ÿ",
    "decomposed": "e\u0301 a\u0308",  # combining marks
    "cjk": "東京は日本の首都です。中文測試",
    "emoji": "🙂👍🏽 👨‍👩‍👧 🇫🇷",  # skin tone, ZWJ family, flag
    "whitespace": " \t\n\r\n  \n\n\t lead and trail  \u00a0\u2003\u3000",
    "controls": "\x00\x01\x7f\x80\x9f",
    "special-looking": "<|endoftext| <|endoftext|>",
    "shakespeare": CORPUS,
}


@pytest.mark.parametrize("text", list(ROUND_TRIP.values()) + [random_unicode(s) for s in range(5)],
                         ids=list(ROUND_TRIP) + [f"random-{s}" for s in range(5)])
def test_decode_encode_round_trip(tok: ByteBPETokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode(tok.encode(text, allow_special=False)) == text


@pytest.mark.parametrize("seed", range(5))
def test_pretokenization_covers_every_character(seed: int) -> None:
    text = random_unicode(seed, 500) + random_corpus(seed)
    assert "".join(re.findall(GPT2_SPLIT_PATTERN, text)) == text


def test_pretokenization_matches_gpt2_on_plain_text() -> None:
    chunks = re.findall(GPT2_SPLIT_PATTERN, "Hello world's 123 foo_bar!!\n\n  x")
    assert chunks == ["Hello", " world", "'s", " 123", " foo", "_", "bar", "!!", "\n\n ", " x"]


def test_untrained_tokenizer_is_utf8_bytes() -> None:
    raw = ByteBPETokenizer([])
    text = "naïve 東京 🙂"
    assert raw.encode(text) == list(text.encode("utf-8"))


def test_decode_replaces_a_cut_character(tok: ByteBPETokenizer) -> None:
    first_byte = "🙂".encode("utf-8")[0]
    assert tok.decode([first_byte]) == "\ufffd"


# ---------------------------------------------------------------- special tokens
@pytest.mark.parametrize("text", [f"a{EOT}b", f"{EOT}{EOT}", f"Speak{EOT}\n{EOT} speak", EOT])
def test_special_tokens_are_never_split(tok: ByteBPETokenizer, text: str) -> None:
    eot = tok.special_tokens[EOT]
    ids = tok.encode(text)
    assert ids.count(eot) == text.count(EOT)
    assert tok.decode(ids) == text
    # the text between specials is encoded exactly as it would be on its own
    pieces = text.split(EOT)
    expected: list[int] = []
    for k, piece in enumerate(pieces):
        expected += tok.encode(piece) + ([eot] if k < len(pieces) - 1 else [])
    assert ids == expected
    assert eot not in tok.encode(text, allow_special=False)


def test_special_tokens_take_the_last_ids(tok: ByteBPETokenizer) -> None:
    assert tok.special_tokens == {EOT: 256 + len(tok.merges)}
    assert tok.vocab_size == 256 + len(tok.merges) + 1


def test_training_never_merges_across_special_tokens() -> None:
    text = f"ab{EOT}ab{EOT}ba" * 20
    tok = ByteBPETokenizer.train(text, 256 + 30 + 1, special_tokens=[EOT])
    assert tok.merges == naive_train(text.split(EOT), 30)
    assert all(b"<|" not in tok.token_bytes(256 + k) for k in range(len(tok.merges)))


# ---------------------------------------------------------------- files
def test_save_load_round_trip(tok: ByteBPETokenizer, tmp_path: Path) -> None:
    path = tmp_path / "bpe.json"
    tok.save(path)
    tok.save(path)  # overwriting is fine
    assert [p.name for p in tmp_path.iterdir()] == ["bpe.json"]  # no temporary file left behind
    loaded = ByteBPETokenizer.load(path)
    assert loaded.merges == tok.merges and loaded.special_tokens == tok.special_tokens
    assert loaded.pattern == tok.pattern
    text = CORPUS + EOT + random_unicode(7)
    assert loaded.encode(text) == tok.encode(text)


@pytest.mark.parametrize(
    "content",
    [
        "not json at all",
        json.dumps({"format": "something-else", "version": 1}),
        json.dumps({"format": "dlscratch-byte-bpe", "version": 1, "pattern": "x"}),  # no merges
        json.dumps(
            {"format": "dlscratch-byte-bpe", "version": 1, "pattern": ".", "special_tokens": [], "merges": [[256, 1]]}
        ),
        json.dumps([1, 2, 3]),
    ],
    ids=["garbage", "other-format", "missing-key", "future-token", "list"],
)
def test_load_rejects_bad_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        ByteBPETokenizer.load(path)


# ---------------------------------------------------------------- errors
def test_vocab_size_too_small_names_both_numbers() -> None:
    with pytest.raises(ValueError, match=r"vocab_size=257.*258"):
        ByteBPETokenizer.train("abc", 257, special_tokens=["<a>", "<b>"])


def test_decode_rejects_unknown_ids(tok: ByteBPETokenizer) -> None:
    with pytest.raises(ValueError, match=str(tok.vocab_size)):
        tok.decode([1, tok.vocab_size])
    with pytest.raises(ValueError, match="-1"):
        tok.decode([-1])


def test_lone_surrogate_cannot_be_encoded(tok: ByteBPETokenizer) -> None:
    with pytest.raises(ValueError):  # UnicodeEncodeError is a ValueError
        tok.encode("a\ud800b")


def test_pattern_that_skips_characters_is_rejected() -> None:
    tok = ByteBPETokenizer([], pattern=r"\w+")
    with pytest.raises(ValueError, match=re.escape(r"\w+")):
        tok.encode("hello world")


def test_invalid_merge_and_pattern_are_rejected() -> None:
    with pytest.raises(ValueError, match="merge 0"):
        ByteBPETokenizer([(256, 1)])
    with pytest.raises(ValueError, match="pattern"):
        ByteBPETokenizer([], pattern="(")
    with pytest.raises(ValueError, match="special"):
        ByteBPETokenizer([], special_tokens=[EOT, EOT])


# ---------------------------------------------------------------- the helpers
def test_pair_counts_and_merge_pair() -> None:
    assert pair_counts([1, 1, 1, 2]) == {(1, 1): 2, (1, 2): 1}
    assert pair_counts([5]) == {} and pair_counts([]) == {}
    counts = pair_counts([1, 2], weight=3)
    assert pair_counts([1, 2, 1], counts) == {(1, 2): 4, (2, 1): 1}
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge_pair([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge_pair([3, 1, 2, 1, 2], (1, 2), 9) == [3, 9, 9]
    assert merge_pair([], (1, 2), 9) == []
