"""``jgd bench ad``: what one gradient costs by each mode against P, beside ``torch.func``, and
the Jacobian crossover (forward against reverse as n and m vary) for both libraries.

Every call is timed jitted (jgd; its gradients by ``jgd.check_grads(timing=True)``, with XLA's
memory) or eager (PyTorch), warm, blocked, as the median of several. A gradient's cost is counted
two ways:

- time: seconds divided by the compute time of one forward pass (a 16x larger batch, divided by
  16: a single batch-64 pass is mostly per-call overhead). A slope is fitted on log-log axes only
  over the points where the measured per-call overhead (a jitted no-op on the same arguments) is
  under 10% of both the gradient's time and the unit's;
- FLOPs: XLA's count (``jgd.flops``: ``cost_analysis()`` of the lowered program, tangents
  unchunked so no loop hides its trip count) divided by a forward pass's. It has no overhead and
  no cache effects.

``--function MODULE:NAME --input-shape N[,M...]`` compares forward and reverse mode on your own
function instead (``jgd.compare_modes``): time, XLA memory and a verdict.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jgd
from jgd.bench import _ad_report, _ad_torch, _ad_user
from jgd.bench import _harness as hn

THEORY = {"reverse": 0, "forward": 1, "forward_gradient": 0, "fd_forward": 1, "fd_central": 1}
HEAVY = ("forward", "fd_forward", "fd_central")


def _problem(hidden: int, batch: int = 64):
    mlp = jgd.problems.mlp("synthetic", hidden=hidden, examples=batch)
    return mlp.loss, mlp.params, jax.device_put(tuple(mlp.data))


def _units(loss, params, batch) -> dict[str, float]:
    """A forward pass: its compute time (marginal), its FLOPs, and the per-call overhead."""
    forward = jax.jit(loss)
    big = jax.tree_util.tree_map(lambda a: jnp.concatenate([a] * 16), batch)
    noop = jax.jit(lambda p, b: jax.tree_util.tree_leaves(p)[0].ravel()[0])
    return {
        "forward_seconds": hn.timeit(lambda: forward(params, batch), repeats=21).median,
        "marginal_seconds": hn.timeit(lambda: forward(params, big), repeats=11).median / 16,
        "marginal_overhead": hn.timeit(lambda: noop(params, big), repeats=21).median,
        "overhead_seconds": hn.timeit(lambda: noop(params, batch), repeats=21).median,
        "forward_flops": jgd.flops(loss, params, batch),
    }


def gradient_costs(hidden_all: list[int], hidden_p_modes: list[int], torch: bool) -> list[dict]:
    """One row per (width, mode): seconds, XLA memory, cost in forward passes by time and FLOPs."""
    rows = []
    for hidden in hidden_all:
        loss, params, batch = _problem(hidden)
        P = sum(x.size for x in jax.tree_util.tree_leaves(params))
        unit = _units(loss, params, batch)
        for mode in jgd.MODES:
            if mode in HEAVY and hidden not in hidden_p_modes:
                continue
            key = jax.random.key(0)
            repeats = 3 if mode in HEAVY else 21
            cost = jgd.check_grads(
                loss, params, batch, modes=(mode,), key=key, timing=True, repeats=repeats
            )[mode]
            whole = jgd.grad(loss, mode, chunk_size=P)  # one vmap: XLA counts every tangent
            flops = jgd.flops(whole, params, batch, key=key)
            rows.append(
                _row(hidden, P, mode, cost.seconds, unit, memory=cost.memory_bytes, flops=flops)
            )
        if torch:
            for name, t in _ad_torch.mlp_gradients(params, batch, repeats=21).items():
                rows.append(_row(hidden, P, name, t.median, unit))
    return rows


def _row(hidden, P, mode, seconds, unit, memory=None, flops=None) -> dict[str, Any]:
    overhead = max(
        unit["overhead_seconds"] / seconds,
        unit["marginal_overhead"] / (16 * unit["marginal_seconds"]),
    )
    row = {
        "hidden": hidden,
        "P": int(P),
        "mode": mode,
        "seconds": seconds,
        "xla_memory_bytes": memory,
        **unit,
        "cost_in_forward_passes": seconds / unit["forward_seconds"],
        "cost_in_marginal_passes": seconds / unit["marginal_seconds"],
        "overhead_fraction": overhead,
        "cost_in_flops": None if flops is None else flops / unit["forward_flops"],
    }
    hn.say(
        f"  P={P:>8,} {mode:<32} {seconds * 1e3:10.3f} ms = "
        f"{row['cost_in_marginal_passes']:10.1f} passes"
        + ("" if flops is None else f" ({row['cost_in_flops']:.1f} by FLOPs)")
    )
    return row


def slopes(costs: list[dict]) -> dict[str, dict[str, Any]]:
    """Per mode: the time slope over the overhead-free points, and the FLOP slope."""
    out = {}
    for mode in jgd.MODES:
        mine = [r for r in costs if r["mode"] == mode]
        clean = [r for r in mine if r["overhead_fraction"] < 0.10]
        time = (
            hn.slope(*zip(*[(r["P"], r["cost_in_marginal_passes"]) for r in clean], strict=True))
            if len(clean) > 1
            else None
        )
        flop = (
            hn.slope(*zip(*[(r["P"], r["cost_in_flops"]) for r in mine], strict=True))
            if len(mine) > 1
            else None
        )
        out[mode] = {"time": time, "time_points": len(clean), "flops": flop, "theory": THEORY[mode]}
    return out


def jacobian_crossover(sizes: list[int], torch: bool, fixed: int = 64, width: int = 256) -> list:
    """jacfwd vs jacrev for f: R^n -> R^m, f(x) = tanh(W2 tanh(W1 x)), in JAX and PyTorch."""
    rows = []
    for vary in ("n", "m"):
        for size in sizes:
            n, m = (size, fixed) if vary == "n" else (fixed, size)
            # drawn by NumPy: an eager jax.random draw compiles a program per shape (~0.3 s)
            rng = np.random.default_rng(1)
            W1 = jnp.asarray(rng.normal(size=(width, n)) / np.sqrt(n), jnp.float32)
            W2 = jnp.asarray(rng.normal(size=(m, width)) / np.sqrt(width), jnp.float32)
            x = jnp.asarray(rng.normal(size=n), jnp.float32)
            report = jgd.compare_modes(
                lambda x, W1=W1, W2=W2: jnp.tanh(W2 @ jnp.tanh(W1 @ x)), x, repeats=21
            )
            row = {
                "vary": vary,
                "n": n,
                "m": m,
                "jax jacfwd": report["forward"].seconds,
                "jax jacrev": report["reverse"].seconds,
            }
            if torch:
                row.update(_ad_torch.jacobians(W1, W2, x, repeats=21))
            rows.append(row)
            hn.say(
                f"  n={n:>5} m={m:>5} "
                + " ".join(
                    f"{k} {v * 1e3:.3f} ms"
                    for k, v in row.items()
                    if k.endswith(("jacfwd", "jacrev"))
                )
            )
    return rows


def run(
    quick: bool,
    out: str,
    tiny: bool = False,
    function: str | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    if function is not None:
        return _ad_user.run(function, input_shape, out)
    hidden_all = [8, 16, 32] if quick else [8, 16, 32, 64, 128, 512]
    hidden_p = [8, 16] if quick else [8, 16, 32, 64]
    if tiny:
        hidden_all = hidden_p = [1, 2]
    torch = importlib.util.find_spec("torch") is not None
    hn.say(
        "gradient cost per mode (MLP 784-h-10, batch 64)"
        + (", with torch.func" if torch else ", torch not installed")
    )
    costs = gradient_costs(hidden_all, hidden_p, torch)
    fitted = slopes(costs)
    hn.say(
        "Jacobian of tanh(W2 tanh(W1 x)): forward vs reverse, JAX"
        + (" and PyTorch" if torch else "")
    )
    jac = jacobian_crossover(
        [4, 16] if tiny else [4, 16, 64, 256] if quick else [4, 16, 64, 256, 1024], torch
    )
    table = _ad_report.table(costs, fitted, jac)
    print(table)
    results = {"quick": quick, "gradient_costs": costs, "slopes": fitted, "jacobian": jac}
    files = hn.write(out, "ad", results, table, _ad_report.figures(costs, jac))
    print("written:", ", ".join(str(f) for f in files))
    return results
