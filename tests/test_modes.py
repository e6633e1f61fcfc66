"""Jacobians by mode, compare_modes and check_grads(timing=True): values, XLA memory, verdicts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgd


def wide(n, m, seed=0):
    W = jax.random.normal(jax.random.key(seed), (m, n)) / np.sqrt(n)
    return lambda x: jnp.tanh(W @ jnp.sin(x))


@pytest.mark.parametrize("n,m", [(3, 50), (50, 3), (7, 7)])
def test_jacobian_modes_agree_with_jax(n, m):
    f, x = wide(n, m), jnp.linspace(-1, 1, n)
    want = jax.jacrev(f)(x)
    for mode in ("forward", "reverse"):
        got = jgd.jacobian(f, mode)(x)
        assert got.shape == (m, n)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_compare_modes_reports_memory_that_follows_n_and_m():
    """XLA's compiled memory (deterministic, unlike time): the mode doing fewer passes holds
    fewer intermediates: forward for a tall Jacobian (n << m), reverse for a wide one."""
    tall = jgd.compare_modes(wide(4, 2000), jnp.ones(4), repeats=1)
    flat = jgd.compare_modes(wide(2000, 4), jnp.ones(2000), repeats=1)
    assert tall.what == "Jacobian of f: R^4 -> R^2000"
    assert tall["forward"].memory_bytes < tall["reverse"].memory_bytes
    assert flat["reverse"].memory_bytes < flat["forward"].memory_bytes
    for report in (tall, flat):
        assert all(r.seconds > 0 for r in report.rows)
        assert report.verdict.startswith(f"{report.fastest} is the cheapest here:")
        text = str(report)
        assert "XLA memory" in text and "MiB" in text and report.verdict in text


def test_compare_modes_takes_pytrees_and_several_arguments():
    f = lambda p, scale: {"y": scale * jnp.tanh(p["w"] @ p["x"])}  # noqa: E731
    p = {"w": jnp.ones((3, 2)), "x": jnp.ones(2)}
    report = jgd.compare_modes(f, p, 2.0, repeats=1)
    assert report.what == "Jacobian of f: R^8 -> R^3"


def test_check_grads_timing_has_memory_and_a_verdict():
    mlp = jgd.problems.mlp("digits", hidden=8)
    batch = tuple(jnp.asarray(a[:32]) for a in mlp.data)
    report = jgd.check_grads(mlp.loss, mlp.params, batch, timing=True, repeats=1)
    assert all(r.seconds > 0 and r.memory_bytes > 0 for r in report.rows)
    # the P basis jvps hold more than one backward pass (XLA's analysis, not timing)
    assert report["forward"].memory_bytes > report["reverse"].memory_bytes
    assert "is the cheapest here" in report.verdict
    assert "forward_gradient (an estimate) costs" in report.verdict
    assert report.verdict in str(report)
    untimed = jgd.check_grads(mlp.loss, mlp.params, batch, modes=("forward",))
    assert "timing=True" in untimed.verdict
    assert untimed["forward"].memory_bytes is None


def test_verdict_text():
    rows = [jgd.ModeCost("forward", 0.002, 2**20), jgd.ModeCost("reverse", 0.001, 3 * 2**20)]
    assert jgd._modes.verdict(rows) == (
        "reverse is the cheapest here: 2.0x cheaper than forward (1.000 ms; 3.00 vs 1.00 MiB)."
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: jgd.jacobian(jnp.sin, "sideways"), "mode"),
        (lambda: jgd.jacobian(3.0, "forward"), "f=.*not callable"),
        (lambda: jgd.compare_modes(jnp.sin, jnp.ones(2), modes="forward"), "one string"),
        (lambda: jgd.compare_modes(jnp.sin, jnp.ones(2), modes=("fd",)), "modes"),
        (lambda: jgd.compare_modes(jnp.sin), "point to evaluate"),
        (lambda: jgd.compare_modes(jnp.sin, jnp.ones(2), repeats=0), "repeats"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
