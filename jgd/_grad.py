"""Every way of computing a gradient, behind one signature.

``value_and_grad(loss, mode)`` returns ``f(params, batch, *, key=None) -> (value, grads)`` for each
of the ``MODES``, so they can be swapped, checked against each other (``check_grads``) and timed.

The P basis tangents and perturbations are evaluated leaf by leaf with ``jax.lax.map(...,
batch_size=chunk_size)``, ``chunk_size`` vmapped at a time, so memory stays bounded whatever P is.
The default chunk is ``min(32, 64 MiB / bytes per tangent)``, a tangent's bytes being the leaf and
every intermediate of one loss evaluation (from its jaxpr; an upper bound, XLA fuses most). On four
MLPs (P = 2,710 to 25,450, batch 64 and 256) chunks of 16 to 128 were fastest; 32 was within 1.4x
of the best on each and 1.0-1.1x on three; whole-leaf chunks ran 1.5-2.5x slower and took 42-512
MiB of XLA temporary memory (``benchmarks/README.md``, "Forward mode's chunk size").

JAX has no finite-difference or basis-jvp gradient (``jax.test_util`` checks random directions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _errors, _tangents
from jgd._keys import as_key

MODES = ("reverse", "forward", "forward_gradient", "fd_forward", "fd_central")
"""The gradient modes, the ``mode=`` of ``value_and_grad``, ``grad``, ``make_step`` and ``fit``:

- ``"reverse"``: ``jax.value_and_grad`` (backpropagation): one forward and one backward pass.
- ``"forward"``: the exact gradient from ``jax.jvp`` along every basis tangent, P passes.
- ``"forward_gradient"``: ``(∇f·v) v`` for a random tangent ``v`` with E[v vᵀ] = I (Baydin et al.
  2022), an unbiased estimate from one (or ``num_tangents``) jvps, ``v`` drawn as ``TANGENTS`` says.
- ``"fd_forward"`` / ``"fd_central"``: finite differences, P + 1 and 2P loss evaluations.

Examples:
  >>> import jgd
  >>> jgd.MODES
  ('reverse', 'forward', 'forward_gradient', 'fd_forward', 'fd_central')
"""
TANGENTS = _tangents.KINDS
"""The ``tangent=`` choices of mode ``forward_gradient``: ±1 entries (the default), per matrix the
outer product of two ±1 vectors, or normal entries. Each has E[v vᵀ] = I: the estimate is unbiased.

Examples:
  >>> import jgd
  >>> jgd.TANGENTS
  ('rademacher', 'rank_one', 'normal')
