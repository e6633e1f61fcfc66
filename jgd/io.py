"""Files written whole or not at all: a temporary file in the same folder, then a rename.

A kill, a full disk or an exception halfway leaves the previous file as it was (``os.replace`` is
atomic within a file system) and no half-written one behind. jgd writes its checkpoints' marker,
the tour's plots, the benchmarks' results and ``jgd train``'s model this way; so can you.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """A file object to write ``path`` through; the file appears only when the block succeeds.

    Examples:
      >>> import pathlib, tempfile
      >>> import jgd
      >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
      >>> with jgd.io.atomic(target, "w") as f:
      ...     _ = f.write("whole")
      >>> target.read_text()
      'whole'
    """
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` (UTF-8), atomically: the whole new file or the old one.

    The text goes to a temporary file in the same folder, which then replaces ``path`` (see
    ``atomic``), so a crash midway never leaves a half-written file.

    Args:
      path: the file to write; its folder must exist.
      text: the whole content.

    Examples:
      >>> import pathlib, tempfile
      >>> import jgd
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     target = pathlib.Path(folder) / "notes.txt"
      ...     jgd.io.write_text(target, "all or nothing")
      ...     print(target.read_text())
      all or nothing
    """
    with atomic(path, "w") as f:
        f.write(text)


__all__ = ["atomic", "write_text"]
