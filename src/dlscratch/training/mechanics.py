r"""Training mechanics: gradient accumulation, clipping, loss scaling and exact-resume checkpoints.

Introduced in chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "accumulate_gradients",
    "clip_grad_norm",
    "DynamicLossScaler",
    "rng_state",
    "set_rng_state",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "dlscratch-checkpoint-v1"
_KEYS = ("format", "step", "model", "optimizer", "scheduler", "rng")


def accumulate_gradients(
    loss_fn: Callable[..., torch.Tensor], batch: Sequence[torch.Tensor], micro_batches: int
) -> torch.Tensor:
    r"""Backpropagate a batch in ``micro_batches`` pieces; the gradients equal the full batch's.

    ``loss_fn(*micro)`` must return the *mean* loss over a micro-batch of :math:`n_j` examples.
    Scaling each by :math:`n_j / N` before ``backward`` makes the accumulated ``.grad`` the
    gradient of the mean over all :math:`N` examples:

    .. math::

        \nabla \frac{1}{N}\sum_{i=1}^{N} \ell_i = \sum_j \frac{n_j}{N} \, \nabla \frac{1}{n_j} \sum_{i \in j} \ell_i

    Only one micro-batch's activations are alive at a time. Layers that mix examples
    (batch norm) see smaller batches and so are not equivalent.

    Args:
        loss_fn: maps one micro-batch (the tensors of ``batch``, sliced alike) to its mean loss.
        batch: tensors whose first dimension indexes the :math:`N` examples.
        micro_batches: number of pieces, between 1 and :math:`N`.

    Returns:
        The full batch's mean loss (detached).

    Raises:
        ValueError: if ``micro_batches`` is not in ``[1, N]`` or the tensors disagree on ``N``.
    """
    n = batch[0].shape[0]
    if any(t.shape[0] != n for t in batch):
        raise ValueError(f"batch tensors disagree on the number of examples: {[t.shape[0] for t in batch]}")
    if not 1 <= micro_batches <= n:
        raise ValueError(f"micro_batches must be in [1, {n}] for a batch of {n}, got micro_batches={micro_batches}")
    total = torch.zeros((), device=batch[0].device)
    pieces = zip(*(torch.tensor_split(t, micro_batches) for t in batch))
    for micro in pieces:
        loss = loss_fn(*micro) * (micro[0].shape[0] / n)  # weight n_j / N
        loss.backward()  # adds into .grad
        total = total + loss.detach()
    return total


def clip_grad_norm(parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float, eps: float = 1e-6) -> torch.Tensor:
    r"""Rescale all gradients together so that their global L2 norm is at most ``max_norm``.

    .. math::

        \lVert \mathbf{g} \rVert = \sqrt{\sum_{p} \sum_i g_{p,i}^2}, \qquad
        \mathbf{g} \leftarrow \mathbf{g} \cdot \min\left(1, \frac{c}{\lVert \mathbf{g} \rVert + \epsilon}\right)

    One factor for every tensor keeps the direction of the update (Pascanu et al., 2013). Same
    result as ``torch.nn.utils.clip_grad_norm_`` (which also adds :math:`\epsilon = 10^{-6}`).

    Args:
        parameters: tensors whose ``.grad`` is clipped in place (those without one are skipped).
        max_norm: the threshold :math:`c > 0`.
        eps: guards the division when the norm is 0.

    Returns:
        The global norm *before* clipping.

    Raises:
        ValueError: if ``max_norm`` is not a positive number.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got max_norm={max_norm!r}")
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.stack([(g * g).sum() for g in grads]).sum().sqrt()  # global L2 norm
    coef = (max_norm / (total + eps)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef)
    return total


