r"""Hugging Face's CLIP weight names and config, mapped onto :mod:`dlscratch.models.clip`.

One name for one name, no reshaping: Hugging Face keeps the query, key and value maps separate
and the patch embedding as a convolution kernel, as we do. The mapping serves the twin check of
chapter 34 (a ``transformers`` ``CLIPModel`` built from a random config, its weights copied into
ours); nothing here imports ``transformers``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from .clip import CLIPConfig

__all__ = ["hf_clip_name", "clip_state_dict_from_hf", "hf_clip_config"]

# (our pattern, Hugging Face's replacement), tried in order on our parameter name
_RULES = [
    (r"^vision\.patch\.", "vision_model.embeddings.patch_embedding."),
    (r"^vision\.class_embedding$", "vision_model.embeddings.class_embedding"),
    (r"^vision\.position\.", "vision_model.embeddings.position_embedding."),
    (r"^vision\.pre_norm\.", "vision_model.pre_layrnorm."),  # sic: Hugging Face's spelling
    (r"^vision\.post_norm\.", "vision_model.post_layernorm."),
    (r"^text\.token\.", "text_model.embeddings.token_embedding."),
    (r"^text\.position\.", "text_model.embeddings.position_embedding."),
    (r"^text\.final_norm\.", "text_model.final_layer_norm."),
    (r"^(vision|text)\.blocks\.(\d+)\.", r"\1_model.encoder.layers.\2."),
]
_BLOCK_RULES = [  # inside a block, after the rule above
    (r"\.norm1\.", ".layer_norm1."),
    (r"\.norm2\.", ".layer_norm2."),
    (r"\.attn\.", ".self_attn."),
    (r"\.mlp\.up\.", ".mlp.fc1."),
    (r"\.mlp\.down\.", ".mlp.fc2."),
]
_TOP = ("visual_projection.weight", "text_projection.weight", "logit_scale")


def hf_clip_name(name: str) -> str:
    r"""The Hugging Face name of one of our parameter names (``vision.blocks.0.mlp.up.weight`` ->
    ``vision_model.encoder.layers.0.mlp.fc1.weight``).

    Raises:
        ValueError: for a name that is not one of :class:`~dlscratch.models.clip.CLIP`'s.
    """
    if name in _TOP:
        return name
    for pattern, repl in _RULES:
        new, n = re.subn(pattern, repl, name)
        if n:
            if ".encoder.layers." in new:
                for p, r in _BLOCK_RULES:
                    new = re.sub(p, r, new, count=1)
            return new
    raise ValueError(f"no Hugging Face name for CLIP parameter {name!r}")


def clip_state_dict_from_hf(state: dict[str, torch.Tensor], ours: dict[str, Any]) -> dict[str, torch.Tensor]:
    r"""A Hugging Face ``CLIPModel`` state dict (or dict of gradients) under our names.

    Args:
        state: ``hf_model.state_dict()``, or ``{name: p.grad for name, p in hf_model.named_parameters()}``.
        ours: anything keyed by our names (``model.state_dict()``): the names to fill.

    Raises:
        ValueError: if one of our names has no tensor in ``state``.
    """
    out = {}
    for name in ours:
        theirs = hf_clip_name(name)
        if theirs not in state:
            raise ValueError(f"the Hugging Face state dict lacks {theirs!r} (for our {name!r})")
        out[name] = state[theirs]
    return out


def hf_clip_config(c: CLIPConfig) -> dict[str, Any]:
    r"""Keyword arguments of ``transformers.CLIPConfig`` for the same model (eager attention is the caller's choice)."""

    def tower(t: Any) -> dict[str, Any]:
        return dict(hidden_size=t.width, num_hidden_layers=t.n_layer, num_attention_heads=t.n_head, intermediate_size=t.ffn_dim,
                    hidden_act="quick_gelu", layer_norm_eps=c.eps, attention_dropout=0.0)

    pad = 0 if c.eot_id != 0 else 1
    text = dict(tower(c.text), vocab_size=c.vocab_size, max_position_embeddings=c.context_length,
                eos_token_id=c.eot_id, bos_token_id=pad, pad_token_id=pad)
    vision = dict(tower(c.vision), image_size=c.image_size, patch_size=c.patch_size, num_channels=c.channels)
    return dict(text_config=text, vision_config=vision, projection_dim=c.embed_dim, logit_scale_init_value=c.logit_scale_init)
