"""Our CLIP vs Hugging Face's CLIPModel (copied weights, float64): embeddings, logits, loss, every gradient."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.data.captions import caption_tokenizer, encode_captions
from dlscratch.models.clip import CLIP, CLIPConfig, CLIPTowerConfig, eot_positions
from dlscratch.models.clip_hf import clip_state_dict_from_hf, hf_clip_config, hf_clip_name

transformers = pytest.importorskip("transformers")


def small_config(**kw) -> CLIPConfig:  # noqa: ANN003
    base = dict(vocab_size=20, eot_id=19, context_length=12, image_size=8, patch_size=4, channels=3,
                vision=CLIPTowerConfig(16, 2, 2, 24), text=CLIPTowerConfig(12, 2, 3, 20), embed_dim=10)
    return CLIPConfig(**{**base, **kw})


def twins(cfg: CLIPConfig, attn: str) -> tuple[CLIP, torch.nn.Module]:
    ours = CLIP(cfg).double()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1 * torch.randn_like(p))  # gains and biases away from 1 and 0, so a mix-up would show
    hf = transformers.CLIPModel._from_config(transformers.CLIPConfig(**hf_clip_config(cfg)), attn_implementation=attn).double()
    missing, unexpected = hf.load_state_dict({hf_clip_name(k): v for k, v in ours.state_dict().items()}, strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing)
    return ours, hf


def captions(B: int, T: int, cfg: CLIPConfig, gen: torch.Generator) -> torch.Tensor:
    ids = torch.randint(0, cfg.vocab_size - 1, (B, T), generator=gen)  # every id but <eot>
    ends = torch.randint(0, T, (B,), generator=gen)
    ids[torch.arange(B), ends] = cfg.eot_id  # one <eot> per row, anywhere (padding after it is ignored)
    return ids


@pytest.mark.parametrize("kernels", ["written", "fused"])
@pytest.mark.parametrize("B, T", [(5, 10), (1, 1), (3, 12)])
def test_equals_hf_clip_model(kernels: str, B: int, T: int) -> None:
    cfg = small_config(kernels=kernels)
    ours, hf = twins(cfg, "sdpa")  # sdpa keeps float64 throughout; eager is below
    gen = torch.Generator().manual_seed(B * 100 + T)
    x = torch.randn(B, 3, 8, 8, dtype=torch.float64, generator=gen)
    ids = captions(B, T, cfg, gen)
    out = ours(x, ids)
    ref = hf(input_ids=ids, pixel_values=x, return_loss=True)
    for a, b in ((out.image_embeds, ref.image_embeds), (out.text_embeds, ref.text_embeds),
                 (out.logits_per_image, ref.logits_per_image), (out.logits_per_text, ref.logits_per_text), (out.loss, ref.loss)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
    g = torch.randn(B, B, dtype=torch.float64, generator=gen)  # a cotangent on the logits too: a richer check than the loss alone
    (out.loss + (out.logits_per_image * g).sum()).backward()
    (ref.loss + (ref.logits_per_image * g).sum()).backward()
    theirs = clip_state_dict_from_hf({k: p.grad for k, p in hf.named_parameters()}, dict(ours.named_parameters()))
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, theirs[name], atol=1e-10, rtol=1e-8, msg=lambda m, name=name: f"{name}: {m}")


def test_equals_hf_eager_up_to_its_float32_softmax() -> None:
    # transformers' eager attention computes the softmax in float32 even for float64 inputs
    cfg = small_config()
    ours, hf = twins(cfg, "eager")
    gen = torch.Generator().manual_seed(1)
    x, ids = torch.randn(4, 3, 8, 8, dtype=torch.float64, generator=gen), captions(4, 9, cfg, gen)
    out, ref = ours(x, ids), hf(input_ids=ids, pixel_values=x, return_loss=True)
    torch.testing.assert_close(out.logits_per_image, ref.logits_per_image, atol=1e-5, rtol=1e-5)
    out.loss.backward()
    ref.loss.backward()
    theirs = clip_state_dict_from_hf({k: p.grad for k, p in hf.named_parameters()}, dict(ours.named_parameters()))
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name], atol=1e-5, rtol=1e-4)


def test_text_tower_ignores_what_follows_eot_and_reads_the_first_eot() -> None:
    cfg = small_config()
    model = CLIP(cfg).double().eval()
    ids = captions(3, 10, cfg, torch.Generator().manual_seed(2))
    ends = eot_positions(ids, cfg.eot_id)
    changed = ids.clone()
    for b, e in enumerate(ends.tolist()):
        changed[b, e + 1:] = (changed[b, e + 1:] + 1) % (cfg.vocab_size - 1)  # rewrite the tail (never into <eot>)
    torch.testing.assert_close(model.encode_text(ids), model.encode_text(changed))


def test_logit_scale_init_and_clamp() -> None:
    model = CLIP(small_config())
    assert model.scale().item() == pytest.approx(1 / 0.07)
    with torch.no_grad():
        model.logit_scale.fill_(7.0)  # e^7 > 100
    assert model.scale().item() == pytest.approx(100.0)
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))


def test_hf_names_cover_every_parameter() -> None:
    cfg = small_config()
    hf = transformers.CLIPModel(transformers.CLIPConfig(**hf_clip_config(cfg)))
    ours = CLIP(cfg)
    assert {hf_clip_name(k) for k, _ in ours.named_parameters()} == {k for k, _ in hf.named_parameters()}
    with pytest.raises(ValueError, match="no Hugging Face name"):
        hf_clip_name("vision.nonsense.weight")


def test_bad_input() -> None:
    cfg = small_config()
    model = CLIP(cfg)
    with pytest.raises(ValueError, match="has none"):
        model.encode_text(torch.zeros(2, 5, dtype=torch.long))  # no <eot>
    with pytest.raises(ValueError, match=r"\(B, C, 8, 8\)"):
        model.encode_image(torch.randn(2, 3, 9, 9))
    with pytest.raises(ValueError, match="T <= 12"):
        model.encode_text(torch.full((1, 13), cfg.eot_id))
    with pytest.raises(ValueError, match="one caption per image"):
        model(torch.randn(2, 3, 8, 8), captions(3, 4, cfg, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="not divisible by the patch size 3"):
        small_config(patch_size=3)
    with pytest.raises(ValueError, match="width=10 must be divisible by n_head=4"):
        CLIPTowerConfig(width=10, n_head=4)
    with pytest.raises(ValueError, match="eot_id"):
        small_config(eot_id=20)


def test_unknown_caption_character_is_named() -> None:
    tok = caption_tokenizer()
    with pytest.raises(ValueError, match=r"caption 1 \('a sketch of a seven'\)"):
        encode_captions(["a handwritten seven", "a sketch of a seven"], tok)
