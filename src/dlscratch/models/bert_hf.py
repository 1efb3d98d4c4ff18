r"""Hugging Face's BERT weight names and config, mapped onto :mod:`dlscratch.models.bert`.

One name for one name, no reshaping: Hugging Face keeps the query, key and value maps separate,
as we do, and its decoder weight is tied to the word embedding, as ours. The mapping serves the
twin tests of chapter 26 (a ``transformers`` BERT built from a random config, its weights copied
into ours); nothing here imports ``transformers``.
"""

from __future__ import annotations

from typing import Any

import torch

from .bert import BertConfig

__all__ = ["hf_bert_name", "bert_state_dict_from_hf", "hf_bert_config"]

# ours -> Hugging Face, inside blocks.{i}. / encoder.layer.{i}.
_BLOCK_NAMES = {
    "attn.q_proj": "attention.self.query",
    "attn.k_proj": "attention.self.key",
    "attn.v_proj": "attention.self.value",
    "attn.out_proj": "attention.output.dense",
    "norm1": "attention.output.LayerNorm",
    "mlp.up": "intermediate.dense",
    "mlp.down": "output.dense",
    "norm2": "output.LayerNorm",
}
_ENCODER_NAMES = {
    "embeddings.word": "embeddings.word_embeddings",
    "embeddings.position": "embeddings.position_embeddings",
    "embeddings.token_type": "embeddings.token_type_embeddings",
    "embeddings.norm": "embeddings.LayerNorm",
    "pooler": "pooler.dense",
}
_HEAD_NAMES = {  # BertForMaskedLM and BertForSequenceClassification, outside the encoder
    "transform": "cls.predictions.transform.dense",
    "transform_norm": "cls.predictions.transform.LayerNorm",
    "decoder": "cls.predictions.decoder",
    "classifier": "classifier",
}


def hf_bert_name(name: str, prefix: str = "bert.") -> str:
    r"""The Hugging Face name of one of our parameter names.

    ``prefix`` is what stands before the encoder's names in our model and theirs: ``"bert."``
    for the models with a head, ``""`` for a bare :class:`~dlscratch.models.bert.BertModel`
    (``blocks.0.mlp.up.weight`` -> ``encoder.layer.0.intermediate.dense.weight``).
    """
    module, _, leaf = name.rpartition(".")
    if module in _HEAD_NAMES:
        return f"{_HEAD_NAMES[module]}.{leaf}"
    inner = module[len(prefix):] if module.startswith(prefix) else None
    if inner in _ENCODER_NAMES:
        return f"{prefix}{_ENCODER_NAMES[inner]}.{leaf}"
    if inner is not None and inner.startswith("blocks."):
        _, index, part = inner.split(".", 2)
        if part in _BLOCK_NAMES:
            return f"{prefix}encoder.layer.{index}.{_BLOCK_NAMES[part]}.{leaf}"
    raise ValueError(f"no Hugging Face name for parameter {name!r} (prefix {prefix!r})")


def bert_state_dict_from_hf(state: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], prefix: str = "bert.") -> dict[str, torch.Tensor]:
    r"""A Hugging Face BERT state dict under our names, for ``model.load_state_dict``.

    Args:
        state: ``hf_model.state_dict()`` (``BertModel``, ``BertForMaskedLM`` or ``BertForSequenceClassification``).
        ours: our model's ``state_dict()``: the names to fill.
        prefix: ``"bert."`` for the models with a head, ``""`` for a bare ``BertModel``.

    Raises:
        ValueError: if one of our names has no tensor in ``state``.
    """
    out = {}
    for name in ours:
        theirs = hf_bert_name(name, prefix)
        if theirs not in state:
            raise ValueError(f"the Hugging Face state dict lacks {theirs!r} (for our {name!r})")
        out[name] = state[theirs]
    return out


def hf_bert_config(c: BertConfig, **extra: Any) -> dict[str, Any]:
    r"""The keyword arguments of ``transformers.BertConfig`` for the same sizes (exact GELU, eager attention)."""
    return dict(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
        intermediate_size=c.ffn_dim, max_position_embeddings=c.max_position, type_vocab_size=c.type_vocab_size,
        hidden_act="gelu", hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout,
        layer_norm_eps=c.eps, pad_token_id=c.pad_id, initializer_range=c.init_std, attn_implementation="eager", **extra,
    )
