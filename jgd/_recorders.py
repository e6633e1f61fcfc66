"""Recorders: what a run writes down at its steps, each a pair of pure functions.

In the spirit of optax's ``GradientTransformation``, a recorder is ``init(params, context) ->
state`` and ``update(state, view) -> (state, columns)``: ``view`` is what one step saw and did
(a ``View``), ``columns`` a dict of arrays, one value per recorded step, which the run stacks
into ``result.columns[name]``. A recorder with ``every=N`` runs only at the global steps ``t``
with ``t % N == 0`` (the run's loop jumps from one such step to the next, so the steps between
cost what they cost without it); its columns are NaN (0 for ints) at the other steps.

The loss, the gradient's norm, the update's norm and the params are recorders of this module;
the sharpness and the noise scale are recorders of ``_instruments``; a user's own is a
``jgd.Recorder``. Built-in recorders are frozen dataclasses: equal options give equal recorders,
and so one compiled program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jgd import _errors


class Context(NamedTuple):
    """What a run gives every recorder besides the step: its fixed probe examples.

    Attributes:
      probe: the examples the run's start and end losses are taken on (all the data, or a fixed
        sample of 4,096), as a batch; ``()`` when no recorder of the run asks for them.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> mse = lambda w, batch: jnp.mean((w - batch) ** 2)
      >>> probe_loss = jgd.Recorder(  # the loss on the probe examples, not the step's batch
      ...     init=lambda params, context: (),
      ...     update=lambda s, view: (s, {"probe": view.loss_fn(view.params, view.context.probe)}))
      >>> result = jgd.fit(mse, jnp.array(0.0), jnp.arange(4.0), optimizer=optax.sgd,
      ...                  learning_rate=0.1, batch_size=1, key=0, recorders=[probe_loss])
      >>> float(result.columns["probe"][0])  # (0 + 1 + 4 + 9) / 4 at w = 0
      3.5
    """

    probe: Any = ()


NO_CONTEXT = Context()


class View(NamedTuple):
    """What one step saw and did, as a recorder's ``update`` receives it.

    Attributes:
      step: the global step ``t`` (int32): the update made is the ``t``-th (from 0).
      key: the run's PRNG key (``state.key``).
      loss_fn: the run's ``loss(params, batch)``.
      batch: the step's batch.
      context: the run's ``Context`` (its probe examples).
      loss: the batch loss at ``params``.
      grads: the gradient the step computed (by the run's mode).
      updates: the optimizer's update, ``new params - params``.
      params: the params before the update (where ``loss`` and ``grads`` were taken).
      state: the ``TrainState`` after the step.
      aux: the loss's aux output at ``params`` (``has_aux=True``), else ``()``.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> seen = jgd.Recorder(lambda params, context: (),
      ...                     lambda s, view: (s, {"step": view.step, "update": view.updates}))
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2
      >>> result = jgd.fit(bowl, jnp.array(0.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                  learning_rate=0.5, epochs=3, recorders=[seen])
      >>> result.columns["step"].tolist(), result.columns["update"].tolist()
      ([0, 1, 2], [1.5, 0.75, 0.375])
    """

    step: jax.Array
    key: jax.Array
    loss_fn: Callable
    batch: Any
    context: Context
    loss: jax.Array
    grads: Any
    updates: Any
    params: Any
    state: Any
    aux: Any = ()


class Recorder(NamedTuple):
    """A recorder of your own: ``fit(..., recorders=[jgd.Recorder(init, update, every)])``.

    Attributes:
      init: ``init(params, context) -> state``, any pytree of arrays (``()`` for none).
      update: ``update(state, view) -> (state, columns)``, pure and traceable; ``columns`` a
        dict ``name -> array`` (the same shapes at every step), ``view`` a ``jgd.View``.
      every: run it only at global steps that are multiples of ``every``; None: every step.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> largest = jgd.Recorder(
      ...     init=lambda params, context: (),
      ...     update=lambda state, view: (state, {"max_grad": jnp.max(jnp.abs(view.grads))}),
      ... )
      >>> bowl = lambda w, batch: 0.5 * jnp.sum((w - 3.0) ** 2)
      >>> result = jgd.fit(bowl, jnp.zeros(2), jnp.zeros(1), optimizer=optax.sgd,
      ...                  learning_rate=0.5, epochs=3, recorders=[largest])
      >>> result.columns["max_grad"].tolist()
      [3.0, 1.5, 0.75]
    """

    init: Callable[[Any, Context], Any]
    update: Callable[[Any, View], tuple[Any, dict[str, jax.Array]]]
    every: int | None = None


@dataclasses.dataclass(frozen=True)
class Stateless:
    """A built-in recorder without state: ``columns(view)`` at every step."""

    every = None
    uses_context = False

    def init(self, params: Any, context: Context) -> tuple:
        return ()

    def update(self, state: tuple, view: View) -> tuple[tuple, dict[str, jax.Array]]:
        return state, self.columns(view)


@dataclasses.dataclass(frozen=True)
class Loss(Stateless):
    """The batch loss at the params before the update: ``loss``."""

    def columns(self, view: View) -> dict[str, jax.Array]:
        return {"loss": view.loss}


@dataclasses.dataclass(frozen=True)
class Aux(Stateless):
    """The loss's aux output at the params before the update (``has_aux=True``): ``aux``."""

    def columns(self, view: View) -> dict[str, Any]:
        return {"aux": view.aux}


@dataclasses.dataclass(frozen=True)
class GradNorm(Stateless):
    """The gradient's global norm: ``grad_norm`` (finite exactly when every entry is)."""

    def columns(self, view: View) -> dict[str, jax.Array]:
        return {"grad_norm": optax.tree.norm(view.grads)}


@dataclasses.dataclass(frozen=True)
class UpdateNorm(Stateless):
    """The update's global norm, ``‖new params - params‖``: ``update_norm``."""

    def columns(self, view: View) -> dict[str, jax.Array]:
        return {"update_norm": optax.tree.norm(view.updates)}


@dataclasses.dataclass(frozen=True)
class Params(Stateless):
    """The params before the update: ``params``."""

    def columns(self, view: View) -> dict[str, Any]:
        return {"params": view.params}


@dataclasses.dataclass(frozen=True)
class StateFinite(Stateless):
    """Whether every float of the state after the step is finite: ``state_finite``."""

    def columns(self, view: View) -> dict[str, jax.Array]:
        return {"state_finite": all_finite(view.state)}


LOSS, AUX, GRAD_NORM, UPDATE_NORM, PARAMS, STATE_FINITE = (
    Loss(),
    Aux(),
    GradNorm(),
    UpdateNorm(),
    Params(),
    StateFinite(),
)


def all_finite(tree: Any) -> jax.Array:
    """True when every float in ``tree`` is finite (integers are)."""
    flags = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def check(recorders: Any) -> tuple:
    """The user's ``recorders=`` as a tuple, each checked (``init``, ``update``, ``every``)."""
    if recorders is None:
        return ()
    if not isinstance(recorders, Sequence) or isinstance(recorders, str | bytes):
        raise TypeError(
            f"recorders={_errors.describe(recorders)} is not valid; expected a list of "
            "jgd.Recorder(init, update, every=None)."
        )
    for i, r in enumerate(recorders):
        if not (callable(getattr(r, "init", None)) and callable(getattr(r, "update", None))):
            raise TypeError(
                f"recorders[{i}]={_errors.describe(r)} is not a recorder; expected "
                "jgd.Recorder(init, update, every=None) with init(params, context) and "
                "update(state, view) -> (state, columns)."
            )
        every = getattr(r, "every", None)
        if every is not None:
            _errors.positive_int(f"recorders[{i}].every", every)
    return tuple(recorders)


def every_of(recorder: Any) -> int | None:
    """The steps between a recorder's records, or None (every step)."""
    every = getattr(recorder, "every", None)
    return None if every is None else int(every)


def uses_context(recorders: Sequence) -> bool:
    """Whether any recorder may read the run's probe examples (a user's always may)."""
    return any(getattr(r, "uses_context", True) for r in recorders)


def init(recorders: Sequence, params: Any, context: Context) -> tuple:
    """Every recorder's first state."""
    return tuple(r.init(params, context) for r in recorders)


def update(
    recorders: Sequence, states: tuple, view: View, due: Callable[[int], Any] | None = None
) -> tuple[tuple, dict[str, Any]]:
    """Every recorder's update at one step: their new states and their columns, merged.

    Args:
      recorders, states: the recorders and their states (same order).
      view: the step's ``View``.
      due: ``due(every)`` says whether a recorder with that ``every`` records at this step:
        True, False (its state is kept and its columns are blank), or a traced bool (it then
        runs in a ``lax.cond``). None: every recorder runs. Recorders without ``every`` always do.
    """
    new, columns = [], {}
    for r, s in zip(recorders, states, strict=True):
        every = every_of(r)
        when = True if every is None or due is None else due(every)
        if when is True:
            s, cols = r.update(s, view)
        elif when is False:
            cols = _blank_columns(r.update, s, view)
        else:  # the view (it holds the loss function) is closed over, the state an operand
            s, cols = jax.lax.cond(
                when,
                lambda s, r=r: r.update(s, view),
                lambda s, r=r: (s, _blank_columns(r.update, s, view)),
                s,
            )
        new.append(s)
        for name, value in cols.items():
            if name in columns:
                raise ValueError(
                    f"two recorders of this run write the column {name!r}; give each "
                    "recorder's columns their own names."
                )
            columns[name] = value
    return tuple(new), columns


def _blank_columns(fn: Callable, state: Any, view: View) -> dict[str, Any]:
    """The columns ``fn(state, view)`` would write, blank (its shapes, without running it)."""
    shapes = jax.eval_shape(lambda s: fn(s, view)[1], state)
    return jax.tree_util.tree_map(lambda s: jnp.full(s.shape, blank(s.dtype), s.dtype), shapes)


def blank(dtype: Any) -> Any:
    """What a column holds at a step it did not record: NaN, or 0 for ints and bools."""
    return jnp.nan if jnp.issubdtype(dtype, jnp.inexact) else 0
