"""Random tangents for the forward gradient: cheap to draw, each with E[v vᵀ] = I.

The forward gradient ``(∇f·v) v`` is unbiased for any random tangent ``v`` with E[v vᵀ] = I
(Baydin et al. 2022). Which ``v`` is drawn decides what a step costs and how noisy it is:

- ``"normal"``: i.i.d. N(0, 1) entries, the paper's choice. One threefry draw and a Box-Muller
  transform per parameter: on a CPU, drawing the 101,770 normals of the seeds' MLP costs twice its
  jvp. Total variance of one estimate: (P + 1)‖g‖².
- ``"rademacher"`` (the default): i.i.d. ±1 entries, 32 signs from each random 32-bit word
  (``jax.random.rademacher`` spends a whole word per sign, hence the few lines below). Total
  variance (P - 1)‖g‖², the least of any tangent with E[v vᵀ] = I and i.i.d. entries.
- ``"rank_one"``: for a leaf with axes of sizes n₁, ..., n_k, the outer product u₁ ⊗ ... ⊗ u_k of
  independent Rademacher vectors (one ±1 vector for a bias). E[v vᵀ] = I still holds (it is the
  Kronecker product of identities) and every entry is ±1, so the total variance is again
  (P - 1)‖g‖²; only n₁ + ... + n_k signs are drawn instead of n₁ ⋯ n_k, but its entries are
  correlated within a matrix.

The default is the measured cheapest: a ``jgd.fit`` step of the seeds' MLP at batch 64 costs
1.05-1.12x a reverse step with ``"rademacher"``, 1.4-1.5x with ``"rank_one"`` (the outer product
is rebuilt inside the jvp's fusions) and 3.4-5x with ``"normal"`` (``jgd bench fwdgrad``).

With ``num_tangents = k`` estimates averaged, the total variance is divided by k
(``total_variance``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

KINDS = ("rademacher", "rank_one", "normal")
DEFAULT = "rademacher"


def draw(kind: str, key: jax.Array, params: Any) -> Any:
    """A random tangent shaped like ``params``, of the given kind (see the module docstring)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, max(1, len(leaves)))
    one = _DRAW[kind]
    tangents = [
        one(k, jnp.shape(x), jnp.result_type(x)) for k, x in zip(keys, leaves, strict=False)
    ]
    return jax.tree_util.tree_unflatten(treedef, tangents)


def total_variance(kind: str, num_params: int, grad_sq_norm: float, num_tangents: int = 1) -> float:
    """E‖ĝ - g‖² of the forward gradient ``ĝ`` averaged over ``num_tangents`` tangents of ``kind``.

    ``num_params`` is P, ``grad_sq_norm`` is ‖g‖² of the true gradient.

    Examples:
      >>> import jgd
      >>> jgd.forward_gradient_variance("normal", 10, 2.0)
      22.0
      >>> jgd.forward_gradient_variance("rank_one", 10, 2.0, num_tangents=3)
      6.0
    """
    extra = 1 if kind == "normal" else -1
    return (num_params + extra) * grad_sq_norm / num_tangents


def _normal(key, shape, dtype):
    return jax.random.normal(key, shape, dtype)


def _signs(key, size: int, dtype) -> jax.Array:
    # 32 signs per random word: jax.random.rademacher draws a full 32-bit word for every sign,
    # three times the cost of the jvp it feeds on a CPU (measured in jgd bench fwdgrad).
    words = jax.random.bits(key, ((size + 31) // 32,), jnp.uint32)
    bits = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)) & 1
    return 1 - 2 * bits.reshape(-1)[:size].astype(dtype)


def _rademacher(key, shape, dtype):
    size = 1
    for n in shape:
        size *= n
    return _signs(key, size, dtype).reshape(shape)


def _rank_one(key, shape, dtype):
    if len(shape) <= 1:
        return _rademacher(key, shape, dtype)
    signs = _signs(key, sum(shape), dtype)
    tangent, start = None, 0
    for axis, n in enumerate(shape):
        u = signs[start : start + n].reshape([n if a == axis else 1 for a in range(len(shape))])
        tangent = u if tangent is None else tangent * u
        start += n
    return tangent


_DRAW = {"normal": _normal, "rademacher": _rademacher, "rank_one": _rank_one}
