r"""Hand-written backward passes for the MLP language model of chapter 4.

Each function takes the gradient of the loss with respect to a layer's output (``dout``, written
:math:`\partial \mathcal{L} / \partial \text{out}`) plus what the forward pass computed, and
returns the gradients with respect to the layer's inputs and parameters. Chained in reverse
order they reproduce ``loss.backward()`` for

.. code-block:: text

    emb = C[X]  →  h_pre = emb.view(N, -1) @ W1 + b1  →  batch norm  →  tanh  →  logits = h @ W2 + b2
    →  cross-entropy

The derivations are in chapter 4 (*MLP language model*); the tests check every function against
autograd in float64.
"""

from __future__ import annotations

import torch

__all__ = [
    "cross_entropy_backward",
    "linear_backward",
    "tanh_backward",
    "batchnorm_backward",
    "embedding_backward",
]


def cross_entropy_backward(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Gradient of the mean cross-entropy with respect to the logits.

    With :math:`\mathbf{p}_n = \operatorname{softmax}(\mathbf{z}_n)` and
    :math:`\mathcal{L} = -\frac{1}{N}\sum_n \log p_{n, y_n}`,

    .. math::

        \frac{\partial \mathcal{L}}{\partial z_{nj}} = \frac{1}{N}\left(p_{nj} - [j = y_n]\right) .

    Args:
        logits: unnormalised scores :math:`\mathbf{z}`.
        targets: the class index of each row.

    Returns:
        :math:`\partial \mathcal{L} / \partial \mathbf{z}`, same shape as ``logits``.

    Shape:
        - logits: :math:`(N, V)`
        - targets: :math:`(N,)`
        - output: :math:`(N, V)`
    """
    N = logits.shape[0]
    dlogits = torch.softmax(logits, dim=1)  # (N, V), p
    dlogits[torch.arange(N, device=logits.device), targets] -= 1.0  # p - one_hot(y)
    return dlogits / N


def linear_backward(
    dout: torch.Tensor, x: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Gradients of :math:`\mathbf{Y} = \mathbf{X}\mathbf{W} + \mathbf{b}` (weight stored ``(fan_in, fan_out)``).

    .. math::

        \frac{\partial \mathcal{L}}{\partial \mathbf{X}} = \frac{\partial \mathcal{L}}{\partial \mathbf{Y}} \mathbf{W}^\top,
        \qquad
        \frac{\partial \mathcal{L}}{\partial \mathbf{W}} = \mathbf{X}^\top \frac{\partial \mathcal{L}}{\partial \mathbf{Y}},
        \qquad
        \frac{\partial \mathcal{L}}{\partial \mathbf{b}} = \sum_n \frac{\partial \mathcal{L}}{\partial \mathbf{Y}_{n,:}} .

    Args:
        dout: :math:`\partial \mathcal{L} / \partial \mathbf{Y}`.
        x: the layer's input :math:`\mathbf{X}`.
        weight: :math:`\mathbf{W}`.

    Returns:
        ``(dx, dweight, dbias)``; ``dbias`` is returned even for a layer without bias.

    Shape:
        - dout: :math:`(N, \text{fan\_out})`
        - x: :math:`(N, \text{fan\_in})`
        - weight: :math:`(\text{fan\_in}, \text{fan\_out})`
        - outputs: :math:`(N, \text{fan\_in})`, :math:`(\text{fan\_in}, \text{fan\_out})`, :math:`(\text{fan\_out},)`
    """
    dx = dout @ weight.T  # (N, fan_out) @ (fan_out, fan_in) -> (N, fan_in)
    dweight = x.T @ dout  # (fan_in, N) @ (N, fan_out) -> (fan_in, fan_out)
    dbias = dout.sum(0)  # (fan_out,)
    return dx, dweight, dbias


def tanh_backward(dout: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    r"""Gradient of :math:`h = \tanh(a)`, written with the output: :math:`\partial\mathcal{L}/\partial a = (1 - h^2)\,\partial\mathcal{L}/\partial h`.

    Args:
        dout: :math:`\partial \mathcal{L} / \partial h`.
        out: the forward output :math:`h = \tanh(a)`.

    Returns:
        :math:`\partial \mathcal{L} / \partial a`, same shape as ``out``.

    Shape:
        - dout, out, output: :math:`(*)`
    """
    return (1.0 - out**2) * dout


def batchnorm_backward(
    dout: torch.Tensor, xhat: torch.Tensor, inv_std: torch.Tensor, gamma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Gradients of training-mode batch norm :math:`y = \gamma \hat{x} + \beta`, in closed form.

    With :math:`\hat{x}_n = (x_n - \mu)\,s`, :math:`s = (\sigma^2 + \epsilon)^{-1/2}`, :math:`\mu`
    and :math:`\sigma^2` the mean and biased variance over the batch of :math:`N` rows (each
    channel separately),

    .. math::

        \frac{\partial \mathcal{L}}{\partial x_n}
        = \frac{\gamma s}{N}\left(N g_n - \sum_m g_m - \hat{x}_n \sum_m g_m \hat{x}_m\right),
        \qquad g_n = \frac{\partial \mathcal{L}}{\partial y_n},

    :math:`\partial\mathcal{L}/\partial\gamma = \sum_n g_n \hat{x}_n` and
    :math:`\partial\mathcal{L}/\partial\beta = \sum_n g_n`.

    Args:
        dout: :math:`\partial \mathcal{L} / \partial y`.
        xhat: the normalised input :math:`\hat{x}` from the forward pass.
        inv_std: :math:`s = (\sigma^2 + \epsilon)^{-1/2}` per channel.
        gamma: the gain :math:`\gamma`.

    Returns:
        ``(dx, dgamma, dbeta)``.

    Shape:
        - dout, xhat: :math:`(N, C)`
        - inv_std, gamma: :math:`(C,)`
        - outputs: :math:`(N, C)`, :math:`(C,)`, :math:`(C,)`
    """
    N = dout.shape[0]
    dbeta = dout.sum(0)  # (C,)
    dgamma = (dout * xhat).sum(0)  # (C,)
    dx = gamma * inv_std / N * (N * dout - dbeta - xhat * dgamma)  # (N, C)
    return dx, dgamma, dbeta


def embedding_backward(dout: torch.Tensor, ix: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    r"""Gradient of the lookup :math:`\mathbf{E}_{n,t} = \mathbf{C}_{i_{n,t}}` with respect to the table :math:`\mathbf{C}`.

    Every use of a row adds its gradient to that row:

    .. math::

        \frac{\partial \mathcal{L}}{\partial \mathbf{C}_{k}}
        = \sum_{n, t \,:\, i_{n,t} = k} \frac{\partial \mathcal{L}}{\partial \mathbf{E}_{n,t}} .

    Args:
        dout: :math:`\partial \mathcal{L} / \partial \mathbf{E}`.
        ix: the token ids that were looked up.
        num_embeddings: rows of the table :math:`V`.

    Returns:
        :math:`\partial \mathcal{L} / \partial \mathbf{C}`.

    Shape:
        - dout: :math:`(*, C)`
        - ix: :math:`(*)`
        - output: :math:`(V, C)`
    """
    C = dout.shape[-1]
    dtable = torch.zeros(num_embeddings, C, dtype=dout.dtype, device=dout.device)  # (V, C)
    return dtable.index_add_(0, ix.reshape(-1), dout.reshape(-1, C))  # scatter-add rows
