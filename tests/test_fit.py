"""The descent engine: seeds reproduced exactly, convergence, no recompilation, divergence,
sweeps, checkpoints, order replay and bad input."""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

import jgd

LINE = jgd.problems.line_loss
LINE_FIT = jgd.problems.line()
BOWL = jgd.problems.bowl()  # seed 003's bowl from w = -2  # seed 003's line fit from (-1, -1)


def bowl(w, batch):
    return 0.5 * jnp.sum((w - 3.0) ** 2)  # seed 003's convex bowl, minimum at 3


def numpy_descend(X, y, batch_size, epochs, eta, seed=0):
    """Seed 003's `descend`, verbatim in NumPy (float64)."""
    m = len(y)
    g = np.random.default_rng(seed)
    theta = np.array([-1.0, -1.0])
    for _ in range(epochs):
        order = g.permutation(m)
        for s in range(0, m, batch_size):
            idx = order[s : s + batch_size]
            Xb, yb = X[idx], y[idx]
            theta = theta - eta * (2 / len(idx)) * (Xb.T @ (Xb @ theta - yb))
    return theta


# --- the seeds, exactly ----------------------------------------------------------------------


def test_bowl_fifteen_steps_gives_2_9763():
    result = BOWL.fit(
        optimizer=optax.sgd,
        learning_rate=0.3,
        epochs=15,
        record_params=True,
    )
    assert f"{float(result.params):.4f}" == "2.9763"
    np.testing.assert_allclose(
        result.params_history,
        -2.0 * 0.7 ** np.arange(16) + 3 * (1 - 0.7 ** np.arange(16)),
        rtol=1e-6,
    )


def test_line_fit_optimum(line_data):
    assert np.round(line_data[2], 3).tolist() == [1.961, 0.998]


@pytest.mark.parametrize("batch_size,epochs,eta", [(100, 60, 0.4), (10, 8, 0.4), (1, 3, 0.1)])
def test_full_mini_and_sgd_land_where_the_numpy_loop_lands(line_data, batch_size, epochs, eta):
    X, y, _ = line_data
    expected = numpy_descend(X, y, batch_size, epochs, eta)
    order = jgd.data.epoch_order(len(y), batch_size, epochs=epochs, seed=0)
    result = LINE_FIT.fit(optimizer=optax.sgd, learning_rate=eta, order=order)
    np.testing.assert_allclose(result.params, expected, rtol=2e-5, atol=2e-5)
    assert result.steps == len(order)


@pytest.mark.parametrize("decay,printed", [(0.0, "0.182"), (0.01, "0.009")])
def test_noise_ball_final_distances(line_data, decay, printed):
    _X, y, theta_star = line_data
    order = jgd.data.epoch_order(len(y), 1, epochs=40, seed=1)
    result = LINE_FIT.fit(
        optimizer=optax.sgd,
        learning_rate=jgd.schedules.inverse_time_decay(0.1, decay),
        order=order,
    )
    assert f"{np.linalg.norm(np.asarray(result.params) - theta_star):.3f}" == printed


def test_full_batch_matches_the_torch_seed_loop(line_data):
    _X, _y, theta_star = line_data  # seed 003: 200 epochs of torch.optim.SGD(lr=0.4) on all data
    result = LINE_FIT.fit(optimizer=optax.sgd, learning_rate=0.4, epochs=200)
    assert [f"{v:.3f}" for v in np.asarray(result.params)] == ["1.961", "0.998"]
    assert [f"{v:.3f}" for v in theta_star] == ["1.961", "0.998"]


# --- convergence table ------------------------------------------------------------------------


def _logistic_problem():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = (X @ np.array([1.5, -2.0]) + 0.5 + rng.normal(size=200) > 0).astype(np.float32)
    X = np.c_[X, np.ones(200)].astype(np.float32)

    def loss(w, batch):
        Xb, yb = batch
        return jnp.mean(jax.vmap(jgd.losses.sigmoid_cross_entropy)(Xb @ w, yb)) + 0.01 * jnp.sum(
            w**2
        )

    def np_loss(w):
        z = X @ w
        return np.mean(np.logaddexp(0, z) - y * z) + 0.01 * np.sum(w**2)

    optimum = scipy.optimize.minimize(
        np_loss, np.zeros(3), method="BFGS", options={"gtol": 1e-10}
    ).x
    return loss, jnp.zeros(3), (X, y), optimum


