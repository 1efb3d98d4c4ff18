r"""``python -m dlscratch llama train|sample|export``: the chapter-21 LLaMA outside the book.

.. code-block:: bash

    python -m dlscratch llama train --preset cpu --out out-llama         # TinyShakespeare
    python -m dlscratch llama train --out out-llama --resume             # continue exactly
    python -m dlscratch llama sample --ckpt out-llama/best.pt --prompt "ROMEO:" --tokens 300
    python -m dlscratch llama export --ckpt out-llama/best.pt --out llama-hf [--force]

``export`` writes a Hugging Face folder (``config.json`` and ``model.safetensors``,
:func:`dlscratch.models.llama_hf.export_hf`) that ``transformers.LlamaForCausalLM.from_pretrained``
loads. The command is :mod:`dlscratch.cli.lm`'s, shared with ``gpt``. Chapter 21, *LLaMA from scratch*.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..models.llama import LLaMA, LlamaConfig
from ..models.llama_hf import export_hf
from .lm import Family
from .lm import build_parser as _build_parser
from .lm import run

__all__ = ["FAMILY", "build_parser", "main"]

FAMILY = Family(
    command="llama",
    title="LLaMA (chapter 21)",
    model_class=LLaMA,
    config_class=LlamaConfig,
    presets={"cpu": "cpu", "gpu": "gpu"},
    train_presets={"cpu": "llama_cpu", "gpu": "llama_gpu"},
    model_flags=("block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden", "rope_base", "dropout"),
    export=export_hf,
)


def build_parser() -> argparse.ArgumentParser:
    r"""The ``llama`` command's parser: ``train``, ``sample`` and ``export``."""
    return _build_parser(FAMILY)


def main(argv: Sequence[str] | None = None) -> int:
    r"""Run ``llama train``, ``sample`` or ``export``; errors are raised (``python -m dlscratch`` prints them)."""
    return run(FAMILY, argv)
