r"""Recurrent layers written from tensor operations: RNN, LSTM and GRU cells and stacks.

Each cell is one small pure function of the input, the state and four tensors named and shaped
exactly like PyTorch's (``weight_ih`` of shape :math:`(GH, I)`, ``weight_hh`` of shape
:math:`(GH, H)`, ``bias_ih`` and ``bias_hh`` of shape :math:`(GH,)`, with :math:`G` = 1, 4 and 3
gates, stacked in the order i, f, g, o for the LSTM and r, z, n for the GRU), so a test can load
``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` weights into ours and compare. The ``nn.Module`` cells hold
one set of weights; :class:`RNN`, :class:`LSTM` and :class:`GRU` stack ``num_layers`` of them and
loop over time, batch-first, returning ``(output, final state)`` like torch with
``batch_first=True``. Introduced in chapter 10, *Recurrent networks*.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["rnn_cell", "lstm_cell", "gru_cell", "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]

Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # weight_ih, weight_hh, bias_ih, bias_hh


def rnn_cell(x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
             bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> torch.Tensor:
    r"""One step of the Elman (tanh) RNN.

    .. math::

        h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})

    Shape:
        - x: :math:`(B, I)`, h: :math:`(B, H)`; output :math:`(B, H)`.
    """
    return torch.tanh(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh)  # (B, H)


def lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
              bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One step of the LSTM, gates stacked in the order i, f, g, o (as in ``nn.LSTM``).

    .. math::

        [a_i, a_f, a_g, a_o] = W_{ih} x + b_{ih} + W_{hh} h + b_{hh}, \qquad
        c' = \sigma(a_f) \odot c + \sigma(a_i) \odot \tanh(a_g), \qquad
        h' = \sigma(a_o) \odot \tanh(c')

    Shape:
        - x: :math:`(B, I)`, h and c: :math:`(B, H)`; outputs ``(h', c')``, each :math:`(B, H)`.
    """
    a = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)  # 4 x (B, H)
    c = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)  # (B, H)
    h = torch.sigmoid(a_o) * torch.tanh(c)  # (B, H)
    return h, c


def gru_cell(x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
             bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> torch.Tensor:
    r"""One step of the GRU, gates stacked in the order r, z, n (as in ``nn.GRU``).

    .. math::

        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}),

        n = \tanh\big(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})\big), \quad
        h' = (1 - z) \odot n + z \odot h

    Shape:
        - x: :math:`(B, I)`, h: :math:`(B, H)`; output :math:`(B, H)`.
    """
    gi = x @ weight_ih.T + bias_ih  # (B, 3H)
    gh = h @ weight_hh.T + bias_hh  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)  # 3 x (B, H)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)  # 3 x (B, H)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def _check_shape(what: str, t: torch.Tensor, shape: tuple[int | None, ...], names: str) -> None:
    r"""``ValueError`` naming the expected and given shapes unless ``t`` matches (``None`` = any)."""
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = ", ".join(n if s is None else str(s) for n, s in zip(names.split(","), shape))
        raise ValueError(f"{what} must have shape ({want}), got {tuple(t.shape)}")


