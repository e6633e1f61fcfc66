"""Checks of a learning-rate schedule against the run it drives: its values at the run's steps
(a schedule that trains nothing or ascends), and its precision against the params' dtype."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _errors
from jgd._schedules import InverseTimeDecay

_PYTREE_SCHEDULES = (InverseTimeDecay,)  # jgd's schedules: values, checked when made


@functools.lru_cache(maxsize=32)  # one compile per schedule and run length, not per call
def _values(schedule: Any, first_step: int, steps: int) -> np.ndarray | None:
    """The schedule at step 0 and at the run's steps, or None when it cannot be vmapped."""
    try:
        counts = jnp.arange(first_step - 1, first_step + steps, dtype=jnp.int32).at[0].set(0)
        return np.asarray(jax.jit(jax.vmap(schedule))(counts), np.float64)
    except Exception:  # a schedule that cannot be vmapped: fit reports it when it runs
        return None


def check_schedule_values(schedule: Any, first_step: int, steps: int) -> None:
    """Raises when a schedule would train nothing or ascend: 0 at every step of the run, or
    negative or not finite at one (0 at the first or the last step, warmup's and cosine's,
    passes). Evaluated at the run's steps, on the device, once."""
    if not callable(schedule) or isinstance(schedule, _PYTREE_SCHEDULES):
        return  # jgd's schedules are values: checked when made, and compiled once for all
    try:
        values = _values(schedule, first_step, steps)
    except TypeError:  # an unhashable callable: evaluated without the cache
        values = _values.__wrapped__(schedule, first_step, steps)
    if values is None:
        return
    if values.shape != (steps + 1,):
        return
    rates = values[1:]
    # rounding: optax's linear_schedule ends at -1.5e-9 from 0.1; values within 1e-6 of the
    # schedule's scale (its largest magnitude, step 0's included) count as 0
    tiny = 1e-6 * np.nanmax(np.abs(np.where(np.isfinite(values), values, 0.0)))
    rates = np.where(np.abs(rates) <= tiny, 0.0, rates)
    bad = np.flatnonzero(~np.isfinite(rates) | (rates < 0))
    if bad.size:
        at = int(bad[0])
        raise ValueError(
            f"learning_rate (a schedule) is {rates[at]:.3g} at step {first_step + at}; a rate "
            "must be finite and >= 0 at every step (a negative one ascends the loss)."
        )
    if not rates.any():
        raise ValueError(
            f"learning_rate (a schedule) is 0 at every step of this run (steps {first_step} to "
            f"{first_step + steps - 1}): nothing would be trained."
        )


def check_schedule_precision(schedule: Any, dtype: Any) -> None:
    """Warns when a schedule returns rates less precise than the params (``optax``'s
    ``exponential_decay`` returns float32 even in a float64 run: every rate is rounded to
    float32, 6e-8 relative, which a float64 replay of PyTorch shows)."""
    if not callable(schedule) or isinstance(schedule, _PYTREE_SCHEDULES):
        return
    try:
        out = jax.eval_shape(schedule, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception:  # a schedule that cannot be traced abstractly: fit reports it when it runs
        return
    got = getattr(out, "dtype", None)
    if (
        got is None
        or not jnp.issubdtype(got, jnp.floating)
        or not jnp.issubdtype(dtype, jnp.floating)
    ):
        return
    if jnp.finfo(got).bits < jnp.finfo(dtype).bits:
        warnings.warn(
            f"learning_rate={_errors.describe(schedule)} returns {jnp.dtype(got).name} rates for "
            f"{jnp.dtype(dtype).name} params: each rate is rounded to {jnp.dtype(got).name}. "
            f"Write the schedule in {jnp.dtype(dtype).name} (e.g. jnp.asarray(rate, "
            f"jnp.{jnp.dtype(dtype).name})), or replay a torch scheduler with "
            "jgd.torch_baseline.to_optax, which keeps the params' dtype.",
            UserWarning,
            stacklevel=4,
        )