"""
_CHUNK = 32  # default tangents per vmap: the measured sweet spot (module docstring)
_CHUNK_BYTES = 64 * 2**20  # ... unless 32 tangents' intermediates would take more than this

Loss = Callable[[Any, Any], jax.Array]
GradFn = Callable[..., tuple[jax.Array, Any]]


def value_and_grad(
    loss: Loss,
    mode: str = "reverse",
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    step_size: float | None = None,
    num_tangents: int = 1,
    tangent: str = _tangents.DEFAULT,
) -> GradFn:
    """The loss and its gradient, computed by the chosen mode.

    Args:
      loss: ``loss(params, batch) -> scalar``.
      mode: one of ``"reverse"``, ``"forward"``, ``"forward_gradient"``, ``"fd_forward"``,
        ``"fd_central"``.
      has_aux: ``loss`` returns ``(value, aux)``, ``aux`` any pytree of arrays (as with
        ``jax.value_and_grad(..., has_aux=True)``): every mode differentiates the value and
        returns ``aux`` from the evaluation at ``params`` itself (never a perturbed one).
      chunk_size: how many basis tangents (``forward``), perturbations (finite differences) or
        random tangents (``forward_gradient``) are vmapped at once; any value >= 1 gives the same
        gradient. ``None``: per leaf 32, or fewer when their intermediates would exceed 64 MiB.
      step_size: the relative finite-difference step; the step for a parameter ``x`` is
        ``step_size * max(1, |x|)``. ``None`` uses ``eps ** (1/2)`` (``fd_forward``) or
        ``eps ** (1/3)`` (``fd_central``) of the parameter's dtype.
      num_tangents: random tangents averaged by ``forward_gradient``.
      tangent: how ``forward_gradient`` draws them, one of ``TANGENTS``: ``"rademacher"`` (the
        default: ±1 entries, 32 per random word, the measured cheapest), ``"rank_one"`` or
        ``"normal"``; the total variance is ``jgd.forward_gradient_variance(tangent, P, ‖g‖²)``.

    Returns:
      ``f(params, batch, *, key=None) -> (value, grads)``, jittable; ``grads`` has the tree
      structure and dtypes of ``params``. ``forward_gradient`` needs ``key``. With
      ``has_aux``: ``((value, aux), grads)``.

    Raises:
      ValueError: for an unknown mode or a chunk size, step size or tangent count out of range;
        ``f`` raises for a missing key, non-float params or a non-scalar loss.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> loss = lambda w, batch: 0.5 * jnp.sum((w - batch) ** 2)
      >>> f = jgd.value_and_grad(loss, mode="fd_central")
      >>> value, g = f(jnp.array([0.0, 1.0]), jnp.array([3.0, 3.0]))
      >>> float(value), [round(float(x), 3) for x in g]
      (6.5, [-3.0, -2.0])
    """
    _errors.one_of("mode", mode, MODES)
    has_aux = _errors.boolean("has_aux", has_aux)
    chunk_size = _errors.positive_int("chunk_size", chunk_size, allow_none=True)
    num_tangents = _errors.positive_int("num_tangents", num_tangents)
    _errors.one_of("tangent", tangent, TANGENTS)
    if step_size is not None:
        step_size = _errors.positive_float("step_size", step_size)
    compute = _MODE_FNS[mode]

    def value_and_grad_fn(params: Any, batch: Any, *, key: jax.Array | None = None):
        if mode == "forward_gradient" and key is None:
            raise ValueError(
                "mode='forward_gradient' draws random tangents and needs key=, e.g. "
                "key=jax.random.key(0); got key=None."
            )
        if key is not None and not isinstance(key, jax.core.Tracer):
            key = as_key(key)  # an int seed, as fit takes one
        _errors.float_params("params", params)
        if mode in ("fd_forward", "fd_central"):
            _errors.not_half("params", params, mode)
        _errors.scalar_loss(loss, params, batch, has_aux)
        options = _Options(chunk_size, step_size, num_tangents, tangent)
        if not has_aux:
            return compute(loss, params, batch, key, options)
        if mode == "reverse":
            return jax.value_and_grad(loss, has_aux=True)(params, batch)
        value, grads = compute(ValueOf(loss), params, batch, key, options)
        return (value, loss(params, batch)[1]), grads  # XLA computes the shared pass once

    value_and_grad_fn.__name__ = f"value_and_grad_{mode}"
    return value_and_grad_fn


@dataclasses.dataclass(frozen=True)
class ValueOf:
    """The value alone of a loss returning ``(value, aux)``; equal for equal losses."""

    loss: Loss

    def __call__(self, params: Any, batch: Any) -> jax.Array:
        return self.loss(params, batch)[0]


def grad(loss: Loss, mode: str = "reverse", **options: Any) -> Callable[..., Any]:
    """The gradient alone: ``value_and_grad(loss, mode, **options)`` without the value.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> g = jgd.grad(lambda w, b: jnp.sum(w**2 * b), mode="forward")
      >>> g(jnp.array([1.0, 2.0]), jnp.array([1.0, 10.0])).tolist()
      [2.0, 40.0]
    """
    fn = value_and_grad(loss, mode, **options)

    def grad_fn(params: Any, batch: Any, *, key: jax.Array | None = None) -> Any:
        out, grads = fn(params, batch, key=key)
        return (grads, out[1]) if options.get("has_aux") else grads

    grad_fn.__name__ = f"grad_{mode}"
    return grad_fn


def loss_evaluations(mode: str, num_params: int, num_tangents: int = 1) -> int:
    """Passes over the loss one gradient costs: forward + backward (2), jvps, or evaluations."""
    _errors.one_of("mode", mode, MODES)
    return {
        "reverse": 2,
        "forward": num_params + 1,
        "forward_gradient": num_tangents,
        "fd_forward": num_params + 1,
        "fd_central": 2 * num_params,
    }[mode]


class _Options(NamedTuple):
    chunk_size: int | None
    step_size: float | None
    num_tangents: int
    tangent: str = _tangents.DEFAULT


def _reverse(loss, params, batch, key, options):
    del key, options
    return jax.value_and_grad(loss)(params, batch)


def _chunk(options: _Options, leaf: jax.Array, g: Callable) -> int:
    if options.chunk_size is not None:
        return options.chunk_size
    per_tangent = (leaf.size + _intermediates(jax.make_jaxpr(g)(leaf).jaxpr)) * leaf.dtype.itemsize
    return int(max(1, min(leaf.size, _CHUNK, _CHUNK_BYTES // max(1, per_tangent))))


def _intermediates(jaxpr: Any) -> int:
    """Elements of every value one evaluation computes (nested jaxprs included)."""
    total = 0
    for eqn in jaxpr.eqns:
        total += sum(int(np.prod(getattr(v.aval, "shape", ()))) for v in eqn.outvars)
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                total += _intermediates(inner)
    return total


def _per_leaf(loss, params, batch, options, directional):
    """The gradient tree of ``directional(g, x, j)`` at every flat index ``j`` of every leaf ``x``:
    ``g(x)`` is the loss of that leaf alone (the others are constants: no tangent work on them)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    grads = []
    for i, leaf in enumerate(leaves):
        leaf = jnp.asarray(leaf)

        def g(x, i=i):  # jnp.asarray: a loss may return a Python number (a constant)
            swapped = jax.tree_util.tree_unflatten(treedef, [*leaves[:i], x, *leaves[i + 1 :]])
            return jnp.asarray(loss(swapped, batch))

        def one(j, g=g, leaf=leaf):
            return directional(g, leaf, j)

        d = jax.lax.map(one, jnp.arange(leaf.size), batch_size=_chunk(options, leaf, g))
        grads.append(d.reshape(leaf.shape).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, grads)


