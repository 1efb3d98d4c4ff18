r"""Contrastive image-text training and its evaluations: zero-shot classification from prompt
templates (with ensembling), a linear probe, image-text retrieval recall@k.

The loss is :func:`~dlscratch.layers.losses.clip_loss`; the model is
:class:`~dlscratch.models.clip.CLIP`; the captions come from :mod:`dlscratch.data.captions`.
Introduced in chapter 34, *CLIP*. Symbols: B batch, K classes, E embedding width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from ..data.captions import TRAIN_TEMPLATES, caption, encode_captions, random_captions
from ..layers.losses import clip_loss
from ..models.clip import CLIP
from ..tokenizers.char import CharTokenizer
from .callbacks import Callback
from .loop import train
from .mlm import fit_linear_head
from .state import TrainState

__all__ = [
    "ClipHistory", "caption_batches", "noisy_characters", "encode_unique", "clip_batch_loss", "train_clip", "embed_images", "embed_texts",
    "zeroshot_weights", "zeroshot_logits", "linear_probe", "label_recall_at_k", "loss_floor",
]

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class ClipHistory:
    r"""What :func:`train_clip` measured, one entry per update."""

    loss: list[float] = field(default_factory=list)  # the batch's contrastive loss
    scale: list[float] = field(default_factory=list)  # the inverse temperature e^t after the update
    floor: list[float] = field(default_factory=list)  # the batch's loss floor (:func:`loss_floor`)


def loss_floor(labels: torch.Tensor) -> float:
    r"""The lowest CLIP loss any model can reach on a batch whose captions say only the label.

    A caption names the digit and nothing else about its image, and an image says nothing about
    which wording its caption got; so the best an image can do is spread its probability evenly
    over the :math:`n_y` captions of its class in the batch, and the best a caption can do is
    spread it over the :math:`n_y` images of its class. Both directions then cost

    .. math:: \mathcal{L}_{\min} = \frac{1}{B} \sum_{b=1}^{B} \ln n_{y_b} .

    Shape:
        - labels: :math:`(B,)` integer
    """
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(f"expected a non-empty (B,) tensor of labels, got shape {tuple(labels.shape)}")
    _, inverse, counts = labels.unique(return_inverse=True, return_counts=True)
    return counts[inverse].double().log().mean().item()


def caption_batches(
    images: torch.Tensor, labels: torch.Tensor, tokenizer: CharTokenizer, batch_size: int, generator: torch.Generator,
    templates: Sequence[str] = TRAIN_TEMPLATES, transform: Transform | None = None, word_dropout: float = 0.0,
    max_text_shift: int = 0, char_noise: float = 0.0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    r"""Endless shuffled epochs of ``(images, caption ids, labels)``, every caption drawn afresh from ``templates``.

    ``transform(images, generator)`` (data augmentation) is applied to each batch; ``word_dropout``
    leaves words of the captions out (:func:`~dlscratch.data.captions.random_captions`).
    """
    N = images.shape[0]
    if N != labels.shape[0] or N < batch_size:
        raise ValueError(f"need as many labels as images and at least batch_size={batch_size} of them, got {N} and {labels.shape[0]}")
    while True:
        order = torch.randperm(N, generator=generator)
        for start in range(0, N - batch_size + 1, batch_size):  # full batches only: B fixes the loss's scale
            idx = order[start : start + batch_size]
            x, y = images[idx], labels[idx]
            texts = random_captions(y, templates, generator, word_dropout)
            if max_text_shift:
                shifts = torch.randint(0, max_text_shift + 1, (len(texts),), generator=generator).tolist()
                texts = [" " * k + t for k, t in zip(shifts, texts)]
            ids, lengths = encode_captions(texts, tokenizer)  # (B, T)
            if char_noise:
                ids = noisy_characters(ids, lengths, tokenizer, char_noise, generator)
            yield (x if transform is None else transform(x, generator)), ids, y


def noisy_characters(
    ids: torch.Tensor, lengths: torch.Tensor, tokenizer: CharTokenizer, p: float, generator: torch.Generator
) -> torch.Tensor:
    r"""Replace each character of each caption (not ``<eot>``, not padding) by a uniformly random one with probability ``p``.

    Typing noise: every character of the vocabulary, also one that no training caption uses,
    then appears in training and gets a gradient.

    Shape:
        - ids: :math:`(B, T)`; lengths: :math:`(B,)`, ``<eot>`` counted; output: :math:`(B, T)`
    """
    n_chars = tokenizer.vocab_size - len(tokenizer.special_tokens)  # the characters come first, the specials last
    is_char = torch.arange(ids.shape[1])[None, :] < (lengths[:, None] - 1)  # (B, T) before <eot>
    flip = (torch.rand(ids.shape, generator=generator) < p) & is_char
    return torch.where(flip, torch.randint(0, n_chars, ids.shape, generator=generator), ids)


def encode_unique(model: CLIP, ids: torch.Tensor) -> torch.Tensor:
    r"""``model.encode_text(ids)``, running the text tower once per *distinct* caption.

    A batch of digit captions holds at most 50 distinct strings; the embeddings of the rest are
    copies, and so are their gradients' paths (the gather adds them up). Same values, same
    gradients, a fraction of the text tower's work.

    Shape:
        - ids: :math:`(B, T)`; output: :math:`(B, E)`
    """
    distinct, inverse = ids.unique(dim=0, return_inverse=True)  # (U, T), (B,)
    return model.encode_text(distinct)[inverse]  # (U, E) -> (B, E)


def clip_batch_loss(model: CLIP, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    r"""The CLIP loss of one batch of pairs, with :func:`encode_unique` for the texts."""
    u = model.encode_image(images)  # (B, E)
    v = encode_unique(model, ids)  # (B, E)
    return clip_loss(model.similarity(u, v))  # (B, B) -> ()


class _Track(Callback):
    def __init__(self, history: ClipHistory, labels: list[torch.Tensor]) -> None:
        self.history, self.labels = history, labels

    def on_step(self, state: TrainState) -> None:
        state.model.clamp_logit_scale_()  # t <= ln 100 after every step (CLIP)
        self.history.scale.append(state.model.scale().item())
        self.history.floor.append(loss_floor(self.labels[-1]))


def train_clip(
    model: CLIP, images: torch.Tensor, labels: torch.Tensor, tokenizer: CharTokenizer, *, steps: int, batch_size: int,
    lr: float, generator: torch.Generator, weight_decay: float = 0.1, warmup: int = 20,
    templates: Sequence[str] = TRAIN_TEMPLATES, transform: Transform | None = None, word_dropout: float = 0.0,
    max_text_shift: int = 0, char_noise: float = 0.0,
) -> ClipHistory:
    r"""Train ``model`` on (image, caption) pairs with AdamW and a warm-up then cosine schedule.

    Each update draws a batch of images with fresh captions from ``templates``
    (:func:`caption_batches`), minimises :func:`clip_batch_loss`, then clamps the temperature
    (:meth:`~dlscratch.models.clip.CLIP.clamp_logit_scale_`). Weight decay spares the norms'
    gains and biases, the embeddings and :math:`t`, as CLIP's does.

    Args:
        model: the :class:`~dlscratch.models.clip.CLIP` to train, on its device.
        images: the training images :math:`(N, C, H, W)`, on the CPU.
        labels: their digits :math:`(N,)`, from which the captions are written.
        tokenizer: the caption tokenizer (:func:`~dlscratch.data.captions.caption_tokenizer`).
        steps: optimizer updates.
        batch_size: pairs per update.
        lr: the peak learning rate.
        generator: every random draw of the batches (order, wordings, augmentations).
        weight_decay: AdamW's decoupled weight decay on the matrices.
        warmup: updates of linear warm-up before the cosine decay.
        templates: the wordings drawn from.
        transform: image augmentation ``transform(images, generator)``.
        word_dropout: probability of leaving out each word but the digit's.
        max_text_shift: up to this many spaces are put in front of each caption.
        char_noise: probability of replacing each character by a random one (:func:`noisy_characters`).

    Returns:
        The :class:`ClipHistory` of the run.
    """
    dev = next(model.parameters()).device
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "position" not in n and "token" not in n]
    rest = [p for p in model.parameters() if all(p is not q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-6)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps - warmup))
    warm = torch.optim.lr_scheduler.LinearLR(opt, 1.0 / max(1, warmup), total_iters=max(1, warmup))
    schedule = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[max(1, warmup)])
    history, seen = ClipHistory(), []

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, ids, y in caption_batches(images, labels, tokenizer, batch_size, generator, templates, transform, word_dropout,
                                        max_text_shift, char_noise):
            seen[:] = [y]
            yield x.to(dev), ids.to(dev)

    state = train(model, batches(), opt, schedule, steps=steps, loss_fn=lambda m, b: clip_batch_loss(m, *b),
                  callbacks=[_Track(history, seen)])
    history.loss = state.train_loss
    return history


@torch.inference_mode()
def embed_images(model: CLIP, images: torch.Tensor, batch_size: int = 1000, features: bool = False) -> torch.Tensor:
    r"""Unit image embeddings :math:`(N, E)`, or with ``features=True`` the vision tower's pooled :math:`(N, D)` features."""
    model.eval()
    dev = next(model.parameters()).device
    fn = model.vision if features else model.encode_image
    return torch.cat([fn(images[i : i + batch_size].to(dev)) for i in range(0, images.shape[0], batch_size)])


