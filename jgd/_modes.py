"""Forward or reverse for *this* function: a Jacobian by mode, and what each mode costs.

Forward mode builds a Jacobian of f: Rⁿ → Rᵐ from n jvps, reverse mode from m vjps, so the answer
hangs on n against m, and on what the function does. ``compare_modes`` measures instead of
guessing: each mode jitted, compiled and warmed up, its median time (``jgd.timing``) and the memory
XLA's compiled program allocates (``memory_analysis()``: temporaries and outputs; the arguments are
the same for every mode), and a verdict. ``check_grads(timing=True)`` reports the same columns for
the gradient modes of a scalar loss. ``flops`` counts the work itself, as XLA does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _errors, _timing

JACOBIAN_MODES = ("forward", "reverse")


def jacobian(f: Callable, mode: str = "reverse", *, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian of ``f`` by forward mode (``jax.jacfwd``) or reverse mode (``jax.jacrev``).

    Both give the same matrix; they differ in cost: n jvps against m vjps for f: Rⁿ → Rᵐ.
    ``jgd.compare_modes`` measures which is cheaper for a given function.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> f = lambda x: jnp.stack([x[0] * x[1], jnp.sin(x[0])])
      >>> jgd.jacobian(f, "forward")(jnp.array([0.0, 2.0])).tolist()
      [[2.0, 0.0], [1.0, 0.0]]
    """
    _errors.one_of("mode", mode, JACOBIAN_MODES)
    if not callable(f):
        raise TypeError(f"f={_errors.describe(f)} is not callable; expected f(x) -> array.")
    return (jax.jacfwd if mode == "forward" else jax.jacrev)(f, argnums=argnums)


_CANNOT = (  # what JAX says when a function cannot be differentiated in a mode
    "can't apply forward-mode autodiff",
    "Reverse-mode differentiation does not work",
    "Differentiation rule for",
    "not implemented",
)


