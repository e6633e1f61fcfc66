"""Models with state as the thing trained: an ``nnx.Module``, or a pure ``jgd.Stateful``.

A model's params are differentiated and updated by the optimizer; the rest of it is the run's
model state (``TrainState.model_state``), carried step to step and updated by what each step's
forward pass writes. Two kinds:

- an ``nnx.Module`` with ``loss(model, batch)``: ``nnx.split(module, nnx.Param, ...)`` gives the
  structure (a hashable ``GraphDef``), the params and every other variable (batch statistics,
  RNG keys and counters). Each loss evaluation merges a fresh copy of the module (``copy=True``),
  calls the loss on it and splits what the forward pass wrote back out. flax's ``nnx.jit`` does
  this split and merge at the boundary of a jitted function; inside a step that jgd compiles (a
  scan of steps, a vmapped sweep) there is no such boundary, hence this form.
- a ``jgd.Stateful(params, state, key)`` with ``loss(params, batch, state, key) -> (value,
  new_state)``: the pure route. Its RNG stream is a key and a count, as ``nnx.Rngs`` keeps one:
  the step's key is ``fold_in(key, count)``, and the count goes up by one per step.

Both give the pure form ``(params, batch) -> (value, (aux, model state))``. Every evaluation of
one step starts from the same state (so finite differences and forward modes see the same batch
statistics and dropout masks), and the state carried on is the one written at the unperturbed
params.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgd import _errors
from jgd._keys import as_key


class Stateful(NamedTuple):
    """A pure model with state and randomness: what ``fit`` trains like an ``nnx.Module``.

    Pass it where params go (``fit``, ``sweep``, ``TrainState.create``) with a loss
    ``loss(params, batch, state, key) -> (value, new_state)`` (with ``has_aux=True``,
    ``-> (value, (aux, new_state))``): ``params`` are differentiated, ``state`` (batch
    statistics, counters: any pytree of arrays) is carried and replaced by what each step
    returns, and ``key`` is a fresh PRNG key per step, ``jax.random.fold_in(key, count)``, the
    same at every evaluation of one step (every gradient mode draws one dropout mask). The run
    carries the key and the count, so a resumed, continued or swept run draws what one run
    draws; ``fit(..., key=k)`` folds ``k`` into the stream (``sweep``: each run's seed).
    ``result.model`` is the trained ``Stateful``.

    Attributes:
      params: a pytree of float arrays.
      state: a pytree of arrays (``()`` for randomness alone); its shapes and dtypes are kept.
      key: an int seed or a PRNG key: the model's RNG stream.
      count: the steps drawn from the stream so far.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jgd
      >>> def loss(w, batch, state, key):  # dropout on the input, and a running mean
      ...     keep = jax.random.bernoulli(key, 0.5, batch.shape)
      ...     x = jnp.where(keep, batch / 0.5, 0.0)
      ...     return jnp.mean((x - w) ** 2), 0.9 * state + 0.1 * jnp.mean(batch)
      >>> model = jgd.Stateful(jnp.zeros(()), state=jnp.zeros(()), key=0)
      >>> result = jgd.fit(loss, model, jnp.ones(8), optimizer=optax.sgd(0.1), epochs=20)
      >>> round(float(result.model.state), 4), int(result.model.count)
      (0.8784, 20)
    """

    params: Any
    state: Any = ()
    key: Any = 0
    count: Any = 0


@jax.tree_util.register_pytree_node_class
class ModelState:
    """A module's non-parameter variables (``state``) and its structure (``graphdef``, static)."""

    def __init__(self, graphdef: Any, state: Any):
        self.graphdef, self.state = graphdef, state

    def tree_flatten(self):
        return (self.state,), self.graphdef

    @classmethod
    def tree_unflatten(cls, graphdef, children):
        return cls(graphdef, children[0])

    def __repr__(self) -> str:
        return f"ModelState({self.state})"


class PureState(NamedTuple):
    """A ``Stateful``'s model state: its ``state``, and its RNG stream (raw key, count)."""

    state: Any
    key: jax.Array
    count: jax.Array


CARRIED = (ModelState, PureState)  # the model states a run carries (else ``()``)


def path_name(keys: Any) -> str:
    """A variable's path as ``hidden.bias`` (from ``tree_flatten_with_path`` keys)."""
    names = (getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in keys)
    return ".".join(str(n) for n in names if n is not None and n != "value")


def is_module(value: Any) -> bool:
    """Whether ``value`` is a model with state: an ``nnx.Module`` or a ``jgd.Stateful``."""
    return isinstance(value, nnx.Module | Stateful)


def split(model: Any) -> tuple[Any, ModelState | PureState]:
    """``(params, model_state)``: the model's params and everything else."""
    if isinstance(model, Stateful):
        _check_stateful(model)
        count = jnp.asarray(model.count, jnp.int32)
        state = jax.tree_util.tree_map(jnp.asarray, model.state)
        return model.params, PureState(state, as_key(model.key), count)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if not jax.tree_util.tree_leaves(params):
        raise ValueError(
            f"params={_errors.describe(model)} is an nnx.Module with no nnx.Param: there is "
            "nothing to train. Declare its weights as nnx.Param (nnx.Linear and the other "
            "layers do)."
        )
    return params, ModelState(graphdef, rest)


def _check_stateful(model: Stateful) -> None:
    """A ``Stateful``'s state holds arrays (or numbers) only, and its count is a step count."""
    for path, leaf in _errors.leaf_paths(model.state):
        kind = getattr(np.asarray(leaf) if not hasattr(leaf, "dtype") else leaf, "dtype", None)
        if kind is None or not (jnp.issubdtype(kind, jnp.number) or jnp.issubdtype(kind, bool)):
            raise TypeError(
                f"Stateful.state{path}={_errors.describe(leaf)} is not valid; the state is "
                "carried through the compiled run, so it holds arrays or numbers only (keep "
                "strings and other Python values outside, e.g. in the loss's closure)."
            )
    count = model.count
    if not isinstance(count, jax.core.Tracer) and (
        isinstance(count, bool | np.bool_)
        or np.shape(count) != ()
        or not jnp.issubdtype(jnp.result_type(count), jnp.integer)
        or not 0 <= int(count) < 2**31
    ):
        raise ValueError(
            f"Stateful.count={_errors.describe(count)} is not valid; expected an int from 0 to "
            "2**31 - 1 (the steps drawn from the model's RNG stream so far)."
        )


def merge(params: Any, model_state: ModelState | PureState) -> Any:
    """A new model holding ``params`` and the model state (nothing shared with the run)."""
    if isinstance(model_state, PureState):
        return Stateful(params, model_state.state, model_state.key, model_state.count)
    return nnx.merge(model_state.graphdef, params, model_state.state, copy=True)


def fold(model_state: ModelState | PureState, key: jax.Array) -> ModelState | PureState:
    """The model state with ``key`` folded into every RNG stream's key (``fit(model, key=k)``)."""
    data = jax.random.key_data(key).reshape(-1)[-1]
    if isinstance(model_state, PureState):
        return model_state._replace(key=jax.random.fold_in(model_state.key, data))

    def fold_one(leaf: Any) -> Any:
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return jax.random.fold_in(leaf, data)
        return leaf

    return ModelState(model_state.graphdef, jax.tree_util.tree_map(fold_one, model_state.state))


def form(loss: Callable, model_state: ModelState | PureState, has_aux: bool) -> Callable:
    """``f(params, batch) -> (value, (aux, new model state))``: the model's loss, pure."""
    if isinstance(model_state, PureState):
        return _pure_form(loss, model_state, has_aux)

    def f(params: Any, batch: Any) -> tuple[Any, tuple[Any, ModelState]]:
        model = merge(params, model_state)
        out = loss(model, batch)
        value, aux = out if has_aux else (out, ())
        _, written, rest = nnx.split(model, nnx.Param, ...)
        if any(
            a is not b
            for a, b in zip(
                jax.tree_util.tree_leaves(written), jax.tree_util.tree_leaves(params), strict=True
            )
        ):
            raise ValueError(
                "loss(model, batch) assigned to an nnx.Param in the forward pass; params are "
                "changed by the optimizer only. Keep what the forward pass writes in another "
                "variable type (nnx.BatchStat, nnx.Variable)."
            )
        _same_layout(model_state.state, rest, "loss(model, batch)", "the module's variables")
        return value, (aux, ModelState(model_state.graphdef, rest))

    return f


def _pure_form(loss: Callable, model_state: PureState, has_aux: bool) -> Callable:
    def f(params: Any, batch: Any) -> tuple[Any, tuple[Any, PureState]]:
        key = jax.random.fold_in(model_state.key, model_state.count)
        out = loss(params, batch, model_state.state, key)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(
                "loss(params, batch, state, key) of a jgd.Stateful must return (value, "
                "new_state), or (value, (aux, new_state)) with has_aux=True; it returned "
                f"{_returned(out)}."
            )
        value, second = out
        if has_aux and not (isinstance(second, tuple) and len(second) == 2):
            raise ValueError(
                "with has_aux=True, loss(params, batch, state, key) returns (value, (aux, "
                f"new_state)); its second element is {_returned(second)}."
            )
        aux, new = second if has_aux else ((), second)
        _same_layout(model_state.state, new, "loss(params, batch, state, key)", "state")
        return value, (aux, model_state._replace(state=new, count=model_state.count + 1))

    return f


def _returned(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"one array of shape {tuple(x.shape)} ({x.dtype})"
    return _errors.describe(x)


def _same_layout(old: Any, new: Any, loss: str, what: str) -> None:
    """Raises when a step's model state changes structure, shape or dtype (checked when traced)."""
    if jax.tree_util.tree_structure(old) != jax.tree_util.tree_structure(new):
        raise ValueError(
            f"{loss} changed the structure of {what} (a variable added or removed in the "
            "forward pass); the model state must keep one structure."
        )
    flat = jax.tree_util.tree_flatten_with_path(new)[0]
    for (path, a), b in zip(flat, jax.tree_util.tree_leaves(old), strict=True):
        shape_a, shape_b = jnp.shape(a), jnp.shape(b)
        dtype_a, dtype_b = _dtype(a), _dtype(b)
        if shape_a != shape_b or dtype_a != dtype_b:
            raise ValueError(
                f"{loss} changed {what} at {path_name(path) or 'the root'} from {shape_b} "
                f"{dtype_b} to {shape_a} {dtype_a}; the model state must keep its shapes and "
                "dtypes (cast what the step writes back to them)."
            )


def _dtype(x: Any) -> Any:
    return x.dtype if hasattr(x, "dtype") else jnp.result_type(x)  # typed keys have a dtype


def user_form(loss: Callable, model_state: ModelState | PureState, has_aux: bool) -> Callable:
    """``f(params, batch)`` returning what ``loss(model, batch)`` returns (value or pair)."""
    pure = form(loss, model_state, has_aux)

    def f(params: Any, batch: Any) -> Any:
        value, (aux, _) = pure(params, batch)
        return (value, aux) if has_aux else value

    return f


def as_pure(loss: Callable, params: Any) -> tuple[Callable, Any]:
    """``(loss, params)`` for a function of params: a module as its ``nnx.Param``s and its
    ``loss(model, batch)`` at the module's state, which nothing writes (the analysis tools)."""
    if not is_module(params):
        return loss, params
    params, model_state = split(params)
    return user_form(loss, model_state, False), params
