"""fit(stream=True): data left on the host (a memmap), each chunk's batches read ahead; equal to
the in-memory run; faults in the file named."""

import jax
import numpy as np
import optax
import pytest

import jgd
from jgd import _stream

PLANS = {
    "shuffled": dict(batch_size=16, epochs=3, key=1),
    "order": dict(order=np.random.default_rng(5).integers(0, 1000, (50, 16))),
    "full": dict(epochs=4),
}


@pytest.fixture
def files(tmp_path, monkeypatch):
    """X (1000 x 12) and y as .npy files, opened as memmaps; blocks of 3 steps per chunk."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 12)).astype(np.float32)
    y = X[:, :3].argmax(1).astype(np.int32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    monkeypatch.setattr(_stream, "BLOCK_BYTES", 3 * 16 * (12 * 4 + 4))  # several chunks
    memmaps = tuple(np.load(tmp_path / f, mmap_mode="r") for f in ("X.npy", "y.npy"))
    return (X, y), memmaps, tmp_path


def _fit(data, **kw):
    p = jgd.problems.mlp("synthetic", width=12, hidden=16, examples=8)
    return jgd.fit(p.loss, p.params, data, optimizer=optax.sgd, learning_rate=0.1, **kw)


@pytest.mark.parametrize("plan", list(PLANS))
def test_streamed_equals_in_memory(files, plan):
    in_memory, memmaps, _ = files
    a, b = _fit(in_memory, **PLANS[plan]), _fit(memmaps, stream=True, **PLANS[plan])
    np.testing.assert_array_equal(a.losses, b.losses)
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(u, v)
    assert a.final_loss == b.final_loss


def test_chunks_are_bounded_and_read_ahead(files):
    _, memmaps, _ = files
    host = _stream.HostData(memmaps)
    assert _stream.chunk_length(60, 16, host.row_bytes) == 3  # the largest divisor under the cap
    order = np.arange(64, dtype=np.int32).reshape(4, 16)
    prefetch = _stream.Prefetch(host, order, 3, jax.device_put)
    try:
        block, local = prefetch.block(0)
        assert 3 in prefetch.pending and local.shape == (3, 16)  # the next chunk is being read
        np.testing.assert_array_equal(block[0][:48], memmaps[0][:48])
        last, _ = prefetch.block(3)  # a short last chunk, padded to the same shape
        assert last[0].shape == (48, 12) and not np.asarray(last[0][16:]).any()
    finally:
        prefetch.close()


def test_streamed_run_resumes_from_its_checkpoints(files, tmp_path):
    in_memory, memmaps, _ = files
    kw = dict(batch_size=16, epochs=2, key=3, checkpoint_every=6)
    whole = _fit(in_memory, **kw, checkpoint_dir=tmp_path / "a")

    def stop(p):
        if p.step >= 60:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(
            memmaps, stream=True, callback=stop, report_every=6, checkpoint_dir=tmp_path / "b", **kw
        )
    resumed = _fit(memmaps, stream=True, checkpoint_dir=tmp_path / "b", **kw)
    np.testing.assert_array_equal(resumed.losses, whole.losses)


def test_a_truncated_file_is_named(files):
    _, memmaps, folder = files
    with open(folder / "X.npy", "r+b") as f:  # cut the file after it was opened
        f.truncate(20_000)
    with pytest.raises(OSError, match=r"data array 0 \(file .*X.npy\) holds 20,000 bytes"):
        _fit(memmaps, stream=True, **PLANS["shuffled"])


class Failing:
    """An array-like whose reads fail after ``good`` of them, as a disk might."""

    def __init__(self, array, good):
        self.array, self.good, self.shape, self.dtype = array, good, array.shape, array.dtype

    def __getitem__(self, rows):
        self.good -= 1
        if self.good < 0:
            raise OSError(5, "Input/output error")
        return self.array[rows]


def test_a_read_error_mid_run_is_named_and_the_checkpoints_stay(files, tmp_path):
    (X, y), _, _ = files
    kw = dict(batch_size=16, epochs=1, key=0, checkpoint_every=3)
    with pytest.raises(OSError, match="reading examples from data array 0 failed"):
        _fit((Failing(X, 6), y), stream=True, checkpoint_dir=tmp_path / "c", **kw)
    steps = [p.name for p in (tmp_path / "c").iterdir() if p.name.isdigit()]
    assert steps  # written before the failure, and a rerun resumes from them
    np.testing.assert_array_equal(
        _fit((X, y), stream=True, checkpoint_dir=tmp_path / "c", **kw).losses,
        _fit((X, y), **{k: v for k, v in kw.items() if k != "checkpoint_every"}).losses,
    )


@pytest.mark.parametrize("where", [0, 5, 9])  # the first, a middle and the short last slice
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_example_in_any_slice_of_a_block_is_named(
    files, monkeypatch, where, bad_value
):
    """A block is read and checked a slice of rows at a time (here 5 rows): a NaN or Inf in any
    slice, the short last one too, is named by its example; the clean rows around it are not."""
    (X, y), _, _ = files
    monkeypatch.setattr(_stream, "SLICE_BYTES", 5 * 12 * 4)
    order = np.arange(16 * 3).reshape(3, 16) * 7 % 1000  # 48 rows: 10 slices, the last of 3
    bad = X.copy()
    example = int(order.reshape(-1)[min(5 * where + 2, 47)])
    bad[example, 5] = bad_value
    with pytest.raises(ValueError, match=f"NaN or Inf in example {example}\\."):
        _fit((bad, y), stream=True, order=order)
    rows = order.reshape(-1)
    block, finite = _stream._take(bad, rows)
    assert finite is False and np.array_equal(block, bad[rows], equal_nan=True)
    block, finite = _stream._take(X, rows)
    assert finite is True and np.array_equal(block, X[rows])


def test_bad_streamed_data_is_refused_by_name(files):
    (X, y), memmaps, _ = files
    bad = X.copy()
    bad[777, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf in example 777"):
        _fit((bad, y), stream=True, order=np.array([[1, 777]]))
    with pytest.raises(TypeError, match="cannot be streamed"):
        _fit(([[1.0]] * 4, [0] * 4), stream=True, batch_size=2, key=0)
    with pytest.raises(ValueError, match="disagree on the number of examples"):
        _fit((memmaps[0], memmaps[1][:10]), stream=True, batch_size=2, key=0)
    with pytest.raises(TypeError, match="stream='yes'"):
        _fit((X, y), stream="yes")
    with pytest.raises(ValueError, match=r"sweep does not take \['stream'\]"):
        p = jgd.problems.mlp("synthetic", width=12, hidden=16, examples=8)
        jgd.sweep(p.loss, p.params, (X, y), optimizer=optax.sgd, learning_rate=[0.1], stream=True)
