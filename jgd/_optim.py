"""How jgd takes an optimizer: a ready optax ``GradientTransformation``, or a factory and numbers.

A ready transformation (``optax.sgd(0.1)``) closes over 0.1 as a Python constant: another value is
another program (optax#577). So jgd also takes the *factory* (``optax.sgd``, ``optax.adam``, or a
``functools.partial`` of one) with ``learning_rate=``. Its arguments are split into static ones
(bools, ints, strings, ordinary callables: part of the program) and numbers (floats and jgd's
pytree schedules: values). The numbers live in the optimizer state, a ``Hyperparams`` of the
numbers and the inner optax state; every update rebuilds the factory's transformation from the
numbers it finds in the state, traced. Another learning rate is then another state for the same
compiled step, ``jax.vmap`` can batch the numbers, and they can be read back from the state.

Why not ``optax.inject_hyperparams`` alone: it keeps plain numbers in its state, but closes over
schedules, which would compile the numbers of a jgd schedule (a pytree) into the program.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import _errors
from jgd._schedules import InverseTimeDecay

_PYTREE_SCHEDULES = (InverseTimeDecay,)


class Hyperparams(NamedTuple):
    """The optimizer state of a factory optimizer: its numbers, and the inner optax state."""

    hyperparams: dict[str, Any]  # name -> array (or a jgd schedule whose leaves are arrays)
    inner_state: Any


@dataclasses.dataclass(frozen=True)
class Factory:
    """An optax factory with its static arguments; hashable: the compiled program depends on it.

    Attributes:
      func: the optax factory, e.g. ``optax.adam``.
      static: ``(name, value)`` pairs of its non-numeric arguments, passed as they are.
      names: the names of its numeric arguments, whose values live in the state.
    """

    func: Callable[..., optax.GradientTransformation]
    static: tuple[tuple[str, Hashable], ...]
    names: tuple[str, ...]

    def transformation(self, hyperparams: dict[str, Any] | None = None):
        """The transformation; ``init`` needs ``hyperparams``, ``update`` reads them from state."""

        def init(params):
            if hyperparams is None:
                raise ValueError(
                    f"this step's optimizer {self.func.__name__} keeps its numbers in the state; "
                    "create the state with them: jgd.TrainState.create(params, optimizer, "
                    "learning_rate=...)."
                )
            values = as_arrays(hyperparams, _dtype_of(params))
            return Hyperparams(values, _compiled_init(self)(values, params))

        def update(updates, state, params=None):
            self.check_state(state)
            updates, inner = self._inner(state.hyperparams).update(
                updates, state.inner_state, params
            )
            return updates, Hyperparams(state.hyperparams, inner)

        return optax.GradientTransformation(init, update)

    def check_state(self, state: Any) -> None:
        """Raises unless ``state`` is this factory's optimizer state (checked while tracing)."""
        if not isinstance(state, Hyperparams) or tuple(sorted(state.hyperparams)) != self.names:
            found = (
                f"numbers {sorted(state.hyperparams)}"
                if isinstance(state, Hyperparams)
                else f"a {type(state).__name__}"
            )
            raise TypeError(
                f"the state's optimizer state holds {found}, but the step's optimizer "
                f"{self.func.__name__} takes numbers {list(self.names)}; create the state with "
                "the optimizer the step was made with: jgd.TrainState.create(params, optimizer, "
                "learning_rate=...)."
            )

    def _inner(self, values: dict[str, Any]) -> optax.GradientTransformation:
        return self.func(**dict(self.static), **values)


@functools.lru_cache(maxsize=64)
def _compiled_init(factory: Factory) -> Callable:
    """The factory's inner ``init`` from its numbers, compiled once per factory: one dispatch
    instead of an op-by-op state (the numbers are traced, as in every update)."""
    return jax.jit(lambda values, params: factory._inner(values).init(params))


class Optimizer(NamedTuple):
    """An optimizer argument, checked: what the program depends on, and the numbers."""

    static: optax.GradientTransformation | Factory  # hashable: part of the compiled program
    hyperparams: dict[str, Any]  # a factory's numbers (floats, jgd schedules); {} otherwise
    description: str  # e.g. "sgd(learning_rate=0.1, momentum=0.9)"

    def transformation(self) -> optax.GradientTransformation:
        """The optax transformation (a factory's ``init`` puts the numbers in the state)."""
        if isinstance(self.static, Factory):
            return self.static.transformation(self.hyperparams)
        return self.static


