"""The DPR-style bi-encoder and the reader: twins of two Hugging Face BertModels, in-batch-negatives loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.models.bert import BertConfig
from dlscratch.models.bert_hf import hf_bert_config, hf_bert_name
from dlscratch.models.bi_encoder import BiEncoder, BiEncoderConfig, SpeakerReader
from dlscratch.training.rag import in_batch_negatives_loss
from tests.helpers import assert_same_forward_backward

transformers = pytest.importorskip("transformers")

SMALL = BertConfig(vocab_size=31, max_position=12, n_layer=2, n_head=2, n_embd=8, ffn_dim=12, dropout=0.0, pad_id=0)


def hf_twin(ours: torch.nn.Module) -> torch.nn.Module:
    """A Hugging Face BertModel (no pooler) with random weights, copied into our TextEncoder."""
    hf = transformers.BertModel(transformers.BertConfig(**hf_bert_config(SMALL)), add_pooling_layer=False).double()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    state = hf.state_dict()
    ours.load_state_dict({n: state[hf_bert_name(n, "bert.")[len("bert."):]] for n in ours.state_dict()})
    return hf


def padded(B: int, T: int) -> torch.Tensor:
    idx = torch.randint(3, SMALL.vocab_size, (B, T))
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    return idx.masked_fill(torch.arange(T)[None] >= lengths[:, None], SMALL.pad_id)  # (B, T)


def hf_embed(hf: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
    keep = (idx != SMALL.pad_id)
    h = hf(input_ids=idx, attention_mask=keep.long()).last_hidden_state  # (B, T, C)
    return F.normalize((h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True), dim=-1)


@pytest.mark.parametrize(("B", "Tq", "Tp"), [(4, 5, 12), (1, 1, 3), (3, 7, 7)])
def test_loss_and_every_gradient_equal_two_hf_encoders(B: int, Tq: int, Tp: int) -> None:
    cfg = BiEncoderConfig(SMALL, temperature=0.1)
    ours = BiEncoder(cfg).double()
    hf_q, hf_p = hf_twin(ours.question), hf_twin(ours.passage)
    q, p = padded(B, Tq), padded(B, Tp)
    a = in_batch_negatives_loss(ours(q, p))
    sim = hf_embed(hf_q, q) @ hf_embed(hf_p, p).T / 0.1
    b = F.cross_entropy(sim, torch.arange(B))
    torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    a.backward()
    b.backward()
    for enc, hf in ((ours.question, hf_q), (ours.passage, hf_p)):
        theirs = dict(hf.named_parameters())
        for name, w in enc.named_parameters():
            g = theirs[hf_bert_name(name, "bert.")[len("bert."):]].grad
            torch.testing.assert_close(w.grad, g, atol=1e-10, rtol=1e-8, msg=lambda m, n=name: f"{n}: {m}")


def test_in_batch_loss_is_cross_entropy_over_rows() -> None:
    sim = torch.randn(5, 5, dtype=torch.float64)
    by_hand = -torch.stack([sim[i, i] - torch.logsumexp(sim[i], 0) for i in range(5)]).mean()
    torch.testing.assert_close(in_batch_negatives_loss(sim), by_hand)
    assert_same_forward_backward(in_batch_negatives_loss, lambda s: F.cross_entropy(s, torch.arange(5)), [sim])
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        in_batch_negatives_loss(torch.zeros(3, 4))


def test_padding_does_not_change_the_vectors() -> None:
    model = BiEncoder(BiEncoderConfig(SMALL)).double().eval()
    x = torch.randint(3, 31, (2, 5))
    longer = torch.cat([x, torch.zeros(2, 4, dtype=torch.long)], 1)
    torch.testing.assert_close(model.encode_passages(x), model.encode_passages(longer))
    torch.testing.assert_close(model.encode_questions(x).norm(dim=-1), torch.ones(2, dtype=torch.float64))


def test_reader_shapes_and_checks() -> None:
    reader = SpeakerReader(SMALL, 7).double()
    assert reader(padded(3, 9), torch.zeros(3, 9, dtype=torch.long)).shape == (3, 7)
    with pytest.raises(ValueError, match="n_speakers"):
        SpeakerReader(SMALL, 0)
    with pytest.raises(ValueError, match="temperature=0"):
        BiEncoderConfig(SMALL, temperature=0)
