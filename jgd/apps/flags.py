"""The ``jgd`` command's argument types: each a value, or one line saying what is wrong."""

from __future__ import annotations

import argparse
import pathlib

INT32 = 2**31 - 1


def int_in(low: int, high: int):
    """An argparse type: an integer in [low, high], else one line saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not >= {low}")
        if value > high:
            raise argparse.ArgumentTypeError(f"{value} is not <= {high:,}")
        return value

    return parse


positive_int = int_in(1, INT32)
seed = int_in(-(2**31), INT32)  # JAX keeps 32 bits of a seed


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_float(text: str) -> float:
    value = number(text)
    if not 0 < value <= 3.4e38:  # float32's largest: the params' dtype
        raise argparse.ArgumentTypeError(f"{value} is not a number in (0, 3.4e38]")
    return value


def fraction(text: str) -> float:
    value = number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1)")
    return value


def existing_dir(text: str) -> str:
    if not pathlib.Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist or is not a folder")
    return text


def existing_file(text: str) -> str:
    if not pathlib.Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist or is not a file")
    return text


def shape(text: str) -> tuple[int, ...]:
    """An argparse type: a shape such as ``1000`` or ``32,32`` of positive integers."""
    parse = int_in(1, INT32)
    return tuple(parse(part) for part in text.split(","))


def host_port(text: str) -> str:
    """``HOST:PORT`` for --coordinator: a host without spaces and a port in 1-65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or any(c.isspace() for c in host) or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:1234")
    if not 1 <= int(port) <= 65_535:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must lie in 1-65535")
    return text


__all__ = [
    "INT32",
    "existing_dir",
    "existing_file",
    "fraction",
    "host_port",
    "int_in",
    "number",
    "positive_float",
    "positive_int",
    "seed",
    "shape",
]
