"""What ``sweep`` returns: ``SweepResult``, ``FitResult``'s fields with a leading run axis."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _modules
from jgd._instruments import NoiseScale, Series, Sharpness, series
from jgd._result import FitResult, verdict


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What ``sweep`` returns: ``FitResult``'s fields with a leading run axis of length R.

    ``result[i]`` is run ``i`` as a ``FitResult``, what ``fit`` returns for it: bit for bit where
    XLA computes a vmapped step as it computes one step (batch size 1), to rounding where it sums
    a batched matmul in another order. A run that blew up is ``fit``'s exactly (its replay is
    ``fit``'s own).

    Attributes:
      learning_rate: the learning rate (or schedule) of each run, a list of length R.
      seed: the seed of each run (None where one ``key`` served all), a list of length R.
      grid: each run's values of the ``grid=`` names (``{}`` without a grid), a list of R.
      params, opt_state, state: the final state of each run.
      losses: shape (R, steps); grad_norms: the same with ``grad_norm=True``, else None.
      diverged: bool array (R,); diverged_at: int array (R,), -1 where a run did not diverge.
      divergence: the reason per run (see ``FitResult``), a list.
      params_history: with ``record_params=True``, shape (R, steps + 1, ...).
      steps: the steps of each run; compile_time, run_time: seconds for the whole sweep.
      initial_loss, final_loss: arrays (R,), as in ``FitResult``.
      sharpness, noise_scale: ``jgd.Series`` with ``values`` of shape (R, records), or None.
      columns: every recorder's column, shape (R, steps, ...) (``aux``: the ``"aux"`` one).

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2  # GD is stable for learning rates < 2
      >>> result = jgd.sweep(bowl, jnp.array(0.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                    learning_rate=[0.5, 2.5], epochs=4)
      >>> len(result), result.learning_rate, result.losses.shape
      (2, [0.5, 2.5], (2, 4))
      >>> result.diverged.tolist(), result.divergence, result.diverged_at.tolist()
      ([False, True], [None, 'rose'], [-1, 1])
      >>> run = result[0]  # one run, as a FitResult
      >>> run.losses.tolist(), round(float(run.params), 4)
      ([4.5, 1.125, 0.28125, 0.0703125], 2.8125)
    """

    learning_rate: list
    seed: list
    params: Any
    opt_state: Any
    state: Any
    losses: np.ndarray
    grad_norms: np.ndarray | None
    diverged: np.ndarray
    diverged_at: np.ndarray
    divergence: list
    params_history: Any
    steps: int
    initial_loss: np.ndarray
    final_loss: np.ndarray
    compile_time: float
    run_time: float
    sharpness: Series | None = None
    noise_scale: Series | None = None
    columns: dict[str, Any] = dataclasses.field(default_factory=dict)
    grid: list = dataclasses.field(default_factory=list)

    def find(self, **values: Any) -> int:
        """The index of the run with these values (``learning_rate``, ``seed``, grid names).

        Examples:
          >>> import jax.numpy as jnp, optax, jgd
          >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2
          >>> result = jgd.sweep(bowl, jnp.array(-2.0), jnp.zeros(1), optimizer=optax.sgd,
          ...                    learning_rate=[0.1, 0.2], grid={"momentum": [0.0, 0.9]})
          >>> result.find(learning_rate=0.2, momentum=0.9), result.grid[3]
          (3, {'momentum': 0.9})
        """
        for i in range(len(self)):
            run = {"learning_rate": self.learning_rate[i], "seed": self.seed[i], **self.grid[i]}
            if all(run.get(k, object()) == v for k, v in values.items()):
                return i
        raise KeyError(f"no run of this sweep has {values}.")

    @property
    def aux(self) -> Any:
        """Every run's aux at each step, leaves ``(R, steps, ...)`` (``has_aux=True``), or None."""
        return self.columns.get("aux")

    def __len__(self) -> int:
        return len(self.learning_rate)

    def __getitem__(self, i: int) -> FitResult:
        def pick(tree):
            return None if tree is None else jax.tree.map(lambda x: x[i], tree)

        at = int(self.diverged_at[i])
        state = pick(self.state)
        model = None
        if isinstance(state.model_state, _modules.CARRIED):  # a new module, run i's
            model = _modules.merge(state.params, state.model_state)
        return FitResult(
            params=pick(self.params),
            opt_state=pick(self.opt_state),
            state=state,
            model=model,
            losses=self.losses[i],
            grad_norms=pick(self.grad_norms),
            diverged=bool(self.diverged[i]),
            diverged_at=None if at < 0 else at,
            divergence=self.divergence[i],
            params_history=pick(self.params_history),
            steps=self.steps,
            first_step=0,
            initial_loss=float(self.initial_loss[i]),
            final_loss=float(self.final_loss[i]),
            compile_time=self.compile_time,
            run_time=self.run_time,
            sharpness=None if self.sharpness is None else self.sharpness.pick(i),
            noise_scale=None if self.noise_scale is None else self.noise_scale.pick(i),
            columns=pick(self.columns),
        )


