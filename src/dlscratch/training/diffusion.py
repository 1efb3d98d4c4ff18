r"""Training and evaluating diffusion models (chapter 35).

The objective is Ho et al.'s "simple" loss, the ELBO with its weights dropped:

.. math::

    L_\text{simple} = \mathbb{E}_{t \sim U\{0..T-1\},\, \mathbf{x}_0,\, \boldsymbol\epsilon \sim \mathcal{N}(0, \mathbf{I})}
    \bigl\lVert \boldsymbol\epsilon - \epsilon_\theta\bigl(\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1 - \bar\alpha_t}\,\boldsymbol\epsilon,\ t,\ c\bigr) \bigr\rVert^2 .

For classifier-free guidance the condition :math:`c` is replaced by the null condition in a
fraction of the examples (:func:`guidance_caption_batches`), so one network learns both
:math:`\epsilon(\mathbf{x}, c)` and :math:`\epsilon(\mathbf{x}, \varnothing)`. Samples are judged
by a classifier of real images: the accuracy on the requested class, the spread within a class
(:func:`within_class_diversity`) and a Fréchet distance between feature statistics
(:func:`frechet_distance`; FID uses Inception-v3 features, we use the classifier's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.captions import TRAIN_TEMPLATES, encode_captions, random_captions
from ..models.diffusion import NoiseSchedule, guided_noise, sample_loop
from ..tokenizers.char import CharTokenizer
from .callbacks import Callback
from .state import TrainState

__all__ = ["EMA", "diffusion_loss", "guidance_caption_batches", "generate", "frechet_distance", "within_class_diversity", "penultimate_features"]


def diffusion_loss(
    model: Callable[..., torch.Tensor], schedule: NoiseSchedule, x0: torch.Tensor, *cond: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r""":math:`L_\text{simple}` on one batch: a uniform timestep and fresh noise per example.

    ``model(x_t, t, *cond)`` predicts the noise; ``cond`` is passed through (nothing for an
    unconditional model, caption ids for :class:`~dlscratch.models.denoisers.TextToImage`).

    Shape:
        - x0: :math:`(B, \ldots)`; output: a scalar
    """
    B = x0.shape[0]
    t = torch.randint(0, schedule.T, (B,), generator=generator).to(x0.device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)  # (B, ...)
    return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, *cond), noise)


class EMA(Callback):
    r"""An exponential moving average of a model's parameters, updated after every step of :func:`~dlscratch.training.loop.train`.

    .. math::

        \bar\theta \leftarrow \gamma\, \bar\theta + (1 - \gamma)\, \theta

    Diffusion models are sampled with the averaged weights (Ho et al. 2020 use
    :math:`\gamma = 0.9999` over 800k steps; a short run needs a shorter memory). Equals
    ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn(decay)``.

    Args:
        model: the trained model; its parameters after the first update start the average.
        decay: :math:`\gamma` in :math:`[0, 1)`.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.model, self.decay = model, decay
        self.shadow: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def on_step(self, state: TrainState) -> None:
        for name, p in self.model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach(), 1 - self.decay)
            else:
                self.shadow[name] = p.detach().clone()

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        r"""Load the averaged parameters into ``model`` (the trained one or a copy of it); returns ``model``."""
        if not self.shadow:
            raise ValueError("no average yet: the EMA is updated after each training step, and none has run")
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name])
        return model


def guidance_caption_batches(
    images: torch.Tensor, labels: torch.Tensor, tokenizer: CharTokenizer, *, batch_size: int, steps: int,
    p_uncond: float = 0.1, templates: Sequence[str] = TRAIN_TEMPLATES, generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    r"""``steps`` batches ``(x0, ids)``: random images, each with a caption of its label in a random wording.

    With probability ``p_uncond`` a caption is replaced by the empty caption ``""`` (just
    ``<eot>``), the null condition of classifier-free guidance. Images are scaled from
    :math:`[0, 1]` to :math:`[-1, 1]`.

    Raises:
        ValueError: if ``p_uncond`` is not in :math:`[0, 1]` or images and labels differ in number.
    """
    if not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must be a probability in [0, 1], got {p_uncond}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"need one label per image, got {labels.shape[0]} labels for {images.shape[0]} images")
    for _ in range(steps):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        texts = random_captions(labels[idx], templates, generator=generator)
        drop = (torch.rand(batch_size, generator=generator) < p_uncond).tolist()
        texts = ["" if d else s for s, d in zip(texts, drop)]
        ids, _ = encode_captions(texts, tokenizer)  # (B, L): padded to the batch's longest caption
        yield 2 * images[idx] - 1, ids


