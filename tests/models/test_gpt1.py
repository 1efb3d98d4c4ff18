"""GPT-1's fine-tuning: the input transformation, the classifier on the extract token, the auxiliary loss, zero-shot scoring, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.models.gpt1 import GPT1Classifier, gpt1_input
from dlscratch.models.zero_shot import continuation_logprobs, label_word_scores
from dlscratch.training.finetune import FineTuneConfig, classifier_accuracy, fine_tune, length_buckets

START, DELIM, EXTRACT = 20, 21, 22


def tiny(norm_first: bool = True, block_size: int = 16) -> GPT:
    return GPT(GPTConfig(vocab_size=23, block_size=block_size, n_layer=2, n_head=2, n_embd=16, bias=True,
                         activation="gelu_tanh", norm_first=norm_first)).double()


def test_input_transformations() -> None:
    assert gpt1_input([[1, 2, 3]], start_id=START, extract_id=EXTRACT) == [START, 1, 2, 3, EXTRACT]
    assert gpt1_input([[1, 2], [3]], start_id=START, extract_id=EXTRACT, delim_id=DELIM) == [START, 1, 2, DELIM, 3, EXTRACT]
    # too long: the longest part is cut first, and the extract token stays
    out = gpt1_input([[1] * 10, [2] * 3], start_id=START, extract_id=EXTRACT, delim_id=DELIM, max_len=10)
    assert out == [START] + [1] * 4 + [DELIM] + [2] * 3 + [EXTRACT]
    out = gpt1_input([[1] * 10, [2] * 10], start_id=START, extract_id=EXTRACT, delim_id=DELIM, max_len=10)
    assert out == [START] + [1] * 4 + [DELIM] + [2] * 3 + [EXTRACT]
    assert len(gpt1_input([list(range(50))], start_id=START, extract_id=EXTRACT, max_len=7)) == 7


def test_input_transformation_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="2 parts need a delimiter"):
        gpt1_input([[1], [2]], start_id=START, extract_id=EXTRACT)
    with pytest.raises(ValueError, match="max_len=3 cannot hold 3 special tokens and one token of each of 2 parts"):
        gpt1_input([[1], [2]], start_id=START, extract_id=EXTRACT, delim_id=DELIM, max_len=3)
    with pytest.raises(ValueError, match="at least one part"):
        gpt1_input([], start_id=START, extract_id=EXTRACT)


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = [gpt1_input([torch.randint(0, 20, (n,)).tolist()], start_id=START, extract_id=EXTRACT) for n in (3, 9, 1, 6)]
    ids = torch.zeros(4, 11, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, torch.tensor([len(r) for r in rows]), torch.tensor([0, 1, 1, 0])


@pytest.mark.parametrize("norm_first", [True, False])
def test_classifier_reads_the_extract_token_and_ignores_padding(norm_first: bool) -> None:
    clf = GPT1Classifier(tiny(norm_first), 2, EXTRACT).double()
    ids, lengths, labels = batch()
    logits, _ = clf(ids, lengths)
    for i in range(4):  # each row alone, without padding: the last position's state through the head
        h = clf.lm.hidden_states(ids[i : i + 1, : lengths[i]])[0, -1]
        torch.testing.assert_close(logits[i], clf.head(h), rtol=0, atol=1e-12)
    other = ids.clone()
    other[ids == 0] = 7  # different padding
    other[:, 0] = START
    pad = torch.arange(11) >= lengths[:, None]
    torch.testing.assert_close(clf(torch.where(pad, 7, ids), lengths)[0], logits, rtol=0, atol=1e-12)


@pytest.mark.parametrize("aux_weight", [0.0, 0.5, 2.0])
def test_loss_is_classification_plus_lambda_times_lm_loss(aux_weight: float) -> None:
    clf = GPT1Classifier(tiny(), 2, EXTRACT, aux_weight=aux_weight).double()
    ids, lengths, labels = batch()
    logits, loss = clf(ids, lengths, labels)
    lm_nll, n = 0.0, 0
    for i in range(4):  # the LM loss row by row, from the model's own forward pass
        row = ids[i : i + 1, : lengths[i]]
        lm_logits, _ = clf.lm(row)
        lm_nll = lm_nll + F.cross_entropy(lm_logits[0, :-1], row[0, 1:], reduction="sum")
        n += lengths[i].item() - 1
    want = F.cross_entropy(logits, labels) + aux_weight * lm_nll / n
    torch.testing.assert_close(loss, want, rtol=0, atol=1e-12)


def test_classifier_refuses_bad_input() -> None:
    clf = GPT1Classifier(tiny(), 2, EXTRACT)
    ids, lengths, labels = batch()
    with pytest.raises(ValueError, match="labels must be in the label set 0..1, got 2"):
        clf(ids, lengths, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="label set 0..1, got -1"):
        clf(ids, lengths, torch.tensor([0, -1, 1, 0]))
    with pytest.raises(ValueError, match="must end with the extract token 22"):
        clf(ids, lengths - 1)
    long = torch.full((1, 17), EXTRACT)
    with pytest.raises(ValueError, match="length 17 .* longer than block_size=16"):
        clf(long, torch.tensor([17]))
    with pytest.raises(ValueError, match="at least 2 classes, got num_classes=1"):
        GPT1Classifier(tiny(), 1, EXTRACT)
    with pytest.raises(ValueError, match="extract_id=23 is not a token"):
        GPT1Classifier(tiny(), 2, 23)


def test_continuation_logprobs_equal_row_by_row_scores() -> None:
    lm = tiny()
    prompts, conts = [[1, 2, 3], [4], [5, 6, 7, 8, 9]], [[10], [11, 12], [13, 14, 15]]
    got = continuation_logprobs(lm, prompts, conts, batch_size=2)
    for i, (p, c) in enumerate(zip(prompts, conts)):
        row = torch.tensor([p + c])
        logp = lm(row)[0].log_softmax(-1)[0]  # (T, V)
        want = sum(logp[len(p) - 1 + j, c[j]] for j in range(len(c)))
        torch.testing.assert_close(got[i].double(), want.double(), rtol=0, atol=1e-6)
    scores = label_word_scores(lm, prompts, [[10], [11, 12]])
    assert scores.shape == (3, 2)
    torch.testing.assert_close(scores[1, 1], got[1])


def test_zero_shot_refuses_too_long_or_empty() -> None:
    lm = tiny()
    with pytest.raises(ValueError, match="has 17 tokens, longer than the model's block_size=16"):
        continuation_logprobs(lm, [[1] * 16], [[2]])
    with pytest.raises(ValueError, match="at least one token"):
        continuation_logprobs(lm, [[1]], [[]])
    with pytest.raises(ValueError, match="at least two label words"):
        label_word_scores(lm, [[1]], [[2]])


def test_length_buckets_cover_every_example_once() -> None:
    lengths = torch.randint(1, 50, (203,))
    batches = length_buckets(lengths, 8, torch.Generator().manual_seed(0), pool=5)
    assert sorted(torch.cat(batches).tolist()) == list(range(203))
    assert max(len(b) for b in batches) == 8


def test_fine_tune_learns_a_separable_task() -> None:
    torch.manual_seed(0)
    clf = GPT1Classifier(GPT(GPTConfig(vocab_size=23, block_size=8, n_layer=1, n_head=2, n_embd=16)), 2, EXTRACT, aux_weight=0.5)
    labels = torch.randint(0, 2, (256,))
    ids = torch.stack([torch.tensor([START, 3 + int(y), EXTRACT]) for y in labels])  # the label is the token after <s>
    lengths = torch.full((256,), 3)
    state = fine_tune(clf, ids, lengths, labels, FineTuneConfig(epochs=3, batch_size=32, lr=3e-3, warmup_fraction=0.1))
    assert state.step == 24
    assert classifier_accuracy(clf, ids, lengths, labels) == 1.0


def test_fine_tune_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="epochs must be a positive integer, got epochs=0"):
        FineTuneConfig(epochs=0)
    with pytest.raises(ValueError, match="warmup_fraction"):
        FineTuneConfig(warmup_fraction=1.0)


def test_fine_tune_and_scoring_refuse_mismatched_inputs() -> None:
    clf = GPT1Classifier(tiny(), 2, EXTRACT)
    ids, lengths, labels = batch()
    with pytest.raises(ValueError, match="as many lengths and labels as rows .* got 4, 4, 3"):
        fine_tune(clf, ids, lengths, labels[:3], FineTuneConfig())
    with pytest.raises(ValueError, match="as many prompts as continuations .* got 2 and 1"):
        continuation_logprobs(tiny(), [[1], [2]], [[3]])
    with pytest.raises(ValueError, match="aux_weight .* got aux_weight=-0.5"):
        GPT1Classifier(tiny(), 2, EXTRACT, aux_weight=-0.5)
