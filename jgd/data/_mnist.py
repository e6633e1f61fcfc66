"""MNIST from standard IDX files (gzip or raw), and a checksummed downloader.

IDX: a big-endian int32 magic (0x00000803 images, 0x00000801 labels), int32 counts (images: n, rows,
cols), then uint8 values. The counts in the header are the truth: they are read, checked against
the bytes actually present, and never assumed to be 60,000 / 10,000.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import shutil
import struct
import urllib.error
import urllib.request
import zlib

import numpy as np

from jgd.data._synthetic import Dataset

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# md5 of the canonical .gz files (as published with the data set and used by torchvision).
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801


class MNISTError(ValueError):
    """A truncated or corrupted MNIST (IDX) file; a ``ValueError``.

    Raised by ``jgd.data.mnist`` and ``jgd.data.read_idx`` with the file and what is wrong with it
    (a missing file is a ``FileNotFoundError`` instead).

    Examples:
      >>> import pathlib, tempfile, jgd
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = pathlib.Path(folder) / "labels-idx1-ubyte"
      ...     _ = path.write_bytes(bytes([0, 0, 8, 1]))  # the labels' magic, then nothing
      ...     try:
      ...         jgd.data.read_idx(path, 0x801)
      ...     except jgd.data.MNISTError as e:
      ...         print(f"MNISTError: {e}")
      MNISTError: ...labels-idx1-ubyte is truncated: 4 bytes, less than its 8-byte header.
    """


def default_dir() -> pathlib.Path:
    """Where ``download_mnist`` puts the files: ``$JGD_DATA/mnist`` or ``~/.cache/jgd/mnist``.

    Only the path: nothing is created or downloaded. ``real_digits`` and ``jgd train`` look here.

    Returns:
      The folder, a ``pathlib.Path``.

    Examples:
      >>> import jgd
      >>> jgd.data.default_dir().name
      'mnist'
    """
    base = os.environ.get("JGD_DATA") or pathlib.Path.home() / ".cache" / "jgd"
    return pathlib.Path(base) / "mnist"


def mnist(data_dir: str | os.PathLike, split: str = "train") -> Dataset:
    """MNIST images and labels from IDX files in ``data_dir``.

    Args:
      data_dir: a folder holding ``train-images-idx3-ubyte`` etc., gzipped (``.gz``) or raw.
      split: ``"train"`` or ``"test"``.

    Returns:
      ``Dataset(X, y)``: X float32 in [0, 1] of shape (n, rows * cols), y int32 of shape (n,).

    Raises:
      FileNotFoundError: the folder or a file is missing (named, with how to get it).
      MNISTError: a file is truncated or corrupted (wrong magic, counts that do not match the
        bytes, images and labels of different counts).
      ValueError: ``split`` is neither ``"train"`` nor ``"test"``.

    Examples:
      A tiny test split of three 2x2 images, written in the IDX format (magic, sizes, bytes):

      >>> import pathlib, struct, tempfile, numpy as np, jgd
      >>> def idx(path, magic, values):
      ...     path.write_bytes(struct.pack(f">{1 + values.ndim}i", magic, *values.shape)
      ...                      + values.tobytes())
      >>> images, labels = np.full((3, 2, 2), 255, np.uint8), np.array([7, 2, 1], np.uint8)
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     idx(pathlib.Path(folder) / "t10k-images-idx3-ubyte", 0x803, images)
      ...     idx(pathlib.Path(folder) / "t10k-labels-idx1-ubyte", 0x801, labels)
      ...     test = jgd.data.mnist(folder, "test")
      >>> test.X.shape, float(test.X.max()), test.y.tolist()
      ((3, 4), 1.0, [7, 2, 1])
    """
    if split not in FILES:
        raise ValueError(f"split={split!r} is not valid; expected 'train' or 'test'.")
    folder = pathlib.Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"data_dir={str(folder)!r} does not exist or is not a folder.")
    paths = [_find(folder, name) for name in FILES[split]]
    missing = [name for name, p in zip(FILES[split], paths, strict=True) if p is None]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks {', '.join(n + '[.gz]' for n in missing)}; put the standard MNIST IDX "
            f"files there, or fetch them with jgd.data.download_mnist({str(folder)!r}) "
            "(`jgd train --download`)."
        )
    images = read_idx(paths[0], IMAGES_MAGIC)
    labels = read_idx(paths[1], LABELS_MAGIC)
    if len(images) != len(labels):
        raise MNISTError(
            f"{paths[0].name} has {len(images)} images but {paths[1].name} has "
            f"{len(labels)} labels."
        )
    X = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return Dataset(X, labels.astype(np.int32))


def _find(folder: pathlib.Path, name: str) -> pathlib.Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """The uint8 array in an IDX file, with the header checked against ``magic`` and the size.

    IDX is MNIST's format: a big-endian int32 magic, one int32 size per dimension, then the
    values, one byte each.

    Args:
      path: the file; gzip-compressed when its name ends in ``.gz``.
      magic: ``0x00000803`` for images (3 dimensions), ``0x00000801`` for labels (1).

    Returns:
      A read-only uint8 array of the shape the header gives.

    Raises:
      MNISTError: the file cannot be read (or un-gzipped), has another magic, or holds more or
        fewer values than its header says.

    Examples:
      >>> import pathlib, struct, tempfile, jgd
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = pathlib.Path(folder) / "labels-idx1-ubyte"
      ...     _ = path.write_bytes(struct.pack(">ii", 0x801, 3) + bytes([7, 2, 1]))
      ...     labels = jgd.data.read_idx(path, 0x801)
      >>> labels.tolist(), labels.dtype.name
      ([7, 2, 1], 'uint8')
    """
    path = pathlib.Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise MNISTError(
            f"{path} cannot be read as {'gzip' if path.suffix == '.gz' else 'IDX'}: {e}"
        ) from None
    ndim = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MNISTError(
            f"{path} is truncated: {len(raw)} bytes, less than its {header}-byte header."
        )
    found = struct.unpack(">i", raw[:4])[0]
    if found != magic:
        raise MNISTError(
            f"{path} has magic 0x{found:08x}; expected 0x{magic:08x} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'})."
        )
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    expected = int(np.prod(dims))
    if min(dims) < 0 or len(raw) - header != expected:
        raise MNISTError(
            f"{path}: the header says {' x '.join(map(str, dims))} = {expected} values "
            f"but the file holds {len(raw) - header}; it is truncated or corrupted."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def download_mnist(
    dest: str | os.PathLike | None = None, mirrors: tuple[str, ...] = MIRRORS, timeout: float = 30.0
) -> pathlib.Path:
    """Downloads the four canonical MNIST files (about 11 MB) into ``dest``; needs the network.

    Files already present with the right checksum are kept, not fetched again. Each download is
    verified by md5 before it is moved into place, so a failed one leaves no partial file.

    Args:
      dest: the folder (created if missing); default ``default_dir()``.
      mirrors: base URLs tried in turn for each file.
      timeout: seconds to wait on a mirror before trying the next.

    Returns:
      The folder, ready for ``jgd.data.mnist``.

    Raises:
      ConnectionError: no mirror could be reached (offline): the message lists the files and
        where to put them by hand.

    Examples:
      >>> import jgd
      >>> folder = jgd.data.default_dir()  # where the files go by default
      >>> folder.name
      'mnist'
      >>> jgd.data.download_mnist(folder)  # doctest: +SKIP
      PosixPath('/home/you/.cache/jgd/mnist')

      After it, ``jgd.data.mnist(folder, "train")`` reads the 60,000 training images.
    """
    folder = pathlib.Path(dest) if dest is not None else default_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in MD5.items():
        target = folder / name
        if target.is_file() and _md5(target) == md5:
            continue
        errors = []
        for mirror in mirrors:
            try:
                _fetch(mirror + name, target, md5, timeout)
                break
            except (OSError, urllib.error.URLError, ValueError) as e:
                errors.append(f"{mirror}: {e}")
        else:
            raise ConnectionError(
                f"could not download {name} ({'; '.join(errors)[:300]}). Offline? Put the standard "
                f"files {', '.join(MD5)} into {folder} by hand, then pass --data-dir {folder}."
            )
    return folder


def _fetch(url: str, target: pathlib.Path, md5: str, timeout: float) -> None:
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    got = _md5(partial)
    if got != md5:
        partial.unlink(missing_ok=True)
        raise ValueError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
    partial.replace(target)


def _md5(path: pathlib.Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
