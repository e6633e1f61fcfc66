"""PRNG keys at jgd's boundary: an int seed or a key in, raw threefry key data out.

Raw ``uint32[2]`` key data (what ``jax.random.PRNGKey`` gives) is what jgd carries in its states:
it checkpoints as a plain array. Typed keys of the threefry implementation are accepted and
unwrapped; other implementations and shapes are refused by name rather than failing deep in JAX.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _errors


def as_key(key: Any) -> jax.Array:
    """An int seed, a raw uint32 key or a typed key, as a raw uint32 key (checkpointable)."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return jnp.asarray(_seed_key(check_seed(key, "key")))
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        if "threefry" not in impl or key.shape != ():
            raise ValueError(
                f"key is a {impl} key of shape {key.shape}; jgd draws from one threefry key, "
                "e.g. jax.random.key(0) or an int seed."
            )
        return jax.random.key_data(key)
    arr = jnp.asarray(key) if isinstance(key, jax.Array | np.ndarray) else None
    if arr is None or arr.dtype != jnp.uint32 or arr.shape != (2,):
        got = "" if arr is None else f" (dtype {arr.dtype}, shape {arr.shape})"
        raise ValueError(
            f"key={_errors.describe(key)}{got} is not valid; expected an int seed, a JAX PRNG key "
            "such as jax.random.key(0), or raw threefry key data (uint32, shape (2,))."
        )
    return arr


@functools.lru_cache(maxsize=256)
def _seed_key(seed: int) -> np.ndarray:
    """The key data of an int seed, derived once, on the host: each call puts a new array on the
    device (a shared one would be deleted by the first step that donates its state)."""
    key = np.asarray(jax.random.PRNGKey(seed))
    key.flags.writeable = False
    return key


def seed_keys(seeds: list[int]) -> jax.Array:
    """``as_key`` of many int seeds at once: shape (len(seeds), 2)."""
    seeds = np.asarray([check_seed(s, "seeds") for s in seeds], np.int32)
    return jax.vmap(jax.random.PRNGKey)(seeds)


def check_seed(seed: Any, name: str) -> int:
    """``seed`` as an int, checked: without 64-bit JAX a seed keeps 32 bits, so larger seeds
    would silently share keys (``PRNGKey(2**40)`` is ``PRNGKey(0)``)."""
    if not -(2**31) <= int(seed) < 2**31:
        raise ValueError(
            f"{name}={_errors.describe(seed)} is not valid; an int seed must lie in "
            "[-2**31, 2**31) (JAX keeps 32 bits of a seed: larger ones would share keys)."
        )
    return int(seed)
