"""The classifier training loop: metrics vs scikit-learn, early stopping, determinism, scheduler, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from torch import nn

from dlscratch.layers.losses import cross_entropy
from dlscratch.models.mlp_classifier import MLPClassifier, MLPClassifierConfig
from dlscratch.training.classify import accuracy, confusion_matrix, evaluate_classifier, fit_classifier, predict
from dlscratch.utils import seed_everything


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian blobs shaped like (N, 1, 2, 2) 'images', with some overlap."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    x = centres[y] + 0.6 * torch.randn(n, 4, generator=g)
    return x.view(n, 1, 2, 2), y


def _model(seed: int = 0, **kwargs) -> MLPClassifier:
    seed_everything(seed)
    cfg = MLPClassifierConfig(in_shape=(1, 2, 2), n_classes=3, hidden=16, depth=1, **kwargs)
    return MLPClassifier(cfg)


def test_accuracy_and_confusion_matrix_match_sklearn() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 7, generator=g)
    target = torch.randint(0, 7, (500,), generator=g)
    pred = logits.argmax(-1)
    assert accuracy(logits, target) == pytest.approx(accuracy_score(target.numpy(), pred.numpy()))
    assert accuracy(pred, target) == accuracy(logits, target)
    cm = confusion_matrix(target, pred, 7)
    assert cm.dtype == torch.int64 and cm.shape == (7, 7)
    assert (cm.numpy() == sk_confusion_matrix(target.numpy(), pred.numpy(), labels=list(range(7)))).all()
    assert cm.trace().item() / cm.sum().item() == pytest.approx(accuracy(logits, target))


def test_confusion_matrix_counts_absent_classes_as_zero_rows() -> None:
    cm = confusion_matrix(torch.tensor([0, 0, 2]), torch.tensor([0, 2, 2]), 4)
    assert cm.tolist() == [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_evaluate_uses_eval_mode_and_inference_mode() -> None:
    model = _model(dropout=0.5)
    x, y = _blobs(64, 1)
    model.eval()
    want = model(x)  # dropout off
    model.train()
    loss, acc = evaluate_classifier(model, x, y)
    logits = predict(model, x, batch_size=10)  # chunked prediction equals one batch
    assert logits.is_inference()
    torch.testing.assert_close(logits, want)
    assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert acc == pytest.approx(accuracy(logits, y))


@pytest.mark.parametrize("training", [True, False])
def test_predict_restores_the_previous_mode(training: bool) -> None:
    model = _model(dropout=0.5)
    model.train(training)
    x, y = _blobs(8, 1)
    predict(model, x)
    assert model.training == training and all(m.training == training for m in model.modules())
    evaluate_classifier(model, x, y)
    assert model.training == training


def test_training_learns_and_history_is_complete() -> None:
    x, y = _blobs(300, 0)
    xv, yv = _blobs(200, 1)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    hist = fit_classifier(model, x, y, xv, yv, optimizer=opt, epochs=15, batch_size=32, generator=torch.Generator().manual_seed(0))
    assert hist.epochs_run == 15 == len(hist.val_loss) == len(hist.val_acc)
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert max(hist.val_acc) > 0.75  # the blobs are separable well above chance (1/3)
    assert 0 <= hist.best_epoch < 15 and not hist.stopped_early


def test_same_seed_same_run_different_seed_different_run() -> None:
    x, y = _blobs(200, 0)
    xv, yv = _blobs(100, 1)

    def run(seed: int) -> tuple[list[float], dict[str, torch.Tensor]]:
        model = _model(seed, dropout=0.2)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        hist = fit_classifier(
            model, x, y, xv, yv, optimizer=opt, epochs=4, batch_size=16, generator=torch.Generator().manual_seed(seed),
            transform=lambda xb, g: xb + 0.1 * torch.randn(xb.shape, generator=g),
        )
        return hist.train_loss + hist.val_loss, model.state_dict()

    (h1, s1), (h2, s2), (h3, _) = run(0), run(0), run(1)
    assert h1 == h2
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert h1 != h3


class _Scripted(nn.Module):
    """A 'model' whose validation loss follows a script: logits for class 0 get a set margin."""

    def __init__(self, margins: list[float]) -> None:
        super().__init__()
        self.margins = margins
        self.epoch = nn.Parameter(torch.zeros(()))  # trained: +1 per epoch (see the optimizer below)
        self.register_buffer("evals", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        if self.training:
            return self.epoch * torch.ones(B, 2)  # gradient of the loss wrt epoch is 0: only the step moves it
        m = self.margins[int(self.epoch.item()) - 1]
        return torch.stack([torch.full((B,), m), torch.zeros(B)], dim=1)


class _CountEpochs(torch.optim.Optimizer):
    def __init__(self, params) -> None:
        super().__init__(params, {})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(1.0)


@pytest.mark.parametrize(("patience", "epochs_run", "best"), [(1, 3, 1), (2, 4, 1), (3, 5, 1), (4, 8, 5), (10, 8, 5)])
def test_early_stopping_stops_after_patience_and_restores_best_weights(patience, epochs_run, best) -> None:
    # val loss of class-0 targets falls with the margin: best epochs are 1 (margin 3) then 5 (margin 4)
    margins = [1.0, 3.0, 2.0, 0.5, 2.5, 4.0, 1.0, 0.0]
    model = _Scripted(margins)
    x, y = torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)
    hist = fit_classifier(
        model, x, y, x, y, optimizer=_CountEpochs(model.parameters()), epochs=len(margins), batch_size=4,
        generator=torch.Generator().manual_seed(0), patience=patience,
    )
    assert hist.epochs_run == epochs_run
    assert hist.best_epoch == best
    assert hist.stopped_early == (epochs_run < len(margins))
    assert model.epoch.item() == best + 1  # the weights of the best epoch (after its step), not the last
    want = [F.cross_entropy(torch.tensor([[m, 0.0]]), torch.tensor([0])).item() for m in margins[:epochs_run]]
    assert hist.val_loss == pytest.approx(want, rel=1e-6)


def test_restore_best_false_keeps_the_last_weights_and_val_acc_monitor() -> None:
    margins = [1.0, 3.0, 2.0, -1.0, -2.0]
    model = _Scripted(margins)
    x, y = torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)
    hist = fit_classifier(
        model, x, y, x, y, optimizer=_CountEpochs(model.parameters()), epochs=5, batch_size=4,
        generator=torch.Generator().manual_seed(0), restore_best=False, monitor="val_acc",
    )
    assert hist.best_epoch == 0  # accuracy is 1 for epochs 0-2; ties keep the earliest
    assert model.epoch.item() == 5


def test_scheduler_is_stepped_per_epoch_or_per_batch() -> None:
    x, y = _blobs(40, 0)
    for interval, steps in (("epoch", 3), ("batch", 3 * 4)):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        fit_classifier(
            model, x, y, x, y, optimizer=opt, epochs=3, batch_size=10, generator=torch.Generator().manual_seed(0),
            scheduler=sched, scheduler_interval=interval,
        )
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5**steps)


def test_custom_training_loss_and_default_validation_loss() -> None:
    x, y = _blobs(60, 0)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    hist = fit_classifier(
        model, x, y, x, y, optimizer=opt, epochs=1, batch_size=60, generator=torch.Generator().manual_seed(0),
        loss_fn=lambda z, t: cross_entropy(z, t, label_smoothing=0.3),
    )
    model.eval()
    with torch.no_grad():
        plain = F.cross_entropy(model(x), y).item()
    assert hist.val_loss[0] == pytest.approx(plain, rel=1e-6)  # validation stays on the plain scale


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"patience": 0}, "got 0"),
        ({"monitor": "loss"}, "'loss'"),
        ({"scheduler_interval": "step"}, "'step'"),
    ],
)
def test_bad_settings(kwargs, match) -> None:
    x, y = _blobs(10, 0)
    model = _model()
    args = {"optimizer": torch.optim.SGD(model.parameters(), lr=0.1), "epochs": 1, "batch_size": 4,
            "generator": torch.Generator(), **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_classifier(model, x, y, x, y, **args)


def test_mismatched_split_names_both_sizes() -> None:
    x, y = _blobs(10, 0)
    model = _model()
    with pytest.raises(ValueError, match="10 examples and y_train 11"):
        fit_classifier(
            model, x, torch.zeros(11, dtype=torch.long), x, y, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            epochs=1, batch_size=4, generator=torch.Generator(),
        )


def test_metric_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="max 5"):
        confusion_matrix(torch.tensor([0, 5]), torch.tensor([0, 1]), 5)
    with pytest.raises(ValueError, match="3 and 2"):
        confusion_matrix(torch.tensor([0, 1, 2]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        accuracy(torch.randn(3, 2), torch.zeros(4, dtype=torch.long))
