"""``jgd train`` as one of several processes: joining ``jax.distributed``, with clear failures.

Before ``jax.distributed.initialize``, the processes meet once on the coordinator's port
(``_roll_call``): process 0 listens there, every other process says its ``--process-id`` and
``--num-processes``, and process 0 answers all of them. Written by hand because jax's
coordination service answers a second process with the same id by aborting every process from a
C++ thread (SIGABRT, "unexpectedly tried to connect with a different incarnation"), which no
Python code can catch; the roll call turns that, and a disagreeing ``--num-processes``, into one
line naming the id. It closes before jax's service binds the same port.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time


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
    _roll_call(coordinator, num_processes, process_id, timeout)
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
                f"--coordinator {coordinator}: port {port} is in use on this machine; "
                "process 0 serves the coordinator there: choose a free port (or another process "
                "was already given --process-id 0)"
            ) from None


def _roll_call(coordinator: str, num_processes: int, process_id: int, timeout: int) -> None:
    """Every process says its id to process 0 once; duplicates and disagreements are named.

    Raises:
      ValueError: two processes given one ``--process-id``, or different ``--num-processes``.
      ConnectionError: a process did not join (or process 0 did not answer) within ``timeout``.
    """
    host, _, port = coordinator.rpartition(":")
    address = (host.strip("[]"), int(port))
    if process_id == 0:
        _gather(address, num_processes, timeout)
    else:
        _report(address, num_processes, process_id, timeout)


def _gather(address: tuple[str, int], num_processes: int, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[int, socket.socket] = {}
    problem = None
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(address)
        server.listen(num_processes)
        try:
            while problem is None and len(seen) < num_processes - 1:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([server], [], [], left)[0]:
                    missing = sorted(set(range(1, num_processes)) - set(seen))
                    raise ConnectionError(
                        f"process(es) {missing} did not join {address[0]}:{address[1]} "
                        f"within --process-timeout {timeout} s; start every process with its "
                        "own --process-id"
                    )
                conn, _ = server.accept()
                problem = _admit(conn, seen, num_processes, deadline)
            for conn in seen.values():
                conn.sendall(f"{problem or 'ok'}\n".encode())
        finally:
            for conn in seen.values():
                conn.close()
    if problem:
        raise ValueError(problem)


def _admit(conn: socket.socket, seen: dict, num_processes: int, deadline: float) -> str | None:
    """Reads one process's ``id count``; returns what is wrong with the run, or None."""
    conn.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        words = conn.makefile().readline().split()
        other, count = int(words[0]), int(words[1])
    except (OSError, ValueError, IndexError):
        conn.close()  # not a jgd process (a port scan, a stray client): not one of ours
        return None
    if count != num_processes:
        seen.setdefault(-len(seen) - 1, conn)
        return (
            f"process {other} was given --num-processes {count}, process 0 "
            f"--num-processes {num_processes}; give every process the same"
        )
    if other in seen:
        seen[-len(seen) - 1] = conn
        return f"two processes were given --process-id {other}; give each its own"
    seen[other] = conn
    return None


def _report(address: tuple[str, int], num_processes: int, process_id: int, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = socket.create_connection(address, timeout=max(0.1, deadline - time.monotonic()))
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"process 0 did not answer at {address[0]}:{address[1]} within "
                    f"--process-timeout {timeout} s; start it with --process-id 0"
                ) from None
            time.sleep(0.2)
    with conn:
        conn.sendall(f"{process_id} {num_processes}\n".encode())
        conn.settimeout(max(0.1, deadline - time.monotonic()) + 5)
        try:
            answer = conn.makefile(encoding="utf-8", errors="replace").readline().strip()
        except OSError:
            answer = ""
    if answer.startswith(("two processes", "process ")) or answer == "ok":
        pass
    elif answer:  # jax's service, not the roll call, answered: process 0 has begun its run
        raise ValueError(
            f"process 0 at {address[0]}:{address[1]} has already started its run with the "
            f"processes it waited for: was --process-id {process_id} given to another process?"
        )
    if answer != "ok":
        if not answer:
            raise ConnectionError(
                f"process 0 at {address[0]}:{address[1]} closed the roll call "
                f"without an answer within --process-timeout {timeout} s"
            )
        raise ValueError(answer)


__all__ = ["join"]