def _problems(line_data):
    X, y, theta_star = line_data
    rosen = lambda p, b: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2  # noqa: E731
    return {
        "bowl": (bowl, jnp.array([-2.0, 5.0]), jnp.zeros(1), np.array([3.0, 3.0])),
        "line": (LINE, jnp.array([-1.0, -1.0]), (X, y), theta_star),
        "logistic": _logistic_problem(),
        "rosenbrock": (rosen, jnp.array([-1.2, 1.0]), jnp.zeros(1), np.array([1.0, 1.0])),
    }


OPTIMIZERS = {
    "sgd": optax.sgd,
    "momentum": functools.partial(optax.sgd, momentum=0.9),
    "nesterov": functools.partial(optax.sgd, momentum=0.9, nesterov=True),
    "adam": optax.adam,
}
# (learning rate, steps) per optimizer and problem; tolerance 1e-3 on every coordinate.
TABLE = {
    "bowl": {"sgd": (0.5, 300), "momentum": (0.1, 300), "nesterov": (0.1, 300), "adam": (0.1, 300)},
    "line": {
        "sgd": (0.4, 300),
        "momentum": (0.05, 300),
        "nesterov": (0.05, 300),
        "adam": (0.05, 2000),
    },
    "logistic": {
        "sgd": (1.0, 300),
        "momentum": (0.1, 300),
        "nesterov": (0.1, 300),
        "adam": (0.05, 300),
    },
    "rosenbrock": {
        "sgd": (1e-3, 20000),
        "momentum": (1e-4, 20000),
        "nesterov": (1e-4, 20000),
        "adam": (0.01, 20000),
    },
}


@pytest.mark.parametrize("problem", list(TABLE))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_convergence_table(line_data, problem, name):
    loss, params, data, optimum = _problems(line_data)[problem]
    lr, steps = TABLE[problem][name]
    result = jgd.fit(loss, params, data, optimizer=OPTIMIZERS[name], learning_rate=lr, epochs=steps)
    assert not result.diverged
    np.testing.assert_allclose(result.params, optimum, atol=1e-3)


@pytest.mark.parametrize(
    "batch_size,epochs,schedule",
    [
        (None, 300, 0.4),
        (10, 200, jgd.schedules.inverse_time_decay(0.2, 0.01)),
        (1, 100, jgd.schedules.inverse_time_decay(0.1, 0.01)),
    ],
)
def test_full_mini_and_sgd_all_reach_the_least_squares_optimum(
    line_data, batch_size, epochs, schedule
):
    _X, _y, theta_star = line_data
    result = LINE_FIT.fit(
        optimizer=optax.sgd,
        learning_rate=schedule,
        batch_size=batch_size,
        epochs=epochs,
        key=0,
    )
    np.testing.assert_allclose(result.params, theta_star, atol=0.01)


@pytest.mark.parametrize("mode", ["forward", "fd_central", "forward_gradient"])
def test_every_gradient_mode_drives_the_engine(line_data, mode):
    _X, _y, theta_star = line_data
    # Full batch: the forward gradient's noise scales with ||g||, so a constant rate converges;
    # its second moment is (P + 2)||g||², so the stable rate is about (P + 2) = 4 times smaller.
    lr = 0.1 if mode == "forward_gradient" else 0.4
    result = LINE_FIT.fit(
        optimizer=optax.sgd,
        learning_rate=lr,
        epochs=3000 if mode == "forward_gradient" else 300,
        mode=mode,
        key=3,
    )
    np.testing.assert_allclose(
        result.params, theta_star, atol=0.05 if mode == "forward_gradient" else 1e-3
    )


# --- compiled means compiled ------------------------------------------------------------------


