r"""Hugging Face's ViT weight names and config, mapped onto :mod:`dlscratch.models.vit`.

One tensor for one tensor: Hugging Face keeps the query, key and value maps separate, as we do;
only the ``[CLS]`` token and the position table carry a leading batch axis of 1 there. The
mapping serves the twin check of chapter 33 (a ``transformers.ViTModel`` built from a random
config, its weights copied into ours); nothing here imports ``transformers``.
"""

from __future__ import annotations

from typing import Any

import torch

from .vit import ViTConfig

__all__ = ["hf_vit_name", "vit_state_dict_from_hf", "hf_vit_grads", "hf_vit_config"]

_BLOCK_NAMES = {  # ours -> Hugging Face, inside blocks.{i}. / layers.{i}.
    "attn.q_proj": "attention.q_proj",
    "attn.k_proj": "attention.k_proj",
    "attn.v_proj": "attention.v_proj",
    "attn.out_proj": "attention.o_proj",
    "norm1": "layernorm_before",
    "mlp.up": "mlp.fc1",
    "mlp.down": "mlp.fc2",
    "norm2": "layernorm_after",
}
_TOP_NAMES = {
    "cls_token": "embeddings.cls_token",
    "pos_embed.weight": "embeddings.position_embeddings",
    "patch_embed.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
    "pre_logits.weight": "pooler.dense.weight",
    "pre_logits.bias": "pooler.dense.bias",
}


def hf_vit_name(name: str) -> str:
    r"""The ``ViTModel`` name of one of our parameter names (``blocks.0.mlp.up.weight`` -> ``layers.0.mlp.fc1.weight``).

    Raises:
        ValueError: for a parameter ``ViTModel`` does not have (the head, the conv stem).
    """
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    module, _, leaf = name.rpartition(".")
    if module.startswith("blocks."):
        _, index, part = module.split(".", 2)
        if part in _BLOCK_NAMES:
            return f"layers.{index}.{_BLOCK_NAMES[part]}.{leaf}"
    raise ValueError(f"no Hugging Face ViTModel name for parameter {name!r}")


def vit_state_dict_from_hf(state: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    r"""A ``ViTModel`` state dict (or gradients by name) under our names and shapes, for ``load_state_dict``.

    Args:
        state: ``hf_model.state_dict()``, or ``{name: p.grad}`` of its parameters.
        ours: our model's ``state_dict()``: the names to fill and their shapes.

    Raises:
        ValueError: if one of our names has no tensor in ``state``.
    """
    out = {}
    for name, mine in ours.items():
        theirs = hf_vit_name(name)
        if theirs not in state:
            raise ValueError(f"the Hugging Face state dict lacks {theirs!r} (for our {name!r})")
        out[name] = state[theirs].reshape(mine.shape)  # (1, T, C) -> (T, C) for the position table
    return out


def hf_vit_grads(model: torch.nn.Module, hf_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    r"""The gradients of ``hf_model``'s parameters under ``model``'s names and shapes (a parameter with no gradient is an error)."""
    grads = {}
    for name, p in hf_model.named_parameters():
        if p.grad is None:
            raise ValueError(f"the Hugging Face parameter {name!r} got no gradient")
        grads[name] = p.grad
    return vit_state_dict_from_hf(grads, dict(model.named_parameters()))


def hf_vit_config(c: ViTConfig, **extra: Any) -> dict[str, Any]:
    r"""The keyword arguments of ``transformers.ViTConfig`` for the same sizes (exact GELU; eager attention unless ``extra`` says otherwise).

    Raises:
        ValueError: for what ``ViTModel`` cannot express: mean pooling, the 2-D sin-cos table or a conv stem.
    """
    if c.pool != "cls" or c.pos != "learned" or c.stem_channels:
        raise ValueError(f"ViTModel has a [CLS] token, learned positions and no conv stem; got pool={c.pool!r}, "
                         f"pos={c.pos!r}, stem_channels={c.stem_channels}")
    return dict(
        image_size=c.image_size, patch_size=c.patch_size, num_channels=c.in_channels, hidden_size=c.n_embd,
        num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, intermediate_size=c.mlp_dim, hidden_act="gelu",
        hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout, layer_norm_eps=c.eps, qkv_bias=True,
        **{"attn_implementation": "eager", **extra},
    )
