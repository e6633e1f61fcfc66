"""A checkpoint folder's lock (one run at a time, against other processes and this one's other
threads), the one-line error of a failed write, and Ctrl-C held back while a checkpoint is
written: what ``_checkpoint`` holds a folder with."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import threading
from collections.abc import Iterator

LOCK = ".jgd.lock"


_HELD: dict[str, str] = {}  # folder -> the thread of this process whose run holds it
_HELD_LOCK = threading.Lock()


class _FolderLock:
    """An exclusive lock on a folder: ``flock`` against other processes (released when the
    process dies), and this process's own table against its other threads (``flock`` would tell
    them "another process": one process's locks are shared by its threads)."""

    def __init__(self, directory: str):
        with _HELD_LOCK:
            if directory in _HELD:
                raise ValueError(
                    f"checkpoint_dir={directory!r} is in use by another run in this process "
                    f"(thread {_HELD[directory]!r}); give each concurrent run its own folder."
                )
            handle = open(os.path.join(directory, LOCK), "a+")  # noqa: SIM115 (held until close)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise ValueError(
                    f"checkpoint_dir={directory!r} is in use by another process (a jgd run "
                    "writing its checkpoints there); wait for it to finish, or use another folder."
                ) from None
            _HELD[directory] = threading.current_thread().name
        self.directory, self._handle = directory, handle

    def close(self) -> None:
        with _HELD_LOCK:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
                _HELD.pop(self.directory, None)


def lock(directory: str) -> _FolderLock:
    """An exclusive lock on ``directory`` for this run (released when it closes or dies)."""
    return _FolderLock(directory)


def write_error(directory: str, step: int, last: int | None, error: Exception) -> OSError:
    """One OSError naming the folder for a failed checkpoint write (orbax's own is 50 frames of
    its background threads and names a temporary file)."""
    text = str(error)
    full = "No space left" in text or "os_error_code='28'" in text
    if isinstance(error, OSError) and error.errno is not None:
        code = error.errno
    else:
        code = errno.ENOSPC if full else errno.EIO
    reason = "the disk is full" if code == errno.ENOSPC else os.strerror(code).lower()
    if isinstance(error, OSError) and error.strerror and code != errno.ENOSPC:
        reason = error.strerror.lower()
    kept = (
        f"the last complete checkpoint is step {last}" if last is not None else "none is complete"
    )
    return OSError(
        code,
        f"checkpoint_dir={directory!r}: writing the checkpoint of step {step} failed ({reason}); "
        f"{kept}. Free space or choose another checkpoint_dir, then call again to resume",
    )


@contextlib.contextmanager
def interrupts_after() -> Iterator[None]:
    """Ctrl-C (SIGINT) within the block takes effect when it ends; a second one, at once.

    A checkpoint's write is orbax's threads finishing what the caller waits for: interrupted
    midway, they ran on into the interpreter's exit and failed there, printing a traceback
    after jgd's one line. Held back, the write completes (it is short) and the interrupt
    follows. Only the main thread with Python's own handler installed is changed: a handler of
    the user's, or SIGINT ignored, is left as it is.

    Examples:
      >>> with interrupts_after():
      ...     pass
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pending = []

    def hold(signum, frame):
        if pending:  # a second Ctrl-C: the user does not want to wait
            raise KeyboardInterrupt
        pending.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


__all__ = ["LOCK", "interrupts_after", "lock", "write_error"]
