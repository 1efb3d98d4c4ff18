r"""Launching ``torchrun`` from Python: a free loopback port, the command, a bounded run.

``torchrun --nproc_per_node=N`` starts :math:`N` copies of a program with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. The book's chapter and
tests start it as ``python -m torch.distributed.run`` (the same program) on 127.0.0.1 with a
port that was free a moment before, and kill it if it runs past a time limit. Chapter 37.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["free_port", "torchrun_command", "run_torchrun"]


def free_port() -> int:
    r"""A TCP port on 127.0.0.1 that the operating system just reported free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(args: Sequence[str], nproc: int = 2, port: int | None = None, module: bool = True) -> list[str]:
    r"""The ``torchrun`` command line that runs ``args`` (a module and its arguments) in ``nproc`` local processes."""
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    port = free_port() if port is None else port
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--nnodes=1",
           "--master-addr=127.0.0.1", f"--master-port={port}"]
    return cmd + (["-m"] if module else []) + list(args)


def run_torchrun(args: Sequence[str], nproc: int = 2, timeout: float = 120.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    r"""Run ``torchrun_command(args, nproc)`` and wait at most ``timeout`` seconds.

    The children get ``OMP_NUM_THREADS=1`` unless it is set (as ``torchrun`` itself would, with a
    warning). Output is captured.

    Raises:
        RuntimeError: if the run fails, with the end of its output.
        subprocess.TimeoutExpired: if it runs past ``timeout`` (the processes are killed).
    """
    full_env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
    popen = subprocess.Popen(torchrun_command(args, nproc), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=full_env, start_new_session=True)  # its own process group: a timeout kills the workers too
    try:
        out, err = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.communicate()
        raise
    proc = subprocess.CompletedProcess(popen.args, popen.returncode, out, err)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
