r"""``python -m dlscratch gpt train|sample``: train the chapter-17 GPT outside the book, and sample.

.. code-block:: bash

    python -m dlscratch gpt train --preset cpu --out out-gpt            # TinyShakespeare
    python -m dlscratch gpt train --data my.txt --steps 5000 --n-layer 6 --out run2
    python -m dlscratch gpt train --out out-gpt --resume                # continue exactly
    python -m dlscratch gpt train --out out-gpt --resume --steps 3000   # ... for more steps
    python -m dlscratch gpt sample --ckpt out-gpt/best.pt --prompt "ROMEO:" --tokens 300 --seed 1

The command is :mod:`dlscratch.cli.lm`'s, shared with ``llama``: checkpoints, ``--resume`` and
sampling are described there. Introduced in chapter 17, *GPT*.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..models.gpt import GPT, GPTConfig
from .lm import Family
from .lm import build_parser as _build_parser
from .lm import run

__all__ = ["FAMILY", "build_parser", "main"]

FAMILY = Family(
    command="gpt",
    title="GPT (chapter 17)",
    model_class=GPT,
    config_class=GPTConfig,
    presets={"cpu": "cpu", "gpu": "gpu", "reference": "gpu", "reference-cpu": "reference_cpu"},
    train_presets={"cpu": "cpu", "gpu": "gpu", "reference": "reference", "reference-cpu": "reference_cpu"},
    model_flags=("block_size", "n_layer", "n_head", "n_embd", "dropout"),
)


def build_parser() -> argparse.ArgumentParser:
    r"""The ``gpt`` command's parser, with the ``train`` and ``sample`` subcommands."""
    return _build_parser(FAMILY)


def main(argv: Sequence[str] | None = None) -> int:
    r"""Run ``gpt train`` or ``gpt sample``; errors are raised (``python -m dlscratch`` prints them)."""
    return run(FAMILY, argv)
