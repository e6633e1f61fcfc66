"""The grid a ``sweep`` runs: learning rates × an optimizer's other hyperparameters × seeds.

A factory optimizer's float arguments are values in its state (``_optim``), so runs that differ
only in floats share one compiled, vmapped program; an integer argument (warmup steps, every_k)
is part of the program, so each of its values is a group of its own, compiled once. Runs are
ordered with the integer arguments outermost, then learning rates, then float arguments (in the
order given), then seeds.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from jgd import _errors, _optim


class Run(NamedTuple):
    """One run of a sweep: its learning rate, seed, and the grid's values."""

    learning_rate: Any
    seed: int | None
    values: dict[str, Any]  # every grid name -> this run's value


def groups(optimizer: Any, grid: Any) -> list[tuple[Any, dict[str, Any]]]:
    """``[(optimizer, numbers)]``: one factory per combination of the grid's integer values
    (bound into it), with the float values to sweep in it (``name -> list``)."""
    if grid is None:
        return [(optimizer, {})]
    if not isinstance(grid, dict) or not all(isinstance(k, str) for k in grid):
        raise TypeError(
            f"grid={_errors.describe(grid)} is not valid; expected a dict from an optimizer "
            "argument's name to its values, e.g. grid={'weight_decay': [0.0, 1e-4]}."
        )
    func, bound = _optim.factory_parts(optimizer)
    accepted = inspect.signature(func).parameters
    floats, ints = {}, {}
    for name, values in grid.items():
        if name == "learning_rate" or name not in accepted:
            allowed = sorted(set(accepted) - {"learning_rate"})
            raise ValueError(
                f"grid[{name!r}] is not an argument of {func.__name__} to sweep (learning rates "
                f"go in learning_rate=); it takes {allowed}."
            )
        values = _values(name, values)
        kinds = {type(v) for v in values}
        (floats if kinds <= {float} else ints)[name] = values
    out = []
    for combination in itertools.product(*ints.values()):
        static = dict(zip(ints, combination, strict=True))
        out.append((functools.partial(func, **bound, **static), floats))
    return out


def runs(rates: list, floats: dict[str, list], seeds: list, static: dict[str, Any]) -> list[Run]:
    """The group's runs: learning rates × float values × seeds, each with every grid value."""
    out = []
    for lr, *values, seed in itertools.product(rates, *floats.values(), seeds):
        out.append(Run(lr, seed, {**static, **dict(zip(floats, values, strict=True))}))
    return out


def static_values(optimizer: Any, grid: Any) -> dict[str, Any]:
    """The grid's integer values bound into a group's factory."""
    if grid is None:
        return {}
    _, bound = _optim.factory_parts(optimizer)
    return {name: bound[name] for name in grid if name in bound}


def _values(name: str, values: Any) -> list:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"grid[{name!r}] is empty; give at least one value.")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(
                f"grid[{name!r}] holds {_errors.describe(v)}; expected numbers (floats are "
                "swept in one program, ints are compiled once per value)."
            )
        out.append(float(v) if isinstance(v, float | np.floating) else int(v))
    if len({type(v) for v in out}) > 1:
        raise ValueError(
            f"grid[{name!r}]={values} mixes ints and floats; give floats (one program, e.g. "
            "0.0 rather than 0) or ints (one program per value)."
        )
    return out
