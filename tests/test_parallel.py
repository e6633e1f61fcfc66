"""Data-parallel fit and sweep over fake CPU devices, in subprocesses (XLA's device count is fixed
at start-up): equal to one device, really partitioned, and clear about batches that do not split."""

import json
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

SCRIPT = textwrap.dedent(
    """
    import json, sys, jax, jax.numpy as jnp, numpy as np, optax, jgd
    from flax import nnx
    n = len(jax.devices())
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 12)).astype(np.float32)
    y = (X[:, :3].argmax(1)).astype(np.int32)
    apply, params = jgd.models.functional(jgd.models.MLP(12, 16, 3, rngs=nnx.Rngs(0)))
    loss = jgd.models.classification_loss(apply)
    mesh = jgd.data_mesh()
    out = {"devices": n}
    for name, kw in {"full": dict(epochs=20), "mini": dict(batch_size=16, epochs=5, key=1)}.items():
        one = jgd.fit(loss, params, (X, y), optimizer=optax.sgd, learning_rate=0.1, **kw)
        many = jgd.fit(loss, params, (X, y), optimizer=optax.sgd, learning_rate=0.1, mesh=mesh,
                       **kw)
        out[name] = float(np.max(np.abs(one.losses - many.losses)))
        out[name + "_params"] = max(float(np.max(np.abs(a - b))) for a, b in
                                    zip(jax.tree.leaves(one.params), jax.tree.leaves(many.params)))
        leaf = jax.tree.leaves(many.params)[0]
        sharding = leaf.sharding
        out[name + "_replicated"] = sharding.is_fully_replicated and len(sharding.device_set) == n
    # the compiled program is partitioned: it holds an all-reduce of the gradient
    from jgd import _fit
    step = jax.jit(jgd.make_step(loss, optax.sgd(0.1)))
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    state = jax.device_put(jgd.TrainState.create(params, optax.sgd(0.1)), rep)
    batch = jax.device_put((X, y), split)
    hlo = step.lower(state, batch).compile().as_text()
    out["all_reduce"] = "all-reduce" in hlo
    try:
        jgd.fit(loss, params, (X, y), optimizer=optax.sgd, learning_rate=0.1, batch_size=1,
                key=0, mesh=mesh)
    except ValueError as e:
        out["error"] = str(e)
    sw1 = jgd.sweep(loss, params, (X, y), optimizer=optax.sgd, learning_rate=[0.05, 0.1, 0.2],
                    seeds=[0, 1], batch_size=16, epochs=2)
    swn = jgd.sweep(loss, params, (X, y), optimizer=optax.sgd, learning_rate=[0.05, 0.1, 0.2],
                    seeds=[0, 1], batch_size=16, epochs=2, mesh=mesh)
    out["sweep"] = float(np.max(np.abs(sw1.losses - swn.losses)))
    out["sweep_runs"] = len(swn)
    out["sweep_devices"] = len(jax.tree.leaves(swn.params)[0].sharding.device_set)
    if sys.argv[1:] != ["kinds"]:
        print(json.dumps(out))
        sys.exit()
    # any mesh: jax.make_mesh's default (Explicit axes), Explicit, Auto, two axes; inside or
    # outside jax.set_mesh
    import contextlib
    from jax.sharding import AxisType
    E = AxisType.Explicit
    kinds = {
        "make_mesh": lambda: jax.make_mesh((n,), ("data",)),
        "explicit": lambda: jax.make_mesh((n,), ("data",), axis_types=(E,)),
        "auto": lambda: jax.make_mesh((n,), ("data",), axis_types=(AxisType.Auto,)),
        "2d": lambda: jax.make_mesh((n // 2, 2), ("data", "model"), axis_types=(E, E)),
    }
    plans = {"full": dict(epochs=5), "mini": dict(batch_size=16, epochs=2, key=1)}
    ones = {k: jgd.fit(loss, params, (X, y), optimizer=optax.sgd, learning_rate=0.1, **kw)
            for k, kw in plans.items()}
    out["kinds"] = {}
    contexts = {"make_mesh": (False, True), "explicit": (False,), "auto": (False,), "2d": (True,)}
    for kind, make in kinds.items():
        for inside in contexts[kind]:
            for plan, kw in plans.items():
                m = make()
                with jax.set_mesh(m) if inside else contextlib.nullcontext():
                    got = jgd.fit(loss, params, (X, y), optimizer=optax.sgd, learning_rate=0.1,
                                  mesh=m, **kw)
                out["kinds"][f"{kind}, set_mesh={inside}, {plan}"] = float(
                    np.max(np.abs(ones[plan].losses - got.losses)))
    m = kinds["make_mesh"]()
    swm = jgd.sweep(loss, params, (X, y), optimizer=optax.sgd, learning_rate=[0.05, 0.1, 0.2],
                    seeds=[0, 1], batch_size=16, epochs=2, mesh=m)
    out["kinds"]["make_mesh, sweep"] = float(np.max(np.abs(sw1.losses - swm.losses)))
    step = jgd.with_data(jgd.make_step(loss, optax.sgd(0.1)), (X, y), mesh=m)
    state, metrics = step(jgd.TrainState.create(params, optax.sgd(0.1)), np.arange(16))
    ref = jgd.with_data(jgd.make_step(loss, optax.sgd(0.1)), (X, y))(
        jgd.TrainState.create(params, optax.sgd(0.1)), np.arange(16))[1]
    out["kinds"]["make_mesh, with_data"] = abs(float(metrics["loss"]) - float(ref["loss"]))
    print(json.dumps(out))
    """
)


def run_on(devices, *args):
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("devices", [4, 8])
def test_data_parallel_equals_one_device(devices):
    kinds = devices == 4  # every kind of mesh on one device count: the same code for any count
    r = run_on(devices, *["kinds"] * kinds)
    assert r["devices"] == devices
    for plan in ("full", "mini"):
        assert r[plan] < 1e-5 and r[plan + "_params"] < 1e-5, r
        assert r[plan + "_replicated"]
    assert r["all_reduce"]
    assert f"batch_size=1 cannot be split evenly over the {devices} devices" in r["error"]
    assert r["sweep"] < 1e-5 and r["sweep_runs"] == 6
    assert r["sweep_devices"] == devices
    if kinds:
        assert len(r["kinds"]) == 12 and all(d < 1e-5 for d in r["kinds"].values()), r["kinds"]


def test_mesh_must_be_a_mesh():
    with pytest.raises(TypeError, match="not a jax.sharding.Mesh"):
        jgd.fit(
            lambda w, b: jnp.sum(w**2),
            jnp.ones(2),
            np.zeros((4, 1)),
            optimizer=optax.sgd,
            learning_rate=0.1,
            mesh="gpu",
        )


def test_one_device_mesh_runs_unchanged():
    loss = lambda w, b: jnp.mean((b[:, 0] * w[0] - 1.0) ** 2)  # noqa: E731
    data = np.ones((8, 1), np.float32)
    plain = jgd.fit(loss, jnp.zeros(1), data, optimizer=optax.sgd, learning_rate=0.1, epochs=30)
    meshed = jgd.fit(
        loss,
        jnp.zeros(1),
        data,
        optimizer=optax.sgd,
        learning_rate=0.1,
        epochs=30,
        mesh=jgd.data_mesh(),
    )
    np.testing.assert_allclose(plain.losses, meshed.losses, rtol=1e-6)
