r"""Command-line programs: ``python -m dlscratch <command> ...`` (see :mod:`dlscratch.__main__`)."""