def test_new_learning_rate_schedule_or_key_does_not_recompile(line_data, caplog):
    run = functools.partial(LINE_FIT.fit, optimizer=optax.sgd, batch_size=10, epochs=5)
    first = run(learning_rate=jgd.schedules.inverse_time_decay(0.1, 0.01), key=0)
    assert first.compile_time > 0
    before = jgd.compile_count()
    with caplog.at_level(logging.WARNING, logger="jax"), jax.log_compiles(True):
        again = [
            run(learning_rate=jgd.schedules.inverse_time_decay(0.3, 0.01), key=0),
            run(learning_rate=jgd.schedules.inverse_time_decay(0.1, 0.5), key=0),
            run(learning_rate=jgd.schedules.inverse_time_decay(0.1, 0.01), key=7),
        ]
    compiles = [r for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == [], [r.getMessage()[:120] for r in compiles]
    assert jgd.compile_count() == before
    assert all(r.compile_time == 0.0 for r in again)
    finals = {tuple(np.asarray(r.params).round(6)) for r in [first, *again]}
    assert len(finals) == 4  # the values really changed the runs


def test_plain_learning_rate_change_does_not_recompile():
    run = functools.partial(
        jgd.fit, bowl, jnp.array(-2.0), jnp.zeros(1), optimizer=optax.adam, epochs=17
    )
    run(learning_rate=0.1)
    before = jgd.compile_count()
    result = run(learning_rate=0.2)
    assert jgd.compile_count() == before and result.compile_time == 0.0


# --- divergence -------------------------------------------------------------------------------


def test_blow_up_stops_updates_and_keeps_the_last_finite_params():
    quartic = lambda w, b: jnp.sum(w**4)  # noqa: E731  (GD on w^4 explodes for a large step)
    result = jgd.fit(
        quartic,
        jnp.array([1.0]),
        jnp.zeros(1),
        optimizer=optax.sgd,
        learning_rate=1.0,
        epochs=20,
        record_params=True,
        grad_norm=True,
    )
    assert result.diverged and result.divergence == "non-finite"
    t = result.diverged_at
    assert 0 < t < 20
    # step t's loss or gradient norm is not finite (here the norm overflows float32 first)
    assert not (np.isfinite(result.losses[t]) and np.isfinite(result.grad_norms[t]))
    assert np.all(np.isnan(result.losses[t + 1 :]))
    assert np.all(np.isfinite(result.losses[:t]))
    np.testing.assert_array_equal(result.params, result.params_history[t])
    assert np.isfinite(result.params).all()


def test_max_loss_counts_as_a_blow_up():
    result = BOWL.fit(
        optimizer=optax.sgd,
        learning_rate=2.1,
        epochs=30,
        max_loss=100.0,
    )
    assert result.diverged and result.divergence == "max_loss"
    assert result.losses[result.diverged_at] > 100 >= result.losses[result.diverged_at - 1]


def test_raise_names_the_step_the_learning_rate_and_the_bound():
    with pytest.raises(jgd.DivergenceError, match=r"step 1 .*learning_rate=2\.1.*about 2\b"):
        BOWL.fit(
            optimizer=optax.sgd,
            learning_rate=2.1,
            epochs=30,
            on_divergence="raise",
        )


# --- sweep ------------------------------------------------------------------------------------


def test_seed_learning_rate_figure_is_one_sweep():
    result = jgd.sweep(
        bowl,
        jnp.array(-2.0),
        jnp.zeros(1),
        optimizer=optax.sgd,
        learning_rate=[0.1, 0.6, 1.9, 2.1],
        epochs=30,
    )
    assert result.diverged.tolist() == [False, False, False, True]
    assert result.losses.shape == (4, 30)


def test_sweep_equals_the_same_fits_one_by_one(line_data):
    X, y, _ = line_data
    common = dict(optimizer=functools.partial(optax.sgd, momentum=0.5), batch_size=7, epochs=4)
    result = jgd.sweep(
        LINE, jnp.array([-1.0, -1.0]), (X, y), learning_rate=[0.05, 0.2], seeds=[0, 3], **common
    )
    assert len(result) == 4 and result.seed == [0, 3, 0, 3]
    for i, (lr, seed) in enumerate(zip(result.learning_rate, result.seed, strict=True)):
        single = LINE_FIT.fit(learning_rate=lr, key=seed, **common)
        np.testing.assert_allclose(result.params[i], single.params, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(result.losses[i], single.losses, rtol=1e-6, atol=1e-7)


def test_sweep_over_schedules_and_256_seeds_is_one_compile(line_data):
    X, y, theta_star = line_data
    S = jgd.schedules
    before = jgd.compile_count()
    result = jgd.sweep(
        LINE,
        jnp.array([-1.0, -1.0]),
        (X, y),
        optimizer=optax.sgd,
        learning_rate=[S.inverse_time_decay(0.1, 0.0), S.inverse_time_decay(0.1, 0.01)],
        seeds=range(256),
        batch_size=1,
        epochs=40,
    )
    assert jgd.compile_count() == before + 1
    dist = np.linalg.norm(np.asarray(result.params) - theta_star, axis=1).reshape(2, 256)
    assert np.median(dist[1]) < 0.25 * np.median(dist[0])


# --- plans: order replay, shuffling, full batch ----------------------------------------------


def test_order_is_replayed_exactly_like_a_python_loop(line_data):
    X, y, _ = line_data
    order = np.random.default_rng(5).integers(0, 100, size=(37, 4))
    opt = optax.sgd(0.1, momentum=0.9)
    result = LINE_FIT.fit(optimizer=opt, order=order)
    step = jax.jit(jgd.make_step(LINE, opt))
    state = jgd.TrainState.create(jnp.array([-1.0, -1.0]), opt)
    losses = []
    for rows in order:
        state, metrics = step(state, (X[rows], y[rows]))
        losses.append(float(metrics["loss"]))
    np.testing.assert_allclose(result.params, state.params, rtol=1e-6)
    np.testing.assert_allclose(result.losses, losses, rtol=1e-6)


def test_full_batch_equals_one_batch_of_everything(line_data):
    full = LINE_FIT.fit(optimizer=optax.sgd, learning_rate=0.3, epochs=5)
    whole = LINE_FIT.fit(
        optimizer=optax.sgd,
        learning_rate=0.3,
        order=np.tile(np.arange(100), (5, 1)),
    )
    np.testing.assert_allclose(full.params, whole.params, rtol=1e-6)


def test_shuffled_epochs_visit_every_example_once(line_data):
    X, _, _ = line_data
    ids = np.arange(100, dtype=np.float32)
    # the ids seen per step are recovered through a loss that reports them
    probe = jgd.fit(
        lambda p, b: jnp.sum(p**2) + b[1][0],  # params stay at 0: the loss is the id seen
        jnp.zeros(1),
        (X, ids),
        optimizer=optax.sgd,
        learning_rate=1e-9,
        batch_size=1,
        epochs=3,
        key=0,
    )
    first = probe.losses.astype(int).reshape(3, 100)
    for epoch in first:
        assert sorted(epoch.tolist()) == list(range(100))
    assert first[0].tolist() != first[1].tolist()  # a fresh permutation per epoch


def test_short_last_batch_is_left_out_and_documented(line_data):
    result = LINE_FIT.fit(
        optimizer=optax.sgd,
        learning_rate=0.1,
        batch_size=30,
        epochs=2,
        key=0,
    )
    assert result.steps == 2 * (100 // 30)


# --- checkpoints, progress, callback ----------------------------------------------------------


def test_interrupted_run_resumes_bit_identical(tmp_path, line_data):
    run = functools.partial(
        LINE_FIT.fit,
        optimizer=optax.adam,
        learning_rate=0.05,
        batch_size=10,
        epochs=10,
        key=1,
        checkpoint_every=20,
    )
    whole = run(checkpoint_dir=tmp_path / "whole")

    def interrupt(progress):
        if progress.step >= 60:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(checkpoint_dir=tmp_path / "cut", callback=interrupt)
    resumed = run(checkpoint_dir=tmp_path / "cut")
    np.testing.assert_array_equal(resumed.params, whole.params)
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    np.testing.assert_array_equal(
        jax.tree_util.tree_leaves(resumed.opt_state)[1],
        jax.tree_util.tree_leaves(whole.opt_state)[1],
    )


def test_resuming_with_other_arguments_is_refused(tmp_path):
    kw = dict(optimizer=optax.sgd, epochs=10, checkpoint_dir=tmp_path, checkpoint_every=5)
    BOWL.fit(learning_rate=0.1, **kw)
    with pytest.raises(ValueError, match="holds a run with other arguments.*learning_rate"):
        BOWL.fit(learning_rate=0.2, **kw)


def test_progress_bar_shows_and_changes_nothing(capsys):
    quiet = BOWL.fit(optimizer=optax.sgd, learning_rate=0.3, epochs=50)
    shown = BOWL.fit(
        optimizer=optax.sgd,
        learning_rate=0.3,
        epochs=50,
        progress=True,
    )
    err = capsys.readouterr().err
    assert "50/50" in err and "loss=" in err
    np.testing.assert_array_equal(quiet.losses, shown.losses)


def test_compile_and_run_time_are_kept_apart():
    result = jgd.fit(
        lambda w, b: jnp.sum(w**2),
        jnp.ones(3),
        jnp.zeros(1),
        optimizer=optax.sgd,
        learning_rate=0.01,
        epochs=123,
    )
    assert result.compile_time > 0 and result.run_time > 0


# --- schedules --------------------------------------------------------------------------------


def test_schedules_match_their_formulas_and_work_in_optax():
    s = jgd.schedules.inverse_time_decay(0.5, 0.1)
    t = np.arange(50)
    np.testing.assert_allclose(jax.vmap(s)(t), 0.5 / (1 + 0.1 * t), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(jgd.schedules.harmonic(2.0))(t), 2.0 / (t + 1), rtol=1e-6)
    opt = optax.sgd(s)
    params = jnp.zeros(1)
    state = opt.init(params)
    for k in range(3):
        updates, state = opt.update(jnp.ones(1), state)
        np.testing.assert_allclose(updates, -0.5 / (1 + 0.1 * k), rtol=1e-6)


@pytest.mark.parametrize("args,match", [((0.0, 0.1), "init_value"), ((0.1, -1.0), "decay_rate")])
def test_bad_schedule_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        jgd.schedules.inverse_time_decay(*args)


# --- bad input --------------------------------------------------------------------------------

X3, Y3 = np.zeros((10, 2), np.float32), np.zeros(10, np.float32)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(data=(X3, np.zeros(9))), r"disagree.*data\[0\]: 10, data\[1\]: 9"),
        (dict(data=(X3[:0], Y3[:0])), "data is empty"),
        (dict(batch_size=0), r"batch_size=0 .*>= 1"),
        (dict(batch_size=11), r"batch_size=11 is larger than the number of examples \(10\)"),
        (dict(epochs=0), r"epochs=0"),
        (dict(order=np.zeros((3,), int)), r"order has shape \(3,\)"),
        (dict(order=np.array([[0, 10]])), r"order holds index 10, outside \[0, 10\)"),
        (dict(learning_rate=float("nan")), r"learning_rate=nan .*finite number > 0"),
        (dict(learning_rate=-0.1), r"learning_rate=-0.1"),
        (dict(batch_size=2, key=None), "needs a key to shuffle"),
        (dict(mode="sideways"), "mode='sideways'"),
        (
            dict(data=(np.array([[0.0, 1], [np.nan, 2]] * 5), Y3)),
            r"data\[0\] has a non-finite value .* row 1",
        ),
        (dict(on_divergence="ignore"), "on_divergence='ignore'"),
        (dict(checkpoint_dir="x"), "checkpoint_every=None"),
    ],
)
def test_bad_fit_arguments_fail_at_the_call(kwargs, match):
    call = dict(data=(X3, Y3), optimizer=optax.sgd, learning_rate=0.1)
    call.update(kwargs)
    data = call.pop("data")
    with pytest.raises(ValueError, match=match):
        jgd.fit(LINE, jnp.zeros(2), data, **call)


