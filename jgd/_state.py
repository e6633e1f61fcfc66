"""The state a run carries from step to step, and the PRNG key it draws from."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jgd import _errors, _modules, _optim
from jgd._keys import as_key


class TrainState(NamedTuple):
    """Everything a run carries from step to step; a pytree.

    Attributes:
      params: the model parameters (any pytree of float arrays).
      opt_state: the optax optimizer state.
      step: the number of updates done so far (int32 scalar).
      key: the PRNG key the step draws from (forward-gradient tangents).
      model_state: what a model carries besides its params (``()`` for pure params).

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jgd
      >>> state = jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.1), key=0)
      >>> state.params.tolist(), int(state.step), state.model_state
      ([0.0, 0.0], 0, ())
      >>> bowl = lambda w, batch: 0.5 * jnp.sum((w - 3.0) ** 2)
      >>> result = jgd.fit(bowl, state, jnp.zeros(1), optimizer=optax.sgd(0.1), epochs=3)
      >>> int(result.state.step), jax.tree.structure(result.state) == jax.tree.structure(state)
      (3, True)
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    model_state: Any = ()

    @classmethod
    def create(
        cls, params: Any, optimizer: Any, key: Any = 0, *, learning_rate: Any = None
    ) -> TrainState:
        """A fresh state: the optimizer's state for ``params``, step 0, and ``key``.

        Args:
          params: the initial parameters, a pytree of float arrays; or an ``nnx.Module``, whose
            ``nnx.Param``s are the params and whose other variables (batch statistics, RNG
            state) are ``model_state``; a step then takes ``loss(model, batch)``. Or a
            ``jgd.Stateful``: its state and RNG stream are ``model_state``, and a step takes
            ``loss(params, batch, state, key)``.
          optimizer: an optax ``GradientTransformation`` (its numbers are compiled into any
            step made with it), or an optax factory such as ``optax.adam`` with
            ``learning_rate=``: the numbers are then values in the state, so a step compiled
            once runs with any of them (see ``jgd.make_step``).
          key: an int seed or a JAX PRNG key; a run's shuffles and forward-gradient tangents are
            drawn from it.
          learning_rate: with a factory, a number > 0 or a schedule; with a transformation, None.

        Examples:
          >>> import jax.numpy as jnp, optax, jgd
          >>> state = jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.1))
          >>> int(state.step)
          0
          >>> state = jgd.TrainState.create(jnp.zeros(2), optax.sgd, learning_rate=0.1)
          >>> float(state.opt_state.hyperparams["learning_rate"])
          0.1
        """
        model_state = ()
        if _modules.is_module(params):  # its nnx.Params are trained, the rest carried
            params, model_state = _modules.split(params)
        _errors.float_params("params", params)  # else the error comes at the first step
        transformation = _optim.resolve(optimizer, learning_rate).transformation()
        opt_state = transformation.init(params)
        return cls(params, opt_state, jnp.zeros((), jnp.int32), as_key(key), model_state)


class Carry(NamedTuple):
    """What a run's compiled loop carries from step to step: one structure, whatever is on.

    The ``TrainState``'s fields and the states of the run's recorders (``()`` for each one
    without state: the loss, the norms, the params; the sharpness's last eigenvector). An
    option that is off leaves its field ``()``: no arrays, no cost.

    Attributes:
      params, opt_state, step, key, model_state: as in ``TrainState``.
      records: one state per recorder of the run, in the run's order.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    model_state: Any
    records: tuple

    @classmethod
    def start(cls, state: TrainState, records: tuple = ()) -> Carry:
        """The carry of a run starting from ``state``, with its recorders' first states."""
        return cls(*state, records)

    @property
    def train(self) -> TrainState:
        """The ``TrainState`` part (what a step takes and returns)."""
        return TrainState(*self[:5])

    def advanced(self, state: TrainState, records: tuple) -> Carry:
        """The carry after a step: its new ``TrainState`` and recorder states."""
        return Carry(*state, records)
