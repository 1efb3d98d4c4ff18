r"""Compressing a trained model: GPTQ layer by layer, and what the compressed model costs on disk.

* :func:`layer_inputs`: what one sub-module receives when the model runs on some data.
* :func:`gptq_quantize_model`: GPTQ (:func:`~dlscratch.layers.gptq.gptq_quantize`) applied to
  each target linear layer in turn, each on inputs from the model whose earlier layers are already
  quantised, as Frantar et al. (2023) do block by block.
* :func:`saved_bytes`: the size of a model's ``state_dict`` written with ``torch.save``.

Introduced in chapter 36, *Model compression*.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..layers.gptq import gptq_hessian, gptq_quantize
from ..layers.quant_int import QuantLinear

__all__ = ["layer_inputs", "gptq_quantize_model", "saved_bytes"]


@torch.inference_mode()
def layer_inputs(model: nn.Module, module: nn.Module, run: Callable[[nn.Module], object]) -> torch.Tensor:
    r"""The input of ``module`` while ``run(model)`` executes, every call concatenated along the batch.

    The model runs in ``eval()`` mode (no dropout), restored afterwards.

    Shape:
        - output: :math:`(n, d_{in})`, all leading dimensions flattened
    """
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, args, out: seen.append(args[0].reshape(-1, args[0].shape[-1])))
    was_training = model.training
    model.eval()
    try:
        run(model)
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(seen)


def gptq_quantize_model(model: nn.Module, run: Callable[[nn.Module], object], targets: Sequence[str], bits: int = 4,
                        group_size: int | None = None, **kwargs: object) -> list[str]:
    r"""Replace each target ``nn.Linear`` by a GPTQ-quantised :class:`~dlscratch.layers.quant_int.QuantLinear`, in order.

    For every linear layer whose last name component is in ``targets`` (in the model's module
    order), ``run(model)`` is called on the calibration data with the layers before it already
    quantised; the inputs it sees give the Hessian :math:`H = \frac{2}{n} X^\top X`, and GPTQ
    quantises its weight. ``kwargs`` go to :func:`~dlscratch.layers.gptq.gptq_quantize`
    (``scheme``, ``damp``, ``block_size``).

    Returns:
        The qualified names of the replaced layers.
    """
    was_training = model.training
    model.eval()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in targets]
    for name in names:
        linear = model.get_submodule(name)
        h = gptq_hessian(layer_inputs(model, linear, run))  # (d_in, d_in)
        qt = gptq_quantize(linear.weight, h.to(linear.weight.device), bits, group_size, **kwargs)  # type: ignore[arg-type]
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, QuantLinear(qt, linear.bias, linear.weight.dtype))
    model.train(was_training)
    return names


def saved_bytes(model: nn.Module) -> int:
    r"""Bytes of ``torch.save(model.state_dict())`` in a temporary directory: the model's size on disk."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        torch.save(model.state_dict(), path)
        return os.path.getsize(path)
