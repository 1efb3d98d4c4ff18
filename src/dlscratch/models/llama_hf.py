r"""Our LLaMA in Hugging Face's format: the weight names, ``config.json`` and a safetensors file.

:func:`to_hf_state_dict` and :func:`from_hf_state_dict` rename the parameters of
:class:`~dlscratch.models.llama.LLaMA` to those of ``transformers.LlamaForCausalLM`` and back
(one name for one name, no reshaping: both use the half-split RoPE convention, chapter 18).
:func:`hf_config` writes the matching ``LlamaConfig`` fields. :func:`export_hf` writes a folder
that ``LlamaForCausalLM.from_pretrained(folder)`` loads, with the weights in a ``model.safetensors``
file written by :func:`write_safetensors`, by hand: the format is

.. code-block:: text

    8 bytes      N, the header's length, unsigned little-endian
    N bytes      JSON: {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}
    the rest     every tensor's raw little-endian bytes, at its offsets

so nothing here imports ``safetensors`` or ``transformers``. Chapter 21, *LLaMA from scratch*.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from .llama import LLaMA, LlamaConfig

__all__ = ["hf_name", "to_hf_state_dict", "from_hf_state_dict", "hf_config", "write_safetensors", "read_safetensors", "export_hf"]

# ours -> Hugging Face, inside blocks.{i}. / model.layers.{i}.
_BLOCK_NAMES = {
    "norm1.weight": "input_layernorm.weight",
    "attn.q_proj.weight": "self_attn.q_proj.weight",
    "attn.k_proj.weight": "self_attn.k_proj.weight",
    "attn.v_proj.weight": "self_attn.v_proj.weight",
    "attn.out_proj.weight": "self_attn.o_proj.weight",
    "attn.q_proj.bias": "self_attn.q_proj.bias",
    "attn.k_proj.bias": "self_attn.k_proj.bias",
    "attn.v_proj.bias": "self_attn.v_proj.bias",
    "attn.out_proj.bias": "self_attn.o_proj.bias",
    "norm2.weight": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight",
    "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
    "mlp.gate.bias": "mlp.gate_proj.bias",
    "mlp.up.bias": "mlp.up_proj.bias",
    "mlp.down.bias": "mlp.down_proj.bias",
}
_TOP_NAMES = {"wte.weight": "model.embed_tokens.weight", "norm_f.weight": "model.norm.weight", "lm_head.weight": "lm_head.weight"}
_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def _check_exportable(c: LlamaConfig) -> None:
    parts = {"norm": "rmsnorm", "positions": "rope", "mlp": "swiglu", "qk_norm": False}
    other = {k: getattr(c, k) for k, v in parts.items() if getattr(c, k) != v}
    if other:
        raise ValueError(f"only LLaMA's parts map onto LlamaForCausalLM: expected {parts}, got {other}")


def hf_name(name: str) -> str:
    r"""The Hugging Face name of one of our parameter names (``blocks.0.mlp.gate.weight`` -> ``model.layers.0.mlp.gate_proj.weight``)."""
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    head, _, rest = name.partition(".")
    index, _, part = rest.partition(".")
    if head != "blocks" or part not in _BLOCK_NAMES:
        raise ValueError(f"no Hugging Face name for parameter {name!r}")
    return f"model.layers.{index}.{_BLOCK_NAMES[part]}"


def to_hf_state_dict(model: LLaMA) -> dict[str, torch.Tensor]:
    r"""The model's weights under ``LlamaForCausalLM``'s names (the same tensors, detached; a tied head once)."""
    _check_exportable(model.config)
    out = {hf_name(k): v.detach() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        out.pop("lm_head.weight")  # HF ties it to embed_tokens itself
    return out


def from_hf_state_dict(state: dict[str, torch.Tensor], config: LlamaConfig) -> dict[str, torch.Tensor]:
    r"""A ``LlamaForCausalLM`` state dict under our names, for ``LLaMA(config).load_state_dict``."""
    _check_exportable(config)
    theirs = {hf_name(k): k for k in LLaMA(config).state_dict()}  # HF name -> ours
    out = {}
    for name, tensor in state.items():
        if name not in theirs:
            raise ValueError(f"unexpected Hugging Face parameter {name!r} for {config}")
        out[theirs[name]] = tensor
    if config.tie_embeddings:
        out["lm_head.weight"] = out["wte.weight"]
    missing = sorted(set(theirs.values()) - out.keys())
    if missing:
        raise ValueError(f"the Hugging Face state dict lacks {missing[:5]}")
    return out


def hf_config(c: LlamaConfig, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    r"""The ``config.json`` of ``transformers.LlamaConfig`` (5.x field names) for our configuration."""
    _check_exportable(c)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.n_embd,
        "intermediate_size": c.ffn_hidden,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_size,
        "hidden_act": "silu",
        "max_position_embeddings": c.block_size,
        "rms_norm_eps": c.norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_base},
        "attention_bias": c.bias,
        "mlp_bias": c.bias,
        "attention_dropout": 0.0,
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
        "dtype": str(dtype).removeprefix("torch."),
    }


def write_safetensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> Path:
    r"""Write ``tensors`` as a safetensors file: header length, JSON header, raw little-endian bytes.

    The header is padded with spaces to a multiple of 8 bytes (the format allows it, and aligned
    offsets let readers map the tensors in place); tensors follow in name order.
    """
    if sys.byteorder != "little":  # pragma: no cover - every platform torch supports today is little-endian
        raise ValueError("write_safetensors writes the machine's bytes, which must be little-endian")
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise ValueError(f"cannot write {name!r} of dtype {t.dtype}; expected one of {sorted(map(str, _DTYPES))}")
        blob = t.reshape(-1).view(torch.uint8).numpy().tobytes()  # the tensor's bytes, in memory order
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)))  # 8 bytes, unsigned little-endian
        fh.write(text)
        for blob in blobs:
            fh.write(blob)
    return path


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    r"""Read a safetensors file (the inverse of :func:`write_safetensors`)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    by_code = {v: k for k, v in _DTYPES.items()}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        data = bytearray(raw[8 + n + begin : 8 + n + end])
        out[name] = torch.frombuffer(data, dtype=by_code[info["dtype"]]).reshape(info["shape"]) if data else torch.empty(info["shape"], dtype=by_code[info["dtype"]])
    return out


def export_hf(model: LLaMA, folder: str | os.PathLike[str], *, force: bool = False) -> Path:
    r"""Write ``folder/config.json`` and ``folder/model.safetensors`` for ``LlamaForCausalLM.from_pretrained``.

    The files are written to a temporary folder next to ``folder``, which is then renamed into
    place, so a crash never leaves half an export. An existing, non-empty ``folder`` is refused
    unless ``force`` (then it is replaced).

    Raises:
        ValueError: naming the folder and what is in it, if it is not empty and ``force`` is not set;
            naming the parts, if the model is not a LLaMA (a ladder rung, QK-norm, ReLU²).
    """
    folder = Path(folder)
    state = to_hf_state_dict(model)  # checks the parts first
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"export folder {folder} exists and is not a folder")
        inside = sorted(p.name for p in folder.iterdir())
        if inside and not force:
            raise ValueError(f"export folder {folder} is not empty (it holds {inside[:5]}); pass force=True (--force) to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    dtype = next(iter(state.values())).dtype
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        (tmp / "config.json").write_text(json.dumps(hf_config(model.config, dtype), indent=2) + "\n", encoding="utf-8")
        write_safetensors(tmp / "model.safetensors", state)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
