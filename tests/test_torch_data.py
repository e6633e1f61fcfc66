"""Torch tensors as data: every entry point that takes data reads a torch user's ``(X, y)``
tensors as the NumPy arrays they hold, and runs exactly what it runs on those arrays."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest

import jgd

torch = pytest.importorskip("torch")

rng = np.random.default_rng(0)
X = rng.normal(size=(48, 5)).astype(np.float32)
Y = rng.integers(0, 3, size=48)  # int64, as torch's class labels are
W = jnp.zeros((5, 3))


def loss(w, batch):
    x, y = batch
    logits = x.astype(jnp.float32) @ w
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def tensors():
    x = torch.from_numpy(X.copy()).requires_grad_()  # as a tensor from a torch pipeline can be
    return x, torch.from_numpy(Y.copy())


def _equal(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize(
    "kw",
    [
        {},  # full batch
        {"batch_size": 8, "epochs": 2, "key": 1},
        {"batch_size": 8, "epochs": 2, "key": 1, "stream": True},
    ],
    ids=["full-batch", "mini-batch", "streamed"],
)
def test_fit_on_tensors_is_fit_on_their_arrays(kw):
    data = tensors()
    got = jgd.fit(loss, W, data, optimizer=optax.sgd(0.5), **kw)
    want = jgd.fit(loss, W, (X, Y), optimizer=optax.sgd(0.5), **kw)
    np.testing.assert_array_equal(got.losses, want.losses)
    _equal(got.params, want.params)
    np.testing.assert_array_equal(data[0].detach().numpy(), X)  # the tensors are not changed


def test_sweep_and_a_with_data_loop_on_tensors_are_theirs_on_arrays():
    got = jgd.sweep(loss, W, tensors(), optimizer=optax.sgd, learning_rate=[0.1, 0.5])
    want = jgd.sweep(loss, W, (X, Y), optimizer=optax.sgd, learning_rate=[0.1, 0.5])
    np.testing.assert_array_equal(got.losses, want.losses)
    step = jgd.make_step(loss, optax.sgd(0.5))
    states = []
    for data in (tensors(), (X, Y)):
        bound = jgd.with_data(step, data)
        state = jgd.TrainState.create(W, optax.sgd(0.5))
        for rows in np.arange(48).reshape(6, 8):
            state, _ = bound(state, rows)
        states.append(state.params)
    _equal(*states)


def test_the_analysis_tools_on_tensors_are_theirs_on_arrays():
    w = jnp.full((5, 3), 0.1)
    v = jnp.ones((5, 3))
    for tool in (
        lambda d: jgd.hvp(loss, w, d, v),
        lambda d: jgd.max_stable_learning_rate(loss, w, d),
        lambda d: jgd.gradient_noise_scale(loss, w, d),
        lambda d: jgd.check_grads(loss, w, d, modes=("forward",))["forward"].relative_error,
    ):
        _equal(tool(tensors()), tool((X, Y)))


def test_bfloat16_and_bad_tensors():
    x16 = torch.from_numpy(X).to(torch.bfloat16)
    got = jgd.fit(loss, W, (x16, torch.from_numpy(Y)), optimizer=optax.sgd(0.5))
    want = jgd.fit(loss, W, (X.astype(ml_dtypes.bfloat16), Y), optimizer=optax.sgd(0.5))
    np.testing.assert_array_equal(got.losses, want.losses)
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"data\[0\] has a non-finite value .* in row 7"):
        jgd.fit(loss, W, (torch.from_numpy(bad), torch.from_numpy(Y)), optimizer=optax.sgd(0.5))
    with pytest.raises(ValueError, match=r"data\[0\] has a non-finite value .* in row 7"):
        jgd.gradient_noise_scale(loss, W, (torch.from_numpy(bad), torch.from_numpy(Y)))
    short = torch.from_numpy(Y[:40])
    with pytest.raises(ValueError, match=r"data\[0\]: 48, data\[1\]: 40"):
        jgd.fit(loss, W, (torch.from_numpy(X), short), optimizer=optax.sgd(0.5), batch_size=8)
    strings = np.array(["a"] * 48)
    with pytest.raises(ValueError, match=r"data\[1\] has dtype <U1"):
        jgd.with_data(jgd.make_step(loss, optax.sgd(0.5)), (torch.from_numpy(X), strings))


def test_the_torch_baseline_is_reached_from_import_jgd_without_importing_torch():
    code = (
        "import sys, jgd; jgd.torch_baseline.to_optax; jgd.torch_baseline.train; "
        "assert 'torch' not in sys.modules, 'import jgd imported torch'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
