r"""``python -m dlscratch <command> ...``: the book's command-line programs.

Commands:
    gpt   train a character-level GPT on a text file and sample from it (chapter 17);
          ``python -m dlscratch gpt --help``;
    llama train a character-level LLaMA, sample from it and export it to Hugging Face's
          format (chapter 21); ``python -m dlscratch llama --help``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS = {"gpt": "dlscratch.cli.gpt", "llama": "dlscratch.cli.llama"}  # command -> module with main(argv) -> int


def main(argv: Sequence[str] | None = None) -> int:
    r"""Dispatch to a command's ``main``; a ``ValueError`` or missing file becomes a one-line error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]])
    try:
        return module.main(argv[1:])
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
