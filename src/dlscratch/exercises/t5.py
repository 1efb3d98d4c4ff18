r"""Exercise checkers for chapter 28, "T5 and the encoder-decoder family" (topic prefix ``t5.``).

The function checker runs the package's tested
:func:`~dlscratch.layers.relative_position.relative_position_bucket` on seeded random relative
positions and compares; the number checkers recompute the answer with plain arithmetic. A wrong
answer gets a hint. The reference solutions live in the tests.
"""

from __future__ import annotations

from typing import Any

import torch

from ..layers.relative_position import relative_position_bucket
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["SPAN_SETTING", "BIAS_CONFIG", "check_bucket", "check_target_length", "check_bias_parameters"]

# t5.target_length: T5's pre-training setting (inputs of 512 tokens before corruption)
SPAN_SETTING = {"length": 512, "noise_density": 0.15, "mean_span_length": 3.0}
# t5.bias_parameters: T5-Base's sizes
BIAS_CONFIG = {"num_layers": 12, "num_decoder_layers": 12, "num_heads": 12, "d_model": 768,
               "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128}


@exercise("t5.bucket")
def check_bucket(answer: Any) -> None:
    r"""``answer(relative_position, bidirectional, num_buckets, max_distance)``: T5's buckets, a long tensor of the same shape."""
    fn = require_callable(answer, "my_bucket")
    gen = torch.Generator().manual_seed(28)
    for bidirectional, nb, md in ((True, 32, 128), (False, 32, 128), (True, 16, 40), (False, 8, 30)):
        n = torch.randint(-400, 401, (64,), generator=gen)
        n[:5] = torch.tensor([0, 1, -1, 8, -16])
        with torch.no_grad():
            got = fn(n.clone(), bidirectional, nb, md)
        if not isinstance(got, torch.Tensor) or got.shape != n.shape:
            raise AssertionError(f"return a tensor of the shape of relative_position {tuple(n.shape)}, "
                                 f"got {getattr(got, 'shape', type(got).__name__)}")
        want = relative_position_bucket(n, bidirectional=bidirectional, num_buckets=nb, max_distance=md)
        if torch.equal(got.long(), want):
            continue
        flipped = relative_position_bucket(-n, bidirectional=bidirectional, num_buckets=nb, max_distance=md)
        if torch.equal(got.long(), flipped):
            raise AssertionError("the relative position is key minus query (j - i): keys in the past are negative.")
        if bidirectional and torch.equal(got.long() % (nb // 2), want % (nb // 2)):
            raise AssertionError("bidirectional: keys after the query (n > 0) use the upper half, buckets N/2 .. N - 1.")
        if (got.long() >= nb).any():
            raise AssertionError(f"some buckets are >= num_buckets={nb}: clamp the logarithmic ones to the last bucket.")
        raise AssertionError(f"wrong buckets for bidirectional={bidirectional}, num_buckets={nb}, max_distance={md}: "
                             "below N/2 exact, above log-spaced up to max_distance (log in float32).")


@exercise("t5.target_length")
def check_target_length(answer: Any) -> None:
    r"""The target length of span corruption for ``SPAN_SETTING``: :math:`n + s + 1`."""
    got = require_number(answer, "the target length")
    c = SPAN_SETTING
    noise = round(c["length"] * c["noise_density"])
    spans = round(noise / c["mean_span_length"])
    want = noise + spans + 1
    if got == want:
        return
    if got == noise + spans:
        raise AssertionError("add the </s> that ends every target.")
    if got == noise + 1 or got == noise:
        raise AssertionError("each span is preceded by its sentinel in the target: add the spans.")
    if got == c["length"] - noise + spans + 1:
        raise AssertionError("that is the input's length; the question asks for the target's.")
    if got == c["length"] + 1:
        raise AssertionError("that is BERT-style reconstruction of the whole text; span corruption only asks for the spans.")
    raise AssertionError(f"{got:g} is not it: n = round(L d) noise tokens in s = round(n / mu) spans, each after a sentinel, then </s>.")


@exercise("t5.bias_parameters")
def check_bias_parameters(answer: Any) -> None:
    r"""Parameters of all relative position biases in T5-Base (``BIAS_CONFIG``): one table per stack."""
    got = require_number(answer, "the number of parameters")
    c = BIAS_CONFIG
    table = c["relative_attention_num_buckets"] * c["num_heads"]
    want = 2 * table
    if got == want:
        return
    if got == table:
        raise AssertionError("the encoder and the decoder each have their own table.")
    if got == table * (c["num_layers"] + c["num_decoder_layers"]):
        raise AssertionError("the bias is computed in the first layer and shared by all layers of a stack.")
    if got == 3 * table or got == table * (c["num_layers"] + 2 * c["num_decoder_layers"]):
        raise AssertionError("cross-attention has no position bias: its queries and keys live in different sequences.")
    if got == 2 * c["relative_attention_num_buckets"]:
        raise AssertionError("every head has its own scalar per bucket.")
    raise AssertionError(f"{got:,.0f} is not it: a (buckets x heads) table per stack.")
