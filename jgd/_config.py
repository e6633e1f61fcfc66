"""A run's arguments, checked against each other and its data into a ``RunConfig``.

``fit`` and ``sweep`` check their options alone (``_options``) and pass them, with the loss,
params, data and optimizer, to ``configure``; each check lives in one place (here, or in the
lower module it belongs to), and nothing is traced before all passed.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import (
    _agree,
    _batching,
    _engine,
    _errors,
    _modules,
    _noise,
    _optim,
    _parallel,
    _plans,
    _rates,
    _recorders,
    _stream,
    _tensors,
)
from jgd._engine import Program
from jgd._keys import as_key
from jgd._options import RunOptions
from jgd._recorders import Context
from jgd._state import Carry, TrainState
from jgd._step import Step, make_step


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A run's arguments, checked and placed on the device.

    Attributes:
      step: the run's ``jgd.make_step`` step.
      optimizer: the optimizer, split into its static part and its numbers.
      plan: the batch plan (``_plans``).
      options: the run's ``RunOptions``.
      recorders: every recorder of the run (``RunOptions.run_recorders``).
      data: the data, on the device (placed for ``mesh``); streaming: the probe examples.
      key: the run's raw PRNG key (shuffles; forward-gradient tangents).
      state: the state the run starts from: fresh, or the ``TrainState`` given to continue.
      first_step: ``state.step`` on the host: the global step of the run's first update.
      mesh: a ``jax.sharding.Mesh`` or None.
      eval_rows: the examples the loss at a run's start and end is evaluated on (the probe's,
        or a fixed sample of them sized to the run: ``verdict_sample``), on the device.
      context: the recorders' ``Context`` (the probe examples, when a recorder reads them).
      stream: the data left on the host (``_stream.HostData``), or None.
    """

    step: Step
    optimizer: _optim.Optimizer
    plan: _plans.Plan
    options: RunOptions
    recorders: tuple
    data: Any
    key: jax.Array
    state: TrainState
    first_step: int
    mesh: Any
    eval_rows: Any
    context: Context
    stream: Any = None

    def program(self, chunk: int) -> Program:
        """The run's compiled-program description for chunks of ``chunk`` steps."""
        examples = self.plan.num_examples
        if self.stream is not None:  # the program gathers from one chunk's block of examples
            examples = chunk * self.plan.batch_size
        return Program(self.step, examples, self.plan.full_batch, chunk, self.recorders, self.mesh)

    def digest(self) -> str:
        """What the run computes, by the digest of its lowered program (``_engine.digest``),
        lowered for chunks of one step: how a run is cut into chunks changes nothing."""
        rows = None
        if not self.plan.full_batch:
            rows = jax.ShapeDtypeStruct((1, self.plan.batch_size), jnp.int32)
        return _engine.digest(self.program(1), self.data, self.carry(), rows, self.context)

    def carry(self) -> Carry:
        """The run's first carry: its state and its recorders' first states."""
        records = _recorders.init(self.recorders, self.state.params, self.context)
        return Carry.start(self.state, records)


def configure(
    loss: Any,
    params: Any,
    data: Any,
    *,
    optimizer: Any,
    learning_rate: Any,
    key: Any,
    mesh: Any,
    options: RunOptions,
    stream: bool = False,
) -> RunConfig:
    """Checks a run's arguments against each other and its data (see ``jgd.fit``); several
    processes first agree that they were given the same run (``_agree``)."""
    if jax.process_count() > 1:  # before any collective: one over unequal shapes aborts
        parts = _agree.arguments(loss, params, data, optimizer, learning_rate, key, options)
        _agree.agree("arguments", parts)
    kw = {"learning_rate": learning_rate, "has_aux": options.has_aux, **options.gradient()}
    step = make_step(loss, optimizer, options.mode, **kw)
    spec = _optim.resolve(optimizer, learning_rate)
    if not _modules.is_module(params):  # arrays on jax.make_mesh's Explicit axes: Auto labels
        params = _parallel.auto_arrays(params)
    given = params if isinstance(params, TrainState) else None
    model_state = ()
    if _modules.is_module(params):  # its nnx.Params are trained; the rest is the model state
        params, model_state = _modules.split(params)
    _errors.float_params("params", given.params if given else params)
    _errors.finite_params("params", given.params if given else params)
    leaves = jax.tree_util.tree_leaves(given.params if given else params)
    _optim.check_representable(spec.hyperparams, jnp.result_type(*leaves))
    _rates.check_schedule_precision(learning_rate, jnp.result_type(*leaves))
    host = _stream.HostData(data) if stream else None
    # streamed: torch tensors read by rows; in memory: as NumPy arrays, Explicit axes as Auto
    data = host.data if host is not None else _parallel.auto_arrays(_tensors.as_numpy(data))
    m = host.m if host else _batching.num_examples(data)
    plan = _plans.make(m, options.batch_size, options.epochs, options.order)
    if plan.full_batch and host is not None:  # full batch: the data goes to the device once
        host, data = None, host.read(np.arange(m))
    if host is None:
        _batching.check_finite(data)
    options.check_run(plan.steps, m)
    first = int(given.step) if given is not None else 0
    _rates.check_schedule_values(learning_rate, first, plan.steps)
    if isinstance(model_state, _modules.CARRIED) and key is not None:
        model_state = _modules.fold(model_state, as_key(key))  # each run its masks, one init
    key = _run_key(key, given, plan, options.mode)
    if mesh is not None:
        mesh = _parallel.auto(mesh)
        what = "the number of examples (full batch)" if plan.full_batch else "batch_size"
        _parallel.check_divisible(mesh, plan.batch_size, what)
    if host is None:
        data = jax.tree_util.tree_map(jnp.asarray, data)
    state = _continued(given, spec) if given else _fresh(params, spec, key, model_state)
    batch = _batch_shape(data, plan)
    _errors.scalar_loss(step.loss_at(state), state.params, batch, options.has_aux)
    probed = eval_rows(m)
    positions = verdict_sample(len(probed), plan)
    evaluated = probed[positions]
    if host is not None:  # on the device: the probe examples (the verdict's are among them)
        data = jax.tree_util.tree_map(jnp.asarray, host.read(probed))
        evaluated, probed = positions, np.arange(len(probed), dtype=np.int32)
    state, data = _place(state, data, plan, mesh)
    evaluated = jax.device_put(evaluated)
    if options.noise_scale_every is not None:
        _check_noise_premise(options.noise_scale_every, step, state, data, probed)
    recorders = options.run_recorders()
    context = Context()
    if _recorders.uses_context(recorders):
        context = _engine.probe(data, jax.device_put(probed))
    return RunConfig(
        step=step,
        optimizer=spec,
        plan=plan,
        options=options,
        recorders=recorders,
        data=data,
        key=state.key,
        state=state,
        first_step=int(state.step),
        mesh=mesh,
        eval_rows=evaluated,
        context=context,
        stream=host,
    )


