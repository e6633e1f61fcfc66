"""The training step users compose: the gradient by any mode, then the optax update."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import optax

from jgd import _errors, _modules, _optim, _recorders, _tangents
from jgd._grad import MODES, ValueOf, value_and_grad
from jgd._state import TrainState

Loss = Callable[[Any, Any], jax.Array]
_TANGENTS = 0x7A6E  # the key stream of forward-gradient tangents, apart from the shuffles'


@dataclasses.dataclass(frozen=True)
class Step:
    """A pure ``step(state, batch) -> (state, metrics)``, as ``jgd.make_step`` returns it.

    A frozen dataclass: two steps made with the same arguments are equal, so they share one
    compiled program. See ``make_step`` for what it computes; ``metrics`` are the columns of its
    ``recorders`` (built-in ones without state: the loss, and the gradient's norm when asked).

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> loss = lambda w, batch: 0.5 * jnp.sum((w - batch) ** 2)
      >>> step = jgd.make_step(loss, optax.sgd, grad_norm=True)
      >>> step == jgd.make_step(loss, optax.sgd, grad_norm=True)  # one compiled program
      True
      >>> state = jgd.TrainState.create(jnp.zeros(2), optax.sgd, learning_rate=0.5)
      >>> state, metrics = step(state, jnp.array([2.0, 4.0]))
      >>> state.params.tolist(), sorted(metrics), round(float(metrics["grad_norm"]), 3)
      ([1.0, 2.0], ['grad_norm', 'loss'], 4.472)
    """

    loss: Loss
    optimizer: optax.GradientTransformation | _optim.Factory
    mode: str = "reverse"
    recorders: tuple = (_recorders.LOSS,)
    grad_options: tuple[tuple[str, Any], ...] = ()
    has_aux: bool = False

    @property
    def value_loss(self) -> Loss:
        """``loss(params, batch) -> scalar``: the loss's value alone (without its aux)."""
        return ValueOf(self.loss) if self.has_aux else self.loss

    def loss_at(self, state: TrainState) -> Loss:
        """``f(params, batch)`` as the user's loss returns it, at ``state``'s model state (a
        module's loss on a module merged from the params and that state)."""
        if isinstance(state.model_state, _modules.CARRIED):
            return _modules.user_form(self.loss, state.model_state, self.has_aux)
        return self.loss

    def evaluate(self, params: Any, model_state: Any, batch: Any) -> jax.Array:
        """The loss's value at ``params`` (and a module's ``model_state``), nothing written."""
        if isinstance(model_state, _modules.CARRIED):
            return _modules.form(self.loss, model_state, self.has_aux)(params, batch)[0]
        return self.value_loss(params, batch)

    def __call__(self, state: TrainState, batch: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        new, view = self.advance(state, batch)
        _, metrics = _recorders.update(self.recorders, tuple(() for _ in self.recorders), view)
        return new, metrics

    def advance(
        self, state: TrainState, batch: Any, context: _recorders.Context = _recorders.NO_CONTEXT
    ) -> tuple[TrainState, _recorders.View]:
        """One update: the state after it, and the ``jgd.View`` of what the step saw and did."""
        if not isinstance(state, TrainState):
            raise TypeError(
                f"state is a {type(state).__name__}; expected a jgd.TrainState, e.g. "
                "jgd.TrainState.create(params, optimizer)."
            )
        key = None
        if self.mode == "forward_gradient":  # a fresh key per step, the state's key unchanged
            key = jax.random.fold_in(jax.random.fold_in(state.key, _TANGENTS), state.step)
        options = dict(self.grad_options)
        model_state, loss_fn = state.model_state, self.value_loss
        if isinstance(model_state, _modules.CARRIED):  # loss(model, batch): the pure form
            pure = _modules.form(self.loss, model_state, self.has_aux)
            (value, (aux, model_state)), grads = value_and_grad(
                pure, self.mode, has_aux=True, **options
            )(state.params, batch, key=key)

            def loss_fn(params: Any, batch: Any) -> jax.Array:
                return pure(params, batch)[0]
        else:
            value_and_grad_fn = value_and_grad(
                self.loss, self.mode, has_aux=self.has_aux, **options
            )
            value, grads = value_and_grad_fn(state.params, batch, key=key)
            value, aux = value if self.has_aux else (value, ())
        transformation = _transformation(self.optimizer)
        updates, opt_state = transformation.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state._replace(
            params=params, opt_state=opt_state, step=state.step + 1, model_state=model_state
        )
        view = _recorders.View(
            step=state.step,
            key=state.key,
            loss_fn=loss_fn,
            batch=batch,
            context=context,
            loss=value,
            grads=grads,
            updates=updates,
            params=state.params,
            state=new,
            aux=aux,
        )
        return new, view

    def with_recorders(self, *recorders: Any) -> Step:
        """The same step, also reporting the columns of ``recorders`` (stateless built-ins)."""
        extra = tuple(r for r in recorders if r not in self.recorders)
        return dataclasses.replace(self, recorders=self.recorders + extra)


def make_step(
    loss: Loss,
    optimizer: Any,
    mode: str = "reverse",
    *,
    learning_rate: Any = None,
    grad_norm: bool = False,
    has_aux: bool = False,
    chunk_size: int | None = None,
    step_size: float | None = None,
    num_tangents: int = 1,
    tangent: str = _tangents.DEFAULT,
) -> Step:
    """A pure training step to compose: ``step(state, batch) -> (state, metrics)``.

    The step computes the batch loss and its gradient by ``mode`` at ``state.params``, and applies
    the optax update. It checks nothing: a non-finite loss or gradient gives a non-finite update,
    which is applied. ``jgd.fit`` guards a run (the first non-finite step ends it with the last
    finite params); in a loop of your own, ``grad_norm=True`` reports the gradient's norm, which is
    finite exactly when every gradient entry is, and ``jgd.guard`` runs blocks of steps with the
    same guard as ``fit``.

    Args:
      loss: ``loss(params, batch) -> scalar``, or ``-> (scalar, aux)`` with ``has_aux=True``.
      optimizer: an optax ``GradientTransformation`` (e.g. ``optax.adam(1e-3)``; its numbers are
        compiled in), or an optax factory (``optax.adam``, ``functools.partial(optax.sgd,
        momentum=0.9)``) whose numbers are read from the state at every step: the state made by
        ``jgd.TrainState.create(params, optax.adam, learning_rate=1e-3)`` decides them, and a step
        compiled once runs with any of them.
      mode: the gradient mode (see ``jgd.value_and_grad``).
      learning_rate: with a factory, optional here (the state holds the numbers); checked when
        given. With a transformation, None.
      grad_norm: also report the gradient's global norm, ``metrics["grad_norm"]``. It costs a pass
        over the gradient (at batch size 1 on the 784-128-10 MLP, more than the rest of the step).
      has_aux: the loss returns ``(value, aux)``, ``aux`` any pytree of arrays:
        ``metrics["aux"]`` holds it (at the params before the update).
      chunk_size: passed to ``jgd.value_and_grad``.
      step_size: passed to ``jgd.value_and_grad``.
      num_tangents: passed to ``jgd.value_and_grad``.
      tangent: passed to ``jgd.value_and_grad``.

    Returns:
      A ``Step``: ``step(state, batch) -> (state, metrics)``, pure and jittable; ``metrics`` holds
      the batch ``loss`` at the params before the update (and ``grad_norm`` when asked for).
      Equal arguments give equal steps, which share compiled programs.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jgd
      >>> loss = lambda w, batch: 0.5 * jnp.sum((w - batch) ** 2)
      >>> step = jax.jit(jgd.make_step(loss, optax.sgd(0.5)))
      >>> state = jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.5))
      >>> state, metrics = step(state, jnp.array([2.0, 4.0]))
      >>> state.params.tolist(), float(metrics["loss"])
      ([1.0, 2.0], 10.0)

      With a factory the learning rate is a value in the state: no recompilation for another.

      >>> step = jax.jit(jgd.make_step(loss, optax.sgd))
      >>> for lr in (0.5, 0.25):
      ...     state = jgd.TrainState.create(jnp.zeros(2), optax.sgd, learning_rate=lr)
      ...     print(step(state, jnp.array([2.0, 4.0]))[0].params.tolist())
      [1.0, 2.0]
      [0.5, 1.0]
    """
    if not callable(loss):
        raise TypeError(
            f"loss={_errors.describe(loss)} is not callable; expected loss(params, batch)."
        )
    _errors.one_of("mode", mode, MODES)
    if not isinstance(grad_norm, bool):
        raise TypeError(f"grad_norm={_errors.describe(grad_norm)} is not valid; expected a bool.")
    has_aux = _errors.boolean("has_aux", has_aux)
    options = {
        "chunk_size": chunk_size,
        "step_size": step_size,
        "num_tangents": num_tangents,
        "tangent": tangent,
    }
    value_and_grad(loss, mode, **options)  # checks the options
    spec = _optim.resolve(optimizer, learning_rate, need_rate=False)
    flags = ((has_aux, _recorders.AUX), (grad_norm, _recorders.GRAD_NORM))
    recorders = (_recorders.LOSS, *(r for on, r in flags if on))
    return Step(loss, spec.static, mode, recorders, tuple(sorted(options.items())), has_aux)


def _transformation(optimizer: optax.GradientTransformation | _optim.Factory):
    if isinstance(optimizer, _optim.Factory):
        return optimizer.transformation()
    return optimizer
