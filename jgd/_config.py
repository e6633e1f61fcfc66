"""The arguments of a run, checked once at the boundary into a ``RunConfig``.

``fit`` and ``sweep`` pass every argument they share by name to ``configure``; each check lives in
one place (here, or in the lower module it belongs to), and nothing is traced before all passed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _batching, _errors, _guard, _optim, _parallel, _stream
from jgd._engine import Program
from jgd._instruments import NO_INSTRUMENTS, Instruments
from jgd._keys import as_key
from jgd._state import TrainState
from jgd._step import Step, make_step


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A run's arguments, checked and placed on the device.

    Attributes:
      step: the run's ``jgd.make_step`` step.
      optimizer: the optimizer, split into its static part and its numbers.
      plan: the batch plan (kind, examples, batch size, steps, steps per epoch).
      data: the data, on the device (placed for ``mesh``).
      order: the explicit index rows (int32, host), or None.
      key: the run's raw PRNG key (shuffles; forward-gradient tangents).
      state: the state the run starts from: fresh, or the ``TrainState`` given to continue.
      first_step: ``state.step`` on the host: the global step of the run's first update.
      guard: ``"full"`` or ``"loss"``; max_loss: a float or None.
      record_params, grad_norm: what is recorded besides the loss.
      mesh: a ``jax.sharding.Mesh`` or None.
      eval_rows: the examples the loss at a run's start and end is evaluated on (all of them,
        or a fixed sample of ``EVAL_EXAMPLES``), on the device.
      instruments: the sharpness and noise-scale records asked for (``_instruments``).
      probe_batch: the examples they measure on (the ``eval_rows``), on the device, or None.
    """

    step: Step
    optimizer: _optim.Optimizer
    plan: _batching.Plan
    data: Any
    order: np.ndarray | None
    key: jax.Array
    state: TrainState
    first_step: int
    guard: str
    max_loss: float | None
    record_params: bool
    grad_norm: bool
    mesh: Any
    eval_rows: Any
    stream: Any = None  # _stream.HostData: the data left on the host (``data``: the eval rows)
    instruments: Instruments = NO_INSTRUMENTS
    probe_batch: Any = None

    def program(self, chunk: int) -> Program:
        """The run's compiled-program description for chunks of ``chunk`` steps."""
        examples = self.plan.num_examples
        if self.stream is not None:  # the program gathers from one chunk's block of examples
            examples = chunk * self.plan.batch_size
        return Program(
            self.step,
            examples,
            self.plan.kind == "full",
            chunk,
            self.record_params,
            self.mesh,
            self.instruments,
        )


def configure(
    loss: Any,
    params: Any,
    data: Any,
    *,
    optimizer: Any,
    learning_rate: Any,
    batch_size: int | None,
    epochs: int,
    order: Any,
    key: Any,
    mode: str,
    chunk_size: int | None,
    step_size: float | None,
    num_tangents: int,
    tangent: str,
    record_params: bool,
    grad_norm: bool,
    guard: str,
    max_loss: float | None,
    mesh: Any,
    stream: bool = False,
    sharpness_every: int | None = None,
    noise_scale_every: int | None = None,
) -> RunConfig:
    """Checks every argument a run shares between ``fit`` and ``sweep`` (see ``jgd.fit``)."""
    _errors.one_of("guard", guard, _guard.GUARDS)
    _bool("record_params", record_params)
    step = make_step(
        loss,
        optimizer,
        mode,
        learning_rate=learning_rate,
        grad_norm=grad_norm,
        chunk_size=chunk_size,
        step_size=step_size,
        num_tangents=num_tangents,
        tangent=tangent,
    )
    spec = _optim.resolve(optimizer, learning_rate)
    given = params if isinstance(params, TrainState) else None
    _errors.float_params("params", given.params if given else params)
    _errors.finite_params("params", given.params if given else params)
    leaves = jax.tree_util.tree_leaves(given.params if given else params)
    _optim.check_representable(spec.hyperparams, jnp.result_type(*leaves))
    _optim.check_schedule_precision(learning_rate, jnp.result_type(*leaves))
    _bool("stream", stream)
    host = _stream.HostData(data) if stream else None
    m = host.m if host else _batching.num_examples(data)
    plan = _batching.make_plan(m, batch_size, epochs, order)
    if plan.kind == "full" and host is not None:  # full batch: the data goes to the device once
        host, data = None, jax.tree_util.tree_map(np.asarray, data)
    if host is None:
        _batching.check_finite(data)
    order_rows = _batching.check_order(order, m) if order is not None else None
    instruments = _instruments(sharpness_every, noise_scale_every, plan.steps, m)
    key = _run_key(key, given, plan, mode)
    if max_loss is not None:
        max_loss = _errors.positive_float("max_loss", max_loss)
    if mesh is not None:
        mesh = _parallel.auto(mesh)
        what = "batch_size" if plan.kind != "full" else "the number of examples (full batch)"
        _parallel.check_divisible(mesh, plan.batch_size, what)
    if host is None:
        data = jax.tree_util.tree_map(jnp.asarray, data)
    state = _continued(given, spec) if given else _fresh(params, spec, key)
    _errors.scalar_loss(loss, state.params, _batch_shape(data, plan))
    evaluated = eval_rows(m)
    if host is not None:  # on the device: the examples the start and end losses are taken on
        data = jax.tree_util.tree_map(jnp.asarray, host.read(evaluated))
        evaluated = np.arange(len(evaluated), dtype=np.int32)
    state, data = _place(state, data, plan, mesh)
    evaluated = jax.device_put(evaluated)
    probe_batch = _batching.gather(data, evaluated) if instruments.active else None
    return RunConfig(
        step=step,
        optimizer=spec,
        plan=plan,
        data=data,
        order=order_rows,
        key=state.key,
        state=state,
        first_step=int(state.step),
        guard=guard,
        max_loss=max_loss,
        record_params=record_params,
        grad_norm=grad_norm,
        mesh=mesh,
        eval_rows=evaluated,
        stream=host,
        instruments=instruments,
        probe_batch=probe_batch,
    )


