"""A checkpoint folder belongs to the run that computes what it computed: the digest of the lowered
run program, of every row of the data, of the plan and the options. What a real script changes is
refused by name; a change that cannot alter any result resumes."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

rng = np.random.default_rng(0)
X = rng.normal(size=(64, 3)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)


def mse(w, batch):
    x, y = batch
    return jnp.mean((x @ w - y) ** 2)


def run(tmp_path, loss=mse, optimizer=None, data=(X, Y), **kw):
    options = dict(batch_size=8, epochs=2, key=0, checkpoint_dir=tmp_path, checkpoint_every=4)
    return jgd.fit(
        loss, jnp.zeros(3), data, optimizer=optimizer or optax.sgd(0.05), **{**options, **kw}
    )


REFUSED = "holds a run with other arguments .program: what the run computes differs"


def test_a_jitted_loss_whose_body_changed_is_another_run(tmp_path):
    run(tmp_path, loss=jax.jit(lambda w, b: mse(w, b)))
    with pytest.raises(ValueError, match=REFUSED):
        run(tmp_path, loss=jax.jit(lambda w, b: mse(w, b) + 0.1 * jnp.sum(w**2)))


class Model:
    def __init__(self, scale):
        self.scale = scale

    def loss(self, w, batch):
        return self.scale * mse(w, batch)


def test_a_bound_method_of_another_object_is_another_run(tmp_path):
    run(tmp_path, loss=Model(1.0).loss)
    with pytest.raises(ValueError, match=REFUSED):
        run(tmp_path, loss=Model(100.0).loss)


class Scaled:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, w, batch):
        return self.scale * mse(w, batch)


def test_a_callable_object_whose_attribute_changed_is_another_run(tmp_path):
    loss = Scaled(1.0)
    run(tmp_path, loss=loss)
    loss.scale = 3.0
    with pytest.raises(ValueError, match=REFUSED):
        run(tmp_path, loss=loss)


@dataclasses.dataclass
class Config:
    l2: float


def test_a_lambda_closing_over_a_changed_config_is_another_run(tmp_path):
    config = Config(0.0)

    def loss(w, b):
        return mse(w, b) + config.l2 * jnp.sum(w**2)

    run(tmp_path, loss=loss)
    config.l2 = 0.5
    with pytest.raises(ValueError, match=REFUSED):
        run(tmp_path, loss=loss)


def test_a_ready_optimizer_with_another_schedule_is_another_run(tmp_path):
    run(tmp_path, optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, 16)))
    with pytest.raises(ValueError, match=REFUSED):
        run(tmp_path, optimizer=optax.adam(optax.cosine_decay_schedule(1e-2, 16)))


def test_a_closed_over_array_is_part_of_the_program(tmp_path):
    target = np.zeros(3, np.float32)
    run(tmp_path, loss=lambda w, b: mse(w, b) + jnp.sum((w - target) ** 2))
    moved = target.copy()
    moved[1] = 1e-3
    with pytest.raises(ValueError, match=REFUSED):
        run(tmp_path, loss=lambda w, b: mse(w, b) + jnp.sum((w - moved) ** 2))


def test_streamed_data_changed_beyond_the_probe_rows_is_another_run(tmp_path):
    m = 5000  # more rows than the 4,096 the start and end losses are taken on
    Xs = np.random.default_rng(1).normal(size=(m, 3)).astype(np.float32)
    Ys = Xs @ np.array([1.0, -2.0, 0.5], np.float32)
    kw = dict(stream=True, batch_size=500, epochs=1)
    run(tmp_path, data=(Xs, Ys), **kw)
    rows = np.sort(np.random.default_rng(0).choice(m, 4096, replace=False))  # the probe rows
    outside = int(np.setdiff1d(np.arange(m), rows)[0])
    changed = Ys.copy()
    changed[outside] += 1.0
    with pytest.raises(ValueError, match="data: the data's values differ"):
        run(tmp_path, data=(Xs, changed), **kw)


class StopError(Exception):
    pass


def test_a_change_that_cannot_alter_the_result_resumes(tmp_path):
    def stop(progress):
        if progress.step >= 4:
            raise StopError

    with pytest.raises(StopError):
        run(tmp_path, report_every=4, callback=stop)

    def renamed_loss(params, examples):  # another name, other locals, a comment: the same sum
        inputs, targets = examples
        residual = inputs @ params - targets  # the error
        return jnp.mean(residual**2)

    seen = []  # reports every 2 steps now: other chunks, the same run
    resumed = run(
        tmp_path, loss=renamed_loss, report_every=2, callback=lambda p: seen.append(p.step)
    )
    assert seen[0] == 6  # resumed after step 4, not run again from step 0
    whole = jgd.fit(mse, jnp.zeros(3), (X, Y), optimizer=optax.sgd(0.05), batch_size=8,
                    epochs=2, key=0)  # fmt: skip
    np.testing.assert_array_equal(resumed.losses, whole.losses)
