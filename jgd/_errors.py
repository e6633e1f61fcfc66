"""Errors and the boundary checks shared by every public entry point.

Checks here run on concrete Python values before anything is traced, so a user sees which argument
was wrong, what it was, and what is allowed, instead of a traceback from inside XLA.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class DivergenceError(RuntimeError):
    """Raised by ``fit(..., on_divergence="raise")`` when a run diverges.

    A run diverges when a loss, gradient or update is not finite, a loss exceeds ``max_loss``, or
    its loss ends above where it started (``FitResult.divergence``: ``"non-finite"``,
    ``"max_loss"``, ``"rose"``). The message names the step, the reason and the optimizer, and,
    where it can be measured, the largest stable learning rate at the initial params. With the
    default ``on_divergence="stop"`` the run returns instead, flagged ``result.diverged``.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2  # GD is stable for learning rates < 2
      >>> try:
      ...     jgd.fit(bowl, jnp.array(0.0), jnp.zeros(1), optimizer=optax.sgd,
      ...             learning_rate=2.5, epochs=10, on_divergence="raise")
      ... except jgd.DivergenceError as error:
      ...     print(error)
      the run diverged at step 1 (the loss rising above its starting value) with
      sgd(learning_rate=2.5). At the initial params the largest stable learning rate for plain GD
      is about 2 (jgd.max_stable_learning_rate).
    """


class ProcessLostError(RuntimeError):
    """Raised by ``fit`` in a run of several processes when a collective operation fails.

    Another process of the run died or cannot be reached. The checkpoints written before (with
    ``checkpoint_dir=``) are kept: start every process again and the run resumes from the newest.
    A run of one process never raises it.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2
      >>> try:  # in a run of several processes, pass checkpoint_dir= to resume from
      ...     result = jgd.fit(bowl, jnp.array(0.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                      learning_rate=0.5, epochs=2)
      ... except jgd.ProcessLostError as error:
      ...     print("a process was lost; start every process again:", error)
      >>> round(float(result.params), 3)
      2.25
    """


def describe(value: Any, limit: int = 60) -> str:
    """A short repr of ``value`` for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_of(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raises ValueError unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}={describe(value)} is not valid; expected one of {choices}.")


def positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """Returns ``value`` as an int, raising ValueError unless it is an integer >= 1."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}={describe(value)} is not valid; expected an integer >= 1.")
    return int(value)


def positive_float(name: str, value: Any) -> float:
    """Returns ``value`` as a float, raising ValueError unless it is finite and > 0 (a bool is
    not a number here: ``max_loss=True`` would be 1.0)."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(
            f"{name}={value!r} is not valid; expected a finite number > 0, not a bool."
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}={describe(value)} is not valid; expected a finite number > 0."
        ) from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name}={describe(value)} is not valid; expected a finite number > 0.")
    return number