def sweep_result(
    runs, state, metrics, stops, losses, config, compile_time, run_time
) -> SweepResult:
    """The ``SweepResult`` of runs ``(learning rate, seed)``: final states and metrics stacked."""
    window = config.plan.steps_per_epoch
    initial, final = losses
    verdicts = [
        verdict(metrics["loss"][i], s, window, float(initial[i]), float(final[i]))
        for i, s in enumerate(stops)
    ]
    history = None
    if "params" in metrics:
        history = jax.tree.map(
            lambda h, p: np.concatenate([h, np.asarray(p)[:, None]], axis=1),
            metrics["params"],
            state.params,
        )
    return SweepResult(
        learning_rate=[r.learning_rate for r in runs],
        seed=[r.seed for r in runs],
        grid=[r.values for r in runs],
        params=state.params,
        opt_state=state.opt_state,
        state=state,
        losses=metrics["loss"],
        grad_norms=metrics.get("grad_norm"),
        diverged=np.array([v[0] for v in verdicts]),
        diverged_at=np.array([-1 if v[1] is None else v[1] for v in verdicts]),
        divergence=[v[2] for v in verdicts],
        params_history=history,
        steps=config.plan.steps,
        initial_loss=np.asarray(initial),
        final_loss=np.asarray(final),
        compile_time=compile_time,
        run_time=run_time,
        sharpness=series(metrics, config.recorders, Sharpness),
        noise_scale=series(metrics, config.recorders, NoiseScale),
        columns=metrics,
    )


def _keys(x: Any) -> bool:
    """Whether ``x`` holds typed PRNG keys (a module's RNG streams), which NumPy cannot hold."""
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def concatenate(results: list[SweepResult]) -> SweepResult:
    """Sweeps of one run length as one, runs in order (``sweep``'s groups of integer values)."""

    def cat(*xs):
        if xs[0] is None:
            return None

        def join(*a):
            return jnp.concatenate(a) if _keys(a[0]) else np.concatenate(a)

        return jax.tree.map(join, *xs)

    def series_of(name):
        found = [getattr(r, name) for r in results]
        if found[0] is None:
            return None
        its = None if found[0].iterations is None else cat(*[s.iterations for s in found])
        return Series(found[0].steps, cat(*[s.values for s in found]), its)

    first = results[0]
    fields = {}
    for f in dataclasses.fields(SweepResult):
        values = [getattr(r, f.name) for r in results]
        if f.name in ("sharpness", "noise_scale"):
            fields[f.name] = series_of(f.name)
        elif f.name in ("compile_time", "run_time"):
            fields[f.name] = sum(values)
        elif f.name == "steps":
            fields[f.name] = first.steps
        elif isinstance(values[0], list):
            fields[f.name] = [v for vs in values for v in vs]
        else:
            fields[f.name] = cat(*values)
    return SweepResult(**fields)
