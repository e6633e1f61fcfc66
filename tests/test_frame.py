"""The frame the run is built on: one typed carry, recorders, typed batch plans, option objects."""

from __future__ import annotations

import dataclasses
import inspect
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

LINE = jgd.per_example(lambda w, ex: 0.5 * (ex[0] @ w - ex[1]) ** 2)
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 3)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=64)).astype(np.float32)


def fit(**kwargs):
    call = dict(optimizer=optax.sgd, learning_rate=0.05, batch_size=8, epochs=3, key=0)
    call.update(kwargs)
    return jgd.fit(LINE, jnp.zeros(3), (X, Y), **call)


def running_max():
    """A recorder with state: the largest batch loss so far."""

    def update(best, view):
        best = jnp.maximum(best, view.loss)
        return best, {"max_loss_so_far": best}

    return jgd.Recorder(lambda params, context: jnp.asarray(-jnp.inf, jnp.float32), update)


def test_update_norm_is_the_norm_of_each_params_step():
    result = fit(update_norm=True, record_params=True, grad_norm=True)
    steps = np.diff(result.params_history, axis=0)
    np.testing.assert_allclose(
        result.columns["update_norm"], np.linalg.norm(steps, axis=1), rtol=1e-5
    )
    # plain SGD: the update is -lr times the gradient
    np.testing.assert_allclose(result.columns["update_norm"], 0.05 * result.grad_norms, rtol=1e-5)
    np.testing.assert_array_equal(result.columns["loss"], result.losses)
    assert set(result.columns) == {"loss", "grad_norm", "update_norm", "params"}
    assert "update_norm" not in fit().columns  # off: not computed, not there


def test_a_recorder_with_state_is_carried_across_chunks_and_a_resume(tmp_path):
    whole = fit(recorders=[running_max()])
    expected = np.maximum.accumulate(whole.losses)
    np.testing.assert_array_equal(whole.columns["max_loss_so_far"], expected)
    chunked = fit(recorders=[running_max()], report_every=5, callback=lambda p: None)
    np.testing.assert_array_equal(chunked.columns["max_loss_so_far"], expected)

    def stop_early(progress):
        if progress.step >= 12:
            raise KeyboardInterrupt

    folder = tmp_path / "run"
    kwargs = dict(recorders=[running_max()], checkpoint_dir=folder, checkpoint_every=4)
    with pytest.raises(KeyboardInterrupt):
        fit(**kwargs, report_every=4, callback=stop_early)
    resumed = fit(**kwargs)
    np.testing.assert_array_equal(resumed.columns["max_loss_so_far"], expected)
    np.testing.assert_array_equal(resumed.params, whole.params)


def test_sweep_records_each_runs_columns_as_fit_does():
    swept = jgd.sweep(
        LINE, jnp.zeros(3), (X, Y), optimizer=optax.sgd, learning_rate=[0.01, 0.05],
        batch_size=8, epochs=3, seeds=[0], recorders=[running_max()], update_norm=True,
    )  # fmt: skip
    assert swept.columns["max_loss_so_far"].shape == (2, 24)
    for i, lr in enumerate((0.01, 0.05)):
        alone = fit(learning_rate=lr, recorders=[running_max()], update_norm=True)
        for name in ("max_loss_so_far", "update_norm"):
            np.testing.assert_allclose(swept[i].columns[name], alone.columns[name], rtol=1e-6)


@pytest.mark.parametrize(
    "recorders,error,match",
    [
        ("loss", TypeError, "recorders='loss'"),
        ([object()], TypeError, r"recorders\[0\]="),
        ([jgd.Recorder(lambda p, c: (), lambda s, v: (s, {}), every=0)], ValueError, "every=0"),
        ([jgd.Recorder(lambda p, c: (), lambda s, v: (s, {}), every=99)], ValueError, "99"),
        (
            [jgd.Recorder(lambda p, c: (), lambda s, v: (s, {"loss": v.loss}))],
            ValueError,
            "column 'loss'",
        ),
    ],
)
def test_bad_recorders_are_named(recorders, error, match):
    with pytest.raises(error, match=match):
        fit(recorders=recorders)


def test_a_checkpoint_of_another_format_is_refused_naming_its_format(tmp_path):
    fit(checkpoint_dir=tmp_path, checkpoint_every=8)
    marker = pathlib.Path(tmp_path) / "jgd-run.json"
    saved = json.loads(marker.read_text())
    marker.write_text(json.dumps({**saved, "format": 4}))
    with pytest.raises(ValueError, match="checkpoints of format 4.*reads format 6"):
        fit(checkpoint_dir=tmp_path, checkpoint_every=8)


def test_fit_and_the_option_objects_share_their_defaults():
    from jgd._options import DriverOptions, RunOptions

    signature = inspect.signature(jgd.fit).parameters
    for options in (RunOptions, DriverOptions):
        for field in dataclasses.fields(options):
            default = field.default if field.default is not dataclasses.MISSING else None
            if field.name == "recorders":
                assert signature[field.name].default is None and default == ()
                continue
            assert signature[field.name].default == default, field.name


def test_the_carry_has_one_structure_and_an_option_off_costs_no_array():
    from jgd import _config
    from jgd._options import RunOptions
    from jgd._state import Carry

    def carry(**options):
        config = _config.configure(
            LINE, jnp.zeros(3), (X, Y), optimizer=optax.sgd, learning_rate=0.1, key=0,
            mesh=None, options=RunOptions(**options),
        )  # fmt: skip
        return config.carry()

    plain = carry()
    assert isinstance(plain, Carry) and plain._fields == (
        "params", "opt_state", "step", "key", "model_state", "records",
    )  # fmt: skip
    assert plain.model_state == () and plain.records == ((),)  # the loss: no state
    both = carry(grad_norm=True, sharpness_every=1)
    assert len(both.records) == 3 and both.records[1] == ()
    assert both.records[2].vector.shape == (3,)  # the sharpness's eigenvector
    assert len(jax.tree.leaves(plain)) == len(jax.tree.leaves(plain.train))


def test_batch_plans_are_typed_and_answer_one_interface():
    from jgd import _plans

    full = _plans.make(10, None, 4, None)
    shuffled = _plans.make(10, 3, 2, None)
    explicit = _plans.make(10, None, 1, np.array([[1, 2], [3, 4], [5, 6]]))
    assert [type(p).__name__ for p in (full, shuffled, explicit)] == [
        "FullBatch", "Shuffled", "Explicit",
    ]  # fmt: skip
    assert (full.steps, full.batch_size, full.full_batch) == (4, 10, True)
    assert (shuffled.steps, shuffled.steps_per_epoch, shuffled.keyed) == (6, 3, True)
    assert shuffled.epoch_of(5) == 1 and full.epoch_of(3) == 3
    assert explicit.describe()["plan"] == ["order", 10, 2, 3, 3]
    assert explicit.describe()["order"] is not None
    other = _plans.make(10, None, 1, np.array([[0, 0], [0, 0], [0, 0]]))
    assert other == explicit and hash(other) == hash(explicit)  # rows are an argument
    assert other.describe() != explicit.describe()  # but a checkpoint tells them apart
    rows = np.asarray(shuffled.rows(jax.random.key(0), 0, 4))
    assert rows.shape == (8, 3) and (rows[6:] == 0).all()  # padded to whole chunks
    np.testing.assert_array_equal(rows[:6], jgd.shuffled_order(10, 3, 2, 0))