@torch.inference_mode()
def generate(
    model: nn.Module, schedule: NoiseSchedule, ids: torch.Tensor, null_ids: torch.Tensor, *, w: float,
    steps: int, shape: tuple[int, ...], generator: torch.Generator, method: str = "ddim", clip: float | None = None,
) -> torch.Tensor:
    r"""Images for captions ``ids`` with classifier-free guidance of weight ``w``, in :math:`[0, 1]`.

    Each sampling step runs the model once on the doubled batch (conditional, then null), and
    combines the two predictions with :func:`~dlscratch.models.diffusion.guided_noise`.

    Raises:
        ValueError: if ``null_ids`` is not one row of the width of ``ids``.

    Args:
        model: ``model(x, t, ids)`` predicts the noise.
        schedule: its noise schedule.
        ids: caption ids, one row per image.
        null_ids: the empty caption's ids, one row padded to the width of ``ids`` (broadcast to the batch).
        w: the guidance weight (0: the conditional model alone).
        steps: sampling steps.
        shape: the shape of one image.
        generator: for the initial noise and DDPM's noise.
        method: ``"ddim"`` or ``"ddpm"``.
        clip: clamp :math:`\hat{\mathbf{x}}_0` to :math:`[-c, c]` in every step, or ``None``.

    Shape:
        - ids: :math:`(B, L)`; null_ids: :math:`(1, L)`; output: :math:`(B, *\text{shape})`
    """
    B, L = ids.shape
    dev = next(model.parameters()).device
    if null_ids.shape != (1, L):
        raise ValueError(f"null_ids must be one row as wide as ids, (1, {L}), got {tuple(null_ids.shape)}; encode it with the captions")
    both = torch.cat([ids, null_ids.expand(B, -1)]).to(dev)  # (2B, L)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = model(torch.cat([x, x]), torch.cat([t, t]), both)  # (2B, ...)
        return guided_noise(eps[B:], eps[:B], w)

    x = torch.randn((B, *shape), generator=generator).to(dev)
    x, _ = sample_loop(eps_fn, schedule, x, steps, method=method, generator=generator, clip=clip)
    return ((x + 1) / 2).clamp(0, 1)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""The Fréchet distance between Gaussians fitted to two sets of feature vectors.

    .. math::

        d^2 = \lVert \boldsymbol\mu_a - \boldsymbol\mu_b \rVert^2
        + \operatorname{tr}\bigl(\Sigma_a + \Sigma_b - 2 (\Sigma_a^{1/2} \Sigma_b \Sigma_a^{1/2})^{1/2}\bigr)

    (FID is this on Inception-v3 features; on other features it is only FID-like.) In float64,
    with symmetric square roots from eigendecompositions.

    Shape:
        - a: :math:`(N_a, D)`; b: :math:`(N_b, D)`, at least two rows each
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"expected two (N, D) feature sets with the same D and N >= 2, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (D, D)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T  # Sigma_a^(1/2)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()  # tr((...)^(1/2))
    return float(((mu_a - mu_b) ** 2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross)


def within_class_diversity(x: torch.Tensor, labels: torch.Tensor) -> float:
    r"""The mean Euclidean distance between two different samples of the same class, averaged over classes.

    Shape:
        - x: :math:`(N, \ldots)`; labels: :math:`(N,)`
    """
    if x.shape[0] != labels.shape[0]:
        raise ValueError(f"need one label per sample, got {labels.shape[0]} labels for {x.shape[0]} samples")
    flat = x.flatten(1).double()
    per_class = []
    for c in labels.unique():
        group = flat[labels == c]
        n = len(group)
        if n > 1:
            per_class.append(torch.cdist(group, group).sum() / (n * (n - 1)))
    if not per_class:
        raise ValueError("need at least two samples of some class")
    return float(torch.stack(per_class).mean())


@torch.inference_mode()
def penultimate_features(classifier: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r"""A :class:`~dlscratch.models.cnn.LeNet`'s hidden layer (after its ReLU): the features of :func:`frechet_distance`.

    Shape:
        - x: :math:`(N, C, S, S)`; output: :math:`(N, \text{hidden})`
    """
    h = classifier.features(x)
    return classifier.classifier[:-1](h)  # Flatten, Linear, ReLU
