"""NNX modules as the thing trained: ``loss(model, batch)`` on a module's ``nnx.Param``s.

``nnx.split(module, nnx.Param, ...)`` gives the structure (a hashable ``GraphDef``), the params
(what is differentiated and what the optimizer sees) and every other variable: batch statistics,
RNG keys and counters, anything else the module holds. The run carries that rest as its model
state (``TrainState.model_state``, a ``ModelState`` whose structure is static), and each loss
evaluation merges a fresh copy of the module from the params and the state, calls the user's
loss on it, and splits what the forward pass wrote back out: the pure form
``(params, batch) -> (value, (aux, model state))``. Every evaluation of one step starts from the
same state (so finite differences and forward modes see the same batch statistics and dropout
masks), and the state carried on is the one written at the unperturbed params. flax's own
``nnx.jit`` does this split and merge at the boundary of a jitted function; inside a step that
``jgd`` compiles (a scan of steps, a vmapped sweep) there is no such boundary, hence this form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from jgd import _errors


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


def is_module(value: Any) -> bool:
    return isinstance(value, nnx.Module)


def split(module: nnx.Module) -> tuple[Any, ModelState]:
    """``(params, model_state)``: the module's ``nnx.Param``s and everything else."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    if not jax.tree_util.tree_leaves(params):
        raise ValueError(
            f"params={_errors.describe(module)} is an nnx.Module with no nnx.Param: there is "
            "nothing to train. Declare its weights as nnx.Param (nnx.Linear and the other "
            "layers do)."
        )
    return params, ModelState(graphdef, rest)


def merge(params: Any, model_state: ModelState) -> nnx.Module:
    """A new module holding ``params`` and the model state (nothing shared with the run)."""
    return nnx.merge(model_state.graphdef, params, model_state.state, copy=True)


def fold(model_state: ModelState, key: jax.Array) -> ModelState:
    """The model state with ``key`` folded into every RNG stream's key (``fit(model, key=k)``)."""
    data = jax.random.key_data(key).reshape(-1)[-1]

    def fold_one(leaf: Any) -> Any:
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return jax.random.fold_in(leaf, data)
        return leaf

    return ModelState(model_state.graphdef, jax.tree_util.tree_map(fold_one, model_state.state))


def form(loss: Callable, model_state: ModelState, has_aux: bool) -> Callable:
    """``f(params, batch) -> (value, (aux, new model state))``: the module's loss, pure."""

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
        if jax.tree_util.tree_structure(rest) != jax.tree_util.tree_structure(model_state.state):
            raise ValueError(
                "loss(model, batch) changed the module's structure (it added or removed a "
                "variable in the forward pass); the model state must keep one structure."
            )
        return value, (aux, ModelState(model_state.graphdef, rest))

    return f


def user_form(loss: Callable, model_state: ModelState, has_aux: bool) -> Callable:
    """``f(params, batch)`` returning what ``loss(model, batch)`` returns (value or pair)."""
    pure = form(loss, model_state, has_aux)

    def f(params: Any, batch: Any) -> Any:
        value, (aux, _) = pure(params, batch)
        return (value, aux) if has_aux else value

    return f
