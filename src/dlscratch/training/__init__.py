r"""Training: the one loop and its callbacks, evaluation, the sentiment baselines, checkpoints and mechanics, and the results ledger."""

from .baselines import SentimentBaselines, sentiment_baselines
from .callbacks import Callback, Evaluate, ProgressBar
from .checkpoint import checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint
from .classify import History, accuracy, confusion_matrix, epoch_batches, evaluate_classifier, fit_classifier, predict
from .evaluate import mean_nll
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
from .mechanics import DynamicLossScaler, accumulate_gradients, clip_grad_norm
from .state import TrainState

__all__ = [
    "SentimentBaselines",
    "sentiment_baselines",
    "MIME_TYPE",
    "RESULTS",
    "Result",
    "record",
    "mean_nll",
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
