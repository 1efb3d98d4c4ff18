r"""Optimizers and learning-rate schedules written from their update rules (chapter 7).

The optimizers subclass :class:`torch.optim.Optimizer` (parameter groups, ``state_dict``,
``lr_scheduler`` all work) but compute every update with explicit tensor operations.
"""

from .adam import Adam, AdamW, adam_update
from .base import ScratchOptimizer
from .lion import Lion
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
    "constant",
    "step_decay",
    "warmup_cosine",
    "inverse_sqrt",
    "lr_lambda",
]
