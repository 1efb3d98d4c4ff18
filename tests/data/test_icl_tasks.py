"""Chapter 30's generators: repeated random tokens and linear-regression prompts."""

from __future__ import annotations

import pytest
import torch

from dlscratch.data.icl_tasks import regression_prompts, repeated_tokens


@pytest.mark.parametrize(("T", "min_len"), [(32, None), (32, 4), (7, 1), (2, None)])
def test_repeated_tokens_structure(T: int, min_len: int | None) -> None:
    x, repeat = repeated_tokens(200, T, 50, min_len, generator=torch.Generator().manual_seed(0))
    assert x.shape == repeat.shape == (200, T) and x.dtype == torch.long and repeat.dtype == torch.bool
    assert x.min() >= 0 and x.max() < 50
    lo = T // 2 if min_len is None else min_len
    for row, rep in zip(x, repeat):
        n_rep = int(rep.sum())  # positions after the first token of the repeat: L - 1
        L = n_rep + 1
        assert lo <= L <= T // 2
        assert torch.equal(row[L : 2 * L], row[:L])  # the segment, then its repeat, then filler
        assert not rep[: L + 1].any() and rep[L + 1 : 2 * L].all() and not rep[2 * L :].any()
    if min_len is None:
        assert int(repeat[0].sum()) == T // 2 - 1  # the second half repeats the first


def test_repeated_tokens_lengths_vary_and_seeded() -> None:
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    x, repeat = repeated_tokens(300, 32, 64, 8, generator=g())
    assert len(set(repeat.sum(1).tolist())) == 9  # L in 8..16
    x2, _ = repeated_tokens(300, 32, 64, 8, generator=g())
    assert torch.equal(x, x2)


def test_regression_prompts() -> None:
    xs, ys, w = regression_prompts(64, 11, 5, generator=torch.Generator().manual_seed(0))
    assert xs.shape == (64, 11, 5) and ys.shape == (64, 11) and w.shape == (64, 5)
    torch.testing.assert_close(ys, torch.einsum("bkd,bd->bk", xs, w))
    xs_n, ys_n, w_n = regression_prompts(20000, 4, 3, noise_std=0.5, generator=torch.Generator().manual_seed(1))
    resid = ys_n - torch.einsum("bkd,bd->bk", xs_n, w_n)
    assert abs(resid.std().item() - 0.5) < 0.01
    assert abs(ys_n.var().item() - (3 + 0.25)) < 0.1  # E[y^2] = d + sigma^2


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"min_len must be an integer in \[1, seq_len // 2 = 8\], got min_len=9"):
        repeated_tokens(2, 16, 10, 9)
    with pytest.raises(ValueError, match="seq_len must be at least 2"):
        repeated_tokens(2, 1, 10)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer, got 0"):
        repeated_tokens(2, 8, 0)
    with pytest.raises(ValueError, match="noise_std must be >= 0, got noise_std=-1"):
        regression_prompts(2, 3, 4, noise_std=-1.0)
    with pytest.raises(ValueError, match="dim must be a positive integer, got 0"):
        regression_prompts(2, 3, 0)