def _basis(leaf: jax.Array, j: jax.Array) -> jax.Array:
    return jnp.zeros(leaf.size, leaf.dtype).at[j].set(1).reshape(leaf.shape)


def _forward(loss, params, batch, key, options):
    del key

    def directional(g, leaf, j):
        return jax.jvp(g, (leaf,), (_basis(leaf, j),))[1]

    return jnp.asarray(loss(params, batch)), _per_leaf(loss, params, batch, options, directional)


def _fd_step(options: _Options, leaf: jax.Array, j: jax.Array, power: float) -> jax.Array:
    rel = options.step_size
    if rel is None:
        rel = float(np.finfo(leaf.dtype).eps) ** power
    x = leaf.reshape(-1)[j]
    return jnp.asarray(rel, leaf.dtype) * jnp.maximum(1, jnp.abs(x))


def _fd_forward(loss, params, batch, key, options):
    del key
    value = loss(params, batch)

    def directional(g, leaf, j):
        h = _fd_step(options, leaf, j, 1 / 2)
        up = leaf.reshape(-1).at[j].add(h)
        exact_h = up[j] - leaf.reshape(-1)[j]  # the step the dtype really took
        diff = g(up.reshape(leaf.shape)) - value
        return diff / exact_h.astype(diff.dtype)

    return value, _per_leaf(loss, params, batch, options, directional)


def _fd_central(loss, params, batch, key, options):
    del key

    def directional(g, leaf, j):
        h = _fd_step(options, leaf, j, 1 / 3)
        flat = leaf.reshape(-1)
        up, down = flat.at[j].add(h), flat.at[j].add(-h)
        diff = g(up.reshape(leaf.shape)) - g(down.reshape(leaf.shape))
        return diff / (up[j] - down[j]).astype(diff.dtype)

    return jnp.asarray(loss(params, batch)), _per_leaf(loss, params, batch, options, directional)


def _forward_gradient(loss, params, batch, key, options):
    def one(k):
        v = _tangents.draw(options.tangent, k, params)
        value, slope = jax.jvp(lambda p: loss(p, batch), (params,), (v,))
        return value, jax.tree_util.tree_map(lambda t: slope.astype(t.dtype) * t, v)

    keys = jax.random.split(key, options.num_tangents)
    if options.num_tangents == 1:  # no loop around a single jvp
        return one(keys[0])
    chunk = options.chunk_size or options.num_tangents
    values, estimates = jax.lax.map(one, keys, batch_size=min(chunk, options.num_tangents))
    return values[0], jax.tree_util.tree_map(lambda e: jnp.mean(e, axis=0), estimates)


_MODE_FNS = {
    "reverse": _reverse,
    "forward": _forward,
    "forward_gradient": _forward_gradient,
    "fd_forward": _fd_forward,
    "fd_central": _fd_central,
}
