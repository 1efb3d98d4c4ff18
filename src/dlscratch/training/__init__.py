r"""Training: the results ledger (loops, evaluation, checkpoints and sampling arrive with later chapters)."""

from .ledger import MIME_TYPE, RESULTS, Result, record

__all__ = ["MIME_TYPE", "RESULTS", "Result", "record"]
