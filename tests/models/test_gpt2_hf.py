"""GPT-2: our GPT equals transformers' GPT2LMHeadModel (logits, every gradient); the Hugging Face folder loader; bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.models.gpt2_hf import from_hf_gpt2_state_dict, gpt2_config_from_hf, load_gpt2_state, openai_gpt_config_from_hf
from dlscratch.models.hf_io import load_hf_folder, read_hf_config
from dlscratch.models.llama import LLaMA, LlamaConfig
from dlscratch.models.llama_hf import export_hf, read_safetensors, write_safetensors

transformers = pytest.importorskip("transformers")


def hf_gpt2(n_layer: int, n_head: int, n_embd: int, *, vocab: int = 61, positions: int = 24, tie: bool = True) -> torch.nn.Module:
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
                                  tie_word_embeddings=tie)
    cfg._attn_implementation = "eager"
    hf = transformers.GPT2LMHeadModel(cfg).double().eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))  # gains and biases away from 1 and 0, so a mix-up would show
    return hf


SHAPES = [(2, 4, 48, True), (1, 1, 8, True), (3, 3, 12, False)]


@pytest.mark.parametrize("n_layer, n_head, n_embd, tie", SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("T", [1, 17])
def test_logits_and_every_gradient_equal_gpt2_lm_head_model(n_layer: int, n_head: int, n_embd: int, tie: bool, T: int) -> None:
    hf = hf_gpt2(n_layer, n_head, n_embd, tie=tie)
    config = gpt2_config_from_hf(hf.config.to_dict())
    assert config.tie_embeddings == tie and config.activation == "gelu_tanh" and config.norm_first
    ours = load_gpt2_state(hf.state_dict(), config)
    x, y = torch.randint(0, 61, (3, T)), torch.randint(0, 61, (3, T))
    logits, loss = ours(x, y)
    theirs = hf(input_ids=x).logits
    torch.testing.assert_close(logits, theirs, rtol=0, atol=1e-10)
    loss.backward()
    torch.nn.functional.cross_entropy(theirs.flatten(0, 1), y.flatten()).backward()
    grads = from_hf_gpt2_state_dict({k: p.grad for k, p in hf.named_parameters()}, config)
    names = [k for k, _ in ours.named_parameters()]
    assert len(names) == len(set(grads) - ({"lm_head.weight"} if tie else set()))
    for k, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, grads[k], rtol=0, atol=1e-10, msg=lambda m, k=k: f"{k}: {m}")


def test_conv1d_stores_the_transpose() -> None:
    hf = hf_gpt2(1, 2, 8)
    ours = load_gpt2_state(hf.state_dict(), gpt2_config_from_hf(hf.config.to_dict()))
    block = hf.transformer.h[0]
    assert block.mlp.c_fc.weight.shape == (8, 32) and ours.blocks[0].mlp.up.weight.shape == (32, 8)
    torch.testing.assert_close(ours.blocks[0].mlp.up.weight, block.mlp.c_fc.weight.t())
    torch.testing.assert_close(ours.blocks[0].attn.k_proj.weight, block.attn.c_attn.weight[:, 8:16].t())


def test_folder_written_by_save_pretrained_loads(tmp_path: Path) -> None:
    hf = hf_gpt2(2, 2, 16)
    hf.save_pretrained(tmp_path)
    ours = load_hf_folder(tmp_path)
    assert isinstance(ours, GPT) and next(ours.parameters()).dtype == torch.float64
    x = torch.randint(0, 61, (2, 24))
    torch.testing.assert_close(ours(x)[0], hf(input_ids=x).logits, rtol=0, atol=1e-10)
    greedy = hf.generate(x[:, :5], max_new_tokens=12, do_sample=False, pad_token_id=0)
    torch.testing.assert_close(ours.generate(x[:, :5], 12, temperature=0.0), greedy, rtol=0, atol=0)


def test_original_names_without_prefix_and_mask_buffers_load() -> None:
    hf = hf_gpt2(2, 2, 16)
    state = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    state["h.0.attn.bias"] = torch.ones(1, 1, 24, 24)  # the causal mask OpenAI's upload stores
    ours = load_gpt2_state(state, gpt2_config_from_hf(hf.config.to_dict()))
    x = torch.randint(0, 61, (2, 9))
    torch.testing.assert_close(ours(x)[0], hf(input_ids=x).logits, rtol=0, atol=1e-10)


def test_llama_folder_loads_through_the_same_entry_point(tmp_path: Path) -> None:
    llama = LLaMA(LlamaConfig(vocab_size=50, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=48))
    export_hf(llama, tmp_path / "llama")
    loaded = load_hf_folder(tmp_path / "llama")
    assert isinstance(loaded, LLaMA) and loaded.config == llama.config
    x = torch.randint(0, 50, (2, 11))
    torch.testing.assert_close(loaded(x)[0], llama.eval()(x)[0], rtol=0, atol=0)


def test_gpt2_presets_have_the_published_sizes() -> None:
    with torch.device("meta"):
        n = sum(p.numel() for p in GPT(GPTConfig.gpt2("small")).parameters())
    assert n == 124_439_808  # Hugging Face's gpt2, the tied head counted once
    assert GPTConfig.gpt1().norm_first is False and GPTConfig.gpt1().block_size == 512


def test_default_gpt_keeps_chapter_17s_parts() -> None:
    m = GPT(GPTConfig())
    assert m.blocks[0].norm_first and m.lm_head.weight is m.wte.weight and m.blocks[0].mlp.activation == "gelu"
    post = GPT(replace(GPTConfig(), norm_first=False, tie_embeddings=False))
    assert isinstance(post.norm_f, torch.nn.Identity) and not post.blocks[0].norm_first
    assert post.lm_head.weight is not post.wte.weight


# ---------------------------------------------------------------- bad input
def test_folder_of_another_model_type_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(ValueError, match="model_type='bert'.*expected one of \\('gpt2', 'openai-gpt', 'llama'\\)"):
        load_hf_folder(tmp_path)


def test_folder_without_config_or_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config.json"):
        read_hf_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8, "n_head": 2, "n_layer": 1}))
    with pytest.raises(ValueError, match="model.safetensors"):
        load_hf_folder(tmp_path)


@pytest.mark.parametrize("field, value, match", [
    ("activation_function", "relu", "activation_function.*'relu'"),
    ("n_inner", 40, "n_inner=40"),
    ("scale_attn_by_inverse_layer_idx", True, "scale_attn_by_inverse_layer_idx"),
    ("model_type", "gpt_neo", "model_type='gpt_neo'"),
])
def test_unsupported_gpt2_configs_are_refused(field: str, value: object, match: str) -> None:
    cfg = {"model_type": "gpt2", "n_embd": 8, "n_head": 2, "n_layer": 1, field: value}
    with pytest.raises(ValueError, match=match):
        gpt2_config_from_hf(cfg)


def test_missing_or_unknown_weights_are_refused(tmp_path: Path) -> None:
    hf = hf_gpt2(1, 2, 8)
    config = gpt2_config_from_hf(hf.config.to_dict())
    state = dict(hf.state_dict())
    with pytest.raises(ValueError, match="unexpected GPT-2 parameter 'h.0.attn.rotary.weight'"):
        from_hf_gpt2_state_dict({**state, "h.0.attn.rotary.weight": torch.zeros(1)}, config)
    state.pop("transformer.h.0.mlp.c_fc.bias")
    with pytest.raises(ValueError, match="lacks.*blocks.0.mlp.up.bias"):
        from_hf_gpt2_state_dict(state, config)
    write_safetensors(tmp_path / "w.safetensors", {"wte.weight": torch.zeros(2, 2)})
    assert read_safetensors(tmp_path / "w.safetensors")["wte.weight"].shape == (2, 2)


def test_sequence_longer_than_the_positions_is_refused() -> None:
    hf = hf_gpt2(1, 2, 8, positions=12)
    ours = load_gpt2_state(hf.state_dict(), gpt2_config_from_hf(hf.config.to_dict()))
    with pytest.raises(ValueError, match="length 13 .* longer than block_size=12"):
        ours(torch.zeros(1, 13, dtype=torch.long))


def test_unknown_gpt2_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be one of .* got size='huge'"):
        GPTConfig.gpt2("huge")
    with pytest.raises(ValueError, match="activation must be 'gelu' or 'gelu_tanh', got activation='relu'"):
        GPTConfig(activation="relu")


def hf_openai_gpt(n_layer: int, n_head: int, n_embd: int) -> torch.nn.Module:
    cfg = transformers.OpenAIGPTConfig(vocab_size=61, n_positions=24, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = transformers.OpenAIGPTLMHeadModel(cfg).double().eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return hf


@pytest.mark.parametrize("n_layer, n_head, n_embd", [(2, 4, 48), (1, 1, 8)])
def test_gpt1_form_equals_openai_gpt_lm_head_model(n_layer: int, n_head: int, n_embd: int, tmp_path: Path) -> None:
    hf = hf_openai_gpt(n_layer, n_head, n_embd)
    hf.save_pretrained(tmp_path)
    ours = load_hf_folder(tmp_path)
    assert not ours.config.norm_first and isinstance(ours.norm_f, torch.nn.Identity)
    x, y = torch.randint(0, 61, (3, 24)), torch.randint(0, 61, (3, 24))
    logits, loss = ours(x, y)
    theirs = hf(input_ids=x).logits
    torch.testing.assert_close(logits, theirs, rtol=0, atol=1e-10)
    loss.backward()
    torch.nn.functional.cross_entropy(theirs.flatten(0, 1), y.flatten()).backward()
    grads = from_hf_gpt2_state_dict({k: p.grad for k, p in hf.named_parameters()}, ours.config)
    for k, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, grads[k], rtol=0, atol=1e-10, msg=lambda m, k=k: f"{k}: {m}")


def test_openai_gpt_config_refuses_other_activations() -> None:
    with pytest.raises(ValueError, match="afn='relu'"):
        openai_gpt_config_from_hf({"model_type": "openai-gpt", "afn": "relu"})
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        openai_gpt_config_from_hf({"model_type": "gpt2"})


def test_gpt_folder_loader_refuses_other_model_types(tmp_path: Path) -> None:
    from dlscratch.models.gpt2_hf import load_gpt_folder

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="expected model_type 'gpt2' or 'openai-gpt', got model_type='llama'"):
        load_gpt_folder(tmp_path)
