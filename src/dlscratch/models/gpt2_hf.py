r"""GPT-2 (and GPT-1) in Hugging Face's format: ``GPT2LMHeadModel``'s names and layout, read into our :class:`~dlscratch.models.gpt.GPT`.

Hugging Face's GPT-2 keeps OpenAI's TensorFlow layout. Its projections are ``Conv1D`` modules,
which compute :math:`y = x W + b` with ``W`` of shape ``(in, out)``: the *transpose* of an
``nn.Linear`` weight, ``(out, in)``. And its attention has one fused ``c_attn`` of width
:math:`3C` for the queries, keys and values, in that order. So loading transposes every block
matrix and cuts ``c_attn`` in three:

.. code-block:: text

    h.{i}.ln_1                  -> blocks.{i}.norm1
    h.{i}.attn.c_attn  (C, 3C)  -> blocks.{i}.attn.{q,k,v}_proj    (C, C) each, transposed
    h.{i}.attn.c_proj  (C, C)   -> blocks.{i}.attn.out_proj         transposed
    h.{i}.ln_2                  -> blocks.{i}.norm2
    h.{i}.mlp.c_fc     (C, 4C)  -> blocks.{i}.mlp.up   (4C, C)      transposed
    h.{i}.mlp.c_proj   (4C, C)  -> blocks.{i}.mlp.down (C, 4C)      transposed
    wte, wpe, ln_f              -> wte, wpe, norm_f;  lm_head = wte (tied)

Names may carry a ``transformer.`` prefix (``save_pretrained`` of ``GPT2LMHeadModel``) or not
(OpenAI's original upload); old checkpoints also store each layer's causal mask
(``h.{i}.attn.bias``, ``h.{i}.attn.masked_bias``), which is not a weight and is skipped.
GPT-1 (``OpenAIGPTLMHeadModel``, ``model_type`` ``"openai-gpt"``) has the same blocks and names,
post-LN, with ``tokens_embed`` and ``positions_embed`` for ``wte`` and ``wpe`` and no ``ln_f``.
Chapter 27, *GPT-1 and GPT-2*.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .gpt import GPT, GPTConfig
from .llama_hf import read_safetensors

__all__ = ["gpt2_config_from_hf", "openai_gpt_config_from_hf", "from_hf_gpt2_state_dict", "load_gpt2_state", "load_gpt_folder"]

# Hugging Face's activation names -> ours (the tanh approximation has three names there)
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh", "gelu": "gelu"}
_BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal masks stored by old checkpoints, not weights
_ALIASES = {"tokens_embed.weight": "wte.weight", "positions_embed.weight": "wpe.weight"}  # GPT-1's names


def gpt2_config_from_hf(hf: dict[str, Any]) -> GPTConfig:
    r"""Our :class:`~dlscratch.models.gpt.GPTConfig` for the fields of a GPT-2 ``config.json``.

    Dropout is set to 0 (a loaded model is for inference; set it with ``dataclasses.replace``).

    Raises:
        ValueError: naming the field, what we support and what was given, for a ``model_type``
            other than ``"gpt2"``, another activation, an MLP not :math:`4C` wide, cross-attention
            or a change to the attention's scaling.
    """
    if hf.get("model_type") != "gpt2":
        raise ValueError(f"expected a GPT-2 config (model_type 'gpt2'), got model_type={hf.get('model_type')!r}")
    act = hf.get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ValueError(f"activation_function must be one of {sorted(_ACTIVATIONS)}, got {act!r}")
    n_embd = hf.get("n_embd", 768)
    n_inner = hf.get("n_inner")
    if n_inner not in (None, 4 * n_embd):
        raise ValueError(f"our MLP is 4 n_embd = {4 * n_embd} wide, got n_inner={n_inner}")
    expected = {"add_cross_attention": False, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False}
    other = {k: hf[k] for k, v in expected.items() if k in hf and hf[k] != v}
    if other:
        raise ValueError(f"unsupported GPT-2 options: expected {expected}, got {other}")
    return GPTConfig(
        vocab_size=hf.get("vocab_size", 50257), block_size=hf.get("n_positions", 1024), n_layer=hf.get("n_layer", 12),
        n_head=hf.get("n_head", 12), n_embd=n_embd, dropout=0.0, bias=True, activation=_ACTIVATIONS[act], norm_first=True,
        norm_eps=hf.get("layer_norm_epsilon", 1e-5), tie_embeddings=hf.get("tie_word_embeddings", True),
    )


def openai_gpt_config_from_hf(hf: dict[str, Any]) -> GPTConfig:
    r"""Our GPT-1-form :class:`~dlscratch.models.gpt.GPTConfig` (post-LN, no final norm) for an ``OpenAIGPTConfig`` ``config.json``.

    Raises:
        ValueError: for a ``model_type`` other than ``"openai-gpt"`` or an activation other than
            its ``"gelu"`` (which ``transformers`` computes with the tanh approximation).
    """
    if hf.get("model_type") != "openai-gpt":
        raise ValueError(f"expected a GPT-1 config (model_type 'openai-gpt'), got model_type={hf.get('model_type')!r}")
    if hf.get("afn", "gelu") != "gelu":
        raise ValueError(f"expected afn 'gelu' (GPT-1's tanh GELU), got afn={hf.get('afn')!r}")
    return GPTConfig(
        vocab_size=hf.get("vocab_size", 40478), block_size=hf.get("n_positions", 512), n_layer=hf.get("n_layer", 12),
        n_head=hf.get("n_head", 12), n_embd=hf.get("n_embd", 768), dropout=0.0, bias=True, activation="gelu_tanh",
        norm_first=False, norm_eps=hf.get("layer_norm_epsilon", 1e-5), tie_embeddings=hf.get("tie_word_embeddings", True),
        scale_residual_init=False,
    )


def from_hf_gpt2_state_dict(state: dict[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    r"""A ``GPT2LMHeadModel`` state dict (or its gradients) under our names and in our layout.

    Every block matrix is transposed (``Conv1D`` stores ``(in, out)``) and ``c_attn`` is cut into
    the query, key and value projections. With tied embeddings ``lm_head.weight`` is ``wte.weight``.

    Raises:
        ValueError: naming the first unexpected or missing parameter.
    """
    C = config.n_embd
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        name = name.removeprefix("transformer.")
        name = _ALIASES.get(name, name)
        if name.endswith(_BUFFERS):
            continue
        parts = name.split(".")
        if name in ("wte.weight", "wpe.weight", "lm_head.weight"):
            out[name] = t
        elif parts[0] == "ln_f":
            out[f"norm_f.{parts[1]}"] = t
        elif parts[0] == "h" and len(parts) >= 4:
            ours = f"blocks.{parts[1]}."
            sub, kind = ".".join(parts[2:-1]), parts[-1]  # e.g. "attn.c_attn", "weight"
            if sub in ("ln_1", "ln_2"):
                out[ours + f"norm{sub[-1]}.{kind}"] = t
            elif sub == "attn.c_attn":
                w = t.t() if kind == "weight" else t  # (C, 3C) -> (3C, C): q rows, then k, then v
                for part, chunk in zip(("q_proj", "k_proj", "v_proj"), w.split(C, dim=0)):
                    out[ours + f"attn.{part}.{kind}"] = chunk
            elif sub in ("attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
                mine = {"attn.c_proj": "attn.out_proj", "mlp.c_fc": "mlp.up", "mlp.c_proj": "mlp.down"}[sub]
                out[ours + f"{mine}.{kind}"] = t.t() if kind == "weight" else t  # Conv1D (in, out) -> Linear (out, in)
            else:
                raise ValueError(f"unexpected GPT-2 parameter {name!r}")
        else:
            raise ValueError(f"unexpected GPT-2 parameter {name!r}")
    if config.tie_embeddings and "wte.weight" in out:
        out["lm_head.weight"] = out["wte.weight"]  # one tensor (a stored lm_head is the same numbers)
    with torch.device("meta"):
        wanted = set(GPT(config).state_dict())
    missing = sorted(wanted - out.keys())
    if missing:
        raise ValueError(f"the GPT-2 state dict lacks {missing[:5]} for {config}")
    return {k: v.contiguous() for k, v in out.items()}


@torch.no_grad()
def load_gpt2_state(state: dict[str, torch.Tensor], config: GPTConfig) -> GPT:
    r"""A :class:`~dlscratch.models.gpt.GPT` holding the weights of a ``GPT2LMHeadModel`` state dict, in its dtype."""
    dtype = next(iter(state.values())).dtype
    model = GPT(config).to(dtype)
    model.load_state_dict(from_hf_gpt2_state_dict(state, config))
    return model.eval()


_CONFIGS = {"gpt2": gpt2_config_from_hf, "openai-gpt": openai_gpt_config_from_hf}


def load_gpt_folder(folder: str | os.PathLike[str]) -> GPT:
    r"""Read a Hugging Face GPT-2 or GPT-1 folder (``config.json`` and ``model.safetensors``) into our GPT.

    The safetensors file is read by :func:`~dlscratch.models.llama_hf.read_safetensors`; nothing
    here imports ``transformers``. Returns the model in ``eval()`` mode, in the checkpoint's dtype.

    Raises:
        ValueError: if ``model_type`` is neither ``"gpt2"`` nor ``"openai-gpt"``, or the weights are missing.
    """
    folder = Path(folder)
    hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if hf.get("model_type") not in _CONFIGS:
        raise ValueError(f"expected model_type 'gpt2' or 'openai-gpt', got model_type={hf.get('model_type')!r}")
    config = _CONFIGS[hf["model_type"]](hf)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"expected the weights in {weights}, found {sorted(p.name for p in folder.iterdir())}")
    return load_gpt2_state(read_safetensors(weights), config)
