"""One helper for the book's main test pattern: ours vs a reference, values and every gradient."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

GradFn = Callable[[nn.Module], dict[str, torch.Tensor]]


def named_grads(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every named parameter's gradient; a parameter that got none is an error (it was not used)."""
    out = {}
    for name, p in module.named_parameters():
        assert p.grad is not None, f"parameter {name} of {type(module).__name__} got no gradient"
        out[name] = p.grad
    return out


def assert_same_forward_backward(
    ours: Callable[..., torch.Tensor],
    reference: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    *,
    modules: tuple[nn.Module, nn.Module] | None = None,
    grads: tuple[GradFn, GradFn] | None = None,
    atol: float = 1e-10,
    rtol: float = 1e-8,
    grad_seed: int = 0,
) -> None:
    """Check that ``ours(*inputs)`` equals ``reference(*inputs)``, and so do all gradients.

    Floating inputs get fresh leaf copies with ``requires_grad=True`` for each side; both outputs
    are contracted with the same random cotangent, so every element of every gradient is checked:
    the inputs' and, when ``ours`` and ``reference`` are modules (or ``modules`` names the two),
    **every named parameter's**. Parameters pair up by name (or, when the names differ but the
    shapes line up, by position: a twin built in the same order); where the two lay out their weights
    differently, ``grads`` gives for each side a function from the module to ``{name: gradient}``
    in a common layout (for example torch's stacked ``in_proj_weight``). Use float64.
    """
    if modules is None and isinstance(ours, nn.Module) and isinstance(reference, nn.Module):
        modules = (ours, reference)
    if modules is not None:
        for m in modules:
            m.zero_grad(set_to_none=True)

    def leaves() -> list[torch.Tensor]:
        return [
            x.detach().clone().requires_grad_(x.is_floating_point()) if isinstance(x, torch.Tensor) else x
            for x in inputs
        ]

    a_in, b_in = leaves(), leaves()
    a, b = ours(*a_in), reference(*b_in)
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m: f"forward differs: {m}")
    g = torch.randn(a.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=a.dtype).to(a.device)
    (a * g).sum().backward()
    (b * g).sum().backward()
    for i, (x, y) in enumerate(zip(a_in, b_in)):
        if isinstance(x, torch.Tensor) and x.requires_grad:
            assert x.grad is not None and y.grad is not None, f"input {i} got no gradient"
            torch.testing.assert_close(
                x.grad, y.grad, atol=atol, rtol=rtol, msg=lambda m, i=i: f"gradient of input {i} differs: {m}"
            )
    if modules is None:
        return
    ga, gb = (grads[0](modules[0]), grads[1](modules[1])) if grads is not None else tuple(named_grads(m) for m in modules)
    if ga.keys() == gb.keys():
        pairs = [(name, ga[name], gb[name]) for name in ga]
    else:  # a twin built in the same order under other names (nn.Sequential indices): pair by position
        shapes_a, shapes_b = [g.shape for g in ga.values()], [g.shape for g in gb.values()]
        assert shapes_a == shapes_b, f"parameters differ: ours {list(ga)}, reference {list(gb)} (pass grads=...)"
        pairs = [(f"{a} ~ {b}", ga[a], gb[b]) for a, b in zip(ga, gb)]
    for name, x, y in pairs:
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol, msg=lambda m, name=name: f"gradient of parameter {name} differs: {m}")