def test_learning_rate_with_a_ready_optimizer_is_refused():
    with pytest.raises(ValueError, match="already has its own"):
        jgd.fit(LINE, jnp.zeros(2), (X3, Y3), optimizer=optax.sgd(0.1), learning_rate=0.1)


def test_factory_without_learning_rate_is_refused():
    with pytest.raises(ValueError, match="learning_rate is required with optimizer=sgd"):
        jgd.fit(LINE, jnp.zeros(2), (X3, Y3), optimizer=optax.sgd)


def test_guard_loss_checks_the_loss_only():
    log_loss = lambda w, b: jnp.sum(jnp.log(w))  # noqa: E731  (w reaches 0: the loss turns -inf)
    kw = dict(optimizer=optax.sgd, learning_rate=0.5, epochs=10, record_params=True)
    full = jgd.fit(log_loss, jnp.array([1.0]), jnp.zeros(1), grad_norm=True, **kw)
    fast = jgd.fit(log_loss, jnp.array([1.0]), jnp.zeros(1), guard="loss", **kw)
    assert full.diverged and fast.diverged and full.divergence == fast.divergence == "non-finite"
    assert np.isfinite(full.grad_norms[: full.diverged_at]).all()
    assert fast.grad_norms is None  # not computed
    np.testing.assert_array_equal(full.losses[: full.diverged_at], fast.losses[: full.diverged_at])
    with pytest.raises(ValueError, match="guard='none'"):
        jgd.fit(
            bowl, jnp.array(0.0), jnp.zeros(1), optimizer=optax.sgd, learning_rate=0.1, guard="none"
        )


