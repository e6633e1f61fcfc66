"""``fit``: descent as one call. Its options are grouped and checked (``_options``), the run is
configured on its data (``_config``) and cut into chunks of steps (the whole run, or what reports
and checkpoints ask for) for ``_driver.Driver``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

from jgd import _agree, _config, _parallel, _result, _stream
from jgd._driver import Driver, Progress
from jgd._options import DriverOptions, RunOptions
from jgd._result import FitResult
from jgd._run_checkpoints import RunCheckpoints


@_parallel.on_mesh
def fit(
    loss: Callable[[Any, Any], jax.Array],
    params: Any,
    data: Any,
    *,
    optimizer: Any,
    learning_rate: Any = None,
    batch_size: int | None = None,
    epochs: int = 1,
    order: Any = None,
    key: Any = None,
    mode: str = "reverse",
    has_aux: bool = False,
    chunk_size: int | None = None,
    step_size: float | None = None,
    num_tangents: int = 1,
    tangent: str = "rademacher",
    record_params: bool = False,
    grad_norm: bool = False,
    update_norm: bool = False,
    recorders: Sequence[Any] | None = None,
    sharpness_every: int | None = None,
    noise_scale_every: int | None = None,
    guard: str = "full",
    max_loss: float | None = None,
    mesh: Any = None,
    stream: bool = False,
    on_divergence: str = "stop",
    progress: bool = False,
    report_every: int | str | None = None,
    callback: Callable[[Progress], None] | None = None,
    checkpoint_dir: Any = None,
    checkpoint_every: int | None = None,
) -> FitResult:
    """Runs gradient descent: full-batch, stochastic or mini-batch, compiled.

    Args:
      loss: ``loss(params, batch) -> scalar``, the mean loss over a batch; with
        ``has_aux=True``, ``-> (scalar, aux)``, ``aux`` any pytree of arrays, recorded per step
        in ``result.aux``.
      params: the initial parameters, a pytree of float arrays; or an ``nnx.Module`` with
        ``loss(model, batch)``: its ``nnx.Param``s are trained, its other variables (batch
        statistics, RNG state) carried and updated by each step's forward pass, dropout drawn
        from its own ``nnx.Rngs`` (``key`` given: folded into them), and ``result.model`` is
        the trained module (the one given is not changed); or a ``jgd.Stateful(params, state,
        key)``, the same as pure functions, with ``loss(params, batch, state, key) -> (value,
        new_state)``; or a ``TrainState`` (e.g.
        ``result.state``) to continue a run: its optimizer state, step (hence the schedule's
        position and the shuffle's epoch) and key are kept, so two calls equal one longer run.
      data: a pytree of arrays sharing a leading example axis, e.g. ``(X, y)``: NumPy or JAX
        arrays, or torch tensors (read as the NumPy arrays they hold). Put on the device once.
      optimizer: an optax factory such as ``optax.sgd``, ``optax.adam`` or
        ``functools.partial(optax.sgd, momentum=0.9)``, with ``learning_rate=`` (the numbers are
        values in the state: other values reuse the compiled program); or a ready optax
        ``GradientTransformation`` (its numbers are compiled in).
      learning_rate: a number > 0 or a schedule (``jgd.schedules`` or any optax schedule).
      batch_size: ``None`` for full-batch GD, ``1`` for SGD, ``k`` for mini-batches over a fresh
        permutation each epoch (``m % k`` examples left out per epoch when k does not divide m).
      epochs: passes over the data (full batch: the number of steps).
      order: an int array ``(steps, batch_size)`` of example indices, replayed exactly.
      key: an int seed or PRNG key; needed to shuffle and for ``forward_gradient``.
      mode: the gradient mode, see ``jgd.value_and_grad``; ``chunk_size``, ``step_size`` and
        ``num_tangents``, ``tangent`` are passed to it.
      record_params: keep the parameter trajectory in ``params_history``.
      grad_norm: record the gradient's norm in ``grad_norms`` (a pass over the gradient a step).
      update_norm: record the update's norm, ``‖new params - params‖``, in
        ``columns["update_norm"]`` (a pass over the update a step).
      recorders: your own ``jgd.Recorder``s: their columns come back in ``result.columns``
        (every recorder's do: ``"loss"``, ``"grad_norm"``, ``"sharpness"``, ...).
      sharpness_every: record the sharpness, the top eigenvalue of the loss's Hessian, at every
        global step that is a multiple of it (``result.sharpness``), inside the compiled run:
        power iteration on Hessian-vector products, warm-started from the previous record's
        eigenvector; measured on the run's probe: all the data, or a fixed sample of 4,096
        examples. Steps between records cost what they cost without it.
      noise_scale_every: record the simple gradient noise scale tr(Σ)/‖G‖² the same way
        (``result.noise_scale``; see ``jgd.gradient_noise_scale``): a pass of per-example
        gradients over those examples per record.
      guard: ``"full"``: the first step whose loss, gradient or update is not finite ends the
        run, with the last finite params and that step in ``diverged_at``, at no cost per step
        (a chunk that blew up is replayed from its start to find the step). ``"loss"``: the
        loss alone; a non-finite gradient under a finite loss is caught a step later, with the
        params of that step.
      max_loss: a loss above this ends the run like a non-finite one.
      mesh: a ``jax.sharding.Mesh`` (e.g. ``jgd.data_mesh()``): data-parallel descent, each batch
        split by examples over the mesh's ``"data"`` axis (or its first axis), params and
        optimizer state replicated, the gradient all-reduced by XLA. The batch size (for full
        batch: the number of examples) must be divisible by the number of devices on that axis.
      on_divergence: ``"stop"`` (return, flagged) or ``"raise"`` (``jgd.DivergenceError``).
      progress: show a progress bar with the current loss (updated at every report).
      report_every: steps between reports (``callback`` and progress bar), or ``"epoch"``.
        Default: about 1% of the run when there is a callback or a progress bar.
      callback: ``callback(progress)`` on the host at every report, with a ``jgd.Progress``
        (step, loss, the losses since the last report with their steps, the state). Raising in
        it stops the run; the checkpoints stay.
      checkpoint_dir: save the run there every ``checkpoint_every`` steps with orbax, and resume
        from the newest checkpoint when called again with the same arguments.
      checkpoint_every: steps between checkpoints.
      stream: keep ``data`` on the host (a NumPy memmap, or any array with ``shape``, ``dtype``
        and integer-array indexing, larger than memory) and move each chunk's batches to the
        device ahead of the compute (the next chunk is read while this one runs); the result
        equals the in-memory run. Full-batch descent puts the data on the device once, as
        without it.

    Returns:
      A ``FitResult``.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2  # its minimum: w = 3
      >>> result = jgd.fit(bowl, jnp.array(-2.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                  learning_rate=0.3, epochs=15)
      >>> round(float(result.params), 4)
      2.9763

      Continuing from the state gives what one longer run gives:

      >>> more = jgd.fit(bowl, result.state, jnp.zeros(1), optimizer=optax.sgd,
      ...                learning_rate=0.3, epochs=5)
      >>> more.first_step, round(float(more.params), 4)
      (15, 2.996)
    """
    run = RunOptions(
        batch_size=batch_size,
        epochs=epochs,
        order=order,
        mode=mode,
        has_aux=has_aux,
        chunk_size=chunk_size,
        step_size=step_size,
        num_tangents=num_tangents,
        tangent=tangent,
        record_params=record_params,
        grad_norm=grad_norm,
        update_norm=update_norm,
        sharpness_every=sharpness_every,
        noise_scale_every=noise_scale_every,
        recorders=recorders,
        guard=guard,
        max_loss=max_loss,
    )
    driver = DriverOptions(
        progress=progress,
        report_every=report_every,
        callback=callback,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        stream=stream,
        on_divergence=on_divergence,
    )
    config = _config.configure(
        loss,
        params,
        data,
        optimizer=optimizer,
        learning_rate=learning_rate,
        key=key,
        mesh=mesh,
        options=run,
        stream=stream,
    )
    plan = config.plan
    if jax.process_count() > 1:  # the same program in every process, before the first step
        _agree.agree("program", {"program": config.digest()})
    chunk, every = driver.schedule(plan.steps, plan.steps_per_epoch)
    if config.stream is not None:  # a chunk's block of examples stays under BLOCK_BYTES
        chunk = _stream.chunk_length(chunk, plan.batch_size, config.stream.row_bytes)
    if report_every is None:
        every = chunk  # by default a report closes every chunk (about 1% of the run)
    checkpoints = None
    if checkpoint_dir is not None:
        checkpoints = RunCheckpoints(checkpoint_dir, config, driver.checkpoint_every)
    result = Driver(config, driver, chunk, every, checkpoints).run()
    if result.diverged and on_divergence == "raise":
        raise _result.divergence_error(
            result,
            config.optimizer.description,
            config.step.value_loss,
            config.state.params,
            config.data,
            plan,
        )
    return result
