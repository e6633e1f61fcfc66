"""A module with BatchNorm and Dropout through every way of running it: resumed from a checkpoint,
continued, swept, guarded, analysed; and its pure form and evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jgd
from tests.test_modules import ORDER, Net, X, Y, _values, loss, nnx_loop


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(_values(a)), jax.tree.leaves(_values(b)), strict=True):
        np.testing.assert_array_equal(x, y)


class StopError(Exception):
    pass


def _stop_at(step):
    def callback(progress):
        if progress.step >= step:
            raise StopError

    return callback


def test_stopped_and_resumed_and_continued_runs_equal_one_run(tmp_path):
    model = Net(nnx.Rngs(0, dropout=1))
    tx = optax.adamw(0.01, weight_decay=0.1)
    whole = jgd.fit(loss, model, (X, Y), optimizer=tx, order=ORDER)
    with pytest.raises(StopError):
        jgd.fit(
            loss, model, (X, Y), optimizer=tx, order=ORDER, checkpoint_dir=tmp_path,
            checkpoint_every=5, report_every=5, callback=_stop_at(10),
        )  # fmt: skip
    resumed = jgd.fit(
        loss, model, (X, Y), optimizer=tx, order=ORDER, checkpoint_dir=tmp_path, checkpoint_every=5
    )
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    _assert_same(nnx.state(resumed.model), nnx.state(whole.model))  # batch stats, RNG count
    first = jgd.fit(loss, model, (X, Y), optimizer=tx, order=ORDER[:10])
    rest = jgd.fit(loss, first.state, (X, Y), optimizer=tx, order=ORDER[10:])
    np.testing.assert_array_equal(np.concatenate([first.losses, rest.losses]), whole.losses)
    _assert_same(nnx.state(rest.model), nnx.state(whole.model))
    expected = nnx_loop(nnx.clone(model), tx)  # and all of them are NNX's own loop
    np.testing.assert_array_equal(whole.losses, np.float32(expected))


def test_a_checkpoint_of_another_module_structure_is_refused(tmp_path):
    tx = optax.sgd(0.05)
    jgd.fit(
        loss, Net(nnx.Rngs(0, dropout=1)), (X, Y), optimizer=tx, order=ORDER[:4],
        checkpoint_dir=tmp_path, checkpoint_every=2,
    )  # fmt: skip

    class Wider(Net):
        def __init__(self, rngs):
            super().__init__(rngs)
            self.norm = nnx.LayerNorm(16, rngs=rngs)  # no batch statistics

    with pytest.raises(ValueError, match="other arguments .model: saved"):
        jgd.fit(
            loss, Wider(nnx.Rngs(0, dropout=1)), (X, Y), optimizer=tx, order=ORDER[:4],
            checkpoint_dir=tmp_path, checkpoint_every=2,
        )  # fmt: skip


def test_sweep_runs_are_their_fits_each_with_its_seeds_masks():
    model = Net(nnx.Rngs(0, dropout=1))
    before = _values(nnx.state(model))
    result = jgd.sweep(
        loss, model, (X, Y), optimizer=optax.sgd, learning_rate=[0.05, 0.1], seeds=[0, 1],
        grid={"momentum": [0.9]}, order=ORDER,
    )  # fmt: skip
    _assert_same(nnx.state(model), before)  # the module given is not changed
    assert not np.array_equal(result.losses[0], result.losses[1])  # seeds: other masks
    for i in range(len(result)):
        run = result[i]
        alone = jgd.fit(
            loss, model, (X, Y), optimizer=optax.sgd(result.learning_rate[i], momentum=0.9),
            key=result.seed[i], order=ORDER,
        )  # fmt: skip
        np.testing.assert_allclose(run.losses, alone.losses, rtol=1e-6)
        np.testing.assert_allclose(run.initial_loss, alone.initial_loss, rtol=1e-6)
        np.testing.assert_allclose(run.final_loss, alone.final_loss, rtol=1e-6)
        got, want = nnx.state(run.model), nnx.state(alone.model)
        for a, b in zip(jax.tree.leaves(_values(got)), jax.tree.leaves(_values(want)), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _poisoned_loss(model, batch):
    """The net's loss, plus ``0 * sqrt(f + 0 * bias)``: 0 at every step, its gradient NaN where
    the batch's flag ``f`` is 0 (d sqrt at 0 is inf, times 0)."""
    x, y, f = batch
    zero = 0.0 * jnp.sqrt(jnp.min(f) + 0.0 * jnp.sum(model.out.bias[...]))
    return loss(model, (x, y)) + zero


def test_the_guard_gives_the_state_before_a_nan_gradient_batch_statistics_included():
    flags = np.ones(96, np.float32)
    flags[ORDER[12]] = 0.0  # step 12's batch: a finite loss, a NaN gradient
    flags[ORDER[:12].ravel()] = 1.0  # the batches before it stay clean
    assert flags[ORDER[12]].min() == 0.0
    data = (X, Y, flags)
    model = Net(nnx.Rngs(0, dropout=1))
    tx = optax.adam(0.01)
    order = ORDER
    guarded = jgd.fit(_poisoned_loss, model, data, optimizer=tx, order=order)
    assert guarded.diverged and guarded.diverged_at == 12
    before = jgd.fit(_poisoned_loss, model, data, optimizer=tx, order=order[:12])
    _assert_same(guarded.state.params, before.state.params)
    _assert_same(nnx.state(guarded.model), nnx.state(before.model))  # running stats too


