r"""One entry point for Hugging Face folders: :func:`load_hf_folder` reads ``model_type`` and builds our model.

A Hugging Face model folder holds ``config.json`` (whose ``model_type`` names the architecture)
and ``model.safetensors``. ``"gpt2"`` (and GPT-1's ``"openai-gpt"``) loads into
:class:`~dlscratch.models.gpt.GPT` through :mod:`~dlscratch.models.gpt2_hf` (chapter 27); ``"llama"`` into
:class:`~dlscratch.models.llama.LLaMA` through :mod:`~dlscratch.models.llama_hf` (chapter 21).
Anything else is refused with its ``model_type`` named. Chapter 27, *GPT-1 and GPT-2*.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .gpt2_hf import load_gpt_folder
from .llama import LLaMA, LlamaConfig
from .llama_hf import from_hf_state_dict, read_safetensors

__all__ = ["HF_MODEL_TYPES", "read_hf_config", "llama_config_from_hf", "load_llama_folder", "load_hf_folder"]

HF_MODEL_TYPES = ("gpt2", "openai-gpt", "llama")  # the model_type values load_hf_folder reads


def read_hf_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    r"""The parsed ``folder/config.json``.

    Raises:
        ValueError: if ``folder`` has no ``config.json`` (naming what it holds).
    """
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        inside = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no such folder"
        raise ValueError(f"expected a Hugging Face folder with config.json at {folder}, found {inside}")
    return json.loads(path.read_text(encoding="utf-8"))


def llama_config_from_hf(hf: dict[str, Any]) -> LlamaConfig:
    r"""Our :class:`~dlscratch.models.llama.LlamaConfig` for a ``LlamaConfig`` ``config.json`` (the inverse of ``llama_hf.hf_config``).

    Raises:
        ValueError: for another ``model_type``, an activation other than SiLU, a head size other
            than ``hidden_size / num_attention_heads``, or a bias on one of attention and MLP only.
    """
    if hf.get("model_type") != "llama":
        raise ValueError(f"expected a LLaMA config (model_type 'llama'), got model_type={hf.get('model_type')!r}")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"LLaMA's MLP is SwiGLU: expected hidden_act 'silu', got {hf.get('hidden_act')!r}")
    C, nh = hf["hidden_size"], hf["num_attention_heads"]
    if hf.get("head_dim") not in (None, C // nh):
        raise ValueError(f"expected head_dim = hidden_size / num_attention_heads = {C // nh}, got head_dim={hf.get('head_dim')}")
    if hf.get("attention_bias", False) != hf.get("mlp_bias", False):
        raise ValueError(f"expected attention_bias == mlp_bias, got {hf.get('attention_bias')} and {hf.get('mlp_bias')}")
    rope = hf.get("rope_parameters") or {}
    return LlamaConfig(
        vocab_size=hf["vocab_size"], block_size=hf.get("max_position_embeddings", 2048), n_layer=hf["num_hidden_layers"],
        n_head=nh, n_kv_head=hf.get("num_key_value_heads") or nh, n_embd=C, ffn_hidden=hf["intermediate_size"],
        rope_base=rope.get("rope_theta", hf.get("rope_theta", 10000.0)), norm_eps=hf.get("rms_norm_eps", 1e-6),
        bias=hf.get("attention_bias", False), tie_embeddings=hf.get("tie_word_embeddings", False),
    )


@torch.no_grad()
def load_llama_folder(folder: str | os.PathLike[str]) -> LLaMA:
    r"""Read a Hugging Face LLaMA folder (``config.json`` and ``model.safetensors``) into our LLaMA, in ``eval()`` mode."""
    folder = Path(folder)
    config = llama_config_from_hf(read_hf_config(folder))
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"expected the weights in {weights}, found {sorted(p.name for p in folder.iterdir())}")
    state = read_safetensors(weights)
    model = LLaMA(config).to(next(iter(state.values())).dtype)
    model.load_state_dict(from_hf_state_dict(state, config))
    return model.eval()


def load_hf_folder(folder: str | os.PathLike[str]) -> nn.Module:
    r"""Our model for a Hugging Face folder, by its ``model_type``: GPT-2 and GPT-1 -> GPT, LLaMA -> LLaMA.

    Raises:
        ValueError: naming the folder's ``model_type`` and the ones we read, for any other architecture.
    """
    model_type = read_hf_config(folder).get("model_type")
    if model_type in ("gpt2", "openai-gpt"):
        return load_gpt_folder(folder)
    if model_type == "llama":
        return load_llama_folder(folder)
    raise ValueError(f"cannot load model_type={model_type!r} from {folder}: expected one of {HF_MODEL_TYPES}")