class DynamicLossScaler:
    r"""Dynamic loss scaling for float16 training (Micikevicius et al., 2018).

    Small gradients underflow to 0 in float16. Multiplying the loss by :math:`S` multiplies every
    gradient by :math:`S` (chain rule) and lifts them into range; dividing by :math:`S` before the
    update undoes it. :math:`S` adapts: a step whose gradients contain ``inf``/``nan`` is skipped
    and :math:`S \leftarrow S \cdot b`; after ``growth_interval`` clean steps in a row,
    :math:`S \leftarrow S \cdot g`. Same rule and defaults as ``torch.amp.GradScaler``.

    Args:
        init_scale: the first :math:`S`.
        growth_factor: :math:`g > 1`.
        backoff_factor: :math:`b \in (0, 1)`.
        growth_interval: clean steps between growths.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        if not init_scale > 0 or not growth_factor > 1 or not 0 < backoff_factor < 1 or growth_interval < 1:
            raise ValueError(
                f"need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1; got "
                f"init_scale={init_scale}, growth_factor={growth_factor}, backoff_factor={backoff_factor}, "
                f"growth_interval={growth_interval}"
            )
        self.scale = float(init_scale)  # current S
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.clean_steps = 0  # finite steps since the last change of S

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`S \cdot` ``loss``; call ``backward`` on this."""
        return loss * self.scale

    def unscale_(self, parameters: Iterable[torch.Tensor]) -> bool:
        r"""Divide every ``.grad`` by :math:`S` in place; return whether any is non-finite."""
        found_inf = False
        for p in parameters:
            if p.grad is not None:
                p.grad.div_(self.scale)
                found_inf = found_inf or not bool(torch.isfinite(p.grad).all())
        return found_inf

    def update(self, found_inf: bool) -> None:
        r"""Back off after an overflow, grow after ``growth_interval`` clean steps."""
        if found_inf:
            self.scale *= self.backoff_factor
            self.clean_steps = 0
        else:
            self.clean_steps += 1
            if self.clean_steps == self.growth_interval:
                self.scale *= self.growth_factor
                self.clean_steps = 0

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        r"""Unscale, step ``optimizer`` unless a gradient overflowed, update :math:`S`.

        Returns:
            Whether the optimizer stepped.
        """
        params = [p for group in optimizer.param_groups for p in group["params"]]
        found_inf = self.unscale_(params)
        if not found_inf:
            optimizer.step()
        self.update(found_inf)
        return not found_inf

    def state_dict(self) -> dict[str, float]:
        r"""The scale and the count of clean steps, for checkpoints."""
        return {"scale": self.scale, "clean_steps": self.clean_steps}

    def load_state_dict(self, state: dict[str, float]) -> None:
        r"""Restore :meth:`state_dict`."""
        self.scale, self.clean_steps = float(state["scale"]), int(state["clean_steps"])


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    r"""Snapshot every random number generator a training step may draw from.

    Python's ``random``, NumPy's global generator, torch's CPU generator (dropout, ``randint``),
    the CUDA generators when CUDA is available, and ``generator`` if given. Stored as tensors,
    ints and tuples only, so the checkpoint loads with ``weights_only=True``.
    """
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    r"""Restore a snapshot taken by :func:`rng_state`."""
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.cpu().numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"].cpu())  # generator states are CPU byte tensors, whatever map_location did
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if generator is not None:
        if "generator" not in state:
            raise ValueError("a generator was passed but the checkpoint holds no generator state")
        generator.set_state(state["generator"].cpu())


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    scheduler: Any | None = None,
    generator: torch.Generator | None = None,
) -> Path:
    r"""Save everything needed to resume training bit for bit, atomically.

    The file holds the model's and the optimizer's state dicts, the scheduler's (if any), the
    number of completed steps and :func:`rng_state`. It is written to a temporary file in the
    same directory, flushed to disk, then renamed over ``path`` with :func:`os.replace` (atomic),
    so a crash leaves either the old checkpoint or the new one, never half of one.

    Args:
        path: where to write.
        model: the model whose ``state_dict`` is saved.
        optimizer: the optimizer whose ``state_dict`` is saved.
        step: completed optimizer steps.
        scheduler: a learning-rate scheduler to save too, or ``None``.
        generator: an extra ``torch.Generator`` (e.g. the data order's) to snapshot.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": rng_state(generator),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(ckpt, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_model_state(path: Path, saved: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in saved.items()}
    missing, unexpected = sorted(want.keys() - have.keys()), sorted(have.keys() - want.keys())
    shapes = [f"{k}: checkpoint {have[k]} vs model {want[k]}" for k in sorted(want.keys() & have.keys()) if have[k] != want[k]]
    if missing or unexpected or shapes:
        raise ValueError(
            f"checkpoint {path} is from another model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatches {shapes[:5]}"
        )


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    generator: torch.Generator | None = None,
    map_location: str | torch.device = "cpu",
) -> int:
    r"""Restore a :func:`save_checkpoint` file into ``model`` (and the others), RNGs included.

    The file, its keys, the model's parameter names and shapes (which must match exactly) and
    the optimizer's groups are checked before the model is changed.

    Args:
        path: the checkpoint file.
        model: a model built like the saved one.
        optimizer: an optimizer built like the saved one, or ``None`` to skip it.
        scheduler: a scheduler built like the saved one, or ``None`` to skip it.
        generator: the extra generator passed to :func:`save_checkpoint`, if any.
        map_location: device for the loaded tensors.

    Returns:
        The saved step count.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``path``, if the file is truncated or corrupt, is not a checkpoint of
            this format, or comes from a model with other parameter names or shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... on bad bytes
        raise ValueError(f"cannot read checkpoint {path} (truncated or corrupt?): {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} file")
    missing = [k for k in _KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint {path} lacks the keys {missing}")
    _check_model_state(path, ckpt["model"], model)
    if scheduler is not None and ckpt["scheduler"] is None:
        raise ValueError(f"checkpoint {path} holds no scheduler state, but a scheduler was passed")
    if optimizer is not None:  # torch checks the groups before changing anything
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, RuntimeError) as err:
            raise ValueError(f"optimizer state in {path} does not fit this optimizer: {err}") from err
    model.load_state_dict(ckpt["model"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"], generator)
    return int(ckpt["step"])
