r"""Optimizers and learning-rate schedules written from their update rules (chapter 7; Muon later).

The optimizers subclass :class:`torch.optim.Optimizer` (parameter groups, ``state_dict``,
``lr_scheduler`` all work) but compute every update with explicit tensor operations.
"""

from .adam import Adam, AdamW, adam_update
from .base import ScratchOptimizer
from .lion import Lion
from .muon import Muon, muon_lr_scale, newton_schulz, split_muon_params
from .rmsprop import RMSprop
from .schedules import constant, inverse_sqrt, lr_lambda, step_decay, warmup_cosine
from .sgd import SGD

__all__ = [
    "ScratchOptimizer",
    "SGD",
    "RMSprop",
    "adam_update",
    "Adam",
    "AdamW",
    "Lion",
    "Muon",
    "newton_schulz",
    "muon_lr_scale",
    "split_muon_params",
    "constant",
    "step_decay",
    "warmup_cosine",
    "inverse_sqrt",
    "lr_lambda",
]
