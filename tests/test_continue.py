"""A finished run continued to more steps from its checkpoints equals one longer run; a run that
cannot be continued so (fewer steps, a schedule over the run's length) is refused in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
from jgd import cli


def _problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.1).astype(np.float32)
    loss = jgd.per_example(lambda w, e: jgd.losses.squared_error(e[0] @ w, e[1]))
    return loss, jnp.zeros(3), (X, y)


@pytest.mark.parametrize("batch_size", [None, 8])
def test_a_finished_run_continued_to_more_epochs_equals_one_longer_run(tmp_path, batch_size):
    loss, w0, data = _problem()
    kw = dict(optimizer=optax.sgd(0.05, momentum=0.9), batch_size=batch_size, key=3)
    longer = jgd.fit(loss, w0, data, epochs=5, **kw)
    folder = tmp_path / "run"
    kw = dict(kw, checkpoint_dir=folder, checkpoint_every=4)
    jgd.fit(loss, w0, data, epochs=2, **kw)
    continued = jgd.fit(loss, w0, data, epochs=5, **kw)
    np.testing.assert_array_equal(continued.losses, longer.losses)  # the whole history
    np.testing.assert_array_equal(continued.params, longer.params)
    for a, b in zip(
        jax.tree.leaves(continued.opt_state), jax.tree.leaves(longer.opt_state), strict=True
    ):
        np.testing.assert_array_equal(a, b)  # the momentum carried on
    again = jgd.fit(loss, w0, data, epochs=5, **kw)  # resumed, finished
    np.testing.assert_array_equal(again.params, longer.params)


def test_a_run_is_never_cut_to_fewer_steps(tmp_path):
    saved = dict(checkpoint_dir=tmp_path, checkpoint_every=1)
    loss, w0, data = _problem()
    jgd.fit(loss, w0, data, optimizer=optax.sgd(0.05), epochs=3, **saved)
    with pytest.raises(ValueError, match=r"holds a run of 3 steps; this call asks for 2.*fewer"):
        jgd.fit(loss, w0, data, optimizer=optax.sgd(0.05), epochs=2, **saved)


def test_a_schedule_over_the_runs_length_is_not_continued(tmp_path):
    saved = dict(checkpoint_dir=tmp_path, checkpoint_every=1)
    loss, w0, data = _problem()

    def cosine(steps):
        return optax.sgd(optax.cosine_decay_schedule(0.1, decay_steps=steps))

    jgd.fit(loss, w0, data, optimizer=cosine(3), epochs=3, **saved)
    with pytest.raises(ValueError, match="cannot continue to 6.*depends on the run's length"):
        jgd.fit(loss, w0, data, optimizer=cosine(6), epochs=6, **saved)


def _train(folder, out, epochs):
    args = ["train", "--data-dir", str(folder), "--out", str(out), "--hidden", "16"]
    return cli.main([*args, "--epochs", str(epochs), "--no-progress", "--momentum", "0.5"])


def test_jgd_train_continues_a_finished_run_to_more_epochs(tiny_mnist, tmp_path, capsys):
    assert _train(tiny_mnist, tmp_path / "once", 3) == 0
    assert _train(tiny_mnist, tmp_path / "twice", 1) == 0
    capsys.readouterr()
    assert _train(tiny_mnist, tmp_path / "twice", 3) == 0
    text = capsys.readouterr().out
    assert "epoch 1/3" not in text and "epoch 2/3" in text and "epoch 3/3" in text
    once, twice = (np.load(tmp_path / name / "model.npz") for name in ("once", "twice"))
    for name in once.files:
        np.testing.assert_array_equal(twice[name], once[name])
    assert _train(tiny_mnist, tmp_path / "twice", 2) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "never cut to fewer" in err