def test_masked_weight_decay_over_a_modules_params_equals_nnx_own_loop():
    def decay_mask(params):  # no weight decay on biases and the norm's scale and bias
        return jax.tree_util.tree_map_with_path(
            lambda path, _: path[1].key == "kernel",  # (layer, name, .value)
            params,
        )

    tx = optax.chain(
        optax.scale_by_adam(),
        optax.masked(optax.add_decayed_weights(0.5), decay_mask),
        optax.scale(-0.01),
    )
    model = Net(nnx.Rngs(0, dropout=1))
    result = jgd.fit(loss, model, (X, Y), optimizer=tx, order=ORDER)
    expected = nnx_loop(nnx.clone(model), tx)
    np.testing.assert_array_equal(result.losses, np.float32(expected))
    plain = jgd.fit(loss, model, (X, Y), optimizer=optax.adam(0.01), order=ORDER)
    assert not np.array_equal(result.losses, plain.losses)  # the decay took effect
    chosen = jax.tree.leaves(decay_mask(result.state.params))
    assert sum(chosen) == 2 and len(chosen) == 6  # the two kernels of the module's six Params


def test_the_analysis_tools_read_a_modules_state_and_never_write_it():
    model = Net(nnx.Rngs(0, dropout=1))
    before = _values(nnx.state(model))
    batch = (X[:32], Y[:32])
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def by_hand(p, b):  # the module's loss at its state, as a function of its Params
        return loss(nnx.merge(graphdef, p, rest, copy=True), b)

    report = jgd.check_grads(loss, model, batch, modes=("forward", "fd_central"))
    assert report["forward"].relative_error < 1e-5  # one dropout mask for every evaluation
    assert report["fd_central"].relative_error < 1e-2
    v = jax.tree.map(jnp.ones_like, params)
    want = jax.jit(lambda p, v: jax.jvp(lambda q: jax.grad(by_hand)(q, batch), (p,), (v,))[1])(
        params, v
    )  # one program: eagerly, each of nnx's many small ops compiles its own
    got = jgd.hvp(loss, model, batch, v)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    bound = jgd.max_stable_learning_rate(loss, model, batch)
    assert float(bound.eigenvalue) > 0
    with pytest.raises(ValueError, match="is not a mean of per-example losses here"):
        jgd.gradient_noise_scale(loss, model, (X, Y))  # BatchNorm: a batch of one is not one
    # of the batch's examples; in eval mode (running statistics) the premise holds
    frozen = nnx.clone(model)
    frozen.eval()
    assert np.isfinite(float(jgd.gradient_noise_scale(loss, frozen, (X, Y))))
    _assert_same(nnx.state(model), before)
    with pytest.raises(ValueError, match="noise_scale_every=5 was given, but loss=.* not a mean"):
        jgd.fit(loss, model, (X, Y), optimizer=optax.sgd(0.05), order=ORDER[:10],
                noise_scale_every=5)  # fmt: skip
    for net, instruments in [(model, {}), (frozen, {"noise_scale_every": 5})]:
        run = jgd.fit(loss, net, (X, Y), optimizer=optax.sgd(0.05), order=ORDER[:10],
                      sharpness_every=5, **instruments)  # fmt: skip
        assert np.all(np.isfinite(run.sharpness.values))
        assert not instruments or np.all(np.isfinite(run.noise_scale.values))
        plain = jgd.fit(loss, net, (X, Y), optimizer=optax.sgd(0.05), order=ORDER[:10])
        np.testing.assert_array_equal(run.losses, plain.losses)  # instruments write nothing
        _assert_same(nnx.state(run.model), nnx.state(plain.model))


def test_the_pure_form_refuses_a_forward_pass_that_writes_and_accuracy_is_eval_mode():
    model = Net(nnx.Rngs(0, dropout=1))
    apply, params = jgd.models.functional(model)
    assert len(jax.tree.leaves(params)) == len(jax.tree.leaves(nnx.state(model, nnx.Param)))
    with pytest.raises(ValueError, match="forward pass wrote model.drop.rngs.count"):
        apply(params, X)
    trained = jgd.fit(loss, model, (X, Y), optimizer=optax.adam(0.01), order=ORDER).model
    evaluated = nnx.clone(trained)
    evaluated.eval()
    expected = int(np.sum(np.asarray(np.argmax(evaluated(X), -1)) == Y)) / len(Y)
    state = _values(nnx.state(trained))
    assert jgd.models.accuracy(trained, X, Y) == expected  # running statistics, no dropout
    _assert_same(nnx.state(trained), state)  # the module given is not changed
    apply, params = jgd.models.functional(evaluated)
    assert jgd.models.accuracy(apply, params, X, Y) == expected
    with pytest.raises(TypeError, match="accuracy takes"):
        jgd.models.accuracy(apply, X, Y)


def test_a_model_state_changing_dtype_is_named():
    class Drifting(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(6, 3, rngs=rngs)
            self.seen = nnx.Variable(jnp.zeros((), jnp.float32))

        def __call__(self, x):
            self.seen.set_value(self.seen[...].astype(jnp.float16) + 1)
            return self.lin(x)

    with pytest.raises(ValueError, match="changed the module's variables at seen .* float16"):
        jgd.fit(loss, Drifting(nnx.Rngs(0)), (X, Y), optimizer=optax.sgd(0.1), epochs=1)