def cannot_run(error: Exception) -> str | None:
    """The reason a mode cannot differentiate a function (JAX's first line), when ``error`` is
    JAX refusing the mode (a ``custom_vjp`` under forward mode, a ``while_loop`` under reverse
    mode, a primitive without the rule); None for any other error."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, TypeError | ValueError | NotImplementedError) and any(
        c in text for c in _CANNOT
    ):
        return text[:200]
    return None


class ModeCost(NamedTuple):
    """One mode's measured cost, a row of a ``ModeComparison``.

    Attributes:
      mode: the mode measured.
      seconds: the median time of one jitted call (NaN where the mode cannot run).
      memory_bytes: XLA's compiled temporaries + outputs (``memory_analysis()``).
      skipped: why the mode cannot run on this function, or None.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> cost = jgd.compare_modes(jnp.sin, jnp.ones(3), repeats=3)["reverse"]
      >>> cost.mode, cost.seconds > 0, cost.memory_mib < 1, cost.skipped
      ('reverse', True, True, None)
    """

    mode: str
    seconds: float
    memory_bytes: int
    skipped: str | None = None

    @property
    def memory_mib(self) -> float:
        """``memory_bytes`` in MiB (2**20 bytes)."""
        return self.memory_bytes / 2**20


class ModeComparison(NamedTuple):
    """What ``compare_modes`` measured: a ``ModeCost`` per mode (``report["forward"]``), the
    fastest and a verdict; ``print(report)`` shows the table.

    Attributes:
      rows: a ``ModeCost`` per mode, in the order of ``modes=``.
      what: what was compared, e.g. ``"Jacobian of f: R^100 -> R^3"``.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> report = jgd.compare_modes(jnp.sin, jnp.ones(3), repeats=3)
      >>> report.what, [row.mode for row in report.rows], report.fastest in ("forward", "reverse")
      ('Jacobian of f: R^3 -> R^3', ['forward', 'reverse'], True)
      >>> print(report)
      Jacobian of f: R^3 -> R^3
      mode                      time    XLA memory
      forward ... MiB
      reverse ... MiB
      ... is the cheapest here: ...
    """

    rows: tuple[ModeCost, ...]
    what: str

    def __getitem__(self, mode):  # type: ignore[override]
        if isinstance(mode, str):
            return next(r for r in self.rows if r.mode == mode)
        return tuple.__getitem__(self, mode)

    @property
    def fastest(self) -> str:
        """The mode with the least time (``"none"`` when every mode was skipped)."""
        ran = [r for r in self.rows if r.skipped is None]
        return min(ran, key=lambda r: r.seconds).mode if ran else "none"

    @property
    def verdict(self) -> str:
        """The cheapest mode, how many times cheaper than the others, and their memory."""
        return verdict(self.rows)

    def __str__(self) -> str:
        lines = [self.what, f"{'mode':<18}{'time':>12}{'XLA memory':>14}"]
        for r in self.rows:
            if r.skipped is not None:
                lines.append(f"{r.mode:<18}skipped: {r.skipped}")
                continue
            lines.append(f"{r.mode:<18}{_ms(r.seconds):>12}{r.memory_mib:>10.2f} MiB")
        return "\n".join([*lines, self.verdict])


def compare_modes(
    f: Callable,
    *args: Any,
    modes: Sequence[str] = JACOBIAN_MODES,
    repeats: int = 7,
) -> ModeComparison:
    """Forward or reverse for the Jacobian of ``f`` at ``args``: time, XLA memory and a verdict.

    Args:
      f: any function of arrays (or pytrees) to an array or pytree; differentiated in its first
        argument.
      *args: where to evaluate it.
      modes: the Jacobian modes to compare (``"forward"``, ``"reverse"``); only these run. A
        mode JAX cannot apply to ``f`` (forward mode through a ``jax.custom_vjp``, reverse mode
        through a ``lax.while_loop``) is reported as skipped, with JAX's reason.
      repeats: timed calls per mode (the median is reported).

    Returns:
      A ``ModeComparison``: ``print(result)`` for the table and verdict, ``result.fastest``,
      ``result["forward"].seconds``, ``.memory_bytes``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> W = jnp.ones((500, 4))
      >>> report = jgd.compare_modes(lambda x: jnp.tanh(W @ x), jnp.ones(4))
      >>> report.what
      'Jacobian of f: R^4 -> R^500'
      >>> report["forward"].memory_bytes > 0
      True
    """
    if isinstance(modes, str):
        raise ValueError(f"modes={modes!r} is one string; pass a tuple, e.g. modes=({modes!r},).")
    for mode in modes:
        _errors.one_of("modes[...]", mode, JACOBIAN_MODES)
    if not modes:
        raise ValueError(f"modes={modes!r} is empty; give at least one of {JACOBIAN_MODES}.")
    repeats = _errors.positive_int("repeats", repeats)
    if not args:
        raise TypeError("compare_modes needs the point to evaluate at: compare_modes(f, x, ...).")
    _errors.float_params("the point (f's first argument)", args[0])
    out = jax.eval_shape(f, *args)
    if not all(jnp.issubdtype(leaf.dtype, jnp.inexact) for leaf in jax.tree_util.tree_leaves(out)):
        kinds = sorted({str(leaf.dtype) for leaf in jax.tree_util.tree_leaves(out)})
        raise TypeError(
            f"f returns {', '.join(kinds)} values; a Jacobian needs f to return floats (cast "
            "with .astype(jnp.float32) if the integers are meant as numbers)."
        )
    rows = tuple(_measure_or_skip(mode, jacobian(f, mode), args, repeats) for mode in modes)
    n = sum(np.size(x) for x in jax.tree_util.tree_leaves(args[0]))
    m = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(out))
    return ModeComparison(rows, f"Jacobian of f: R^{n} -> R^{m}")


def _measure_or_skip(mode: str, fn: Callable, args: tuple, repeats: int) -> ModeCost:
    try:
        jax.eval_shape(fn, *args)  # tracing is where JAX refuses a mode
    except Exception as e:
        reason = cannot_run(e)
        if reason is None:
            raise
        return ModeCost(mode, float("nan"), 0, reason)
    return measure(mode, jax.jit(fn), args, repeats)


def measure(mode: str, jitted: Any, args: tuple, repeats: int, **kwargs: Any) -> ModeCost:
    """Compiles ``jitted`` for ``args``, reads XLA's memory analysis, and times it warm."""
    compiled = jitted.lower(*args, **kwargs).compile()
    analysis = compiled.memory_analysis()
    memory = 0
    if analysis is not None:  # some backends do not report it
        memory = int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes)
    seconds = _timing.timeit(lambda: jitted(*args, **kwargs), repeats=repeats, warmup=1).median
    return ModeCost(mode, seconds, memory)