EVAL_EXAMPLES = 4096


def eval_rows(m: int) -> np.ndarray:
    """All ``m`` examples, or a fixed sample of ``EVAL_EXAMPLES`` of them (the same every run)."""
    if m <= EVAL_EXAMPLES:
        return np.arange(m, dtype=np.int32)
    rows = np.random.default_rng(0).choice(m, EVAL_EXAMPLES, replace=False)
    return np.sort(rows).astype(np.int32)


def _instruments(sharpness_every: Any, noise_scale_every: Any, steps: int, m: int) -> Instruments:
    """The instruments asked for, each every N steps with 1 <= N <= the run's steps."""
    given = {"sharpness_every": sharpness_every, "noise_scale_every": noise_scale_every}
    for name, every in given.items():
        if every is not None and _errors.positive_int(name, every) > steps:
            raise ValueError(
                f"{name}={every} is longer than the run ({steps} steps), so it would record "
                f"nothing; give an integer from 1 to {steps}."
            )
    if noise_scale_every is not None and m < 2:
        raise ValueError(
            f"noise_scale_every={noise_scale_every} needs at least 2 examples (the noise scale "
            f"is a variance across examples); data has {m}."
        )
    return Instruments(
        None if sharpness_every is None else int(sharpness_every),
        None if noise_scale_every is None else int(noise_scale_every),
    )


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}={_errors.describe(value)} is not valid; expected True or False.")


def _run_key(key: Any, given: TrainState | None, plan: _batching.Plan, mode: str) -> jax.Array:
    if given is not None:
        if key is not None:
            raise ValueError(
                f"key={_errors.describe(key)} was given with a TrainState to continue, which "
                "carries its own key (state.key); leave key=None."
            )
        return given.key
    if key is None and (plan.kind == "shuffle" or mode == "forward_gradient"):
        need = "shuffle the data" if plan.kind == "shuffle" else "draw forward-gradient tangents"
        raise ValueError(
            f"key=None, but this run needs a key to {need}; pass key=0 or key=jax.random.key(0)."
        )
    return as_key(0 if key is None else key)


def _fresh(params: Any, spec: _optim.Optimizer, key: jax.Array) -> TrainState:
    params = jax.tree_util.tree_map(jnp.asarray, params)
    opt_state = spec.transformation().init(params)
    return TrainState(params, opt_state, jnp.zeros((), jnp.int32), key)


def _continued(state: TrainState, spec: _optim.Optimizer) -> TrainState:
    """The given state, with the call's numbers for a factory optimizer (checked to fit it)."""
    params = jax.tree_util.tree_map(jnp.asarray, state.params)
    expected = jax.eval_shape(spec.transformation().init, params)
    if _layout(expected) != _layout(state.opt_state):
        raise ValueError(
            "params is a TrainState whose optimizer state was not made by "
            f"optimizer={spec.description}; continue a run with the optimizer it was made with."
        )
    opt_state = state.opt_state
    if isinstance(spec.static, _optim.Factory):
        numbers = _optim.as_arrays(spec.hyperparams, jnp.result_type(*jax.tree.leaves(params)))
        opt_state = opt_state._replace(hyperparams=numbers)
    step = jnp.asarray(state.step, jnp.int32)
    return TrainState(params, opt_state, step, as_key(jnp.asarray(state.key)))


def _layout(tree: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, [(np.shape(x), jnp.result_type(x)) for x in leaves]


def _place(state: TrainState, data: Any, plan: _batching.Plan, mesh: Any) -> tuple[Any, Any]:
    if mesh is None:
        return jax.device_put(state), jax.device_put(data)
    place = _parallel.put_by_examples if plan.kind == "full" else _parallel.put_replicated
    return _parallel.put_replicated(state, mesh), place(data, mesh)


def _batch_shape(data: Any, plan: _batching.Plan) -> Any:
    """Abstract shapes of one batch, for checking the loss without running it."""
    return jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((plan.batch_size, *a.shape[1:]), a.dtype), data
    )
