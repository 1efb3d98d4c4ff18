r"""Exact-resume checkpoints: weights, optimizer, schedule, RNGs, model config and tokenizer, atomically.

A checkpoint names the model's class and stores its configuration (a frozen dataclass, as a dict
plus its class name), so that :func:`load_checkpoint` refuses a file written by another model or
another configuration with a :class:`ValueError` that names the file and what differs, and so
that :func:`checkpoint_config` can rebuild the model from the file alone. Introduced in
chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "rng_state",
    "set_rng_state",
    "save_checkpoint",
    "read_checkpoint",
    "checkpoint_config",
    "load_checkpoint",
]

CHECKPOINT_FORMAT = "dlscratch-checkpoint-v2"
_KEYS = ("format", "step", "model_class", "config", "tokenizer", "meta", "model", "optimizer", "scheduler", "rng")
C = TypeVar("C")


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


def _config_record(model: torch.nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "config", None)
    if cfg is None or not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        return None
    return {"class": type(cfg).__name__, "fields": dataclasses.asdict(cfg)}


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    generator: torch.Generator | None = None,
    tokenizer: Any | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    r"""Save everything needed to resume training bit for bit, atomically.

    The file holds the model's class name and configuration (``model.config``, when it is a
    dataclass), its state dict, the optimizer's and the scheduler's (if any), the number of
    completed steps, :func:`rng_state`, the tokenizer's vocabulary (its ``itos``, if given) and
    ``meta`` (plain values: numbers, strings, lists, dicts). It is written to a temporary file in
    the same directory, flushed to disk, then renamed over ``path`` with :func:`os.replace`
    (atomic), so a crash leaves either the old checkpoint or the new one, never half of one.

    Args:
        path: where to write.
        model: the model whose ``state_dict`` (and ``config``) is saved.
        step: completed optimizer steps.
        optimizer: the optimizer whose ``state_dict`` is saved, or ``None``.
        scheduler: a learning-rate scheduler to save too, or ``None``.
        generator: an extra ``torch.Generator`` (e.g. the data order's) to snapshot.
        tokenizer: an object with ``itos`` (id → token), e.g. a
            :class:`~dlscratch.tokenizers.char.CharTokenizer`, or ``None``.
        meta: anything else the run needs to resume or to be used (training settings, ...).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "model_class": type(model).__name__,
        "config": _config_record(model),
        "tokenizer": None if tokenizer is None else {"class": type(tokenizer).__name__, "itos": list(tokenizer.itos)},
        "meta": dict(meta or {}),
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
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


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    r"""Read and check a :func:`save_checkpoint` file without building a model.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``path``, if the file is truncated or corrupt or not a checkpoint of
            this format.
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
    return ckpt


def checkpoint_config(path: str | os.PathLike[str], cls: type[C]) -> C:
    r"""The configuration stored in checkpoint ``path``, as an instance of the dataclass ``cls``.

    Raises:
        ValueError: naming ``path``, if the file holds no configuration or one of another class.
    """
    record = read_checkpoint(path)["config"]
    if record is None or record["class"] != cls.__name__:
        found = None if record is None else record["class"]
        raise ValueError(f"checkpoint {path} holds no {cls.__name__}: expected config class {cls.__name__}, found {found}")
    return cls(**record["fields"])


def _check_model(path: Path, ckpt: dict[str, Any], model: torch.nn.Module) -> None:
    if ckpt["model_class"] != type(model).__name__:
        raise ValueError(f"checkpoint {path} is from another model class: expected {type(model).__name__}, found {ckpt['model_class']}")
    want, have = _config_record(model), ckpt["config"]
    if (want is None) != (have is None) or (want and want["class"] != have["class"]):
        raise ValueError(f"checkpoint {path} has another config class: expected {want and want['class']}, found {have and have['class']}")
    if want is not None:
        keys = sorted(want["fields"].keys() | have["fields"].keys())
        diffs = [f"{k}: expected {want['fields'].get(k)!r}, found {have['fields'].get(k)!r}" for k in keys if want["fields"].get(k) != have["fields"].get(k)]
        if diffs:
            raise ValueError(f"checkpoint {path} is from another {want['class']}: " + "; ".join(diffs))
    want_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have_shapes = {k: tuple(v.shape) for k, v in ckpt["model"].items()}
    missing, unexpected = sorted(want_shapes.keys() - have_shapes.keys()), sorted(have_shapes.keys() - want_shapes.keys())
    shapes = [f"{k}: checkpoint {have_shapes[k]} vs model {want_shapes[k]}" for k in sorted(want_shapes.keys() & have_shapes.keys()) if have_shapes[k] != want_shapes[k]]
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

    Before anything is changed, the file (:func:`read_checkpoint`), the model's class, its
    configuration (every field), its parameter names and shapes, and the optimizer's groups are
    checked.

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
        ValueError: naming ``path`` and what differs (expected vs found), if the file is
            truncated or corrupt, is not a checkpoint of this format, or comes from another model
            class, another configuration or other parameter names or shapes.
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location)
    _check_model(path, ckpt, model)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None and ckpt[name] is None:
            raise ValueError(f"checkpoint {path} holds no {name} state, but a {name} was passed")
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
