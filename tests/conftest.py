"""Shared fixtures and strict settings.

Warnings are errors (pyproject.toml). Hypothesis keeps no example database (nothing is written to
the work tree). Float64 tests run inside ``jax.enable_x64(True)`` so the rest
of the suite sees JAX's defaults, as users do. Tests that check dtypes use strict promotion.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tempfile

import hypothesis
import hypothesis.configuration
import jax
import numpy as np
import pytest

# Property tests keep no example database, and Hypothesis's own files go to the temp folder: a
# run leaves no .hypothesis/ in the work tree (CI fails on files the tests leave behind).
hypothesis.configuration.set_hypothesis_home_dir(
    pathlib.Path(tempfile.gettempdir()) / "jgd-hypothesis"
)
hypothesis.settings.register_profile("jgd", database=None)
hypothesis.settings.load_profile("jgd")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture
def x64():
    """Float64 inside the test only."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture(scope="session")
def line_data():
    """Seed 003's line fit: m = 100, NumPy default_rng(0); θ* = [1.961, 0.998]."""
    rng = np.random.default_rng(0)
    m = 100
    x = rng.uniform(0, 1, m)
    y = 2.0 * x + 1.0 + rng.normal(0, 0.3, m)
    X = np.c_[x, np.ones(m)]
    return X, y, np.linalg.solve(X.T @ X, X.T @ y)


@pytest.fixture(scope="session")
def mnist_dir():
    """The shared real MNIST subset, when this checkout has it (CI does; a user's machine not)."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {SHARED_MNIST} (only CI and dev checkouts have it)")
    return SHARED_MNIST


@pytest.fixture
def tiny_mnist(tmp_path):
    """A learnable MNIST-shaped set: the label decides which image band is bright."""
    from tests.test_data import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, n in [("train", 640), ("t10k", 200)]:
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 4 : 2 * label + 6, :] = 255
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", images, 0x803, compress=True)
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels, 0x801, compress=True)
    return folder


_CACHE = "JAX_COMPILATION_CACHE_DIR"
_made = pytest.StashKey[str]()
# The suite's programs are small and many: most of its time was XLA compiling them, and most of
# that LLVM optimizing machine code that then runs for milliseconds. The tests (and the jgd and
# jax.distributed processes they start, through the environment) compile with LLVM at -O0:
# XLA's own passes (fusion, layout, buffer assignment, and so the memory figures) and the
# library calls (matmuls, convolutions) are unchanged, and every test compares programs
# compiled alike. The few tests whose time is running, not compiling, run in a subprocess at
# the default level (``run_optimized``, ``optimized_env``). Measured on 2 cores: the suite 686 s
# at the default level, 617 s at 0, 515 s so; all passing at each.
# ``XLA_FLAGS=--xla_backend_optimization_level=2 python -m pytest`` runs it
# at the default level (a level already in XLA_FLAGS is kept); -O1 is not a middle way: it
# compiles a fit and its hand-written twin to results 1 ulp apart.
_LEVEL = "--xla_backend_optimization_level"


def optimized_env() -> dict[str, str]:
    """The environment for a subprocess whose time is running, not compiling (a long run, P
    jvps): LLVM at its default level again (the last level in XLA_FLAGS wins)."""
    return {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {_LEVEL}=2".strip()}


def run_optimized(module: str, function: str, *args):
    """``module.function(*args)`` in a fresh process at LLVM's default level (``optimized_env``),
    its result sent back pickled: for an in-process test whose time is running (hundreds of
    steps of a compiled loop), which the suite's -O0 slows 2-3x."""
    code = (
        "import importlib, pickle, sys; "
        f"f = getattr(importlib.import_module({module!r}), {function!r}); "
        f"sys.stdout.buffer.write(pickle.dumps(f(*pickle.loads(sys.stdin.buffer.read()))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(args), capture_output=True,
        env=optimized_env(), cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return pickle.loads(done.stdout)


def pytest_configure(config):
    """Matplotlib without a display; one persistent compilation cache for the whole run.

    The suite compiles the same programs in many processes (its two xdist workers, and the
    ``jgd`` and ``jax.distributed`` processes the tests start): jax's persistent cache in one
    temporary folder, made by the first process and inherited through the environment, compiles
    each once. A cached program is XLA's own executable, so no result changes; the tests that
    count compiles subtract its hits (``jgd.timing.backend_compiles``) or count jgd's own.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    if _LEVEL not in os.environ.get("XLA_FLAGS", ""):  # before any backend starts: see _LEVEL
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_LEVEL}=0".strip()
    if _CACHE not in os.environ:  # the first process of the run: the controller, or -n 0
        os.environ[_CACHE] = tempfile.mkdtemp(prefix="jgd-tests-xla-cache-")
        config.stash[_made] = os.environ[_CACHE]
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_unconfigure(config):
    made = config.stash.get(_made, None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
