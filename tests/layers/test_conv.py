"""Convolution by loops and by im2col vs F.conv2d / F.unfold / nn.Conv2d: values, every gradient, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.layers.conv import Conv2d, conv2d_loops, conv2d_unfold, conv_output_size, unfold2d
from tests.helpers import assert_same_forward_backward

# (B, C_in, H, W), (C_out, kH, kW), stride, padding, dilation
CASES = [
    ((2, 3, 8, 8), (4, 3, 3), 1, 0, 1),
    ((2, 3, 8, 8), (4, 3, 3), 1, 1, 1),
    ((1, 2, 7, 9), (3, 3, 2), 2, 1, 1),
    ((2, 1, 9, 7), (5, 2, 3), (2, 3), (0, 2), (2, 1)),
    ((3, 2, 5, 6), (2, 1, 1), 1, 0, 1),  # 1x1 convolution
    ((1, 4, 6, 6), (2, 3, 3), 3, 2, 2),
    ((2, 3, 5, 5), (1, 5, 5), 1, 0, 1),  # kernel as large as the input: one output position
    ((1, 1, 1, 1), (3, 1, 1), 1, 0, 1),  # a single pixel
    ((2, 5, 11, 4), (3, 3, 3), 1, (1, 0), (1, 1)),
]
IMPLS = [conv2d_loops, conv2d_unfold]


@pytest.mark.parametrize("impl", IMPLS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "dilation"), CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_matches_torch_forward_and_gradients(impl, x_shape, w_shape, stride, padding, dilation, with_bias) -> None:
    C_out, kh, kw = w_shape
    x = torch.randn(x_shape, dtype=torch.float64)
    w = torch.randn(C_out, x_shape[1], kh, kw, dtype=torch.float64)
    inputs = [x, w] + ([torch.randn(C_out, dtype=torch.float64)] if with_bias else [])

    def ours(x, w, b=None):
        return impl(x, w, b, stride, padding, dilation)

    def ref(x, w, b=None):
        return F.conv2d(x, w, b, stride, padding, dilation)

    assert_same_forward_backward(ours, ref, inputs)


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "dilation"), CASES)
def test_unfold_matches_torch_unfold(x_shape, w_shape, stride, padding, dilation) -> None:
    x = torch.randn(x_shape, dtype=torch.float64)
    k = w_shape[1:]
    assert_same_forward_backward(
        lambda x: unfold2d(x, k, stride, padding, dilation), lambda x: F.unfold(x, k, dilation, padding, stride), [x]
    )


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [(8, 3, 1, 0, 1), (8, 3, 1, 1, 1), (8, 3, 2, 1, 1), (7, 3, 2, 0, 2), (10, 4, 3, 2, 1), (1, 1, 1, 0, 1), (5, 3, 1, 0, 2)],
)
def test_output_size_formula_matches_torch(size, kernel, stride, padding, dilation) -> None:
    y = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel), None, stride, padding, dilation)
    assert conv_output_size(size, kernel, stride, padding, dilation) == y.shape[-1]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=(3, 2), stride=2, padding=(1, 0), dilation=(1, 2)),
        dict(kernel_size=1, bias=False),
    ],
)
def test_module_state_dict_loads_into_nn_conv2d(kwargs) -> None:
    ours = Conv2d(3, 5, **kwargs).double()
    ref = nn.Conv2d(3, 5, **kwargs).double()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    assert_same_forward_backward(ours, ref, [x])
    ours.zero_grad(), ref.zero_grad()
    (ours(x) ** 2).sum().backward()
    (ref(x) ** 2).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m, name=name: f"gradient of {name} differs: {m}")


def test_module_default_init_has_torch_bounds() -> None:
    conv = Conv2d(4, 64, 3)
    bound = 1 / (4 * 9) ** 0.5  # 1 / sqrt(fan_in)
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert conv.bias is not None and conv.bias.abs().max() <= bound
    assert conv.weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.15)  # uniform(-b, b) has std b / sqrt(3)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda f: f.__name__)
def test_errors_name_the_shapes(impl) -> None:
    w = torch.randn(4, 3, 3, 3)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got shape \(2, 2, 8, 8\)"):
        impl(torch.randn(2, 2, 8, 8), w)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got shape \(3, 8, 8\)"):
        impl(torch.randn(3, 8, 8), w)
    with pytest.raises(ValueError, match="spans 5 .* only 4"):  # dilated kernel 5 > padded size 4
        impl(torch.randn(1, 3, 4, 4), w, dilation=2)
    with pytest.raises(ValueError, match="spans 3 .* only 2"):
        impl(torch.randn(1, 3, 2, 8), w)
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        impl(torch.randn(1, 3, 8, 8), w, stride=0)
    with pytest.raises(ValueError, match=r"dilation must be positive, got \(1, -1\)"):
        impl(torch.randn(1, 3, 8, 8), w, dilation=(1, -1))
    with pytest.raises(ValueError, match="padding must be non-negative"):
        impl(torch.randn(1, 3, 8, 8), w, padding=-1)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\), got shape \(3,\)"):
        impl(torch.randn(1, 3, 8, 8), w, torch.randn(3))


def test_module_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got shape \(2, 1, 8, 8\)"):
        Conv2d(3, 4, 3)(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        Conv2d(3, 4, 3, stride=0)
    with pytest.raises(ValueError, match="got in=0"):
        Conv2d(0, 4, 3)
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        Conv2d(3, 4, (3, 3, 3))


@pytest.mark.parametrize("padding", [0, 1])
def test_non_contiguous_input(padding) -> None:
    # the window view is built on the input's own strides: a transposed or sliced input works too
    w = torch.randn(4, 5, 3, 3, dtype=torch.float64)
    x = torch.randn(3, 5, 13, 8, dtype=torch.float64)
    assert_same_forward_backward(
        lambda x: conv2d_unfold(x.transpose(0, 1)[:, :, ::2], w, padding=padding, stride=2),
        lambda x: F.conv2d(x.transpose(0, 1)[:, :, ::2], w, padding=padding, stride=2),
        [x.transpose(0, 1)],
    )


def test_windows_are_a_view_without_padding() -> None:
    from dlscratch.layers.conv import sliding_windows

    x = torch.arange(16.0).view(1, 1, 4, 4)
    win = sliding_windows(x, 2, stride=2)
    assert win.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    assert win[0, 0, 1, 0, 1, 1] == x[0, 0, 3, 2]  # tap (1, 0) of output (1, 1): row 2*1 + 1, column 2*1 + 0
