r"""Device selection, seeding and presets shared by every chapter.

The book runs on a laptop CPU by default and scales up when CUDA is present. Nothing in the
package assumes a GPU: code asks :func:`device` which hardware to use and :func:`pick_preset`
which configuration fits it (``DLSCRATCH_PRESET`` overrides that choice: :func:`preset_name`).
"""

from __future__ import annotations

import os
import random
from typing import TypeVar

import numpy as np
import torch

__all__ = ["device", "seed_everything", "PRESETS", "preset_name", "pick_preset", "mixed_precision_dtype", "in_ci", "progress_enabled"]

T = TypeVar("T")

_DEVICE_ENV = "DLSCRATCH_DEVICE"
_PRESET_ENV = "DLSCRATCH_PRESET"
PRESETS = ("cpu", "gpu", "reference")  # the sizes a chapter can run at, smallest first


def device() -> torch.device:
    r"""Return the device the book's code should run on.

    ``cuda`` when a CUDA GPU is available, else ``cpu``. The environment variable
    ``DLSCRATCH_DEVICE`` overrides the choice (for example ``DLSCRATCH_DEVICE=cpu`` on a GPU
    machine to reproduce the CPU preset).

    Returns:
        The selected :class:`torch.device`.

    Raises:
        ValueError: if ``DLSCRATCH_DEVICE`` names a device torch does not know, or asks for
            ``cuda`` on a machine without CUDA.
    """
    requested = os.environ.get(_DEVICE_ENV, "").strip()
    if requested:
        try:
            dev = torch.device(requested)
        except RuntimeError as err:
            raise ValueError(
                f"{_DEVICE_ENV}={requested!r} is not a valid torch device "
                "(expected e.g. 'cpu', 'cuda' or 'cuda:0')"
            ) from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{_DEVICE_ENV}={requested!r} but CUDA is not available on this machine")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    r"""Seed Python, NumPy and torch (CPU and CUDA) and return a seeded CPU generator.

    This is the book's one seeding rule for models: every model draws its initial weights from
    torch's global generator (as :mod:`torch.nn` layers do), so calling
    ``seed_everything(seed)`` just before building a model fixes its weights. Data order and
    sampling do not depend on it; they take an explicit seed or generator (for example
    ``train_lm(..., seed=...)``, or the generator returned here).

    Args:
        seed: any non-negative integer.

    Returns:
        A :class:`torch.Generator` seeded with ``seed``, for code that wants an explicit stream
        of random numbers independent of the global one.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def preset_name(dev: torch.device | None = None) -> str:
    r"""The preset the chapters run: ``"cpu"``, ``"gpu"`` or ``"reference"``.

    ``DLSCRATCH_PRESET`` when it is set; otherwise ``"gpu"`` on a CUDA device and ``"cpu"``
    elsewhere. ``cpu`` is what CI builds (each chapter in about a minute on two cores), ``gpu`` a
    bigger run sized for one GPU, and ``reference`` the paper's or peer's recipe, which can take
    much longer and runs only when asked for (``DLSCRATCH_PRESET=reference``).

    Args:
        dev: the device to decide for; :func:`device` when omitted.

    Raises:
        ValueError: if ``DLSCRATCH_PRESET`` names none of :data:`PRESETS`.
    """
    chosen = os.environ.get(_PRESET_ENV, "").strip().lower()
    if chosen:
        if chosen not in PRESETS:
            raise ValueError(f"{_PRESET_ENV} must be one of {PRESETS}, got {_PRESET_ENV}={chosen!r}")
        return chosen
    dev = device() if dev is None else dev
    return "gpu" if dev.type == "cuda" else "cpu"


def pick_preset(cpu: T, gpu: T, dev: torch.device | None = None, reference: T | None = None) -> T:
    r"""Choose the chapter's configuration for :func:`preset_name`.

    Args:
        cpu: the configuration sized for a 2-core CPU.
        gpu: the configuration sized for one GPU.
        dev: the device to decide for; :func:`device` when omitted.
        reference: the paper's or peer's recipe, when the chapter has one apart from ``gpu``.

    Returns:
        ``cpu``, ``gpu`` or ``reference`` (``gpu`` when the chapter has no separate reference).
    """
    name = preset_name(dev)
    if name == "reference":
        return gpu if reference is None else reference
    return gpu if name == "gpu" else cpu


def mixed_precision_dtype(dev: torch.device | None = None) -> torch.dtype:
    r"""The autocast dtype for mixed-precision training on ``dev``.

    ``torch.bfloat16`` on a CPU (whether it is faster there depends on the CPU; chapter 7
    measures it) and on a CUDA GPU with bfloat16 tensor cores (compute capability 8.0, Ampere,
    and later). Older GPUs (a Colab T4 is 7.5) get ``torch.float16``, whose tensor cores they
    have, and :func:`~dlscratch.training.loop.train` then scales the loss.

    Args:
        dev: the device to decide for; :func:`device` when omitted.
    """
    dev = device() if dev is None else dev
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


def in_ci() -> bool:
    r"""Whether the code runs in a non-interactive build (``CI`` set, or inside the book build)."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"} or bool(
        os.environ.get("DLSCRATCH_BOOK_BUILD")
    )


def progress_enabled() -> bool:
    r"""Whether long loops should draw a progress bar: interactively yes, in the built book no."""
    return not in_ci()