# --- continuing a run, reports ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reverse", "forward_gradient"])
def test_continuing_from_the_state_equals_one_longer_run(line_data, mode):
    X, y, _ = line_data
    schedule = optax.cosine_decay_schedule(0.05, decay_steps=200)  # position kept in opt_state
    kw = dict(optimizer=optax.adam, learning_rate=schedule, batch_size=10, key=3, mode=mode)
    whole = LINE_FIT.fit(epochs=12, **kw)
    kw.pop("key")  # the state carries it
    first = LINE_FIT.fit(epochs=5, key=3, **kw)
    rest = jgd.fit(LINE, first.state, (X, y), epochs=7, **kw)
    assert rest.first_step == 50 and int(rest.state.step) == 120
    np.testing.assert_array_equal(np.concatenate([first.losses, rest.losses]), whole.losses)
    for a, b in zip(jax.tree.leaves(rest.state), jax.tree.leaves(whole.state), strict=True):
        np.testing.assert_array_equal(a, b)


def test_continuing_can_change_the_learning_rate_and_refuses_another_optimizer(line_data):
    X, y, _ = line_data
    first = LINE_FIT.fit(optimizer=optax.adam, learning_rate=0.1)
    slower = jgd.fit(LINE, first.state, (X, y), optimizer=optax.adam, learning_rate=0.01)
    assert float(slower.state.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"optimizer state was not made by optimizer=sgd"):
        jgd.fit(LINE, first.state, (X, y), optimizer=optax.sgd, learning_rate=0.1)
    with pytest.raises(ValueError, match="carries its own key"):
        jgd.fit(LINE, first.state, (X, y), optimizer=optax.adam, learning_rate=0.1, key=1)


