"""One helper for the book's main test pattern: ours vs PyTorch, values and every gradient."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def assert_same_forward_backward(
    ours: Callable[..., torch.Tensor],
    reference: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    *,
    atol: float = 1e-10,
    rtol: float = 1e-8,
    grad_seed: int = 0,
) -> None:
    """Check that ``ours(*inputs)`` equals ``reference(*inputs)`` and so do all input gradients.

    Floating inputs get fresh leaf copies with ``requires_grad=True`` for each side; both outputs
    are contracted with the same random cotangent, so every element of every gradient is checked.
    Use float64 inputs for tight tolerances.
    """

    def leaves() -> list[torch.Tensor]:
        return [
            x.detach().clone().requires_grad_(x.is_floating_point()) if isinstance(x, torch.Tensor) else x
            for x in inputs
        ]

    a_in, b_in = leaves(), leaves()
    a, b = ours(*a_in), reference(*b_in)
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m: f"forward differs: {m}")
    g = torch.randn(a.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=a.dtype)
    (a * g).sum().backward()
    (b * g).sum().backward()
    for i, (x, y) in enumerate(zip(a_in, b_in)):
        if isinstance(x, torch.Tensor) and x.requires_grad:
            assert x.grad is not None and y.grad is not None, f"input {i} got no gradient"
            torch.testing.assert_close(
                x.grad, y.grad, atol=atol, rtol=rtol, msg=lambda m, i=i: f"gradient of input {i} differs: {m}"
            )
