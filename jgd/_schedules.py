"""The learning-rate schedules optax lacks: η₀/(1+γt) and η₀/(t+1).

optax has polynomial, exponential, cosine and piecewise schedules, but not inverse-time decay, the
schedule of the classic SGD convergence theory (Robbins-Monro) and of ``jgd tour``'s noise ball.

They are frozen dataclasses registered as pytrees (their numbers are leaves), so passing one to
``jgd.fit`` with another ``init_value`` or ``decay_rate`` reuses the compiled program instead of
baking the numbers in as constants, and ``jgd.sweep`` can vmap over them. They are also plain
``count -> value`` callables, usable wherever optax takes a schedule.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jgd import _errors


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class InverseTimeDecay:
    """The schedule ``init_value / (1 + decay_rate * count)``, a ``count -> value`` callable.

    Made by ``inverse_time_decay`` (which checks its numbers) or ``harmonic``. A pytree whose
    numbers are leaves: a run given another ``init_value`` or ``decay_rate`` reuses the compiled
    program, and ``jgd.sweep`` can vmap over them.

    Attributes:
      init_value: η₀, the rate at count 0.
      decay_rate: γ, how fast the rate decays.

    Examples:
      >>> import jax, jgd
      >>> schedule = jgd.schedules.inverse_time_decay(0.1, 0.01)
      >>> schedule, round(float(schedule(100)), 6)
      (InverseTimeDecay(init_value=0.1, decay_rate=0.01), 0.05)
      >>> jax.tree.leaves(schedule)
      [0.1, 0.01]
    """

    init_value: jax.Array | float
    decay_rate: jax.Array | float

    def __call__(self, count: jax.Array | int) -> jax.Array:
        return self.init_value / (1 + self.decay_rate * jnp.asarray(count))


def inverse_time_decay(init_value: float, decay_rate: float) -> InverseTimeDecay:
    """The schedule η_t = η₀ / (1 + γ t), an optax-compatible ``count -> value`` callable.

    Args:
      init_value: η₀ > 0, the rate at count 0.
      decay_rate: γ >= 0; 0 gives a constant rate.

    Returns:
      A schedule; ``schedule(t)`` is the rate of update ``t`` (counted from 0).

    Examples:
      >>> import optax
      >>> import jgd
      >>> schedule = jgd.schedules.inverse_time_decay(0.1, 0.01)
      >>> round(float(schedule(100)), 6)  # 0.1 / (1 + 1)
      0.05
      >>> optimizer = optax.sgd(schedule)  # any optax optimizer takes it
    """
    init_value = _errors.positive_float("init_value", init_value)
    if not isinstance(decay_rate, int | float) or not decay_rate >= 0 or decay_rate == float("inf"):
        raise ValueError(
            f"decay_rate={_errors.describe(decay_rate)} is not valid; expected a finite "
            "number >= 0."
        )
    return InverseTimeDecay(init_value, float(decay_rate))


def harmonic(init_value: float) -> InverseTimeDecay:
    """The schedule η_t = η₀ / (t + 1): inverse-time decay with γ = 1, the classic 1/t.

    Its steps shrink to zero but sum to infinity, so SGD can still travel any distance.

    Examples:
      >>> import jgd
      >>> [round(float(jgd.schedules.harmonic(1.0)(t)), 3) for t in range(4)]
      [1.0, 0.5, 0.333, 0.25]
    """
    return inverse_time_decay(init_value, 1.0)