def test_report_every_gives_each_loss_its_step(line_data):
    reports = []
    result = LINE_FIT.fit(
        optimizer=optax.sgd,
        learning_rate=0.05,
        batch_size=10,
        epochs=5,
        key=0,
        report_every=15,
        callback=reports.append,
    )
    assert [p.step for p in reports] == [15, 30, 45, 50]  # and the end
    steps = np.concatenate([p.steps for p in reports])
    np.testing.assert_array_equal(steps, np.arange(50))
    np.testing.assert_array_equal(np.concatenate([p.losses for p in reports]), result.losses)
    assert [p.epoch for p in reports] == [1, 3, 4, 5]


def test_report_every_epoch_with_checkpoints_that_do_not_divide_it(tmp_path, line_data):
    epochs = []
    LINE_FIT.fit(
        optimizer=optax.sgd,
        learning_rate=0.05,
        batch_size=10,
        epochs=4,
        key=0,
        report_every="epoch",
        callback=lambda p: epochs.append((p.epoch, len(p.losses))),
        checkpoint_dir=tmp_path,
        checkpoint_every=4,
    )
    assert epochs == [(1, 10), (2, 10), (3, 10), (4, 10)]


def test_sweep_items_are_fit_results(line_data):
    X, y, _ = line_data
    swept = jgd.sweep(
        LINE,
        jnp.array([-1.0, -1.0]),
        (X, y),
        optimizer=optax.sgd,
        learning_rate=[0.1, 0.3],
        epochs=20,
        record_params=True,
        grad_norm=True,
    )
    single = LINE_FIT.fit(
        optimizer=optax.sgd,
        learning_rate=0.3,
        epochs=20,
        record_params=True,
        grad_norm=True,
    )
    item = swept[1]
    assert isinstance(item, jgd.FitResult) and item.diverged_at is None
    for field in ("params", "losses", "grad_norms", "params_history"):
        # to rounding: under vmap XLA sums the batched matmul in another order (at batch size 1
        # the runs are equal bitwise: test_reliability)
        np.testing.assert_allclose(getattr(item, field), getattr(single, field), rtol=1e-6)
    assert item.steps == single.steps == 20


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(report_every=0), ValueError, "report_every=0"),
        (dict(report_every="week"), ValueError, "report_every='week'"),
        (dict(callback=3), TypeError, "callback=3 is not callable"),
        (dict(grad_norm=1), TypeError, "grad_norm=1"),
        (dict(record_params="no"), TypeError, "record_params='no'"),
        (dict(key=2**40), ValueError, r"key=1099511627776 .*\[-2\*\*31, 2\*\*31\)"),
    ],
)
def test_bad_driver_arguments_fail_at_the_call(kwargs, error, match):
    with pytest.raises(error, match=match):
        jgd.fit(LINE, jnp.zeros(2), (X3, Y3), optimizer=optax.sgd, learning_rate=0.1, **kwargs)


