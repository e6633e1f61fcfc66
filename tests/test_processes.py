"""Several processes joined by jax.distributed (CPU collectives through gloo), started by the tests
themselves on 127.0.0.1: each holds half the examples as a global array, and fit over a mesh
spanning both equals the one-process run; a killed process ends the other with a clear error,
not a hang, and the checkpoints written before resume the run."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import optax
import pytest

import jgd

SCRIPT = textwrap.dedent(
    """
    import json, sys, time, jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    pid, port, job, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid,
                               heartbeat_timeout_seconds=10)
    import numpy as np, optax, jgd
    from jax.sharding import NamedSharding, PartitionSpec
    p = jgd.problems.mlp("synthetic", width=12, hidden=16, examples=64)
    X, y = p.data
    mesh = jax.make_mesh((2,), ("data",)) if job == "equal-make-mesh" else jgd.data_mesh()
    split = NamedSharding(mesh, PartitionSpec("data"))
    mine = slice(32 * pid, 32 * (pid + 1))  # this process's half of the examples
    data = tuple(jax.make_array_from_process_local_data(split, a[mine]) for a in (X, y))
    fit = lambda **kw: jgd.fit(p.loss, p.params, data, optimizer=optax.sgd, learning_rate=0.1,
                               mesh=mesh, **kw)
    out = {"devices": len(jax.devices()), "processes": jax.process_count()}
    if job.startswith("disagree-") or job == "late":
        try:
            if job == "disagree-lr":
                jgd.fit(p.loss, p.params, data, optimizer=optax.sgd, learning_rate=0.1 + pid,
                        mesh=mesh, epochs=2)
            elif job == "disagree-width":
                q = jgd.problems.mlp("synthetic", width=12, hidden=16 + 8 * pid, examples=64)
                jgd.fit(q.loss, q.params, data, optimizer=optax.sgd, learning_rate=0.1,
                        mesh=mesh, epochs=2)
            elif pid == 1:  # late: does not reach fit within the other's timeout (3 s)
                time.sleep(6)
                raise SystemExit(0)
            else:
                fit(epochs=2)
        except (ValueError, jgd.ProcessLostError) as e:
            print("ERROR", type(e).__name__, str(e), flush=True)
            raise SystemExit(4)
    if job.startswith("equal"):
        out["axis_types"] = [str(t) for t in getattr(mesh, "axis_types", ())]
        order = np.random.default_rng(0).integers(0, 64, size=(12, 16))
        for name, kw in {"full": dict(epochs=10), "order": dict(order=order)}.items():
            r = fit(**kw)
            out[name] = np.asarray(r.losses).tolist()
            out[name + "_params"] = [np.asarray(a).tolist() for a in jax.tree.leaves(r.params)]
    else:  # a long run, slowed down by its callback, with checkpoints
        def report(progress):
            print("step", progress.step, flush=True)
            time.sleep(0.05)
        try:
            r = fit(epochs=300, checkpoint_dir=folder, checkpoint_every=20, report_every=20,
                    callback=report)
            out["losses"] = np.asarray(r.losses).tolist()
        except jgd.ProcessLostError as e:
            print("LOST:", e, flush=True)
            raise SystemExit(3)
    print("RESULT", json.dumps(out), flush=True)
    """
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(job, folder, port, env=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", **(env or {})}
    return [
        subprocess.Popen(
            [sys.executable, "-u", "-c", SCRIPT, str(pid), str(port), job, str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for pid in (0, 1)
    ]


def _result(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def _one_process(**kw):
    p = jgd.problems.mlp("synthetic", width=12, hidden=16, examples=64)
    return jgd.fit(p.loss, p.params, p.data, optimizer=optax.sgd, learning_rate=0.1, **kw)


@pytest.mark.parametrize("job", ["equal", "equal-make-mesh"])
def test_two_processes_equal_one(tmp_path, job):
    # equal-make-mesh: global arrays on jax.make_mesh's mesh (Explicit axes) and fit(mesh=it)
    results = [_result(proc) for proc in _start(job, tmp_path, _port())]
    order = np.random.default_rng(0).integers(0, 64, size=(12, 16))
    for got in results:
        assert got["devices"] == 2 and got["processes"] == 2
        assert job == "equal" or got["axis_types"] == ["AxisType.Explicit"]
        for name, kw in {"full": dict(epochs=10), "order": dict(order=order)}.items():
            one = _one_process(**kw)
            np.testing.assert_allclose(got[name], one.losses, atol=1e-5)
            leaves = [np.asarray(a) for a in jax_leaves(one.params)]
            for a, b in zip(got[name + "_params"], leaves, strict=True):
                np.testing.assert_allclose(a, b, atol=1e-5)


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_a_killed_process_ends_the_other_with_an_error_and_the_checkpoints_resume(tmp_path):
    first, second = _start("long", tmp_path / "run", _port())
    for line in second.stdout:  # wait until the run is under way, with checkpoints written
        if line.startswith("step ") and int(line.split()[1]) >= 100:
            break
    second.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    out, _ = first.communicate(timeout=120)
    waited = time.monotonic() - killed_at
    second.wait()
    second.stdout.close()
    assert first.returncode != 0 and waited < 60, (waited, out[-2000:])
    # jgd's error when the failure shows in a collective; else JAX's distributed service ends
    # the process once the dead one misses its heartbeats (heartbeat_timeout_seconds=10 here)
    lost = "LOST: process 0 of 2: a collective operation failed" in out
    assert lost or "JAX distributed service detected fatal errors" in out, out[-2000:]
    # the checkpoints written before the kill (by process 0) resume the run in both
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.isdigit()]
    results = [_result(proc) for proc in _start("long", tmp_path / "run", _port())]
    one = _one_process(epochs=300)
    for got in results:
        np.testing.assert_allclose(got["losses"], one.losses, atol=1e-5)


@pytest.mark.parametrize(
    "job,match",
    [
        ("disagree-lr", "ValueError the processes of this run disagree on learning_rate"),
        ("disagree-width", "ValueError the processes of this run disagree on params"),
    ],
)
def test_processes_given_different_runs_stop_at_once_naming_the_difference(tmp_path, job, match):
    procs = _start(job, tmp_path, _port())
    started = time.monotonic()
    outs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert time.monotonic() - started < 60
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 4 and match in out, out[-2000:]
        assert "process 0: " in out and "process 1: " in out


def test_a_process_that_never_reaches_the_run_is_named_after_the_timeout(tmp_path):
    first, second = _start("late", tmp_path, _port(), env={"JGD_PROCESS_TIMEOUT": "3"})
    try:
        out, _ = first.communicate(timeout=60)
    finally:
        second.kill()
        second.communicate()
    assert first.returncode == 4, out[-2000:]
    assert (
        "ProcessLostError process 0 of 2: process 1 did not reach this run's start within 3 s"
        in out
    )


def test_jgd_train_as_two_processes_equals_one(tiny_mnist, tmp_path):
    from jgd import cli

    base = ["train", "--data-dir", str(tiny_mnist), "--epochs", "2", "--no-progress"]
    assert cli.main([*base, "--out", str(tmp_path / "one")]) == 0
    join = ["--coordinator", f"127.0.0.1:{_port()}", "--num-processes", "2", "--process-id"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jgd.cli", *base, "--out", str(tmp_path / "two"), *join, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""},
        )
        for i in (0, 1)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0 and "epoch 2/2" in out, out[-2000:]
    one, two = np.load(tmp_path / "one" / "model.npz"), np.load(tmp_path / "two" / "model.npz")
    for name in one.files:
        np.testing.assert_allclose(two[name], one[name], atol=1e-5)


def test_a_coordinator_port_in_use_is_named(tiny_mnist, tmp_path, capsys):
    from jgd import cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["train", "--data-dir", str(tiny_mnist), "--out", str(tmp_path), "--coordinator",
                f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"]  # fmt: skip
        assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"port {port} is in use on this machine" in err and "\n" not in err


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--coordinator", "127.0.0.1:1"], "give --coordinator, --num-processes and --process-id"),
        (
            ["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
            "--process-id 2 is not below --num-processes 2",
        ),
        (["--coordinator", "not a host"], "--coordinator: 'not a host' is not HOST:PORT"),
        (["--coordinator", "h:99999"], "the port must lie in 1-65535"),
        (["--process-timeout", "0"], "--process-timeout"),
    ],
)
def test_train_process_flags_are_checked(tiny_mnist, tmp_path, capsys, flags, match):
    from jgd import cli

    argv = ["train", "--data-dir", str(tiny_mnist), "--out", str(tmp_path), *flags]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err


def _train_processes(tiny_mnist, tmp_path, ids, counts):
    port = _port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jgd.cli",
                "train",
                "--data-dir",
                str(tiny_mnist),
                "--out",
                str(tmp_path / f"p{j}"),
                "--no-progress",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                str(n),
                "--process-id",
                str(i),
                "--process-timeout",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""},
        )
        for j, (i, n) in enumerate(zip(ids, counts, strict=True))
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    return [
        (p.returncode, out.strip().splitlines()[-1]) for p, out in zip(procs, outs, strict=True)
    ]


@pytest.mark.parametrize(
    "ids, counts, match",
    [
        ((0, 1, 1), (3, 3, 3), "two processes were given --process-id 1; give each its own"),
        ((0, 1), (2, 3), "process 1 was given --num-processes 3, process 0 --num-processes 2"),
    ],
)
def test_processes_with_one_id_or_other_counts_are_named_before_joining(
    tiny_mnist, tmp_path, ids, counts, match
):
    # jax's coordination service would abort every process (SIGABRT) on a duplicate id
    for code, last in _train_processes(tiny_mnist, tmp_path, ids, counts):
        assert code == 2 and last.startswith("jgd: ") and match in last, last