class _Cell(nn.Module):
    r"""Weights of one recurrent cell with ``gates`` stacked blocks, initialised like torch."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        G, H = self.gates, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H))
        self.bias_ih = nn.Parameter(torch.empty(G * H))
        self.bias_hh = nn.Parameter(torch.empty(G * H))
        bound = 1 / math.sqrt(H)  # torch's default: every entry ~ U(-1/sqrt(H), 1/sqrt(H))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _weights(self) -> Weights:
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def _check(self, x: torch.Tensor, *state: torch.Tensor) -> None:
        _check_shape("input", x, (None, self.input_size), "B,I")
        for s in state:
            _check_shape("state", s, (x.shape[0], self.hidden_size), "B,H")

    def _zeros(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(_Cell):
    r"""Elman RNN cell, :func:`rnn_cell` with its own weights (like ``nn.RNNCell``).

    Shape:
        - x: :math:`(B, I)`, h: :math:`(B, H)` (zeros when omitted); output :math:`(B, H)`.
    """

    gates = 1

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        h = self._zeros(x) if h is None else h
        self._check(x, h)
        return rnn_cell(x, h, *self._weights())


class LSTMCell(_Cell):
    r"""LSTM cell, :func:`lstm_cell` with its own weights (like ``nn.LSTMCell``).

    Shape:
        - x: :math:`(B, I)`, state ``(h, c)`` each :math:`(B, H)` (zeros when omitted);
          output ``(h', c')``.
    """

    gates = 4

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = (self._zeros(x), self._zeros(x)) if state is None else state
        self._check(x, h, c)
        return lstm_cell(x, h, c, *self._weights())


class GRUCell(_Cell):
    r"""GRU cell, :func:`gru_cell` with its own weights (like ``nn.GRUCell``).

    Shape:
        - x: :math:`(B, I)`, h: :math:`(B, H)` (zeros when omitted); output :math:`(B, H)`.
    """

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        h = self._zeros(x) if h is None else h
        self._check(x, h)
        return gru_cell(x, h, *self._weights())


class _Stack(nn.Module):
    r"""``num_layers`` cells run over time, parameters named like torch's (``weight_ih_l0``, ...).

    The state is a tuple of tensors of shape :math:`(L, B, H)`: ``(h,)`` for the RNN and GRU,
    ``(h, c)`` for the LSTM.
    """

    gates = 1
    n_states = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0 or num_layers <= 0:
            raise ValueError(
                f"input_size, hidden_size and num_layers must be positive, got {input_size}, {hidden_size}, {num_layers}"
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        G, H = self.gates, hidden_size
        for k in range(num_layers):
            I = input_size if k == 0 else H  # layer k > 0 reads the hidden states of layer k - 1
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(G * H, I)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(G * H, H)))
            self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(G * H)))
            self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(G * H)))
        bound = 1 / math.sqrt(H)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_weights(self, k: int) -> Weights:
        r"""``(weight_ih, weight_hh, bias_ih, bias_hh)`` of layer ``k``."""
        return tuple(getattr(self, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))  # type: ignore[return-value]

    def _cell(self, x: torch.Tensor, state: tuple[torch.Tensor, ...], w: Weights) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        r"""Advance every layer by one time step: ``x_t`` :math:`(B, I)` → top output :math:`(B, H)`."""
        new: list[tuple[torch.Tensor, ...]] = []
        inp = x_t
        for k in range(self.num_layers):
            s = self._cell(inp, tuple(part[k] for part in state), self.layer_weights(k))
            new.append(s)
            inp = s[0]  # h of layer k feeds layer k + 1
        return inp, tuple(torch.stack(parts) for parts in zip(*new))  # each (L, B, H)

    def initial_state(self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, ...]:
        r"""Zeros of shape :math:`(L, B, H)` when ``state`` is ``None``, else ``state`` after a shape check."""
        L, B, H = self.num_layers, x.shape[0], self.hidden_size
        if state is None:
            return tuple(x.new_zeros(L, B, H) for _ in range(self.n_states))
        for s in state:
            _check_shape("initial state", s, (L, B, H), "L,B,H")
        return tuple(state)

    def _run(self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        _check_shape("input", x, (None, None, self.input_size), "B,T,I")
        B, T, _ = x.shape
        state = self.initial_state(x, state)
        outputs = []
        for t in range(T):
            out, state = self.step(x[:, t], state)  # (B, H)
            outputs.append(out)
        return torch.stack(outputs, dim=1), state  # (B, T, H)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"


class RNN(_Stack):
    r"""Multi-layer Elman RNN, batch-first, like ``nn.RNN(..., batch_first=True)``.

    Shape:
        - x: :math:`(B, T, I)`, h0: :math:`(L, B, H)` (zeros when omitted);
        - output: :math:`(B, T, H)` (top layer), h_n: :math:`(L, B, H)`.
    """

    def _cell(self, x: torch.Tensor, state: tuple[torch.Tensor, ...], w: Weights) -> tuple[torch.Tensor, ...]:
        return (rnn_cell(x, state[0], *w),)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out, (h,) = self._run(x, None if h0 is None else (h0,))
        return out, h


class GRU(_Stack):
    r"""Multi-layer GRU, batch-first, like ``nn.GRU(..., batch_first=True)``.

    Shape:
        - x: :math:`(B, T, I)`, h0: :math:`(L, B, H)` (zeros when omitted);
        - output: :math:`(B, T, H)` (top layer), h_n: :math:`(L, B, H)`.
    """

    gates = 3

    def _cell(self, x: torch.Tensor, state: tuple[torch.Tensor, ...], w: Weights) -> tuple[torch.Tensor, ...]:
        return (gru_cell(x, state[0], *w),)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out, (h,) = self._run(x, None if h0 is None else (h0,))
        return out, h


class LSTM(_Stack):
    r"""Multi-layer LSTM, batch-first, like ``nn.LSTM(..., batch_first=True)``.

    Shape:
        - x: :math:`(B, T, I)`, state ``(h0, c0)`` each :math:`(L, B, H)` (zeros when omitted);
        - output: :math:`(B, T, H)` (top layer), ``(h_n, c_n)`` each :math:`(L, B, H)`.
    """

    gates = 4
    n_states = 2

    def _cell(self, x: torch.Tensor, state: tuple[torch.Tensor, ...], w: Weights) -> tuple[torch.Tensor, ...]:
        return lstm_cell(x, state[0], state[1], *w)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, (h, c) = self._run(x, state)
        return out, (h, c)
