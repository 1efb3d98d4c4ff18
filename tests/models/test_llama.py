"""LLaMA: equal to transformers' LlamaForCausalLM (logits, every gradient, the cache), the HF export, the ladder, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.layers.feedforward import swiglu_hidden
from dlscratch.models.llama import LLaMA, LlamaConfig, ladder
from dlscratch.models.llama_hf import (
    export_hf,
    from_hf_state_dict,
    hf_config,
    hf_name,
    read_safetensors,
    to_hf_state_dict,
    write_safetensors,
)
from dlscratch.training.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint

transformers = pytest.importorskip("transformers")
from transformers.models.llama import modeling_llama  # noqa: E402

GQA = LlamaConfig(vocab_size=23, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=48, norm_eps=1e-5, rope_base=500.0)


def randomise(m: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # non-trivial norm gains and biases, so that a mix-up would show
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


@pytest.fixture
def hf_in_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let transformers' LLaMA compute in float64 where it deliberately computes in float32.

    Its rotary table (``LlamaRotaryEmbedding.forward``: inverse frequencies and cos/sin in
    float32) and its RMSNorm (the mean square in float32) round to float32 even in a float64
    model, by design for bf16 training; that caps agreement near 1e-7. We patch those two to
    compute in float64, the same formulas, so the comparison can be made at 1e-10. (Its eager
    attention also takes the softmax in float32, so the tests use its SDPA attention, which
    computes in the input's dtype.)
    """

    def rotary_forward(self, x, position_ids):
        hs = self.inv_freq.numel() * 2
        inv_freq = 1.0 / (self.config.rope_parameters["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
        freqs = position_ids[..., None].to(torch.float64) * inv_freq  # (B, T, hs/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, hs)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    def rms_forward(self, h):
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    monkeypatch.setattr(modeling_llama.LlamaRotaryEmbedding, "forward", rotary_forward)
    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", rms_forward)


def hf_twin(ours: LLaMA) -> torch.nn.Module:
    cfg = {k: v for k, v in hf_config(ours.config).items() if k not in ("architectures", "model_type", "dtype")}
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg))
    hf.config._attn_implementation = "sdpa"
    hf = hf.to(torch.float64)
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(ours), strict=False)
    assert not unexpected and missing == (["lm_head.weight"] if ours.config.tie_embeddings else [])
    if ours.config.tie_embeddings:
        assert hf.lm_head.weight is hf.model.embed_tokens.weight  # tied by HF, so the one tensor we gave
    return hf.eval()


CONFIGS = {
    "gqa": GQA,
    "mqa-bias": replace(GQA, n_kv_head=1, bias=True),
    "mha-tied": replace(GQA, n_kv_head=4, tie_embeddings=True),
    "fused": replace(GQA, kernels="fused"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_and_every_gradient_equal_llama_for_causal_lm(name: str, hf_in_float64: None) -> None:
    ours = randomise(LLaMA(CONFIGS[name]).double()).eval()
    hf = hf_twin(ours)
    x = torch.randint(0, GQA.vocab_size, (3, 16))
    y = torch.randint(0, GQA.vocab_size, (3, 16))
    logits, loss = ours(x, y)
    out = hf(input_ids=x, labels=None)
    torch.testing.assert_close(logits, out.logits, rtol=0, atol=1e-10)
    loss.backward()
    torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), y.flatten()).backward()
    theirs = dict(hf.named_parameters())
    for k, p in ours.named_parameters():
        if CONFIGS[name].tie_embeddings and k == "lm_head.weight":
            continue  # the same tensor as wte.weight
        torch.testing.assert_close(p.grad, theirs[hf_name(k)].grad, rtol=0, atol=1e-10, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("name", ["gqa", "fused"])
def test_cached_steps_equal_hf_full_logits(name: str, hf_in_float64: None) -> None:
    ours = randomise(LLaMA(CONFIGS[name]).double()).eval()
    hf = hf_twin(ours)
    x = torch.randint(0, GQA.vocab_size, (2, 16))
    with torch.no_grad():
        full = hf(input_ids=x).logits  # (2, 16, V)
        ours.start_cache(2)
        first = ours(x[:, :5])[0]  # a prompt of 5, then one token at a time
        steps = [ours(x[:, t : t + 1])[0] for t in range(5, 16)]
        ours.stop_cache()
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, rtol=0, atol=1e-10)


def test_cached_generation_equals_full_recomputation_token_for_token() -> None:
    m = randomise(LLaMA(replace(GQA, qk_norm=True))).eval()
    idx = torch.randint(0, GQA.vocab_size, (3, 2))
    for seed in range(3):
        a = m.generate(idx, 14, generator=torch.Generator().manual_seed(seed), use_cache=True)
        b = m.generate(idx, 14, generator=torch.Generator().manual_seed(seed), use_cache=False)
        assert torch.equal(a, b)


@pytest.mark.parametrize("cfg", [GQA, replace(GQA, qk_norm=True), replace(GQA, mlp="relu2", ffn_hidden=64), *ladder(GQA).values()])
def test_fused_decoder_equals_the_modules(cfg: LlamaConfig) -> None:
    from dlscratch.models.fused_decoder import FusedDecoder

    m = randomise(LLaMA(cfg).double()).eval()
    x = torch.randint(0, cfg.vocab_size, (2, 16))
    with torch.inference_mode():
        torch.testing.assert_close(FusedDecoder(m)(x)[0], m(x)[0], rtol=0, atol=1e-12)