def resolve(optimizer: Any, learning_rate: Any, *, need_rate: bool = True) -> Optimizer:
    """Checks ``optimizer`` and ``learning_rate`` and splits them (see the module docstring).

    Args:
      optimizer: an optax ``GradientTransformation`` (any: ``optax.chain``, ``masked``,
        ``multi_transform``, ``inject_hyperparams(...)(...)``), an object standing for one
        (``optax.MultiSteps``: its ``gradient_transformation()``), or a factory (``optax.sgd``,
        a ``functools.partial`` of one binding keywords).
      learning_rate: with a factory, a number > 0 or a schedule; with a transformation, None.
      need_rate: whether a factory needs ``learning_rate`` here (``make_step`` reads the numbers
        from the state, so it does not).

    Raises:
      TypeError, ValueError: naming the argument, its value and what is allowed.
    """
    stands_for = getattr(optimizer, "gradient_transformation", None)
    if not isinstance(optimizer, optax.GradientTransformation) and callable(stands_for):
        optimizer = stands_for()  # optax.MultiSteps and its kind: the transformation it wraps
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                f"learning_rate={_errors.describe(learning_rate)} was given with an optax "
                "optimizer that already has its own; pass the factory instead "
                "(optimizer=optax.sgd, learning_rate=...) or leave learning_rate=None."
            )
        return Optimizer(optimizer, {}, "optax GradientTransformation")
    func, kwargs = factory_parts(optimizer)
    name = getattr(func, "__name__", repr(func))
    _check_takes_rate(func, name)
    if learning_rate is None and need_rate:
        raise ValueError(
            f"learning_rate is required with optimizer={name}; give a number > 0 or a schedule, "
            "e.g. learning_rate=0.1."
        )
    if learning_rate is not None:
        if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
            learning_rate = float(learning_rate)
        check_learning_rate(learning_rate)
        kwargs["learning_rate"] = learning_rate
    static, hyperparams = [], {}
    for key, value in sorted(kwargs.items()):
        if is_number(value) or isinstance(value, _PYTREE_SCHEDULES):
            hyperparams[key] = value
        else:
            _hashable(key, value)
            static.append((key, value))
    names = set(hyperparams) | ({"learning_rate"} if learning_rate is None else set())
    factory = Factory(func, tuple(static), tuple(sorted(names)))
    if learning_rate is not None:
        _check_makes_transformation(func, name, kwargs)
    described = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
    return Optimizer(factory, hyperparams, f"{name}({described})")


def _check_takes_rate(func: Callable, name: str) -> None:
    """A factory takes ``learning_rate`` (``optax.sgd(0.1).update`` or ``lambda: ...`` do not)."""
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin without a signature: judged when it is called
        return
    if "learning_rate" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    ):
        return
    raise TypeError(
        f"optimizer={name} takes no learning_rate argument ({list(parameters)}); expected an "
        "optax factory such as optax.sgd (with learning_rate=), or a GradientTransformation "
        "such as optax.sgd(0.1)."
    )


def _check_makes_transformation(func: Callable, name: str, kwargs: dict[str, Any]) -> None:
    try:
        made = func(**kwargs)
    except TypeError as e:  # not a factory: a transformation's update, a function of others
        raise TypeError(
            f"optimizer={name} cannot be called as an optax factory with {sorted(kwargs)} "
            f"({e}); expected a factory such as optax.sgd (with learning_rate=), or a "
            "GradientTransformation such as optax.sgd(0.1)."
        ) from None
    if not (callable(getattr(made, "init", None)) and callable(getattr(made, "update", None))):
        raise TypeError(
            f"optimizer={name} returned {_errors.describe(made)}; an optax factory returns a "
            "GradientTransformation (with init and update), e.g. optax.sgd."
        )


def check_learning_rate(value: Any) -> None:
    """Raises unless ``value`` is a finite number > 0 or a callable schedule (a traced number,
    e.g. under ``jax.vmap``, is checked for its dtype and shape only)."""
    if callable(value) or (isinstance(value, jax.core.Tracer) and is_number(value)):
        return
    if not is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(
            f"learning_rate={_errors.describe(value)} is not valid; expected a finite number > 0 "
            "or a schedule (count -> rate)."
        )


def check_representable(hyperparams: dict[str, Any], dtype: Any) -> None:
    """Raises for a number that overflows ``dtype`` (1e39 in float32 would become inf)."""
    largest = float(jnp.finfo(dtype).max)
    flat, _ = jax.tree_util.tree_flatten_with_path(hyperparams)
    for path, value in flat:
        if isinstance(value, jax.core.Tracer) or (
            not is_number(value) and not isinstance(value, int | float)
        ):
            continue
        name = jax.tree_util.keystr(path, simple=True, separator=".")
        if abs(float(value)) > largest:
            raise ValueError(
                f"{name}={float(value):.3g} overflows {jnp.dtype(dtype).name} (largest "
                f"{largest:.3g}), the params' dtype the optimizer computes in."
            )
        if float(value) != 0 and float(np.asarray(value, dtype)) == 0:
            raise ValueError(
                f"{name}={float(value):.3g} underflows {jnp.dtype(dtype).name}: it would be "
                f"stored as 0.0 (smallest {float(jnp.finfo(dtype).smallest_subnormal):.3g}) and "
                "change nothing. Use a larger value, or params of a wider dtype."
            )


def as_arrays(hyperparams: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """Numbers as arrays of the params' float dtype (one shape and dtype: one program)."""
    return jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), hyperparams)


def is_number(value: Any) -> bool:
    """A float, or a float array of shape ()."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float | np.floating):
        return True
    if isinstance(value, jax.Array | np.ndarray):
        return value.ndim == 0 and jnp.issubdtype(value.dtype, jnp.floating)
    return False


def factory_parts(optimizer: Any) -> tuple[Callable, dict[str, Any]]:
    """An optax factory (or a ``functools.partial`` of one) as its function and bound keywords."""
    if not callable(optimizer):
        raise TypeError(
            f"optimizer={_errors.describe(optimizer)} is not valid; expected an optax factory such "
            "as optax.sgd (with learning_rate=) or an optax GradientTransformation."
        )
    if isinstance(optimizer, functools.partial):
        if optimizer.args:
            raise ValueError(
                "optimizer=functools.partial(...) must bind keywords only, e.g. "
                "functools.partial(optax.sgd, momentum=0.9)."
            )
        return optimizer.func, dict(optimizer.keywords)
    return optimizer, {}


def _hashable(name: str, value: Any) -> None:
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"optimizer argument {name}={_errors.describe(value)} is not hashable; "
            "pass numbers, bools, strings or functions."
        ) from None


def _dtype_of(params: Any) -> Any:
    leaves = jax.tree_util.tree_leaves(params)
    return jnp.result_type(*leaves) if leaves else jnp.float32