def leaf_paths(tree: Any) -> list[tuple[str, Any]]:
    """(readable path, leaf) pairs of a pytree, e.g. ``("['w']", array)``."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path) or "<root>", leaf) for path, leaf in flat]


def float_params(name: str, params: Any) -> None:
    """Raises unless ``params`` is a non-empty pytree of floating-point arrays."""
    leaves = leaf_paths(params)
    if not leaves:
        raise ValueError(f"{name} has no array leaves; expected a pytree of float arrays.")
    for path, leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            dtype = np.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{name}{'' if path == '<root>' else path} has dtype {dtype}; gradient modes "
                "need floating-point params (float32 or float64). Cast it, e.g. "
                "jnp.asarray(x, jnp.float32)."
            )


def finite_params(name: str, params: Any) -> None:
    """Raises unless every float in ``params`` is finite (one program, one boolean per leaf
    comes back; device arrays already found finite are not read again, ``known_finite``)."""
    paths = [(path, leaf) for path, leaf in leaf_paths(params) if not known_finite(leaf)]
    if not paths:
        return
    finite = np.asarray(_finite_leaves([jnp.asarray(leaf) for _, leaf in paths]))
    for (path, _), ok in zip(paths, finite, strict=True):
        if not ok:
            where = "" if path == "<root>" else path
            raise ValueError(
                f"{name}{where} has a non-finite value (NaN or Inf); a run must start from finite "
                "params."
            )
    for _, leaf in paths:
        remember_finite(leaf)


@jax.jit
def _finite_leaves(leaves: list) -> jax.Array:
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])


# Device arrays found finite, by id, each held by a weak reference (an entry goes with its array).
# A jax.Array is immutable, so its verdict holds for as long as the object lives: a loop of fits
# over the same device data and params reads them once. Never a NumPy array, which can change
# in place between two calls. (No library keeps such verdicts; jax's own caches key by shape.)
_FINITE: dict[int, weakref.ref] = {}


def known_finite(leaf: Any) -> bool:
    """Whether ``leaf`` is a device array already found finite here (``remember_finite``)."""
    ref = _FINITE.get(id(leaf))
    return ref is not None and ref() is leaf


def remember_finite(leaf: Any) -> None:
    """Remembers that the device array ``leaf`` is finite (nothing for host arrays or tracers)."""
    if not isinstance(leaf, jax.Array) or isinstance(leaf, jax.core.Tracer):
        return
    key = id(leaf)

    def forget(ref: weakref.ref, key: int = key) -> None:
        if _FINITE.get(key) is ref:
            del _FINITE[key]

    _FINITE[key] = weakref.ref(leaf, forget)


_SHAPES: dict = {}  # (loss, its arguments' shapes) -> its output's shapes, for repeat calls


def _shape_of(loss: Any, params: Any, batch: Any) -> Any:
    """``jax.eval_shape(loss, params, batch)``, remembered for the same loss object and argument
    shapes (the assumption ``jax.jit``'s cache makes too: a function traces the same way)."""
    try:
        key = (loss, _avals(params), _avals(batch))
        hash(key)
    except TypeError:  # an unhashable callable: traced every time
        return jax.eval_shape(loss, params, batch)
    if key not in _SHAPES:
        if len(_SHAPES) >= 256:
            _SHAPES.clear()
        _SHAPES[key] = jax.eval_shape(loss, params, batch)
    return _SHAPES[key]


def _avals(tree: Any) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((np.shape(x), jnp.result_type(x), _weak(x)) for x in leaves)


def _weak(x: Any) -> bool:
    return bool(getattr(x, "weak_type", False))


def not_half(name: str, params: Any, mode: str) -> None:
    """Raises for 16-bit float leaves: finite differences there keep no significant digits."""
    for path, leaf in leaf_paths(params):
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
            where = "" if path == "<root>" else path
            raise TypeError(
                f"{name}{where} is {jnp.dtype(dtype).name}: mode={mode!r} finite differences "
                f"need at least float32 (a {jnp.dtype(dtype).name} step of "
                f"eps^(1/2) = {float(jnp.finfo(dtype).eps) ** 0.5:.2g} leaves no significant "
                "digits). Cast the params to float32, or use mode='reverse' or 'forward'."
            )


def scalar_loss(loss: Any, params: Any, batch: Any, has_aux: bool = False) -> None:
    """Raises unless ``loss(params, batch)`` returns a real scalar, or ``(scalar, aux)`` with
    ``has_aux`` (``aux`` a pytree of arrays); checked abstractly, without running it."""
    try:
        out = _shape_of(loss, params, batch)
    except TypeError as e:
        if not has_aux or "not a valid JAX type" not in str(e):
            raise
        raise TypeError(
            f"loss(params, batch) returned an aux that is not a pytree of arrays ({e}); return "
            "numbers or arrays in aux, e.g. {'accuracy': jnp.mean(...)}."
        ) from None
    pair = isinstance(out, tuple | list) and len(out) == 2
    if not has_aux and pair:
        raise ValueError(
            "loss(params, batch) returned a pair; a loss returning (value, aux) needs "
            "has_aux=True: pass has_aux=True to record aux, or return the value alone."
        )
    if has_aux and not pair:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"has_aux=True, but loss(params, batch) returned {shape}; with has_aux=True it must "
            "return (value, aux). Leave has_aux=False for a loss that returns the value alone."
        )
    value = out[0] if has_aux else out
    shape = getattr(value, "shape", None)
    if shape != ():
        raise ValueError(
            f"loss(params, batch) must return a scalar (the mean over the batch); it returned "
            f"shape {shape}. Reduce it, e.g. with jnp.mean, or build it with jgd.per_example."
        )
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"loss(params, batch) returned dtype {value.dtype}; expected a float.")


def boolean(name: str, value: Any) -> bool:
    """``value`` when it is a bool; else TypeError naming the argument."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}={describe(value)} is not valid; expected True or False.")
    return bool(value)