def test_sweep_refuses_driver_options_and_unknown_arguments():
    kw = dict(optimizer=optax.sgd, learning_rate=[0.1])
    with pytest.raises(ValueError, match=r"sweep does not take \['callback'\]"):
        jgd.sweep(LINE, jnp.zeros(2), (X3, Y3), callback=print, **kw)
    with pytest.raises(TypeError, match=r"unexpected arguments \['epoch'\]"):
        jgd.sweep(LINE, jnp.zeros(2), (X3, Y3), epoch=3, **kw)
    with pytest.raises(ValueError, match="optax factory"):
        jgd.sweep(LINE, jnp.zeros(2), (X3, Y3), optimizer=optax.sgd(0.1), learning_rate=[0.1])


def test_sweep_with_one_key_shares_one_plan_equal_to_fit(line_data):
    X, y, _ = line_data
    kw = dict(optimizer=optax.sgd, batch_size=7, epochs=3)
    swept = jgd.sweep(LINE, jnp.array([-1.0, -1.0]), (X, y), learning_rate=[0.05, 0.2], key=5, **kw)
    assert swept.seed == [None, None]
    for i, lr in enumerate([0.05, 0.2]):
        single = LINE_FIT.fit(learning_rate=lr, key=5, **kw)
        np.testing.assert_allclose(swept.losses[i], single.losses, rtol=1e-6)


@pytest.mark.parametrize("m, batch, epochs", [(10, 3, 2), (100, 7, 5), (50, 50, 1), (97, 4, 9)])
def test_a_shuffled_plans_rows_from_any_step_are_shuffled_indices(m, batch, epochs):
    """The rows a run reads (drawn per power of two of epochs, then cut) are the plan's
    ``shuffled_indices`` from that step: at the start, inside an epoch, at an epoch's start."""
    from jgd import _plans

    plan, key = _plans.make(m, batch, epochs, None), jax.random.key(3)
    indices = jax.jit(_plans.shuffled_indices, static_argnums=(1, 3))
    for first in (0, 1, plan.steps_per_epoch, plan.steps_per_epoch + 1):
        if first < plan.steps:
            aligned = first % plan.steps_per_epoch == 0
            got = np.asarray(plan.rows(key, first, chunk=16))
            np.testing.assert_array_equal(got[: plan.steps], indices(key, plan, first, aligned))
            assert got.shape == (-(-plan.steps // 16) * 16, batch) and not got[plan.steps :].any()
