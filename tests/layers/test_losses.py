"""Our cross-entropy vs F.cross_entropy (values and every gradient), and label smoothing as a mixture."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers.losses import clip_loss, cross_entropy, distillation_loss, info_nce
from tests.helpers import assert_same_forward_backward


@pytest.mark.parametrize("shape", [(1, 2), (7, 10), (32, 3), (5, 1)])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.37, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch_forward_and_gradients(shape, label_smoothing, reduction) -> None:
    N, K = shape
    logits = torch.randn(N, K, dtype=torch.float64) * 3
    target = torch.randint(0, K, (N,))
    assert_same_forward_backward(
        lambda z, y: cross_entropy(z, y, label_smoothing=label_smoothing, reduction=reduction),
        lambda z, y: F.cross_entropy(z, y, label_smoothing=label_smoothing, reduction=reduction),
        [logits, target],
    )


def test_stable_for_huge_logits() -> None:
    logits = torch.tensor([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 1.0]], dtype=torch.float64)
    target = torch.tensor([0, 2])
    for eps in (0.0, 0.2):
        ours = cross_entropy(logits, target, label_smoothing=eps, reduction="none")
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, F.cross_entropy(logits, target, label_smoothing=eps, reduction="none"))


def test_label_smoothing_is_a_mixture_with_the_uniform_distribution() -> None:
    N, K, eps = 9, 6, 0.25
    logits = torch.randn(N, K, dtype=torch.float64)
    target = torch.randint(0, K, (N,))
    q = (1 - eps) * F.one_hot(target, K).double() + eps / K  # (N, K) smoothed targets
    assert torch.allclose(q.sum(-1), torch.ones(N, dtype=torch.float64))
    soft = -(q * torch.log_softmax(logits, -1)).sum(-1)  # cross-entropy against q
    torch.testing.assert_close(cross_entropy(logits, target, eps, reduction="none"), soft)
    # the same number as the mixture of the two losses
    mix = (1 - eps) * cross_entropy(logits, target) + eps * cross_entropy(logits, target, 1.0)
    torch.testing.assert_close(cross_entropy(logits, target, eps), mix)
    # and F.cross_entropy with probability targets agrees
    torch.testing.assert_close(cross_entropy(logits, target, eps), F.cross_entropy(logits, q))


def test_gradient_is_softmax_minus_target() -> None:
    N, K, eps = 8, 5, 0.1
    logits = torch.randn(N, K, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, K, (N,))
    cross_entropy(logits, target, eps).backward()
    q = (1 - eps) * F.one_hot(target, K).double() + eps / K
    torch.testing.assert_close(logits.grad, (torch.softmax(logits.detach(), -1) - q) / N)


@pytest.mark.parametrize(
    ("logits", "target", "kwargs", "match"),
    [
        (torch.randn(4), torch.zeros(4, dtype=torch.long), {}, r"\(4,\)"),
        (torch.randn(4, 3), torch.zeros(5, dtype=torch.long), {}, r"\(5,\)"),
        (torch.randn(4, 3), torch.zeros(4), {}, "float32"),
        (torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), {}, "max 3"),
        (torch.randn(4, 3), torch.tensor([0, -1, 2, 1]), {}, "min -1"),
        (torch.randn(4, 3), torch.zeros(4, dtype=torch.long), {"label_smoothing": 1.5}, "1.5"),
        (torch.randn(4, 3), torch.zeros(4, dtype=torch.long), {"reduction": "avg"}, "avg"),
    ],
)
def test_bad_input(logits, target, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        cross_entropy(logits, target, **kwargs)


def test_target_range_check_never_reads_an_accelerator_tensor_back() -> None:
    # On a GPU, min()/max() followed by `if` costs two host syncs per step. The check runs on CPU
    # tensors only; "meta" tensors stand in for device ones (reading one back raises).
    logits = torch.randn(4, 3, device="meta", requires_grad=True)
    loss = cross_entropy(logits, torch.zeros(4, dtype=torch.long, device="meta"), label_smoothing=0.1)
    assert loss.device.type == "meta" and loss.shape == ()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cross_entropy_on_cuda_does_not_sync() -> None:
    logits = torch.randn(8, 5, device="cuda")
    target = torch.randint(0, 5, (8,), device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = cross_entropy(logits, target)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(loss, F.cross_entropy(logits, target))


class TestDistillationLoss:
    """Hinton et al. (2015): the T^2-scaled KL to the teacher's softened distribution, plus the hard labels."""

    def test_equals_torch_kl_div_and_cross_entropy(self) -> None:
        z = torch.randn(6, 10, dtype=torch.float64, requires_grad=True)
        v, y = torch.randn(6, 10, dtype=torch.float64) * 3, torch.randint(0, 10, (6,))
        for T, alpha in ((1.0, 0.5), (4.0, 0.9), (10.0, 1.0), (2.0, 0.0)):
            ours = distillation_loss(z, v, y, T, alpha)
            z2 = z.detach().clone().requires_grad_(True)
            ref = alpha * T**2 * F.kl_div(F.log_softmax(z2 / T, -1), F.log_softmax(v / T, -1), reduction="batchmean",
                                          log_target=True) + (1 - alpha) * F.cross_entropy(z2, y)
            torch.testing.assert_close(ours, ref)
            (g,) = torch.autograd.grad(ours, z)
            ref.backward()
            torch.testing.assert_close(g, z2.grad)

    def test_soft_gradient_is_t_times_the_probability_gap(self) -> None:
        z = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
        v, T = torch.randn(4, 5, dtype=torch.float64), 6.0
        distillation_loss(z, v, torch.zeros(4, dtype=torch.long), T, alpha=1.0).backward()
        want = T * ((z.detach() / T).softmax(-1) - (v / T).softmax(-1)) / 4
        torch.testing.assert_close(z.grad, want)

    def test_bad_input(self) -> None:
        z, y = torch.randn(3, 4), torch.zeros(3, dtype=torch.long)
        with pytest.raises(ValueError, match="temperature must be positive, got temperature=0"):
            distillation_loss(z, z, y, 0)
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            distillation_loss(z, z, y, 2.0, 1.5)
        with pytest.raises(ValueError, match="same shape"):
            distillation_loss(z, torch.randn(3, 5), y)