@torch.inference_mode()
def embed_texts(model: CLIP, texts: Sequence[str], tokenizer: CharTokenizer) -> torch.Tensor:
    r"""Unit text embeddings :math:`(N, E)` of ``texts``; ``ValueError`` names a character the tokenizer lacks."""
    model.eval()
    ids, _ = encode_captions(texts, tokenizer)
    return model.encode_text(ids.to(next(model.parameters()).device))


def zeroshot_weights(model: CLIP, tokenizer: CharTokenizer, templates: Sequence[str], n_classes: int = 10) -> torch.Tensor:
    r"""A zero-shot classifier: one unit vector per class, the mean of its prompts' embeddings.

    .. math::

        \mathbf{w}_k = \frac{\bar{\mathbf{v}}_k}{\lVert \bar{\mathbf{v}}_k \rVert}, \qquad
        \bar{\mathbf{v}}_k = \frac{1}{|\mathcal{T}|} \sum_{\tau \in \mathcal{T}} \hat{\mathbf{v}}\bigl(\tau(k)\bigr)

    With one template this is plain prompting; with several it is CLIP's prompt ensembling (the
    mean is taken in the embedding space, so the classifier costs one matrix product whatever
    the number of templates).

    Shape:
        - output: :math:`(K, E)`
    """
    if len(templates) == 0:
        raise ValueError("need at least one template, got none")
    texts = [caption(k, t) for t in templates for k in range(n_classes)]  # template-major
    v = embed_texts(model, texts, tokenizer).view(len(templates), n_classes, -1)  # (|T|, K, E)
    return torch.nn.functional.normalize(v.mean(0), dim=-1)  # (K, E)


