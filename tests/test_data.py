"""Data: the seeds' sets, the IDX reader on files written here, and its faults."""

import gzip
import struct

import numpy as np
import pytest

import jgd


def write_idx(path, array, magic, compress=False):
    header = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def make_mnist(folder, n=7, split="train", compress=True, rows=28):
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, size=(n, rows, rows), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    stem = "train" if split == "train" else "t10k"
    ext = ".gz" if compress else ""
    write_idx(folder / f"{stem}-images-idx3-ubyte{ext}", images, 0x803, compress)
    write_idx(folder / f"{stem}-labels-idx1-ubyte{ext}", labels, 0x801, compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_on_files_written_here(tmp_path, compress):
    images, labels = make_mnist(tmp_path, n=13, compress=compress)
    data = jgd.data.mnist(tmp_path, "train")
    assert data.X.shape == (13, 784) and data.X.dtype == np.float32
    assert data.y.dtype == np.int32 and data.y.tolist() == labels.tolist()
    np.testing.assert_array_equal(data.X, images.reshape(13, -1) / np.float32(255))
    assert data.X.min() >= 0 and data.X.max() <= 1


def test_header_counts_are_the_truth(tmp_path):
    make_mnist(tmp_path, n=3, split="test", rows=5)
    assert jgd.data.mnist(tmp_path, "test").X.shape == (3, 25)


def test_missing_files_are_named_with_how_to_get_them(tmp_path):
    make_mnist(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\[.gz\].*download_mnist"):
        jgd.data.mnist(tmp_path, "train")


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        jgd.data.mnist(tmp_path / "nope")


def test_wrong_magic(tmp_path):
    make_mnist(tmp_path, compress=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[3] = 0x03
    path.write_bytes(bytes(raw))
    with pytest.raises(jgd.data.MNISTError, match="magic 0x00000803; expected 0x00000801"):
        jgd.data.mnist(tmp_path)


def test_truncated_file_is_an_error_not_a_garbled_array(tmp_path):
    make_mnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        jgd.data.MNISTError, match=r"7 x 28 x 28 = 5488 values but the file holds 5388"
    ):
        jgd.data.mnist(tmp_path)


def test_corrupted_gzip(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(jgd.data.MNISTError, match="cannot be read as gzip"):
        jgd.data.mnist(tmp_path)


def test_images_and_labels_must_agree(tmp_path):
    make_mnist(tmp_path, n=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4), 0x801, compress=True)
    with pytest.raises(jgd.data.MNISTError, match="5 images but .* 4 labels"):
        jgd.data.mnist(tmp_path)


def test_bad_split():
    with pytest.raises(ValueError, match="split='val'"):
        jgd.data.mnist(".", "val")


def test_download_offline_says_what_to_put_where(tmp_path):
    with pytest.raises(ConnectionError, match=r"Put the standard files .* into"):
        jgd.data.download_mnist(tmp_path, mirrors=("http://127.0.0.1:9/",), timeout=2)


def test_download_rejects_a_bad_checksum(tmp_path):
    import http.server
    import threading

    (tmp_path / "srv").mkdir()
    for name in jgd.data._mnist.MD5:
        (tmp_path / "srv" / name).write_bytes(b"not mnist")

    def handler(*a, **k):
        return http.server.SimpleHTTPRequestHandler(*a, directory=tmp_path / "srv", **k)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ConnectionError, match="checksum mismatch"):
            jgd.data.download_mnist(
                tmp_path / "dest", mirrors=(f"http://127.0.0.1:{server.server_port}/",)
            )
    finally:
        server.shutdown()
        server.server_close()
    assert not list((tmp_path / "dest").glob("*.gz"))  # nothing half-written left in place


def test_real_mnist_subset(mnist_dir):
    train, test = jgd.data.mnist(mnist_dir, "train"), jgd.data.mnist(mnist_dir, "test")
    assert train.X.shape == (5000, 784) and test.X.shape == (10000, 784)
    assert test.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.all(np.diff(train.y) >= 0)  # the subset is sorted by label, 500 per class
    assert np.bincount(train.y).tolist() == [500] * 10


def test_line_is_the_seed_data():
    data = jgd.data.line()
    assert [f"{v:.3f}" for v in data.least_squares] == ["1.961", "0.998"]
    X, _y = data  # a pytree (NamedTuple): unpacks and goes to fit as is
    assert X.shape == (100, 2) and np.all(X[:, 1] == 1)


def test_digits_split_is_fixed_and_disjoint():
    train, test = jgd.data.digits("train"), jgd.data.digits("test")
    assert len(train.y) + len(test.y) == 1797 and train.X.shape[1] == 64
    assert train.X.max() <= 1 and train.X.dtype == np.float32
    np.testing.assert_array_equal(jgd.data.digits("train").X, train.X)


def test_real_digits_falls_back_to_sklearn(tmp_path, monkeypatch):
    monkeypatch.setenv("JGD_DATA", str(tmp_path))
    assert jgd.data.real_digits().name == "scikit-learn 8x8 digits"
    with pytest.raises(FileNotFoundError):
        jgd.data.real_digits(tmp_path / "missing")