# --- contrastive losses (chapter 34) ---

@pytest.mark.parametrize("N, M", [(1, 1), (6, 6), (4, 9)])
def test_info_nce_is_cross_entropy_against_the_diagonal(N, M) -> None:
    logits = torch.randn(N, M, dtype=torch.float64) * 4
    assert_same_forward_backward(info_nce, lambda z: F.cross_entropy(z, torch.arange(N)), [logits])


@pytest.mark.parametrize("N", [1, 2, 7, 32])
def test_clip_loss_equals_transformers(N) -> None:
    modeling_clip = pytest.importorskip("transformers.models.clip.modeling_clip")
    reference = getattr(modeling_clip, "clip_loss", None) or modeling_clip.image_text_contrastive_loss
    logits = torch.randn(N, N, dtype=torch.float64) * 10
    # transformers takes logits_per_text; the loss is symmetric, so either orientation
    assert_same_forward_backward(clip_loss, lambda z: reference(z.T), [logits])


def test_clip_loss_of_equal_logits_is_log_n_and_of_a_perfect_match_near_zero() -> None:
    assert clip_loss(torch.zeros(8, 8)).item() == pytest.approx(math.log(8))
    assert clip_loss(100 * torch.eye(8)).item() < 1e-30


@pytest.mark.parametrize(
    ("logits", "fn", "match"),
    [
        (torch.randn(3, 4), clip_loss, r"square \(N, N\) matrix .* got \(3, 4\)"),
        (torch.randn(4, 3), info_nce, r"at least as many candidates .* got \(4, 3\)"),
        (torch.randn(4), info_nce, r"\(N, M\) matrix .* got \(4,\)"),
        (torch.randn(0, 0), clip_loss, r"non-empty"),
    ],
)
def test_contrastive_bad_input(logits, fn, match) -> None:
    with pytest.raises(ValueError, match=match):
        fn(logits)
