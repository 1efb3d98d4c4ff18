"""RNN / LSTM / GRU cells and stacks vs torch.nn, with copied weights: outputs, states, every gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlscratch.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, gru_cell

CELLS = [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)]
STACKS = [(RNN, nn.RNN), (LSTM, nn.LSTM), (GRU, nn.GRU)]


def _as_tuple(x: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return x if isinstance(x, tuple) else (x,)


def _assert_same_grads(ours: nn.Module, ref: nn.Module, leaves: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for (name, p), (ref_name, q) in zip(ours.named_parameters(), ref.named_parameters()):
        assert name == ref_name
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m, n=name: f"gradient of {n} differs: {m}")
    for i, (a, b) in enumerate(leaves):
        torch.testing.assert_close(a.grad, b.grad, msg=lambda m, i=i: f"gradient of input {i} differs: {m}")


def _leaf(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.clone().requires_grad_(), x.clone().requires_grad_()


@pytest.mark.parametrize(("ours_cls", "ref_cls"), CELLS)
@pytest.mark.parametrize(("B", "I", "H"), [(4, 3, 5), (1, 1, 1), (3, 8, 7)])
@pytest.mark.parametrize("with_state", [True, False])
def test_cell_matches_torch(ours_cls, ref_cls, B: int, I: int, H: int, with_state: bool) -> None:
    ours = ours_cls(I, H).double()
    ref = ref_cls(I, H).double()
    ref.load_state_dict(ours.state_dict())  # same names and shapes: weight_ih (G*H, I), ...
    x, x_ref = _leaf(torch.randn(B, I, dtype=torch.float64))
    leaves = [(x, x_ref)]
    if with_state:
        n_state = 2 if ours_cls is LSTMCell else 1
        states = [_leaf(torch.randn(B, H, dtype=torch.float64)) for _ in range(n_state)]
        leaves += states
        s, s_ref = [a for a, _ in states], [b for _, b in states]
        s, s_ref = (tuple(s), tuple(s_ref)) if n_state == 2 else (s[0], s_ref[0])
        out, out_ref = _as_tuple(ours(x, s)), _as_tuple(ref(x_ref, s_ref))
    else:
        out, out_ref = _as_tuple(ours(x)), _as_tuple(ref(x_ref))
    loss, loss_ref = 0.0, 0.0
    for k, (a, b) in enumerate(zip(out, out_ref)):
        torch.testing.assert_close(a, b)
        g = torch.randn(a.shape, dtype=torch.float64)
        loss, loss_ref = loss + (a * g).sum(), loss_ref + (b * g).sum()
    (loss + loss_ref).backward()
    _assert_same_grads(ours, ref, leaves)


@pytest.mark.parametrize(("ours_cls", "ref_cls"), STACKS)
@pytest.mark.parametrize(("B", "T", "I", "H", "L"), [(3, 5, 4, 6, 1), (2, 1, 3, 5, 1), (4, 6, 3, 7, 2), (1, 1, 1, 1, 2), (2, 9, 5, 3, 3)])
@pytest.mark.parametrize("with_state", [True, False])
def test_stack_matches_torch(ours_cls, ref_cls, B: int, T: int, I: int, H: int, L: int, with_state: bool) -> None:
    ours = ours_cls(I, H, num_layers=L).double()
    ref = ref_cls(I, H, num_layers=L, batch_first=True).double()
    ref.load_state_dict(ours.state_dict())  # weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...
    x, x_ref = _leaf(torch.randn(B, T, I, dtype=torch.float64))
    leaves = [(x, x_ref)]
    args, args_ref = [x], [x_ref]
    if with_state:
        n_state = 2 if ours_cls is LSTM else 1
        states = [_leaf(torch.randn(L, B, H, dtype=torch.float64)) for _ in range(n_state)]
        leaves += states
        s, s_ref = [a for a, _ in states], [b for _, b in states]
        args.append(tuple(s) if n_state == 2 else s[0])
        args_ref.append(tuple(s_ref) if n_state == 2 else s_ref[0])
    out, state = ours(*args)
    out_ref, state_ref = ref(*args_ref)
    assert out.shape == (B, T, H)
    torch.testing.assert_close(out, out_ref)
    g = torch.randn(out.shape, dtype=torch.float64)
    loss, loss_ref = (out * g).sum(), (out_ref * g).sum()
    for a, b in zip(_as_tuple(state), _as_tuple(state_ref)):
        assert a.shape == (L, B, H)
        torch.testing.assert_close(a, b)
        gs = torch.randn(a.shape, dtype=torch.float64)
        loss, loss_ref = loss + (a * gs).sum(), loss_ref + (b * gs).sum()
    (loss + loss_ref).backward()
    _assert_same_grads(ours, ref, leaves)


@pytest.mark.parametrize(("ours_cls", "ref_cls"), STACKS)
def test_parameter_names_and_shapes_match_torch(ours_cls, ref_cls) -> None:
    ours, ref = ours_cls(3, 5, num_layers=2), ref_cls(3, 5, num_layers=2, batch_first=True)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    bound = 1 / 5**0.5
    assert all(p.abs().max() <= bound for p in ours.parameters())  # torch's init range


def test_step_equals_forward() -> None:
    lstm = LSTM(3, 4, num_layers=2).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    out, (h, c) = lstm(x)
    state = lstm.initial_state(x, None)
    for t in range(5):
        y, state = lstm.step(x[:, t], state)
        torch.testing.assert_close(y, out[:, t])
    torch.testing.assert_close(state[0], h)
    torch.testing.assert_close(state[1], c)


def test_gru_gate_order_and_update_convention() -> None:
    # with z forced to 1 (huge bias on the z block) the GRU copies its state; with z = 0 it takes n
    H, I = 3, 2
    w_ih, w_hh = torch.randn(3 * H, I), torch.randn(3 * H, H)
    b_ih, b_hh = torch.zeros(3 * H), torch.zeros(3 * H)
    x, h = torch.randn(4, I), torch.randn(4, H)
    b_ih[H : 2 * H] = 50.0
    torch.testing.assert_close(gru_cell(x, h, w_ih, w_hh, b_ih, b_hh), h)
    b_ih[H : 2 * H] = -50.0
    n = torch.tanh(x @ w_ih[2 * H :].T + torch.sigmoid(x @ w_ih[:H].T + h @ w_hh[:H].T) * (h @ w_hh[2 * H :].T))
    torch.testing.assert_close(gru_cell(x, h, w_ih, w_hh, b_ih, b_hh), n)


@pytest.mark.parametrize(
    ("make", "call", "fragment"),
    [
        (lambda: LSTM(3, 4), lambda m: m(torch.randn(2, 5, 6)), "(B, T, 3), got (2, 5, 6)"),
        (lambda: GRU(3, 4), lambda m: m(torch.randn(5, 3)), "(B, T, 3), got (5, 3)"),
        (lambda: RNN(3, 4, 2), lambda m: m(torch.randn(2, 5, 3), torch.zeros(1, 2, 4)), "(2, 2, 4), got (1, 2, 4)"),
        (lambda: LSTM(3, 4), lambda m: m(torch.randn(2, 5, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4))), "(1, 2, 4), got (1, 3, 4)"),
        (lambda: LSTMCell(3, 4), lambda m: m(torch.randn(2, 2)), "(B, 3), got (2, 2)"),
        (lambda: GRUCell(3, 4), lambda m: m(torch.randn(2, 3), torch.zeros(2, 5)), "(2, 4), got (2, 5)"),
        (lambda: RNNCell(3, 4), lambda m: m(torch.randn(2, 3), torch.zeros(3, 4)), "(2, 4), got (3, 4)"),
    ],
)
def test_bad_shapes_raise_value_error(make, call, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        call(make())


def test_bad_sizes_raise_value_error() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        LSTM(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="0"):
        GRUCell(3, 0)
