"""The state a run carries from step to step, and the PRNG key it draws from."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import _errors


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
        cls, params: Any, optimizer: optax.GradientTransformation, key: Any = 0
    ) -> TrainState:
        """A fresh state: ``optimizer.init(params)``, step 0, ``key`` (an int seed or a key).

        Examples:
          >>> import jax.numpy as jnp, optax, jgd
          >>> state = jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.1))
          >>> int(state.step)
          0
        """
        return cls(params, optimizer.init(params), jnp.zeros((), jnp.int32), as_key(key))


def as_key(key: Any) -> jax.Array:
    """An int seed, a raw uint32 key or a typed key, as a raw uint32 key (checkpointable)."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return jax.random.PRNGKey(int(key))
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    arr = jnp.asarray(key) if isinstance(key, jax.Array | np.ndarray) else None
    if arr is None or arr.dtype != jnp.uint32:
        raise ValueError(
            f"key={_errors.describe(key)} is not valid; expected an int seed or a JAX PRNG key "
            "such as jax.random.key(0)."
        )
    return arr
