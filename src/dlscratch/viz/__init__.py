r"""Plotting helpers shared by every chapter: the book's style, attention maps, architecture diagrams."""

from .attention import attention_map, attention_rollout
from .diagrams import block_diagram, decoder_lm_diagram, layer_steps, seq2seq_training_diagram
from .style import use_book_style

__all__ = [
    "attention_map",
    "attention_rollout",
    "block_diagram",
    "decoder_lm_diagram",
    "layer_steps",
    "seq2seq_training_diagram",
    "use_book_style",
]