EVAL_EXAMPLES = 4096
PREMISE_EXAMPLES = 64  # the noise scale's premise is the loss's form: a few examples show it


def _check_noise_premise(every: int, step: Step, state: TrainState, data: Any, rows: Any) -> None:
    """Before a run with ``noise_scale_every``: the loss is a mean of per-example losses (else
    every record would be a number without meaning), checked once on a few probe examples."""
    batch = _batching.gather(data, rows[:PREMISE_EXAMPLES])
    diff, scale = _premise(step, state.params, state.model_state, batch)
    what = f"noise_scale_every={every} was given, but loss={_errors.describe(step.loss)}"
    _noise.check_premise(what, diff, scale, state.params)


@functools.partial(jax.jit, static_argnums=0)
def _premise(step: Step, params: Any, model_state: Any, batch: Any) -> tuple:
    return _noise.premise(lambda p, b: step.evaluate(p, model_state, b), params, batch)


@functools.lru_cache(maxsize=64)
def eval_rows(m: int) -> np.ndarray:
    """The probe: all ``m`` examples, or a fixed sample of ``EVAL_EXAMPLES`` of them (the same
    every run), sorted; the instruments measure on it."""
    if m <= EVAL_EXAMPLES:
        return _frozen(np.arange(m, dtype=np.int32))
    rows = np.sort(np.random.default_rng(0).choice(m, EVAL_EXAMPLES, replace=False))
    return _frozen(rows.astype(np.int32))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # cached: shared by every run of as many examples
    return a


VERDICT_MIN, VERDICT_MAX = 256, 1024  # the probe examples a run's start and end losses see


def verdict_sample(probed: int, plan: _plans.Plan) -> np.ndarray:
    """Positions into a probe of ``probed`` examples that a run's start and end losses (its
    divergence verdict) are taken on: a quarter of the examples its steps see, from
    ``VERDICT_MIN`` to ``VERDICT_MAX`` (fixed, sorted): two evaluations cost at most half the
    run's own forward passes, and a doubled loss still stands out of its sampling noise.

    Examples:
      >>> from jgd import _plans
      >>> len(verdict_sample(4096, _plans.make(10_000, 1, 1, None)))  # 10,000 SGD steps
      1024
      >>> len(verdict_sample(4096, _plans.make(10_000, 1, 1, np.zeros((2000, 1), int))))
      500
    """
    seen = plan.steps * plan.batch_size // 4
    return _sample(probed, min(VERDICT_MAX, max(VERDICT_MIN, seen)))


@functools.lru_cache(maxsize=64)
def _sample(probed: int, wanted: int) -> np.ndarray:
    if wanted >= probed:
        return _frozen(np.arange(probed, dtype=np.int32))
    return _frozen(np.sort(np.random.default_rng(1).permutation(probed)[:wanted]).astype(np.int32))


def _run_key(key: Any, given: TrainState | None, plan: _plans.Plan, mode: str) -> jax.Array:
    if given is not None:
        if key is not None:
            raise ValueError(
                f"key={_errors.describe(key)} was given with a TrainState to continue, which "
                "carries its own key (state.key); leave key=None."
            )
        return given.key
    if key is None and (plan.keyed or mode == "forward_gradient"):
        need = "shuffle the data" if plan.keyed else "draw forward-gradient tangents"
        raise ValueError(
            f"key=None, but this run needs a key to {need}; pass key=0 or key=jax.random.key(0)."
        )
    return as_key(0 if key is None else key)


def _fresh(params: Any, spec: _optim.Optimizer, key: jax.Array, model_state: Any) -> TrainState:
    params = jax.tree_util.tree_map(jnp.asarray, params)
    opt_state = spec.transformation().init(params)
    return TrainState(params, opt_state, jnp.zeros((), jnp.int32), key, model_state)


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
    key = as_key(jnp.asarray(state.key))
    return TrainState(params, opt_state, step, key, state.model_state)


def _layout(tree: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, [(np.shape(x), jnp.result_type(x)) for x in leaves]


def _place(state: TrainState, data: Any, plan: _plans.Plan, mesh: Any) -> tuple[Any, Any]:
    if mesh is None:
        return jax.device_put(state), jax.device_put(data)
    place = _parallel.put_by_examples if plan.full_batch else _parallel.put_replicated
    return _parallel.put_replicated(state, mesh), place(data, mesh)


def _batch_shape(data: Any, plan: _plans.Plan) -> Any:
    """Abstract shapes of one batch, for checking the loss without running it."""
    return jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((plan.batch_size, *a.shape[1:]), a.dtype), data
    )
