"""The state a run carries from step to step, and the PRNG key it draws from."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jgd import _optim
from jgd._keys import as_key


class TrainState(NamedTuple):
    """Everything a run carries from step to step; a pytree.

    Attributes:
      params: the model parameters (any pytree of float arrays).
      opt_state: the optax optimizer state.
      step: the number of updates done so far (int32 scalar).
      key: the PRNG key the step draws from (forward-gradient tangents).
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array

    @classmethod
    def create(
        cls, params: Any, optimizer: Any, key: Any = 0, *, learning_rate: Any = None
    ) -> TrainState:
        """A fresh state: the optimizer's state for ``params``, step 0, and ``key``.

        Args:
          params: the initial parameters, a pytree of float arrays.
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
        transformation = _optim.resolve(optimizer, learning_rate).transformation()
        return cls(params, transformation.init(params), jnp.zeros((), jnp.int32), as_key(key))
