"""``jgd train`` as one of several processes: joining ``jax.distributed``, with clear failures."""

from __future__ import annotations

import errno
import os
import socket


def join(coordinator: str, num_processes: int, process_id: int, timeout: int) -> None:
    """``jax.distributed.initialize`` over CPU collectives (gloo), waiting ``timeout`` seconds.

    Also sets ``$JGD_PROCESS_TIMEOUT``, ``fit``'s wait for the other processes at a run's start.

    Raises:
      ValueError: process 0's coordinator port is in use on this machine.
      ConnectionError: joining failed (another process with the same id, a process that never
        started within ``timeout``), with the flags to check.
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives
    os.environ["JGD_PROCESS_TIMEOUT"] = str(timeout)
    if process_id == 0:
        _port_free(coordinator)
    try:
        jax.distributed.initialize(
            coordinator, num_processes, process_id, initialization_timeout=timeout
        )
    except Exception as e:  # jax raises its runtime's own error types, with long messages
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ConnectionError(
            f"joining {coordinator} as process {process_id} of {num_processes} failed ({first}); "
            "every process needs its own --process-id, the same --num-processes and "
            f"--coordinator, and process 0 must start within --process-timeout {timeout} s"
        ) from None


def _port_free(coordinator: str) -> None:
    """Process 0 serves the coordinator: its port must be free on this machine."""
    host, _, port = coordinator.rpartition(":")
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host.strip("[]"), int(port)))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ValueError(
                f"jgd train: --coordinator {coordinator}: port {port} is in use on this machine; "
                "process 0 serves the coordinator there: choose a free port"
            ) from None


__all__ = ["join"]