def zeroshot_logits(image_embeds: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""Cosine similarity of every image with every class vector, :math:`(N, E) \times (K, E) \to (N, K)`."""
    return image_embeds @ weights.T.to(image_embeds.device)


def linear_probe(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, n_classes: int = 10, **kwargs: float
) -> tuple[torch.nn.Linear, torch.Tensor]:
    r"""A logistic-regression probe on frozen features (:func:`~dlscratch.training.mlm.fit_linear_head`).

    Returns:
        The fitted layer and its logits on ``test_x`` :math:`(N_{\text{test}}, K)`.
    """
    with torch.enable_grad():
        head = fit_linear_head(train_x.detach().clone(), train_y, n_classes, **kwargs)
    with torch.inference_mode():
        return head, head(test_x)


def label_recall_at_k(
    similarity: torch.Tensor, query_labels: torch.Tensor, gallery_labels: torch.Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[int, float]:
    r"""Recall@k: the fraction of queries with a relevant item among their :math:`k` most similar.

    .. math::

        \text{R@}k = \frac{1}{Q} \sum_{q=1}^{Q} \mathbb{1}\bigl[\exists\, g \in \operatorname{top}_k(S_{q,:}) :
        \ell_g = \ell_q\bigr]

    An item is relevant when its label equals the query's. With ``torch.arange`` as both label
    vectors that is the usual instance retrieval (the query's own pair); with class labels it is
    class-level retrieval, the only kind a caption that names just the digit allows. (Chapter 32's
    recall@k, over retrieved passage indices, is the case of one relevant item per query.)

    Shape:
        - similarity: :math:`(Q, G)`; query_labels: :math:`(Q,)`; gallery_labels: :math:`(G,)`
    """
    Q, G = similarity.shape
    if query_labels.shape != (Q,) or gallery_labels.shape != (G,):
        raise ValueError(f"need {Q} query labels and {G} gallery labels for a ({Q}, {G}) similarity, "
                         f"got {tuple(query_labels.shape)} and {tuple(gallery_labels.shape)}")
    bad = [k for k in ks if not 1 <= k <= G]
    if bad:
        raise ValueError(f"every k must lie in [1, {G}] (the gallery size), got {bad}")
    top = similarity.topk(max(ks), dim=1).indices  # (Q, k_max)
    hit = gallery_labels.to(top.device)[top] == query_labels.to(top.device)[:, None]  # (Q, k_max)
    return {k: hit[:, :k].any(dim=1).double().mean().item() for k in ks}
