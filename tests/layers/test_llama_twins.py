"""The kit's RMSNorm and SwiGLU against Hugging Face's LLaMA parts (``LlamaRMSNorm``, ``LlamaMLP``).

Random weights, built from a ``LlamaConfig`` (nothing downloaded), copied into ours; the output and
every gradient are compared. ``LlamaMLP`` is compared in float64. ``LlamaRMSNorm`` always computes
in float32 (it casts its input up, for bf16 and fp16 models, and so casts a float64 input *down*),
so it is compared in float32, where the written RMSNorm equals it bit for bit (chapter 20).
"""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers import FusedRMSNorm, RMSNorm, SwiGLU
from tests.helpers import assert_same_forward_backward

modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")
LlamaConfig = pytest.importorskip("transformers").LlamaConfig


def _llama_rmsnorm(C: int, dtype: torch.dtype) -> torch.nn.Module:
    ref = modeling_llama.LlamaRMSNorm(C, eps=1e-6).to(dtype)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(C))
    return ref


@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 16), (1, 1, 1)])
def test_rmsnorm_equals_llama_rmsnorm_bit_for_bit_in_float32(shape) -> None:
    ref = _llama_rmsnorm(shape[-1], torch.float32)
    ours = RMSNorm(shape[-1], eps=1e-6)
    ours.load_state_dict(ref.state_dict())  # same parameter name: weight
    assert_same_forward_backward(ours, ref, [torch.randn(shape)], atol=0.0, rtol=0.0)


@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 16)])
def test_fused_rmsnorm_matches_llama_rmsnorm_in_float32(shape) -> None:
    ref = _llama_rmsnorm(shape[-1], torch.float32)
    ours = FusedRMSNorm(shape[-1], eps=1e-6)
    ours.load_state_dict(ref.state_dict())
    assert_same_forward_backward(ours, ref, [torch.randn(shape)], atol=1e-5, rtol=1e-5)


def test_llama_rmsnorm_computes_in_float32_even_for_float64_inputs() -> None:
    ref = _llama_rmsnorm(16, torch.float64)
    ours = RMSNorm(16, eps=1e-6).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(8, 16, dtype=torch.float64)
    gap = (ours(x) - ref(x)).abs().max().item()
    assert 1e-12 < gap < 1e-5  # float32 rounding, not a different formula
    torch.testing.assert_close(ours(x.float()).double(), ref(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(("C", "F"), [(16, 40), (8, 24), (4, 1)])
@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_equals_llama_mlp_in_float64(C: int, F: int, bias: bool) -> None:
    cfg = LlamaConfig(hidden_size=C, intermediate_size=F, num_attention_heads=2, num_key_value_heads=2,
                      hidden_act="silu", mlp_bias=bias)
    ref = modeling_llama.LlamaMLP(cfg).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p))
    ours = SwiGLU(C, F, bias=bias).double()
    ours.load_state_dict(_from_llama(ref.state_dict()))

    def theirs(m: torch.nn.Module) -> dict[str, torch.Tensor]:
        return _from_llama({name: p.grad for name, p in m.named_parameters()})

    assert_same_forward_backward(
        ours, ref, [torch.randn(2, 5, C, dtype=torch.float64)],
        grads=(lambda m: {k: p.grad for k, p in m.named_parameters()}, theirs),
    )


def _from_llama(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    r"""``LlamaMLP``'s names to ours: ``gate_proj.weight`` -> ``gate.weight``, and so on."""
    return {name.replace("_proj", "", 1): t for name, t in tensors.items()}
