"""Twin: ``transformers``' LlamaAttention with fewer key/value heads than query heads (GQA, MQA)
against our ``MultiHeadAttention(num_kv_heads=...)``, rotation switched off (cos = 1, sin = 0)."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers import MultiHeadAttention
from tests.helpers import assert_same_forward_backward

transformers = pytest.importorskip("transformers")
from transformers.models.llama.configuration_llama import LlamaConfig  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaAttention  # noqa: E402

DT = torch.float64


def llama_twin(C: int, nh: int, nkv: int, implementation: str, window: int | None = None) -> tuple[MultiHeadAttention, LlamaAttention]:
    cfg = LlamaConfig(hidden_size=C, num_attention_heads=nh, num_key_value_heads=nkv, attention_bias=False)
    cfg._attn_implementation = implementation
    hf = LlamaAttention(cfg, layer_idx=0).to(DT)
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(torch.randn_like(p) / C**0.5)
    ours = MultiHeadAttention(C, nh, nkv, bias=False, causal=True, window=window, dtype=DT)
    ours.load_state_dict({name.replace("o_proj", "out_proj"): p for name, p in hf.state_dict().items()})
    return ours, hf


def hf_call(hf: LlamaAttention, window: int | None = None):
    """HF's forward with identity rotation and an additive causal (and window) mask, 0 = may attend."""

    def call(x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        cos = torch.ones(B, T, hf.head_dim, dtype=x.dtype)  # (B, T, hs): no rotation
        sin = torch.zeros(B, T, hf.head_dim, dtype=x.dtype)
        i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
        allowed = (j <= i) if window is None else (j <= i) & (j > i - window)
        mask = torch.zeros(T, T, dtype=x.dtype).masked_fill(~allowed, float("-inf"))[None, None]  # (1, 1, T, T)
        return hf(x, position_embeddings=(cos, sin), attention_mask=mask)[0]

    return call


@pytest.mark.parametrize(("C", "nh", "nkv"), [(16, 4, 2), (16, 4, 1), (24, 6, 3), (16, 4, 4)])
@pytest.mark.parametrize("window", [None, 3])
def test_llama_gqa_attention_twin(C: int, nh: int, nkv: int, window: int | None) -> None:
    ours, hf = llama_twin(C, nh, nkv, "sdpa", window)
    x = torch.randn(2, 7, C, dtype=DT)
    assert_same_forward_backward(
        lambda x: ours(x)[0], hf_call(hf, window), [x], modules=(ours, hf),
        grads=(lambda m: {n.replace("out_proj", "o_proj"): p.grad for n, p in m.named_parameters()},
               lambda m: {n: p.grad for n, p in m.named_parameters()}),
    )


def test_eager_llama_softmax_is_float32() -> None:
    """HF's eager path takes the softmax in float32 even for float64 inputs: equal only to ~1e-6."""
    ours, hf = llama_twin(16, 4, 2, "eager")
    x = torch.randn(2, 7, 16, dtype=DT)
    diff = (ours(x)[0] - hf_call(hf)(x)).abs().max().item()
    assert 1e-12 < diff < 1e-5
