"""The tour's second process: sections 10 and 11 computed beside sections 1-9.

Compiling is single-threaded and most of the tour is compiling, so on two cores the two longest
sections that show no time (10 and 11) run in a second process while this one computes the rest,
and draw their own figures there. What the other sections show as a time is measured alone: the
tour installs a ``Beside`` with ``jgd.timing``'s ``pausing``, so every measured stretch (``timeit``,
``interleaved``, a ``fit`` or ``sweep`` run, the PyTorch loop) stops the second process with
``SIGSTOP`` and resumes it with ``SIGCONT`` after. A section's time from the second process counts
its own wall-clock time, less the stretches it was stopped for.

``multiprocessing`` (spawned, not forked: a forked JAX runtime is not safe) carries the
sections' results back; only POSIX systems have the signals, elsewhere the tour runs in turn.
If this process dies, the second one leaves too: it watches its parent, and it is the leader of
its own process group, which the kernel wakes and hangs up when it is orphaned while stopped.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pathlib
import signal
import threading
import time
import traceback
from typing import Any

NUMBERS = (10, 11)  # the sections computed in the second process, in this order
"""Sections the second process computes: the two longest, which show no measured time."""


def available() -> bool:
    """Whether a second process can be paused here (POSIX signals)."""
    return os.name == "posix" and hasattr(signal, "SIGSTOP")


class Beside(contextlib.AbstractContextManager):
    """The second process and its results; as a context, it is stopped while this one measures.

    Reentrant: stopped on the outermost entry, resumed on the last exit. Call ``close`` when done.
    """

    def __init__(self, specs: list[Any], mnist_dir: str | None, out: pathlib.Path | None):
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_work, args=(child, specs, mnist_dir, out, os.getpid()), daemon=True
        )
        self._process.start()
        child.close()
        self._depth, self._stopped_at, self._pauses = 0, 0.0, []
        self._results: dict[int, tuple[Any, float, float, Any]] = {}

    def __enter__(self) -> Beside:
        self._depth += 1
        if self._depth == 1 and self._signal(signal.SIGSTOP):
            self._stopped_at = time.monotonic()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._stopped_at:
            self._signal(signal.SIGCONT)
            self._pauses.append((self._stopped_at, time.monotonic()))
            self._stopped_at = 0.0

    def _signal(self, which: int) -> bool:
        """Sends ``which`` to the second process; False if it has ended."""
        try:
            os.kill(self._process.pid, which)
        except ProcessLookupError:
            return False
        return self._process.exitcode is None

    def result(self, number: int) -> tuple[Any, float, Any]:
        """Section ``number``'s ``Section``, its seconds (less the stops) and figure path."""
        while number not in self._results:
            try:
                message = self._conn.recv()
            except EOFError:
                code = self._process.join(5) or self._process.exitcode
                raise RuntimeError(
                    f"the tour's second process ended (exit code {code}) before section {number}"
                ) from None
            if message[0] == "failed":
                _, n, text = message
                raise RuntimeError(f"tour section {n}, computed in the second process:\n{text}")
            _, n, section, start, end, path = message
            self._results[n] = (section, start, end, path)
        section, start, end, path = self._results[number]
        stopped = sum(max(0.0, min(b, end) - max(a, start)) for a, b in self._pauses)
        return section, end - start - stopped, path

    def close(self) -> None:
        """Resumes (if stopped) and ends the second process."""
        if self._stopped_at:
            self._signal(signal.SIGCONT)
            self._stopped_at = 0.0
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._conn.close()


def _work(conn, specs, mnist_dir, out, parent: int) -> None:
    """The second process: compute (and draw) the sections of ``specs``, sending each back."""
    os.setpgrp()  # its own group: orphaned while stopped, the kernel hangs it up
    # one thread for XLA's running here (before its backend starts): the other core is this
    # process's while the main one compiles, and is the main one's when it runs; measured, the
    # tour 41.5-41.6 s so against 42.5-44.7 s with XLA's default threads here
    flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    for spec in specs:
        n = spec.number
        try:
            start = time.monotonic()
            section = spec.compute(mnist_dir) if spec.uses_mnist else spec.compute()
            end = time.monotonic()
            path = None
            if out is not None:
                from jgd.tour._plots import draw

                path = draw(spec, section, out)
            conn.send(("done", n, section, start, end, path))
        except Exception:
            conn.send(("failed", n, traceback.format_exc()))
            break
    conn.close()


def _watch(parent: int) -> None:
    """Ends this process once its parent is gone (re-parented: ``getppid`` changes)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
