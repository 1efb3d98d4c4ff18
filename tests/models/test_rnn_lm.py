"""Character LSTM: the window interface (``logits`` on build_examples contexts, as mean_nll uses it)
gives exactly the per-position loss of the sequence model, and the boundary token resets the state."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.data import build_examples
from dlscratch.models.rnn_lm import CharLSTM, CharLSTMConfig, build_sequences
from dlscratch.models.sampling import sample_words
from dlscratch.training import mean_nll

WORDS = ["emma", "olivia", "ava", "x", "isabella", "sophia", "mia", "bo"]


@pytest.fixture(params=[1, 2])
def model(request) -> CharLSTM:
    torch.manual_seed(0)
    return CharLSTM(CharLSTMConfig(block_size=10, n_embd=5, n_hidden=7, n_layers=request.param)).double().eval()


def test_build_sequences_layout() -> None:
    X, Y = build_sequences(["emma", "bo"], block_size=6)
    assert X.tolist() == [[0, 5, 13, 13, 1, 0], [0, 2, 15, 0, 0, 0]]
    assert Y.tolist() == [[5, 13, 13, 1, 0, -1], [2, 15, 0, -1, -1, -1]]
    with pytest.raises(ValueError, match="'emma' \\(4 characters\\)"):
        build_sequences(["emma"], block_size=4)


def test_window_loss_equals_sequence_loss(model: CharLSTM) -> None:
    X, Y = build_examples(WORDS, block_size=10)
    Xs, Ys = build_sequences(WORDS, block_size=10)
    with torch.no_grad():
        seq_loss = model.loss(Xs, Ys).item()
    assert Y.numel() == (Ys != -1).sum()  # the same predictions, counted once each
    assert mean_nll(model.logits, X, Y) == pytest.approx(seq_loss, rel=1e-6)  # mean_nll sums float32 losses


def test_boundary_resets_the_state(model: CharLSTM) -> None:
    short = torch.tensor([[0, 5, 13, 13]])
    long = torch.tensor([[0, 0, 0, 0, 7, 3, 0, 5, 13, 13]])  # other text before the boundary
    with torch.no_grad():
        torch.testing.assert_close(model.logits(long), model.logits(short))
        torch.testing.assert_close(model(short)[0], model(long)[0, -4:])


def test_forward_matches_a_torch_lstm_on_one_word() -> None:
    torch.manual_seed(0)
    m = CharLSTM(CharLSTMConfig(n_embd=5, n_hidden=7, n_layers=2)).double()
    ref = torch.nn.LSTM(5, 7, num_layers=2, batch_first=True).double()
    ref.load_state_dict(m.lstm.state_dict())
    idx = torch.tensor([[0, 5, 13, 13, 1]])  # one boundary, at the start: no reset inside
    out, _ = ref(m.wte(idx))
    torch.testing.assert_close(m(idx), m.lm_head(out))
    y = torch.tensor([[5, 13, 13, 1, 0]])
    torch.testing.assert_close(m.loss(idx, y), F.cross_entropy(m.lm_head(out)[0], y[0]))


def test_sampling_is_seeded(model: CharLSTM) -> None:
    itos = [".", *"abcdefghijklmnopqrstuvwxyz"]
    a = sample_words(model.logits, 10, 5, seed=3, itos=itos, max_len=9)
    assert a == sample_words(model.logits, 10, 5, seed=3, itos=itos, max_len=9) and len(a) == 5


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="n_hidden=0"):
        CharLSTMConfig(n_hidden=0)
