"""What a run returns (``FitResult``), and how a run is judged: stopped by the guard, or risen."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from jgd import _batching, _errors
from jgd._guard import Stop
from jgd._instruments import Series
from jgd._state import TrainState

_WHAT = {
    "non-finite": "a non-finite loss, gradient or update",
    "max_loss": "a loss above max_loss",
    "rose": "the loss rising above its starting value",
}


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What ``fit`` returns (and ``SweepResult[i]`` for one run of a sweep).

    Attributes:
      params: the final parameters (the last finite ones if the run blew up).
      opt_state: the final optimizer state.
      state: the final ``TrainState``; pass it to ``fit`` as ``params`` to continue the run.
      losses: the batch loss of each step, at the params before that step's update (NaN for the
        steps after a blow-up).
      grad_norms: with ``grad_norm=True``, the gradient's global norm at each step; else None.
      diverged: True if the run blew up (a non-finite loss, gradient or update, or a loss above
        ``max_loss``: updates stopped there) or its loss ended above where it started.
      diverged_at: the step where that happened (a global step, like ``state.step``), or None.
      divergence: ``"non-finite"``, ``"max_loss"``, ``"rose"`` or None.
      params_history: with ``record_params=True``, the params before each step and the final
        ones, with a leading axis of ``steps + 1``; otherwise None.
      steps: the number of steps in the plan.
      first_step: the global step of ``losses[0]`` (0, unless the run continued a state).
      sharpness: with ``sharpness_every``, the top Hessian eigenvalue as a ``jgd.Series``;
        else None.
      noise_scale: with ``noise_scale_every``, the simple gradient noise scale as a
        ``jgd.Series``; else None.
      initial_loss, final_loss: the loss at the first and the final params on a fixed sample of
        the data sized to the run (a quarter of the examples its steps see, 256 to 1,024, all
        of them when fewer): what ``"rose"`` is judged on.
      compile_time: seconds spent compiling (0.0 when every program was reused).
      run_time: seconds spent running, compile time excluded.
      aux: with ``has_aux=True``, the loss's aux at each step (its pytree, each leaf with a
        leading axis of ``steps``; NaN after a blow-up); else None.
      model: for a run of an ``nnx.Module``, the trained module (a new one: the module given
        is never changed); else None.
      columns: every recorder's per-step column by name (``"loss"``, ``"grad_norm"``,
        ``"update_norm"``, ``"params"``, ``"sharpness"``, a ``jgd.Recorder``'s own ...), with a
        leading axis of ``steps``; NaN (0 for ints) where a column was not recorded.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2
      >>> result = jgd.fit(bowl, jnp.array(0.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                  learning_rate=0.5, epochs=3, grad_norm=True)
      >>> result.losses.tolist(), result.grad_norms.tolist()
      ([4.5, 1.125, 0.28125], [3.0, 1.5, 0.75])
      >>> result.steps, result.diverged, result.diverged_at, round(float(result.params), 3)
      (3, False, None, 2.625)
      >>> int(result.state.step), sorted(result.columns)
      (3, ['grad_norm', 'loss'])
    """

    params: Any
    opt_state: Any
    state: TrainState
    losses: np.ndarray
    grad_norms: np.ndarray | None
    diverged: bool
    diverged_at: int | None
    divergence: str | None
    params_history: Any
    steps: int
    first_step: int
    initial_loss: float
    final_loss: float
    compile_time: float
    run_time: float
    sharpness: Series | None = None
    noise_scale: Series | None = None
    columns: dict[str, Any] = dataclasses.field(default_factory=dict)
    model: Any = None

    @property
    def aux(self) -> Any:
        """The loss's aux at each step (``has_aux=True``), or None."""
        return self.columns.get("aux")


def verdict(
    losses: np.ndarray,
    stop: Stop | None,
    window: int,
    initial_loss: float,
    final_loss: float,
    first_step: int = 0,
) -> tuple[bool, int | None, str | None]:
    """(diverged, diverged_at, divergence) from the guard's stop and the loss on the data.

    Besides a blow-up, a run diverged ("rose") when its loss on the data (all of it, or a fixed
    sample: ``RunConfig.eval_rows``) ended above twice where it started (above 0 for a negative
    start): judged on the loss of the same examples at the first and the last params, so the
    noise of batch losses cannot fool it, and a run settling into its noise floor a little above
    a good start is not called diverged. It is dated at the first step from which the batch
    loss, smoothed over ``window`` steps (an epoch), stayed above the starting loss: a step of
    the run.
    """
    if stop is not None:
        return True, stop.step, stop.reason
    if not np.isfinite(initial_loss) or final_loss <= initial_loss + abs(initial_loss):
        return False, None, None
    return True, first_step + _rose_at(losses, initial_loss, window), "rose"


def _rose_at(losses: np.ndarray, level: float, window: int) -> int:
    w = max(1, min(window, len(losses) // 4 or 1))
    smooth = np.convolve(np.nan_to_num(losses, nan=np.inf), np.ones(w) / w, mode="valid")
    below = np.nonzero(~(smooth > level))[0]  # smooth[i] ends at step i + w - 1
    start = int(below[-1]) + 1 if below.size else 0
    return min(start + w - 1, len(losses) - 1)


def history(recorded: Any, final_params: Any) -> Any:
    """The params before each step, and the final ones: a leading axis of ``steps + 1``."""
    return jax.tree_util.tree_map(
        lambda h, p: np.concatenate([np.asarray(h), np.asarray(p)[None]]), recorded, final_params
    )


def divergence_error(result: FitResult, description: str, loss, params, data, plan):
    """A ``DivergenceError`` naming the step, the reason, the optimizer, and the curvature bound
    2/λ at the initial params as a hint."""
    hint = ""
    try:
        first = (
            data
            if plan.full_batch
            else _batching.gather(data, np.arange(min(plan.num_examples, 1024)))
        )
        bound = _curvature_bound(loss, params, first)
        if math.isfinite(bound):
            hint = (
                f" At the initial params the largest stable learning rate for plain GD is "
                f"about {bound:.4g} (jgd.max_stable_learning_rate)."
            )
    except Exception:  # the hint is best effort: a loss may not be twice differentiable
        hint = ""
    return _errors.DivergenceError(
        f"the run diverged at step {result.diverged_at} ({_WHAT[result.divergence]}) with "
        f"{description}.{hint}"
    )


def _curvature_bound(loss, params, batch) -> float:
    from jgd._curvature import max_stable_learning_rate

    return float(
        jax.jit(lambda p, b: max_stable_learning_rate(loss, p, b).learning_rate)(params, batch)
    )
