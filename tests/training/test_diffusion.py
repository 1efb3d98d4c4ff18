"""Chapter 35's training and evaluation helpers: the loss, the batches, the Fréchet distance, diversity."""

from __future__ import annotations

import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from dlscratch.data.captions import caption_tokenizer
from dlscratch.models.cnn import LeNet, LeNetConfig
from dlscratch.models.diffusion import NoiseSchedule
from dlscratch.training.diffusion import (
    guidance_caption_batches,
    diffusion_loss,
    frechet_distance,
    generate,
    penultimate_features,
    within_class_diversity,
)


def test_loss_is_the_noise_regression_at_the_drawn_timesteps() -> None:
    sched = NoiseSchedule.cosine(50)
    x0 = torch.randn(6, 3, dtype=torch.float64)
    model = lambda x, t: 0.5 * x + t[:, None] / 50.0  # noqa: E731
    got = diffusion_loss(model, sched, x0, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(0, 50, (6,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    ab = sched.alphas_cumprod[t][:, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    torch.testing.assert_close(got, ((model(xt, t) - noise) ** 2).mean())


def test_caption_batches_scale_drop_and_pad() -> None:
    tok = caption_tokenizer()
    images, labels = torch.rand(20, 1, 4, 4), torch.arange(20) % 10
    batches = list(guidance_caption_batches(images, labels, tok, batch_size=64, steps=3, p_uncond=0.5, generator=torch.Generator().manual_seed(0)))
    assert len(batches) == 3
    x0, ids = batches[0]
    assert x0.min() >= -1 and x0.max() <= 1 and x0.min() < -0.5
    null = ids[:, 0] == tok.special_tokens["<eot>"]
    assert 10 < int(null.sum()) < 54  # about half are the empty caption
    none = next(guidance_caption_batches(images, labels, tok, batch_size=64, steps=1, p_uncond=0.0, generator=torch.Generator()))
    assert not bool((none[1][:, 0] == tok.special_tokens["<eot>"]).any())
    with pytest.raises(ValueError, match=r"\[0, 1\], got 1.5"):
        next(guidance_caption_batches(images, labels, tok, batch_size=4, steps=1, p_uncond=1.5, generator=torch.Generator()))
    with pytest.raises(ValueError, match="got 19 labels for 20 images"):
        next(guidance_caption_batches(images, labels[:19], tok, batch_size=4, steps=1, generator=torch.Generator()))


def test_frechet_distance_equals_the_scipy_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(300, 4, generator=gen, dtype=torch.float64) @ torch.randn(4, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(200, 4, generator=gen, dtype=torch.float64) * 2 + 1
    ca, cb = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    root = scipy.linalg.sqrtm(ca @ cb).real
    want = float(((a.mean(0) - b.mean(0)) ** 2).sum()) + float((ca + cb - 2 * root).trace())
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(a, b[:, :3])


def test_within_class_diversity() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])  # class 2 has one sample: left out
    assert within_class_diversity(x, labels) == pytest.approx((5.0 + 0.0) / 2)
    with pytest.raises(ValueError, match="at least two samples"):
        within_class_diversity(x[:1], labels[:1])


def test_penultimate_features_and_generate() -> None:
    torch.manual_seed(0)
    clf = LeNet(LeNetConfig()).eval()
    x = torch.rand(5, 1, 8, 8)
    feats = penultimate_features(clf, x)
    with torch.inference_mode():
        torch.testing.assert_close(clf.classifier[-1](feats), clf(x))
    sched = NoiseSchedule.linear(20)
    calls = []

    def model(x, t, ids):  # noqa: ANN001, ANN202
        calls.append(ids.clone())
        return torch.zeros_like(x)

    ids, null = torch.tensor([[4, 1], [5, 1]]), torch.tensor([[1, 0]])
    with pytest.raises(ValueError, match=r"\(1, 2\), got \(1, 3\)"):
        generate(_Wrap(model), sched, ids, torch.tensor([[1, 0, 0]]), w=1.0, steps=2, shape=(1, 2, 2), generator=torch.Generator())
    out = generate(_Wrap(model), sched, ids, null, w=2.0, steps=4,
                   shape=(1, 2, 2), generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 2, 2) and out.min() >= 0 and out.max() <= 1
    assert len(calls) == 4 and torch.equal(calls[0], torch.tensor([[4, 1], [5, 1], [1, 0], [1, 0]]))


class _Wrap(torch.nn.Module):
    def __init__(self, fn) -> None:  # noqa: ANN001
        super().__init__()
        self.fn, self.p = fn, torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, ids):  # noqa: ANN001, ANN201
        return self.fn(x, t, ids)


def test_ema_equals_torch_averaged_model() -> None:
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from dlscratch.training import train
    from dlscratch.training.diffusion import EMA

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    ema, ref = EMA(model, 0.9), AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))

    class Ref:
        def on_step(self, state) -> None:  # noqa: ANN001
            ref.update_parameters(model)

        def on_end(self, state) -> None:  # noqa: ANN001
            pass

    x, y = torch.randn(10, 8, 3, dtype=torch.float64), torch.randn(10, 8, 2, dtype=torch.float64)
    train(model, zip(x, y), torch.optim.SGD(model.parameters(), lr=0.1), steps=10,
          loss_fn=lambda m, b: F.mse_loss(m(b[0]), b[1]), callbacks=[ema, Ref()], progress=False)
    averaged = ema.copy_to(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double())
    for (name, p), q in zip(averaged.named_parameters(), ref.module.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    assert not torch.allclose(averaged[0].weight, model[0].weight)
    with pytest.raises(ValueError, match=r"\[0, 1\), got 1.0"):
        EMA(model, 1.0)
