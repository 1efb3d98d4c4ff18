"""Architecture diagrams are read off the modules: the operations in forward order, the sizes."""

from __future__ import annotations

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
import pytest
from torch import nn

from dlscratch.layers.transformer import TransformerDecoderLayer, TransformerEncoderLayer
from dlscratch.models import GPT, LLaMA, GPTConfig, LlamaConfig
from dlscratch.viz.diagrams import block_diagram, decoder_lm_diagram, layer_steps, seq2seq_training_diagram


def _texts(fig: plt.Figure) -> str:
    return " | ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_post_ln_encoder_layer_steps() -> None:
    steps = layer_steps(TransformerEncoderLayer(64, 4, 96))
    assert [s.kind for s in steps] == ["attn", "add", "norm", "ffn", "add", "norm"]
    assert steps[0].label == "self-attention (4 heads)" and steps[3].label == "feed-forward (MLP, ReLU, F = 96)"


def test_pre_ln_decoder_layer_has_cross_attention_between() -> None:
    steps = layer_steps(TransformerDecoderLayer(32, 2, 64, norm_first=True))
    assert [s.kind for s in steps] == ["norm", "attn", "add", "norm", "cross", "add", "norm", "ffn", "add"]
    assert steps[1].label.startswith("masked self-attention (2 heads)")
    ax = block_diagram(TransformerDecoderLayer(32, 2, 64, norm_first=True))
    assert "memory\n(B, S, C)" in _texts(ax.figure) and ax.get_title() == "pre-LN TransformerDecoderLayer"
    plt.close("all")


def test_gpt_and_llama_read_off_their_parts() -> None:
    gpt = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=3, n_head=4, n_embd=32))
    fig = decoder_lm_diagram(gpt)
    text = _texts(fig)
    assert "GPT: 3 blocks" in " ".join(ax.get_title() for ax in fig.axes)
    assert "token embedding (V = 50, C = 32)" in text and "tied to the embedding" in text and "T ≤ 16" in text
    assert "feed-forward (MLP, GELU, F = 128)" in text
    llama = LLaMA(LlamaConfig(vocab_size=40, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=32))
    steps = layer_steps(llama.blocks[0])
    assert [s.label for s in steps if s.kind == "norm"] == ["RMSNorm", "RMSNorm"]
    assert "SwiGLU" in steps[4].label and "4 query / 2 kv heads" in steps[1].label
    text = _texts(decoder_lm_diagram(llama))
    assert "positions: inside attention" in text and "tied" not in text  # LLaMA: RoPE, an untied head
    tied = LLaMA(LlamaConfig(vocab_size=40, block_size=16, n_layer=1, n_head=4, n_kv_head=2, n_embd=32, tie_embeddings=True))
    assert "tied to the embedding" in _texts(decoder_lm_diagram(tied))
    plt.close("all")


def test_seq2seq_training_diagram_shifts_the_target() -> None:
    ax = seq2seq_training_diagram("forty two", ("4", "2"))
    text = _texts(ax.figure)
    assert "decoder input: <bos> 4 2" in text and "targets: 4 2 <eos>" in text
    plt.close("all")


def test_not_a_block() -> None:
    with pytest.raises(ValueError, match=r"Linear lacks \['attn', 'mlp', 'norm1', 'norm2'\]"):
        layer_steps(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="lacks"):
        decoder_lm_diagram(nn.Linear(2, 2))
