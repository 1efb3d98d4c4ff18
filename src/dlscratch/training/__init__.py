r"""Training: the results ledger, evaluation and sampling."""

from .evaluate import mean_nll
from .ledger import MIME_TYPE, RESULTS, Result, record
from .sampling import sample_sequences, sample_words

__all__ = ["MIME_TYPE", "RESULTS", "Result", "record", "mean_nll", "sample_sequences", "sample_words"]
