r"""Training: loops, evaluation, checkpoints and mechanics, and the results ledger."""

from .classify import History, accuracy, confusion_matrix, evaluate_classifier, fit_classifier, predict
from .evaluate import mean_nll
from .ledger import MIME_TYPE, RESULTS, Result, record
from .lm import LMTrainConfig, evaluate_sequence_nll, random_windows, split_text, train_sequence_lm
from .loop import SCHEDULES, lr_at, train_lm
from .mechanics import DynamicLossScaler, accumulate_gradients, clip_grad_norm, load_checkpoint, save_checkpoint

__all__ = [
    "MIME_TYPE",
    "RESULTS",
    "Result",
    "record",
    "mean_nll",
    "History",
    "accuracy",
    "confusion_matrix",
    "evaluate_classifier",
    "fit_classifier",
    "predict",
    "DynamicLossScaler",
    "accumulate_gradients",
    "clip_grad_norm",
    "load_checkpoint",
    "save_checkpoint",
    "SCHEDULES",
    "lr_at",
    "train_lm",
    "LMTrainConfig",
    "evaluate_sequence_nll",
    "random_windows",
    "split_text",
    "train_sequence_lm",
]
