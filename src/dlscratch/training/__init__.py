r"""Training: the one loop and its callbacks, evaluation, the sentiment baselines, checkpoints and mechanics, and the results ledger, scaling-law fits."""

from .baselines import SentimentBaselines, sentiment_baselines
from .callbacks import Callback, Evaluate, ProgressBar
from .checkpoint import checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint
from .classify import History, accuracy, confusion_matrix, epoch_batches, evaluate_classifier, fit_classifier, predict
from .evaluate import mean_nll
from .finetune import FineTuneConfig, classifier_accuracy, fine_tune, length_buckets
from .icl import (
    averaging_predictions,
    few_shot_prompt,
    icl_score,
    least_squares_predictions,
    masked_mean,
    prefix_matching_score,
    previous_token_score,
    squared_errors,
    token_losses,
)
from .ledger import MIME_TYPE, RESULTS, Result, record
from .lm import LMTrainConfig, evaluate_sequence_nll, random_windows, split_text, train_sequence_lm, window_plan
from .loop import part2_schedule, random_examples, train, train_lm
from .scaling import (
    CHINCHILLA,
    ChinchillaLaw,
    IsoFLOPFit,
    PowerLaw,
    bootstrap_power_law,
    counted_flops,
    fit_chinchilla,
    fit_isoflop,
    fit_power_law,
    gpt_flops_per_token,
    parameter_counts,
    training_flops,
)
from .scaling_runs import ScalingRun, ladder_config, train_run
from .mechanics import DynamicLossScaler, accumulate_gradients, clip_grad_norm
from .state import TrainState
from .text2text import T5_SPECIALS, Text2TextBatch, encode_text2text, exact_match, sentinel_ids, seq2seq_loss, t5_tokenizer, train_text2text

__all__ = [
    "SentimentBaselines",
    "sentiment_baselines",
    "MIME_TYPE",
    "RESULTS",
    "Result",
    "record",
    "mean_nll",
    "FineTuneConfig",
    "fine_tune",
    "classifier_accuracy",
    "length_buckets",
    "TrainState",
    "train",
    "Callback",
    "Evaluate",
    "ProgressBar",
    "History",
    "accuracy",
    "confusion_matrix",
    "epoch_batches",
    "evaluate_classifier",
    "fit_classifier",
    "predict",
    "DynamicLossScaler",
    "accumulate_gradients",
    "clip_grad_norm",
    "checkpoint_config",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "part2_schedule",
    "random_examples",
    "train_lm",
    "LMTrainConfig",
    "evaluate_sequence_nll",
    "random_windows",
    "split_text",
    "train_sequence_lm",
    "window_plan",
    "CHINCHILLA",
    "ChinchillaLaw",
    "IsoFLOPFit",
    "PowerLaw",
    "bootstrap_power_law",
    "counted_flops",
    "fit_chinchilla",
    "fit_isoflop",
    "fit_power_law",
    "gpt_flops_per_token",
    "parameter_counts",
    "training_flops",
    "ScalingRun",
    "ladder_config",
    "train_run",
    "T5_SPECIALS",
    "t5_tokenizer",
    "sentinel_ids",
    "Text2TextBatch",
    "encode_text2text",
    "seq2seq_loss",
    "train_text2text",
    "exact_match",
    "token_losses",
    "masked_mean",
    "previous_token_score",
    "prefix_matching_score",
    "icl_score",
    "least_squares_predictions",
    "averaging_predictions",
    "squared_errors",
    "few_shot_prompt",
]
