"""Code a user names on the command line (``FILE.py:NAME`` or ``module:NAME``), imported safely.

``jgd bench ad --function`` and ``jgd compare-torch --model`` load a user's callable this way: a
file is imported under a private module name (a ``json.py`` never replaces ``json``), and an
error raised while importing comes back as one line naming the file and the line.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
import traceback
from collections.abc import Callable


def load(spec: str, flag: str = "--function") -> Callable:
    """The callable ``MODULE:NAME`` names; a ValueError naming what is wrong otherwise.

    A file is imported under a private module name, so a file called like a standard module
    (``json.py``) never replaces that module for the rest of the run (the results are written
    with ``json``). An error raised while importing (a syntax error, an exception at import) comes
    back as one line naming the file and the line.
    """
    module_name, sep, name = spec.rpartition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"{flag} {spec!r}: expected MODULE:NAME, e.g. mypkg.nets:f or f.py:f.")
    try:
        if module_name.endswith(".py"):
            path = pathlib.Path(module_name)
            if not path.is_file():
                raise ValueError(f"{flag} {spec!r}: no file {module_name}.")
            private = f"_jgd_user_function_{abs(hash(str(path.resolve())))}"
            found = importlib.util.spec_from_file_location(private, path)
            module = importlib.util.module_from_spec(found)
            sys.modules[private] = module  # dataclasses and pickling look a module up by name
            found.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ValueError:
        raise
    except (Exception, SystemExit) as error:  # anything the user's module raises at import
        raise ValueError(f"{flag} {spec!r}: cannot import {module_name}: {where(error)}") from None
    f = getattr(module, name, None)
    if not callable(f):
        raise ValueError(f"{flag} {spec!r}: {module_name} has no function {name}.")
    return f


def where(error: BaseException) -> str:
    """``Type: first line (file:line)`` for an exception raised in the user's code."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg} ({error.filename}:{error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    user = [fr for fr in frames if "/jgd/" not in fr.filename and "/jax/" not in fr.filename]
    place = f" ({user[-1].filename}:{user[-1].lineno})" if user else ""
    return f"{type(error).__name__}: {text[:300]}{place}"


__all__ = ["load", "where"]
