"""Files fastnet writes are atomic; files it reads are hostile.

A failure at any step of a save leaves the previous file byte for byte and no
temporary file; a SIGKILL at a random moment leaves the old or the new file,
complete; a reader never sees a partial checkpoint; every kind of bad weights
file is refused with a ValueError naming the file, before any weight changes,
without leaking an open file.
"""
import csv
import gc
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
import zipfile

import numpy as np
import pytest

import fastnet
from fastnet import _io

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastnet.__file__)))


def make_model(backend, dtype="float32", seed=0, prelu=False):
    layers = [fastnet.Dense(5, "relu"), fastnet.Dense(3, "softmax")]
    if prelu:
        layers = [fastnet.Dense(5), fastnet.PReLU(), fastnet.Dense(3, "softmax")]
    m = fastnet.Sequential(layers, backend=backend, seed=seed, dtype=dtype)
    m.build(4)
    return m


def weights_equal(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


def folder(path):
    return sorted(os.listdir(os.path.dirname(path)))


# ------------------------------------------------------------ failure injection
class Boom(OSError):
    pass


class _FailingFile:
    """Delegates to a real file; write fails once 100 bytes went through (after a
    short write), or flush fails (a full disk, a yanked device)."""

    def __init__(self, fh, step):
        self._fh, self._step, self._written = fh, step, 0

    def write(self, data):
        data = bytes(data) if not isinstance(data, str) else data
        if self._step == "write" and (self._written + len(data) > 100 or len(data) > 10):
            self._fh.write(data[:len(data) // 2])
            raise Boom(28, "No space left on device (injected)")
        self._written += len(data)
        return self._fh.write(data)

    def flush(self):
        if self._step == "flush":
            raise Boom(5, "Input/output error (injected)")
        return self._fh.flush()

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)


def inject(monkeypatch, step):
    """Make the next atomic write fail at *step*."""
    if step in ("write", "flush"):
        real_open = open
        monkeypatch.setattr(_io, "open", lambda *a, **k: _FailingFile(real_open(*a, **k), step),
                            raising=False)
    elif step == "fsync":
        def fsync(fd):
            raise Boom(5, "fsync failed (injected)")
        monkeypatch.setattr(_io.os, "fsync", fsync)
    elif step == "replace":
        def replace(src, dst):
            raise Boom(13, "rename refused (injected)")
        monkeypatch.setattr(_io.os, "replace", replace)
    elif step == "serialise":
        real_savez = np.savez

        def savez(f, **arrays):  # half the archive, then the serialiser fails
            real_savez(f, **dict(list(arrays.items())[:len(arrays) // 2]))
            raise Boom(22, "serialisation failed (injected)")
        monkeypatch.setattr(np, "savez", savez)
    else:  # pragma: no cover
        raise AssertionError(step)


STEPS = ["serialise", "write", "flush", "fsync", "replace"]


@pytest.mark.parametrize("step", STEPS)
def test_failed_save_weights_keeps_old_file(backend, step, tmp_path, monkeypatch):
    path = str(tmp_path / "w.npz")
    m = make_model(backend)
    m.save_weights(path)
    old = open(path, "rb").read()
    before = m.get_weights()
    m.set_weights([w + 1 for w in before])
    inject(monkeypatch, step)
    with pytest.raises(Boom, match="injected"):
        m.save_weights(path)
    monkeypatch.undo()
    assert open(path, "rb").read() == old
    assert folder(path) == ["w.npz"]
    # the failed save changed nothing: the next one works and round-trips
    m.save_weights(path)
    m2 = make_model(backend, seed=1)
    m2.load_weights(path)
    assert weights_equal(m2.get_weights(), m.get_weights())


@pytest.mark.parametrize("step", ["write", "flush", "fsync", "replace"])
def test_failed_csv_logger_epoch_keeps_previous_epochs(step, tmp_path, monkeypatch):
    path = str(tmp_path / "log.csv")
    logger = fastnet.CSVLogger(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 1.5, "accuracy": 0.5})
    old = open(path, "rb").read()
    assert old == b"epoch,accuracy,loss\n0,0.5,1.5\n"
    inject(monkeypatch, step)
    with pytest.raises(Boom):
        logger.on_epoch_end(1, {"loss": 1.25, "accuracy": 0.75})
    monkeypatch.undo()
    assert open(path, "rb").read() == old
    assert folder(path) == ["log.csv"]


@pytest.mark.parametrize("step", ["write", "flush", "fsync", "replace"])
def test_failed_plot_keeps_old_file(step, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import fastnet.plot
    path = str(tmp_path / "curve.png")
    fastnet.plot.history({"loss": [1.0, 0.5]}, path=path)
    old = open(path, "rb").read()
    inject(monkeypatch, step)
    with pytest.raises(Boom):
        fastnet.plot.history({"loss": [3.0, 2.0, 1.0]}, path=path)
    monkeypatch.undo()
    assert open(path, "rb").read() == old
    assert folder(path) == ["curve.png"]


def test_atomic_write_text_mode_and_refusals(tmp_path):
    path = tmp_path / "a.txt"
    with _io.atomic_write(path, "w", encoding="utf-8", newline="") as f:
        assert os.path.dirname(f.name) == str(tmp_path) and f.name != str(path)
        f.write("h\u00e9\r\n")
    assert path.read_bytes() == "h\u00e9\r\n".encode()
    with pytest.raises(ValueError, match="mode"):
        with _io.atomic_write(path, "a"):
            pass
    with pytest.raises(IsADirectoryError, match="directory"):
        with _io.atomic_write(tmp_path):
            pass
    with pytest.raises(KeyError):  # any exception in the block: nothing replaced, nothing left
        with _io.atomic_write(path) as f:
            f.write(b"partial")
            raise KeyError("stop")
    assert path.read_bytes() == "h\u00e9\r\n".encode()
    assert os.listdir(tmp_path) == ["a.txt"]
    if hasattr(os, "fchmod"):  # the replaced file's permissions are kept
        os.chmod(path, 0o600)
        with _io.atomic_write(path) as f:
            f.write(b"new")
        assert os.stat(path).st_mode & 0o777 == 0o600 and path.read_bytes() == b"new"
    if hasattr(os, "symlink"):  # a link is written through, as open() does
        os.symlink("a.txt", tmp_path / "link")
        with _io.atomic_write(tmp_path / "link") as f:
            f.write(b"via link")
        assert os.path.islink(tmp_path / "link") and path.read_bytes() == b"via link"
        assert sorted(os.listdir(tmp_path)) == ["a.txt", "link"]


def test_csv_logger_append_keeps_foreign_bytes(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"epoch,loss\n0,\xff\xfe")  # not UTF-8, no final newline
    logger = fastnet.CSVLogger(path, append=True)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 2.0})
    logger.on_epoch_end(1, {"loss": 1.0})
    logger.on_train_end()
    assert path.read_bytes() == b"epoch,loss\n0,\xff\xfe\n0,2.0\n1,1.0\n"


# ------------------------------------------------------------------- SIGKILL
_KILL_DRIVER = textwrap.dedent("""
    import json, os, random, signal, sys, time
    import numpy as np
    import fastnet
    from fastnet import _io

    folder, trials, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = os.path.join(folder, "w.npz")
    m = fastnet.Sequential([fastnet.Dense(200, "relu"), fastnet.Dense(10)], backend="numpy", seed=0)
    m.build(64)
    A = m.get_weights()
    B = [w + 1 for w in A]
    m.save_weights(path)
    rng = random.Random(seed)
    probe = fastnet.Sequential([fastnet.Dense(200, "relu"), fastnet.Dense(10)], backend="numpy", seed=1)
    probe.build(64)
    out = {"old": 0, "new": 0, "mid_save": 0, "bad": []}
    for t in range(trials):
        pid = os.fork()
        if pid == 0:  # the saver: alternate B, A, B, ... until killed
            try:
                i = 0
                while True:
                    i += 1
                    m.set_weights(B if i % 2 else A)
                    m.save_weights(path)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0005, 0.012))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        leftovers = [n for n in os.listdir(folder) if _io.is_temp_name(n, "w.npz")]
        out["mid_save"] += bool(leftovers)
        for n in leftovers:  # a killed writer cannot remove its temporary file
            os.unlink(os.path.join(folder, n))
        try:
            probe.load_weights(path)
            got = probe.get_weights()
            with np.load(path, allow_pickle=False) as z:
                assert len(z.files) == 4
        except Exception as exc:
            out["bad"].append("trial %d: %s: %s" % (t, type(exc).__name__, exc))
            continue
        if all(np.array_equal(g, a) for g, a in zip(got, A)):
            out["old"] += 1
        elif all(np.array_equal(g, b) for g, b in zip(got, B)):
            out["new"] += 1
        else:
            out["bad"].append("trial %d: weights are neither set" % t)
    print(json.dumps(out))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and SIGKILL")
def test_sigkill_mid_save_leaves_old_or_new_file(tmp_path):
    trials = 60
    env = dict(os.environ, PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _KILL_DRIVER, str(tmp_path), str(trials), "15"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bad"] == []
    assert out["old"] + out["new"] == trials
    # the kills landed in the middle of saves (a temporary file was left), and
    # saves completed between kills
    assert out["mid_save"] >= 5 and out["new"] >= 5, out


# ------------------------------------------------------------ concurrent reader
def test_reader_never_sees_a_partial_checkpoint(backend, tmp_path):
    path = str(tmp_path / "ckpt.npz")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=100)
    m = make_model(backend)
    m.compile(fastnet.SGD(0.01), loss="sparse_categorical_crossentropy")
    # compile numba's step first: with a cold cache the reader thread's GIL traffic
    # starves the compile (commit 77aca04 has the measurement)
    warm = make_model(backend)
    warm.compile(fastnet.SGD(0.01), loss="sparse_categorical_crossentropy")
    warm.fit(X, y, epochs=1, batch_size=10, verbose=0)
    reader = make_model(backend, seed=1)
    stop = threading.Event()
    stats = {"loads": 0, "missing": 0, "errors": []}

    def read_loop():
        while not stop.is_set():
            try:
                reader.load_weights(path)
                stats["loads"] += 1
            except FileNotFoundError:
                stats["missing"] += 1
            except Exception as exc:  # noqa: BLE001 - every other failure is the bug
                stats["errors"].append("%s: %s" % (type(exc).__name__, exc))

    t = threading.Thread(target=read_loop)
    t.start()
    try:
        # 10 batches an epoch, a save every 5 batches counted from the progress
        # updates: at least one save per epoch
        m.fit(X, y, epochs=40, batch_size=10, verbose=0,
              callbacks=[fastnet.ModelCheckpoint(path, save_freq=5)])
    finally:
        stop.set()
        t.join()
    assert stats["errors"] == []
    assert stats["loads"] >= 100, stats
    reader.load_weights(path)
    assert weights_equal(reader.get_weights(), m.get_weights())
    assert folder(path) == ["ckpt.npz"]


# ----------------------------------------------------------------- bad files
def _npz_bytes(arrays, compressed=False):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _keys(m):
    return ["%03d:%s" % (i, name) for i, (name, _) in enumerate(m._weight_views(m._params))]


def _good(m):
    return dict(zip(_keys(m), m.get_weights()))


def _replace(m, i, value=None, key=None):
    d = _good(m)
    items = [((key if j == i and key is not None else kk),
              (value if j == i and value is not None else v)) for j, (kk, v) in enumerate(d.items())]
    return _npz_bytes(dict(items))


def _corrupt_middle(m):
    data = bytearray(_npz_bytes(_good(m)))
    data[len(data) // 3] ^= 0xFF  # inside the first arrays' data: the CRC no longer matches
    return bytes(data)


def _with_member(m, name, payload):
    buf = io.BytesIO(_npz_bytes(_good(m)))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(name, payload)
    return buf.getvalue()


def _huge_header(m):
    # a header that declares a 10^12-element array: refused from the header
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10 ** 12,)})
    good = _good(m)
    buf = io.BytesIO(_npz_bytes({k: v for k, v in list(good.items())[1:]}))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(list(good)[0] + ".npy", header.getvalue() + b"\0" * 64)
    return buf.getvalue()


def _other_model_file(backend, **kw):
    other = fastnet.Sequential([fastnet.Dense(5, "relu"), fastnet.Dense(4, "relu"), fastnet.Dense(3)],
                               backend=backend, seed=3, **kw)
    other.build(4)
    return _npz_bytes(_good(other))


# name -> (bytes of the file given the model, what the message must say)
BAD_FILES = {
    "empty": (lambda m, b: b"", r"is empty \(0 bytes\)"),
    "truncated_10": (lambda m, b: _npz_bytes(_good(m))[:10], "truncated or corrupt"),
    "truncated_half": (lambda m, b: (lambda d: d[:len(d) // 2])(_npz_bytes(_good(m))), "truncated or corrupt"),
    "truncated_last_byte": (lambda m, b: _npz_bytes(_good(m))[:-1], "truncated or corrupt"),
    "truncated_compressed": (lambda m, b: (lambda d: d[:len(d) - 30])(_npz_bytes(_good(m), True)),
                             "truncated or corrupt"),
    "bad_crc": (lambda m, b: _corrupt_middle(m), "truncated or corrupt .*Bad CRC-32 for file '001:dense.bias.npy'"),
    "not_a_zip": (lambda m, b: bytes(range(256)) * 4, "not an .npz archive"),
    "npy_file": (lambda m, b: (lambda f: (np.save(f, m.get_weights()[0]), f.getvalue())[1])(io.BytesIO()),
                 r"is a \.npy file"),
    "text": (lambda m, b: b"epoch,loss\n0,1.0\n", "looks like a text file"),
    "gzip": (lambda m, b: b"\x1f\x8b\x08\x00" + b"\0" * 20, "gzip"),
    "other_architecture_count": (lambda m, b: _other_model_file(b), "holds 6 weight arrays .* model has 4"),
    "wrong_shape": (lambda m, b: _replace(m, 2, m.get_weights()[2].T.copy()),
                    r"its 'dense_1.kernel' has shape \(3, 5\) but the model's dense_1.kernel has shape \(5, 3\)"),
    "wrong_kind": (lambda m, b: _replace(m, 1, key="001:dense.alpha"), "dense.alpha.* dense.bias"),
    "unnumbered_keys": (lambda m, b: _npz_bytes({"arr_%d" % i: w for i, w in enumerate(m.get_weights())}),
                        "not a save_weights file"),
    "numbering_gap": (lambda m, b: _replace(m, 3, key="007:dense_1.bias"), "numbered 0, 1, 2, 7"),
    "extra_member": (lambda m, b: _with_member(m, "notes.txt", b"hi"), "not a .npy array"),
    "complex": (lambda m, b: _replace(m, 0, m.get_weights()[0] * 1j), r"dtype complex\d+; weights must be a real"),
    "bool": (lambda m, b: _replace(m, 1, np.ones(5, bool)), "dtype bool"),
    "string": (lambda m, b: _replace(m, 1, np.array(["a"] * 5)), "dtype <U1"),
    "structured": (lambda m, b: _replace(m, 1, np.zeros(5, [("a", "f4")])), "dtype"),
    "datetime": (lambda m, b: _replace(m, 1, np.zeros(5, "M8[s]")), "datetime64"),
    "object_pickle": (lambda m, b: _replace(m, 1, np.array([1.0, None, 2, 3, 4], dtype=object)),
                      "Python objects .* never unpickled"),
    "nan": (lambda m, b: _replace(m, 1, np.array([0, np.nan, 0, 0, 0], np.float32)), "dense.bias contains NaN"),
    "inf": (lambda m, b: _replace(m, 3, np.array([0, 0, -np.inf], np.float32)), "dense_1.bias contains NaN or inf"),
    "overflow_float32": (lambda m, b: _replace(m, 0, np.full((4, 5), 1e39)),
                         r"dense.kernel overflows float32: it holds 1e\+39"),
    "huge_declared_shape": (lambda m, b: _huge_header(m), "declares shape"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_weights_file_refused(backend, case, tmp_path):
    m = make_model(backend)
    m.compile(fastnet.Adam(0.01), loss="sparse_categorical_crossentropy")
    before = m.get_weights()
    make, message = BAD_FILES[case]
    path = tmp_path / "bad.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # savez of an object array, casts while crafting
        path.write_bytes(make(m, backend))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=message) as info:
            m.load_weights(path)
        gc.collect()  # an unclosed file would warn now
    assert str(path) in str(info.value)
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert weights_equal(m.get_weights(), before)


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_missing_file_and_directory(backend, what, tmp_path):
    m = make_model(backend)
    before = m.get_weights()
    if what == "missing":
        with pytest.raises(FileNotFoundError, match="nope.npz.*no such file"):
            m.load_weights(tmp_path / "nope.npz")
    else:
        with pytest.raises(ValueError, match="is a directory"):
            m.load_weights(tmp_path)
    with pytest.raises(TypeError, match="filepath must be a str or os.PathLike"):
        m.load_weights(3)
    assert weights_equal(m.get_weights(), before)


def test_accepted_files(backend, tmp_path):
    """What load_weights takes besides its own files: other dtypes it can hold
    exactly or round (float64, integers, big-endian, Fortran order, compressed),
    and renamed layers of the same structure."""
    m = make_model(backend)
    w = [np.round(x * 8) / 8 for x in m.get_weights()]
    path = tmp_path / "w.npz"
    variants = {
        "float64": [x.astype(np.float64) for x in w],
        "int": [np.round(x * 8).astype(np.int16) for x in w],
        "big_endian": [x.astype(">f4") for x in w],
        "fortran": [np.asfortranarray(x) for x in w],
    }
    for name, arrays in variants.items():
        path.write_bytes(_npz_bytes(dict(zip(_keys(m), arrays)), compressed=name == "fortran"))
        m.load_weights(path)
        expect = [np.round(x * 8).astype(np.float32) for x in w] if name == "int" else w
        assert weights_equal(m.get_weights(), [e.astype(np.float32) for e in expect]), name
    renamed = fastnet.Sequential([fastnet.Dense(5, "relu", name="hidden"), fastnet.Dense(3, name="out")],
                                 backend=backend, seed=7)
    renamed.build(4)
    m.save_weights(path)
    renamed.load_weights(path)
    assert weights_equal(renamed.get_weights(), m.get_weights())
    # float64 model: 1e39 fits; PReLU slopes round-trip
    m64 = make_model(backend, dtype="float64", prelu=True)
    big = [x * 0 + 1e39 if i == 0 else x for i, x in enumerate(m64.get_weights())]
    m64.set_weights(big)
    m64.save_weights(path)
    back = make_model(backend, dtype="float64", prelu=True, seed=5)
    back.load_weights(path)
    assert weights_equal(back.get_weights(), big)


def test_set_weights_dtype_and_overflow_checks(backend):
    m = make_model(backend)
    before = m.get_weights()
    w = [x.astype(np.float64) for x in before]
    w[2] = w[2].copy()
    w[2][1, 2] = -3e38 * 10
    with pytest.raises(ValueError, match=r"dense_1.kernel overflows float32: it holds 3e\+39 .*3.403e\+38"):
        m.set_weights(w)
    for bad, dtype in [(before[1] * 1j, "complex64"), (before[1].astype(object), "object"),
                       (before[1].astype(str), "<U"), (before[1] > 0, "bool")]:
        with pytest.raises(TypeError, match="dense.bias must be a real float or integer array; got dtype " + dtype):
            m.set_weights([before[0], bad, before[2], before[3]])
    with pytest.raises(ValueError, match="dense.kernel contains NaN or inf"):
        m.set_weights([before[0] * np.nan] + before[1:])
    assert weights_equal(m.get_weights(), before)
    m.set_weights([np.arange(20).reshape(4, 5), [1, 2, 3, 4, 5], before[2], before[3]])
    got = m.get_weights()
    assert got[0].dtype == np.float32 and np.array_equal(got[0], np.arange(20, dtype=np.float32).reshape(4, 5))
    assert np.array_equal(got[1], np.arange(1, 6, dtype=np.float32))


def test_checkpoint_and_logger_files_are_complete_after_fit(backend, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    y = rng.integers(0, 3, size=40)
    m = make_model(backend)
    m.compile(fastnet.SGD(0.05), loss="sparse_categorical_crossentropy")
    m.fit(X, y, epochs=3, batch_size=8, verbose=0,
          callbacks=[fastnet.ModelCheckpoint(str(tmp_path / "w-{epoch}.npz"), monitor="loss"),
                     fastnet.CSVLogger(tmp_path / "log.csv")])
    assert sorted(os.listdir(tmp_path)) == ["log.csv", "w-1.npz", "w-2.npz", "w-3.npz"]
    with open(tmp_path / "log.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss"] and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    back = make_model(backend, seed=9)
    back.load_weights(tmp_path / "w-3.npz")
    assert weights_equal(back.get_weights(), m.get_weights())
