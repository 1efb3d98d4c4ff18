"""The one training loop: options, callbacks, custom losses and parameters; Part II's recipe over it."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlscratch.training.loop as loop
from dlscratch.layers.mini_nn import Embedding, FlattenConsecutive, Linear, Sequential, Tanh
from dlscratch.optimizers import constant, step_decay, warmup_cosine
from dlscratch.training import Callback, part2_schedule, random_examples, train, train_lm


def _task() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 5, (512, 2), generator=g)
    return X, (X[:, 0] + X[:, 1]) % 5  # learnable: next id is the sum mod 5


def _model(seed: int = 0) -> Sequential:
    torch.manual_seed(seed)  # mini_nn layers draw their weights from the global generator
    return Sequential([Embedding(5, 4), FlattenConsecutive(2), Linear(8, 32), Tanh(), Linear(32, 5)])


def _linear_run(**kwargs) -> tuple[nn.Linear, object]:
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    x = torch.randn(12, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (12,))
    opt = torch.optim.SGD(model.parameters(), lr=kwargs.pop("lr", 0.5))
    state = train(model, iter([(x, y)] * 5), opt, steps=kwargs.pop("steps", 5), progress=False, **kwargs)
    return model, state


def test_part2_schedules_are_the_schedules_module() -> None:
    assert [part2_schedule("constant", 100)(s) for s in range(100)] == [constant(s) for s in range(100)]
    step = part2_schedule("step", 1000, min_lr_ratio=0.1)
    assert [step(s) for s in (0, 749, 750, 999)] == [step_decay(s, 750, 0.1) for s in (0, 749, 750, 999)] == [1.0, 1.0, 0.1, 0.1]
    cosine = part2_schedule("cosine", 1000, min_lr_ratio=0.2)
    assert all(cosine(s) == warmup_cosine(s, 1, 1000, 0.2) for s in range(1000))
    assert cosine(0) == 1.0 and cosine(999) == pytest.approx(0.2)  # the peak first, the floor on the last update
    with pytest.raises(ValueError, match="'linear'"):
        part2_schedule("linear", 10)


@pytest.mark.parametrize(("optimizer", "lr", "schedule"), [("sgd", 0.5, "step"), ("adam", 0.02, "cosine"), ("sgd", 0.3, "constant")])
def test_loss_goes_down(optimizer: str, lr: float, schedule: str) -> None:
    X, Y = _task()
    model = _model()
    hist = train_lm(model, model.parameters(), X, Y, steps=300, batch_size=64, lr=lr, optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else 0.0, schedule=schedule)
    assert len(hist) == 300 and all(math.isfinite(v) for v in hist)
    assert sum(hist[-20:]) / 20 < 0.5 * sum(hist[:20]) / 20


def test_same_seed_same_run() -> None:
    X, Y = _task()
    runs = []
    for _ in range(2):
        model = _model()
        runs.append(train_lm(model, model.parameters(), X, Y, steps=20, batch_size=16, lr=0.1, seed=5))
    assert runs[0] == runs[1]
    model = _model()
    assert train_lm(model, model.parameters(), X, Y, steps=20, batch_size=16, lr=0.1, seed=6) != runs[0]


def test_bad_arguments() -> None:
    X, Y = _task()
    model = _model()
    with pytest.raises(ValueError, match="steps must be positive, got 0"):
        train_lm(model, model.parameters(), X, Y, steps=0, batch_size=4, lr=0.1)
    with pytest.raises(ValueError, match="'rmsprop'"):
        train_lm(model, model.parameters(), X, Y, steps=1, batch_size=4, lr=0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="512 examples but Y has 3"):
        next(random_examples(X, Y[:3], 4, 0))
    with pytest.raises(ValueError, match="require gradients"):
        train_lm(model, [torch.zeros(3)], X, Y, steps=1, batch_size=4, lr=0.1)


def test_one_step_is_one_sgd_update_with_the_scheduled_rate() -> None:
    model, state = _linear_run(steps=1, schedule=lambda s: 0.25)
    torch.manual_seed(0)
    ref = nn.Linear(3, 2).double()
    x = torch.randn(12, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (12,))
    F.cross_entropy(ref(x), y).backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= 0.5 * 0.25 * p.grad
    torch.testing.assert_close(model.weight, ref.weight)
    assert state.lrs == [0.125] and state.step == 1 and len(state.train_loss) == 1


def test_accumulation_equals_the_full_batch_and_clipping_matches_torch() -> None:
    full, _ = _linear_run()
    split, _ = _linear_run(accumulate=4)
    for a, b in zip(full.parameters(), split.parameters()):
        torch.testing.assert_close(a, b)
    clipped, _ = _linear_run(steps=1, grad_clip=0.01)
    torch.manual_seed(0)
    ref = nn.Linear(3, 2).double()
    x = torch.randn(12, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (12,))
    F.cross_entropy(ref(x), y).backward()
    nn.utils.clip_grad_norm_(ref.parameters(), 0.01)
    with torch.no_grad():
        for p in ref.parameters():
            p -= 0.5 * p.grad
    torch.testing.assert_close(clipped.weight, ref.weight)


def test_custom_loss_and_parameter_selection_leave_frozen_weights_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    model[0].requires_grad_(False)  # frozen base, as with LoRA
    frozen = model[0].weight.detach().clone()
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    seen = []

    def mse(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        seen.append(torch.is_autocast_enabled("cpu"))
        return F.mse_loss(m(batch[0]).float(), batch[1])

    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    state = train(model, iter([(x, y)] * 30), opt, steps=30, loss_fn=mse, autocast=torch.bfloat16, progress=False)
    assert torch.equal(model[0].weight, frozen) and all(seen)
    assert state.train_loss[-1] < state.train_loss[0]
    with pytest.raises(ValueError, match="require gradients"):
        train(model, iter([]), opt, steps=1, params=model[0].parameters(), progress=False)


def test_callbacks_see_every_step_and_can_stop_and_a_scheduler_object_is_stepped() -> None:
    class StopAt(Callback):
        def __init__(self) -> None:
            self.steps, self.ended = [], False

        def on_step(self, state) -> None:
            self.steps.append(state.step)
            state.stop = state.step == 3

        def on_end(self, state) -> None:
            self.ended = True

    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    cb = StopAt()
    batches = ((torch.randn(4, 3), torch.randint(0, 2, (4,))) for _ in range(100))
    state = train(model, batches, opt, sched, steps=10, callbacks=[cb], progress=False)
    assert cb.steps == [1, 2, 3] and cb.ended and state.step == 3
    assert state.lrs == [1.0, 0.5, 0.25] and opt.param_groups[0]["lr"] == 0.125


def test_resuming_continues_the_schedule_and_an_exhausted_iterable_ends_the_run() -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    batches = [(torch.randn(4, 3), torch.randint(0, 2, (4,)))] * 3
    state = train(model, batches, opt, lambda s: 1 / (s + 1), steps=10, start_step=4, progress=False)
    assert state.step == 7 and state.lrs == pytest.approx([1 / 5, 1 / 6, 1 / 7])


def test_train_seconds_synchronise_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    loop.synchronize(torch.device("cpu"))
    assert calls == []
    loop.synchronize(torch.device("cuda", 0))
    assert calls == [torch.device("cuda", 0)]
    devices = []
    monkeypatch.setattr(loop, "synchronize", devices.append)
    _, state = _linear_run()
    assert devices == [torch.device("cpu")] * 2  # before the clock starts and before it stops
    assert 0 < state.train_seconds <= state.seconds



def test_evaluate_stop_at_ends_the_run_at_the_target_and_times_training_alone() -> None:
    from dlscratch.training import Evaluate

    model = _model()
    X, Y = _task()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)

    def accuracy(m) -> dict[str, float]:
        time.sleep(0.05)  # a slow evaluation must not count as training time
        return {"acc": (m(X).argmax(-1) == Y).float().mean().item()}

    clock = Evaluate(5, accuracy, "acc", mode="max", stop_at=0.9)
    state = train(model, random_examples(X, Y, 64, seed=0), opt, steps=2000, callbacks=[clock], progress=False)
    assert clock.reached and state.step == clock.steps[-1] < 2000
    assert clock.results[-1]["acc"] >= 0.9 and all(r["acc"] < 0.9 for r in clock.results[:-1])
    assert len(clock.seconds) == len(clock.steps) and clock.seconds == sorted(clock.seconds)
    assert clock.seconds[-1] <= state.train_seconds + 1e-6
    assert state.untimed_seconds >= 0.05 * len(clock.results)  # evaluations were excluded
    never = Evaluate(5, lambda m: {"acc": 0.0}, "acc", mode="max", stop_at=0.9)
    other = _model(1)
    opt = torch.optim.Adam(other.parameters(), lr=3e-2)
    state = train(other, random_examples(X, Y, 64, seed=0), opt, steps=20, callbacks=[never], progress=False)
    assert not never.reached and state.step == 20


def test_float16_autocast_scales_the_loss_and_skips_an_overflowing_update():
    from dlscratch.utils import mixed_precision_dtype

    assert mixed_precision_dtype(torch.device("cpu")) == torch.bfloat16
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    ref, amp = torch.nn.Linear(8, 3), torch.nn.Linear(8, 3)
    amp.load_state_dict(ref.state_dict())
    for model, dtype in ((ref, None), (amp, torch.float16)):
        train(model, [(x, y)] * 5, torch.optim.SGD(model.parameters(), lr=0.1), steps=5, grad_clip=1.0, autocast=dtype,
              progress=False, announce=False)
    # unscaled before clipping: the float16 run takes the same steps as the float32 one, to float16 precision
    torch.testing.assert_close(amp.weight, ref.weight, atol=5e-3, rtol=0)

    def exploding(model, batch):  # a loss whose scaled gradient overflows float16
        return 1e35 * torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    before = amp.weight.detach().clone()
    state = train(amp, [(x, y)], torch.optim.SGD(amp.parameters(), lr=0.1), steps=1, loss_fn=exploding,
                  autocast=torch.float16, progress=False, announce=False)
    assert state.step == 1 and torch.equal(amp.weight, before)  # the overflowing update was skipped
