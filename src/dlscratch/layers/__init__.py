r"""Layers written by hand, by topic. Layers import only torch.

The ``nn.Module`` layers and functions below are exported here. ``dlscratch.layers.mini_nn`` —
``torch.nn`` in miniature, plain Python classes from chapters 4 and 5 — is kept in its own
namespace, because its ``Linear`` and ``BatchNorm1d`` are deliberately not ``nn.Module``\ s.
"""

from . import mini_nn
from .activations import gelu, log_softmax, quick_gelu, softmax
from .alibi import ALiBi, alibi_bias, alibi_slopes
from . import attention
from .attention import *  # noqa: F403 - its __all__, listed once, in attention/__init__.py
from .conv import Conv2d, conv2d_loops, conv2d_unfold, conv_output_size, sliding_windows, unfold2d
from .dropout import Dropout, dropout
from .feedforward import ACTIVATIONS, MLP, SwiGLU, relu2, swiglu_hidden
from .gptq import gptq_hessian, gptq_quantize, layer_error, obq_quantize
from .int8 import Int8Linear, int8_matmul, int_matmul, llm_int8_matmul, outlier_columns
from .losses import clip_loss, cross_entropy, distillation_loss, info_nce
from .lora import LoRALinear, add_lora, load_lora_state_dict, lora_modules, lora_state_dict, low_rank_factors, merge_lora, unmerge_lora
from .moe import MoE, drop_fraction, expert_capacity, load_balancing_loss, route, router_z_loss
from .norms import NORMS, BatchNorm1d, BatchNorm2d, FusedLayerNorm, FusedRMSNorm, LayerNorm, RMSNorm, batch_norm, make_norm
from .tensor_parallel import (
    ColumnParallelLinear,
    RowParallelLinear,
    TensorParallelAttention,
    TensorParallelMLP,
    check_tp_degree,
    copy_to_parallel,
    reduce_from_parallel,
)
from .quant import (
    NF4Linear,
    bits_per_parameter,
    double_dequantize,
    double_quantize,
    dequantize_blockwise,
    int4_levels,
    nf4_levels,
    pack_4bit,
    quantize_blockwise,
    quantize_dequantize,
    quantize_linears,
    replace_linears,
    unpack_4bit,
)
from .quant_int import (
    QuantizedTensor,
    QuantLinear,
    check_bits,
    code_range,
    dequantize,
    fake_quantize,
    grid_params,
    quantize,
    quantize_model_linears,
    quantize_with,
    scale_rows,
    weight_bits,
)
from .prune import hold_masks, ln_structured_mask, magnitude_mask, n_m_mask, shrink_swiglu, sparsity
from .patch import PatchEmbedding, check_patch_size, patchify, unpatchify
from .pooling import AvgPool2d, MaxPool2d, avg_pool2d, max_pool2d
from .positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    sincos_2d_encoding,
    sinusoidal_encoding,
    sinusoidal_frequencies,
)
from .relative_position import RelativePositionBias, relative_position_bucket
from .rope import RoPE, apply_rope, apply_rope_complex, apply_rope_interleaved, rope_angles, rope_permutation, rotate_half
from .scan import SCANS, blelloch_scan, hillis_steele_scan, sequential_scan
from .ssm import causal_convolution, discretize_euler, discretize_zoh, s4d_real, selective_scan, ssm_kernel, ssm_recurrence
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, gru_cell, lstm_cell, rnn_cell
from .transformer import (
    Block,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    TransformerLayerConfig,
    decoder_layer_params,
    encoder_layer_params,
    residual,
)

__all__ = [
    "mini_nn",
    # activations and losses
    "softmax",
    "log_softmax",
    "gelu",
    "quick_gelu",
    "cross_entropy",
    "distillation_loss",
    "info_nce",
    "clip_loss",
    # regularisation and normalisation
    "dropout",
    "Dropout",
    "batch_norm",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "FusedLayerNorm",
    "RMSNorm",
    "FusedRMSNorm",
    "NORMS",
    "make_norm",
    # feed-forward
    "ACTIVATIONS",
    "MLP",
    "SwiGLU",
    "swiglu_hidden",
    "relu2",
    # mixture of experts
    "MoE",
    "route",
    "load_balancing_loss",
    "router_z_loss",
    "expert_capacity",
    "drop_fraction",
    # convolution and pooling
    "conv_output_size",
    "sliding_windows",
    "unfold2d",
    "conv2d_loops",
    "conv2d_unfold",
    "Conv2d",
    "max_pool2d",
    "avg_pool2d",
    "MaxPool2d",
    "AvgPool2d",
    # patches (Vision Transformer)
    "check_patch_size",
    "patchify",
    "unpatchify",
    "PatchEmbedding",
    # recurrent
    "rnn_cell",
    "lstm_cell",
    "gru_cell",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "RNN",
    "LSTM",
    "GRU",
    # attention: everything dlscratch.layers.attention exports
    *attention.__all__,
    # positions
    "sinusoidal_frequencies",
    "sinusoidal_encoding",
    "sincos_2d_encoding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "rope_angles",
    "rotate_half",
    "apply_rope",
    "apply_rope_interleaved",
    "apply_rope_complex",
    "rope_permutation",
    "RoPE",
    "alibi_slopes",
    "alibi_bias",
    "ALiBi",
    "relative_position_bucket",
    "RelativePositionBias",
    # state-space models and scans
    "sequential_scan",
    "hillis_steele_scan",
    "blelloch_scan",
    "SCANS",
    "discretize_zoh",
    "discretize_euler",
    "s4d_real",
    "ssm_kernel",
    "causal_convolution",
    "ssm_recurrence",
    "selective_scan",
    # Transformer blocks
    "residual",
    "Block",
    "TransformerLayerConfig",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerDecoder",
    "encoder_layer_params",
    "decoder_layer_params",
    # low-rank adaptation (chapter 23)
    "low_rank_factors",
    "LoRALinear",
    "add_lora",
    "lora_modules",
    "lora_state_dict",
    "load_lora_state_dict",
    "merge_lora",
    "unmerge_lora",
    # 4-bit quantisation (chapter 23)
    "nf4_levels",
    "int4_levels",
    "quantize_blockwise",
    "dequantize_blockwise",
    "quantize_dequantize",
    "double_quantize",
    "double_dequantize",
    "bits_per_parameter",
    "pack_4bit",
    "unpack_4bit",
    "NF4Linear",
    "quantize_linears",
    # tensor parallelism (chapter 37)
    "ColumnParallelLinear",
    "RowParallelLinear",
    "TensorParallelMLP",
    "TensorParallelAttention",
    "check_tp_degree",
    "copy_to_parallel",
    "reduce_from_parallel",
    "replace_linears",
    # integer quantisation, int8 matmul, GPTQ and pruning (chapter 36)
    "QuantizedTensor",
    "QuantLinear",
    "check_bits",
    "code_range",
    "dequantize",
    "fake_quantize",
    "grid_params",
    "quantize",
    "quantize_model_linears",
    "quantize_with",
    "scale_rows",
    "weight_bits",
    "Int8Linear",
    "int8_matmul",
    "int_matmul",
    "llm_int8_matmul",
    "outlier_columns",
    "gptq_hessian",
    "gptq_quantize",
    "obq_quantize",
    "layer_error",
    "hold_masks",
    "ln_structured_mask",
    "magnitude_mask",
    "n_m_mask",
    "shrink_swiglu",
    "sparsity",
]
