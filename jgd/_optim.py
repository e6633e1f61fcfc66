"""How ``fit`` and ``sweep`` take an optimizer without baking its numbers into the program.

An optax optimizer built as ``optax.sgd(0.1)`` closes over 0.1 as a Python constant: a new value
means a new program (optax#577). So jgd also takes the *factory* (``optax.sgd``, ``optax.adam``, or
a ``functools.partial`` of one) with ``learning_rate=``, splits its arguments into static ones
(bools, ints, strings, ordinary callables) and numbers (floats and jgd's pytree schedules), and
rebuilds the optimizer inside the compiled program with ``optax.inject_hyperparams``, the numbers
passed in as traced arrays. Another learning rate then reuses the compiled program, the rates live
in the optimizer state where they can be read, and ``jax.vmap`` can batch them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import _errors
from jgd._schedules import InverseTimeDecay

_PYTREE_SCHEDULES = (InverseTimeDecay,)


class OptimizerSpec(NamedTuple):
    """An optimizer split into what the program is compiled for and the numbers it takes."""

    static: Hashable  # ("transformation", gt) or ("factory", func, ((name, value), ...))
    hparams: dict[str, Any]  # name -> float or pytree schedule (traced)
    description: str


def spec(optimizer: Any, learning_rate: Any) -> OptimizerSpec:
    """Validates ``optimizer`` / ``learning_rate`` and splits them (see the module docstring)."""
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                f"learning_rate={_errors.describe(learning_rate)} was given with an optax "
                "optimizer that already has its own; pass the factory instead "
                "(optimizer=optax.sgd, learning_rate=...) or leave learning_rate=None."
            )
        return OptimizerSpec(("transformation", optimizer), {}, "optax GradientTransformation")
    if not callable(optimizer):
        raise TypeError(
            f"optimizer={_errors.describe(optimizer)} is not valid; expected an optax factory such "
            "as optax.sgd (with learning_rate=) or an optax GradientTransformation."
        )
    func, kwargs = optimizer, {}
    if isinstance(optimizer, functools.partial):
        if optimizer.args:
            raise ValueError(
                "optimizer=functools.partial(...) must bind keywords only, e.g. "
                "functools.partial(optax.sgd, momentum=0.9)."
            )
        func, kwargs = optimizer.func, dict(optimizer.keywords)
    if learning_rate is None:
        raise ValueError(
            f"learning_rate is required with optimizer={getattr(func, '__name__', func)!s}; "
            "give a number > 0 or a schedule, e.g. learning_rate=0.1."
        )
    if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
        learning_rate = float(learning_rate)
    check_learning_rate(learning_rate)
    kwargs["learning_rate"] = learning_rate
    static, hparams = [], {}
    for name, value in sorted(kwargs.items()):
        if _is_number(value) or isinstance(value, _PYTREE_SCHEDULES):
            hparams[name] = value
        else:
            try:
                hash(value)
            except TypeError:
                raise TypeError(
                    f"optimizer argument {name}={_errors.describe(value)} is not hashable; "
                    "pass numbers, bools, strings or functions."
                ) from None
            static.append((name, value))
    described = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
    name = getattr(func, "__name__", repr(func))
    return OptimizerSpec(("factory", func, tuple(static)), hparams, f"{name}({described})")


def check_learning_rate(value: Any) -> None:
    """Raises unless ``value`` is a finite number > 0 or a callable schedule."""
    if callable(value):
        return
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(
            f"learning_rate={_errors.describe(value)} is not valid; expected a finite number > 0 "
            "or a schedule (count -> rate)."
        )


def as_arrays(hparams: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """Hyperparameters as arrays of the params' float dtype (stable shapes for the cache)."""
    return jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), hparams)


def build(static: Hashable, hparams: dict[str, Any]) -> optax.GradientTransformation:
    """The optimizer, built inside the traced program from its static part and traced numbers."""
    if static[0] == "transformation":
        return static[1]
    _, func, static_kwargs = static
    ints = tuple(k for k, v in static_kwargs if isinstance(v, int) and not isinstance(v, bool))
    return optax.inject_hyperparams(func, static_args=ints)(**dict(static_kwargs), **hparams)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float | np.floating):
        return True
    if isinstance(value, jax.Array | np.ndarray):
        return value.ndim == 0 and jnp.issubdtype(value.dtype, jnp.floating)
    return False
