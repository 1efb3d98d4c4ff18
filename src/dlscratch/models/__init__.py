r"""Models built from the package's layers: n-gram, MLP and WaveNet language models, classifiers, CNNs, recurrent and Transformer models, GPT, T5, BERT, the Vision Transformer, CLIP, diffusion models.

Seeding rule: every model draws its initial weights from torch's global generator, as
:mod:`torch.nn` layers do, so ``dlscratch.utils.seed_everything(seed)`` just before building it
fixes its weights, whatever the model; constructors take no seed. (The plain-Python layers of
:mod:`dlscratch.layers.mini_nn`, which MLPLM and WaveNet are built from, draw on the CPU, so
their weights are also the same on every device.) A config's ``seed`` field is the seed the
chapter passes to ``seed_everything``. Everything random after construction takes an explicit
seed or generator instead: the order of the minibatches (``train_lm(..., seed=...)``) and
sampling (``sample_words(..., seed=...)``).
"""

from .cnn import BasicBlock, LeNet, LeNetConfig, ResNet, ResNetConfig
from .decoder import DecoderLM
from .decoding import beam_search, greedy_search, length_penalty
from .fused_decoder import FusedDecoder
from .bert import BertConfig, BertEmbeddings, BertForMaskedLM, BertForSequenceClassification, BertModel, bert_block, bert_init, check_labels
from .bert_hf import bert_state_dict_from_hf, hf_bert_config, hf_bert_name
from .bert_inputs import batch_inputs, pack_pair
from .block_lm import BlockLM, BlockLMConfig, block_lm_block
from .gpt import GPT, GPTConfig, gpt_block, pool_kv_heads
from .gpt1 import GPT1Classifier, gpt1_input
from .gpt2_hf import load_gpt_folder
from .hf_io import load_hf_folder
from .llama import LLaMA, LlamaConfig, ladder, llama_block
from .llama_hf import export_hf
from .attn_only import AttnOnlyConfig, AttnOnlyOutput, AttnOnlyTransformer, from_gpt2_state_dict, gpt2_config, to_gpt2_state_dict
from .clip import CLIP, CLIPConfig, CLIPOutput, CLIPTextTower, CLIPTowerConfig, CLIPVisionTower, clip_block, clip_init, eot_positions
from .clip_hf import clip_state_dict_from_hf, hf_clip_config, hf_clip_name
from .icl_regression import InContextRegressor, RegressionConfig, interleave
from .mamba import Mamba, MambaConfig
from .mlp_classifier import MLPClassifier, MLPClassifierConfig
from .mlp_lm import MLPLM, MLPLMConfig
from .moe_lm import MoELM, MoELMConfig, active_parameters, moe_block
from .position_lm import PositionLM, PositionLMConfig
from .ngram import BigramCounts, NeuralBigram, one_hot
from .rnn_lm import CharLSTM, CharLSTMConfig, build_sequences
from .scalar_head import ScalarHeadLM
from .sampling import sample_logits, sample_sequences, sample_words, top_k_filter, top_p_filter
from .seq2seq import AdditiveAttention, Seq2Seq, Seq2SeqConfig
from .seq2seq_transformer import Seq2SeqTransformer, Seq2SeqTransformerConfig
from .span_corruption import (
    SpanCounts,
    expected_iid_target_length,
    iid_noise_mask,
    random_spans_noise_mask,
    sentinel_spans,
    span_corruption,
    span_counts,
)
from .t5 import T5, T5Config
from .vit import ViT, ViTConfig, conv_stem, vit_block, vit_init
from .vit_hf import hf_vit_config, hf_vit_grads, hf_vit_name, vit_state_dict_from_hf
from .wavenet import WaveNet, WaveNetConfig
from .zero_shot import continuation_logprobs, label_word_scores
from .bi_encoder import BiEncoder, BiEncoderConfig, SpeakerReader, TextEncoder
from .diffusion import NoiseSchedule, cosine_betas, guided_noise, linear_betas, sample_loop
from .denoisers import (
    CaptionEncoder,
    CrossAttention2d,
    ResBlock,
    TextToImage,
    TimeEmbedding,
    ToyDenoiser,
    ToyDenoiserConfig,
    UNet,
    UNetConfig,
)

__all__ = [
    "BigramCounts",
    "NeuralBigram",
    "one_hot",
    "MLPClassifierConfig",
    "MLPClassifier",
    "MLPLMConfig",
    "MLPLM",
    "WaveNetConfig",
    "WaveNet",
    "LeNetConfig",
    "LeNet",
    "ResNetConfig",
    "BasicBlock",
    "ResNet",
    "CharLSTMConfig",
    "CharLSTM",
    "build_sequences",
    "AdditiveAttention",
    "Seq2SeqConfig",
    "Seq2Seq",
    "Seq2SeqTransformerConfig",
    "Seq2SeqTransformer",
    "length_penalty",
    "DecoderLM",
    "FusedDecoder",
    "greedy_search",
    "beam_search",
    "top_k_filter",
    "top_p_filter",
    "sample_logits",
    "sample_sequences",
    "sample_words",
    "GPTConfig",
    "GPT",
    "gpt_block",
    "pool_kv_heads",
    "GPT1Classifier",
    "gpt1_input",
    "load_gpt_folder",
    "load_hf_folder",
    "continuation_logprobs",
    "label_word_scores",
    "PositionLMConfig",
    "PositionLM",
    "BlockLMConfig",
    "BlockLM",
    "block_lm_block",
    "LlamaConfig",
    "LLaMA",
    "llama_block",
    "ladder",
    "export_hf",
    "MoELMConfig",
    "MoELM",
    "moe_block",
    "active_parameters",
    "MambaConfig",
    "Mamba",
    "T5Config",
    "T5",
    "SpanCounts",
    "span_counts",
    "random_spans_noise_mask",
    "iid_noise_mask",
    "sentinel_spans",
    "span_corruption",
    "expected_iid_target_length",
    "AttnOnlyConfig",
    "AttnOnlyOutput",
    "AttnOnlyTransformer",
    "gpt2_config",
    "to_gpt2_state_dict",
    "from_gpt2_state_dict",
    "RegressionConfig",
    "InContextRegressor",
    "interleave",
    "BertConfig",
    "BertEmbeddings",
    "BertModel",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "bert_block",
    "bert_init",
    "check_labels",
    "bert_state_dict_from_hf",
    "hf_bert_config",
    "hf_bert_name",
    "pack_pair",
    "batch_inputs",
    "ViTConfig",
    "ViT",
    "vit_block",
    "conv_stem",
    "vit_init",
    "hf_vit_name",
    "vit_state_dict_from_hf",
    "hf_vit_grads",
    "hf_vit_config",
    "BiEncoderConfig",
    "TextEncoder",
    "BiEncoder",
    "SpeakerReader",
    "ScalarHeadLM",
    "CLIPTowerConfig",
    "CLIPConfig",
    "CLIPVisionTower",
    "CLIPTextTower",
    "CLIPOutput",
    "CLIP",
    "clip_block",
    "clip_init",
    "eot_positions",
    "hf_clip_name",
    "clip_state_dict_from_hf",
    "hf_clip_config",
    "NoiseSchedule",
    "linear_betas",
    "cosine_betas",
    "guided_noise",
    "sample_loop",
    "TimeEmbedding",
    "ToyDenoiserConfig",
    "ToyDenoiser",
    "CaptionEncoder",
    "UNetConfig",
    "ResBlock",
    "CrossAttention2d",
    "UNet",
    "TextToImage",
]