def flops(fn: Callable, *args: Any, **kwargs: Any) -> float:
    """XLA's FLOP count of ``fn`` at ``args``: ``cost_analysis()`` of the lowered program.

    A count of the work, free of timing noise and per-call overhead: ``fn`` is jitted and lowered,
    neither compiled nor run, so nothing is allocated. XLA counts a loop's body once, whatever its
    trip count: count a chunked gradient with its tangents in one chunk
    (``jgd.grad(loss, "forward", chunk_size=P)``).

    Args:
      fn: a jittable function.
      *args: where to evaluate it: arrays, pytrees of arrays, or shapes (``jax.ShapeDtypeStruct``).
      **kwargs: its keyword arguments, arrays too (e.g. ``key=`` of a ``forward_gradient``).

    Returns:
      The floating-point operations of one call, as XLA counts them.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> jgd.flops(lambda a, b: a @ b, jnp.ones((2, 3)), jnp.ones((3, 4)))  # 2 x 2 x 3 x 4
      48.0
    """
    analysis = jax.jit(fn).lower(*args, **kwargs).cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list | tuple) else analysis
    return float(analysis["flops"])


def verdict(rows: Sequence[ModeCost], estimates: Sequence[str] = ()) -> str:
    """The cheapest exact mode, how many times cheaper than each other one, and the memory.

    Modes in ``estimates`` (the forward gradient) are not exact: they are placed against the
    winner but cannot win.

    Examples:
      >>> rows = [ModeCost("forward", 0.1, 2**20), ModeCost("reverse", 1.2, 8 * 2**20)]
      >>> verdict(rows)
      'forward is the cheapest here: 12.0x cheaper than reverse (0.100 s; 1.00 vs 8.00 MiB).'
    """
    skipped = [r.mode for r in rows if getattr(r, "skipped", None) is not None]
    rows = [r for r in rows if r.mode not in skipped]
    note = f" ({', '.join(skipped)} cannot run here: skipped)" if skipped else ""
    exact = [r for r in rows if r.mode not in estimates]
    if len(exact) < 2:
        return f"one exact mode measured: nothing to compare{note}."
    best = min(exact, key=lambda r: r.seconds)
    others = sorted((r for r in exact if r is not best), key=lambda r: r.seconds)

    def ratio(r: ModeCost) -> float:
        return r.seconds / max(best.seconds, 1e-12)

    text = f"{best.mode} is the cheapest here: " + ", ".join(
        f"{ratio(r):.1f}x cheaper than {r.mode}" for r in others
    )
    text += f" ({_seconds(best.seconds)}; " + " vs ".join(
        f"{r.memory_mib:.2f}" for r in [best, *others]
    )
    text += " MiB)"
    for r in rows:
        if r.mode in estimates:
            text += f"; {r.mode} (an estimate) costs {ratio(r):.2f}x {best.mode}"
    return text + note + "."


def _seconds(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds >= 0.1 else _ms(seconds)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"
