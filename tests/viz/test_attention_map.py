"""The attention-map helper: what it draws, its labels, and the errors it gives."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlscratch.viz import attention_map  # noqa: E402


@pytest.fixture()
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_draws_one_head_with_token_labels(ax) -> None:
    w = torch.rand(2, 3, 4, 5).softmax(-1)  # (B, nh, T, S)
    im = attention_map(ax, w, head=1, layer=0, queries=list("abcd"), keys=list("vwxyz"))
    torch.testing.assert_close(torch.as_tensor(im.get_array()), w[0, 1].float())
    assert ax.get_title() == "layer 1, head 2"
    assert [t.get_text() for t in ax.get_xticklabels()] == list("vwxyz")
    assert [t.get_text() for t in ax.get_yticklabels()] == list("abcd")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("key", "query")


def test_averages_heads_when_no_head_is_given(ax) -> None:
    w = torch.rand(3, 4, 4).softmax(-1)  # (nh, T, S)
    im = attention_map(ax, w, layer=2)
    torch.testing.assert_close(torch.as_tensor(im.get_array()), w.mean(0))
    assert ax.get_title() == "layer 3, mean over heads"


def test_plain_matrix_and_custom_title(ax) -> None:
    im = attention_map(ax, torch.eye(3), title="identity", xlabel="source word", ylabel="output")
    assert ax.get_title() == "identity" and ax.get_xlabel() == "source word"
    assert im.get_clim() == (0.0, 1.0)


@pytest.mark.parametrize(
    ("weights", "kwargs", "match"),
    [
        (torch.rand(2, 3, 3), {"head": 2}, r"head must be in \[0, 2\), got head=2"),
        (torch.rand(3, 3), {"head": 0}, "no head axis"),
        (torch.rand(5), {}, r"got shape \(5,\)"),
        (torch.rand(3, 4), {"keys": ["a", "b"]}, "key labels: expected 4"),
        (torch.rand(3, 4), {"queries": ["a"]}, "query labels: expected 3"),
    ],
)
def test_bad_input_is_named(ax, weights, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        attention_map(ax, weights, **kwargs)
