"""``sweep`` over what people sweep: an optimizer's other hyperparameters, crossed with learning
rates and seeds (floats in one program, ints one program per value)."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

LINE = jgd.per_example(lambda w, ex: 0.5 * (ex[0] @ w - ex[1]) ** 2)
rng = np.random.default_rng(3)
X = rng.normal(size=(32, 3)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=32)).astype(np.float32)


def sweep(**kwargs):
    return jgd.sweep(LINE, jnp.ones(3), (X, Y), epochs=3, batch_size=8, **kwargs)


def test_float_hyperparameters_are_one_program_and_equal_fit():
    before = jgd.compile_count()
    result = sweep(
        optimizer=optax.adamw, learning_rate=[0.01, 0.1], grid={"weight_decay": [0.0, 0.5],
        "b1": [0.8, 0.9]}, seeds=[0, 1],
    )  # fmt: skip
    # 16 short runs go in turn (fit's program for each): the plan's two programs (permutations,
    # their cut), the run, the loss; not one per run
    assert len(result) == 16 and jgd.compile_count() - before <= 4
    i = result.find(learning_rate=0.1, weight_decay=0.5, b1=0.8, seed=1)
    assert result.grid[i] == {"weight_decay": 0.5, "b1": 0.8} and result.seed[i] == 1
    assert result.grid[:2] == [{"weight_decay": 0.0, "b1": 0.8}] * 2  # seeds innermost
    alone = jgd.fit(
        LINE, jnp.ones(3), (X, Y), epochs=3, batch_size=8, key=1, learning_rate=0.1,
        optimizer=functools.partial(optax.adamw, weight_decay=0.5, b1=0.8),
    )  # fmt: skip
    np.testing.assert_allclose(result[i].losses, alone.losses, rtol=1e-5)
    np.testing.assert_allclose(result[i].params, alone.params, rtol=1e-5)
    numbers = result[i].opt_state.hyperparams
    assert float(numbers["weight_decay"]) == 0.5 and float(numbers["b1"]) == np.float32(0.8)


def test_integer_hyperparameters_compile_once_per_value_and_keep_the_order():
    every = optax.MultiSteps  # every_k_schedule is an int: one program per value

    def multi(learning_rate, every_k_schedule):
        return every(optax.sgd(learning_rate), every_k_schedule=every_k_schedule)

    result = sweep(
        optimizer=multi, learning_rate=[0.05, 0.1], grid={"every_k_schedule": [1, 2]}, key=0
    )
    assert [g["every_k_schedule"] for g in result.grid] == [1, 1, 2, 2]
    assert result.learning_rate == [0.05, 0.1, 0.05, 0.1]
    for i in range(4):
        k, lr = result.grid[i]["every_k_schedule"], result.learning_rate[i]
        alone = jgd.fit(
            LINE, jnp.ones(3), (X, Y), epochs=3, batch_size=8, key=0, learning_rate=lr,
            optimizer=functools.partial(multi, every_k_schedule=k),
        )  # fmt: skip
        np.testing.assert_allclose(result[i].params, alone.params, rtol=1e-5)
    assert result.losses.shape == (4, 12) and result.params.shape == (4, 3)


@pytest.mark.parametrize(
    "grid,error,match",
    [
        ({"weight_decya": [0.1]}, ValueError, "grid\\['weight_decya'\\] is not an argument"),
        ({"learning_rate": [0.1]}, ValueError, "learning_rate="),
        ({"weight_decay": []}, ValueError, "is empty"),
        ({"weight_decay": ["a"]}, ValueError, "expected numbers"),
        ({"weight_decay": [0, 0.5]}, ValueError, "mixes ints and floats"),
        ([0.1], TypeError, "expected a dict"),
    ],
)
def test_bad_grids_are_named(grid, error, match):
    with pytest.raises(error, match=match):
        sweep(optimizer=optax.adamw, learning_rate=[0.1], grid=grid, key=0)


def test_find_names_a_missing_run():
    result = sweep(optimizer=optax.sgd, learning_rate=[0.1], key=0)
    assert result.find(learning_rate=0.1) == 0 and result.grid == [{}]
    with pytest.raises(KeyError, match="no run"):
        result.find(learning_rate=0.3)