def test_export_loads_in_transformers_and_greedy_tokens_agree(tmp_path: Path) -> None:
    ours = randomise(LLaMA(GQA)).eval()
    folder = export_hf(ours, tmp_path / "hf")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    hf = transformers.LlamaForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    assert hf.config.num_key_value_heads == 2 and hf.config.rope_parameters["rope_theta"] == 500.0
    prompt = torch.tensor([[3, 0, 5]])  # id 0 inside: HF must not take it for padding
    with torch.no_grad():
        theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False,
                             pad_token_id=GQA.vocab_size)
    mine = ours.generate(prompt, 12, temperature=0.0)
    assert torch.equal(mine, theirs)


def test_safetensors_reader_reads_our_file_identically(tmp_path: Path) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    tensors = {"a": torch.randn(3, 5), "b.c": torch.arange(7, dtype=torch.int64), "d": torch.randn(2, 2).double(),
               "e": torch.randn(4).bfloat16(), "scalar": torch.tensor(3.0)}
    write_safetensors(tmp_path / "x.safetensors", tensors)
    for reader in (safetensors_torch.load_file, read_safetensors):
        back = reader(tmp_path / "x.safetensors")
        assert back.keys() == tensors.keys()
        for k, v in tensors.items():
            assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    header_len = int.from_bytes((tmp_path / "x.safetensors").read_bytes()[:8], "little")
    assert header_len % 8 == 0


def test_hf_state_dict_round_trip_and_names() -> None:
    m = LLaMA(GQA)
    state = to_hf_state_dict(m)
    assert "model.layers.1.self_attn.o_proj.weight" in state and "model.layers.0.mlp.gate_proj.weight" in state
    back = from_hf_state_dict(state, GQA)
    m2 = LLaMA(GQA)
    m2.load_state_dict(back)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    with pytest.raises(ValueError, match="'blocks.0.attn.rotary'"):
        hf_name("blocks.0.attn.rotary")


def test_export_refuses_a_non_empty_folder_without_force(tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    m = LLaMA(GQA)
    with pytest.raises(ValueError, match=r"hf is not empty \(it holds \['notes.txt'\]\).*force"):
        export_hf(m, folder)
    assert (folder / "notes.txt").exists()
    export_hf(m, folder, force=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["num_key_value_heads"] == 2
    assert not list(tmp_path.glob(".hf.*"))  # no temporary folder left behind
    with pytest.raises(ValueError, match="positions"):
        export_hf(LLaMA(replace(GQA, positions="learned")), tmp_path / "other")


def test_bad_configs_name_both_values() -> None:
    with pytest.raises(ValueError, match=r"n_head=6 must be a multiple of n_kv_head=4"):
        LlamaConfig(n_head=6, n_kv_head=4, n_embd=48)
    with pytest.raises(ValueError, match=r"head size.*n_embd=60 / n_head=4 = 15"):
        LlamaConfig(n_head=4, n_kv_head=2, n_embd=60)
    with pytest.raises(ValueError, match=r"mlp must be one of .* got mlp='geglu'"):
        LlamaConfig(mlp="geglu")


def test_checkpoints_refuse_the_other_architecture(tmp_path: Path) -> None:
    gpt = GPT(GPTConfig(vocab_size=23, block_size=16, n_layer=1, n_head=2, n_embd=16))
    llama = LLaMA(GQA)
    save_checkpoint(tmp_path / "gpt.pt", model=gpt, step=0)
    save_checkpoint(tmp_path / "llama.pt", model=llama, step=0)
    with pytest.raises(ValueError, match=r"gpt\.pt holds no LlamaConfig: expected config class LlamaConfig, found GPTConfig"):
        checkpoint_config(tmp_path / "gpt.pt", LlamaConfig)
    with pytest.raises(ValueError, match=r"llama\.pt holds no GPTConfig: expected config class GPTConfig, found LlamaConfig"):
        checkpoint_config(tmp_path / "llama.pt", GPTConfig)
    with pytest.raises(ValueError, match=r"gpt\.pt is from another model class: expected LLaMA, found GPT"):
        load_checkpoint(tmp_path / "gpt.pt", model=llama)
    with pytest.raises(ValueError, match=r"llama\.pt is from another model class: expected GPT, found LLaMA"):
        load_checkpoint(tmp_path / "llama.pt", model=gpt)


def test_ladder_changes_one_thing_per_rung_and_ends_at_the_base() -> None:
    base = LlamaConfig.cpu()
    rungs = list(ladder(base).values())
    assert rungs[-1] == base
    for a, b in zip(rungs, rungs[1:]):
        changed = {k for k in a.__dataclass_fields__ if getattr(a, k) != getattr(b, k)}
        assert len(changed - {"ffn_hidden"}) == 1, changed
    gpt = LLaMA(rungs[0])
    assert gpt.lm_head.weight is gpt.wte.weight and gpt.wpe is not None
    assert base.ffn_hidden == swiglu_hidden(128, 32) == 352


def test_parameter_count_formula() -> None:
    c = LlamaConfig.cpu()
    V, C, L, F, hs, nkv = c.vocab_size, c.n_embd, c.n_layer, c.ffn_hidden, c.head_size, c.n_kv_head
    per_block = 2 * C + 2 * C * C + 2 * C * nkv * hs + 3 * C * F
    assert LLaMA(c).num_parameters() == 2 * V * C + L * per_block + C
