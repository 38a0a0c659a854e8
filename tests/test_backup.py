"""BackupAndRestore and whole-model ModelCheckpoint files: a training process
killed at any moment resumes, in a new process, at the epoch after the last
completed one and ends bit for bit where the uninterrupted run ends."""
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnet

from conftest import BACKENDS

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import fastnet
    backend, dtype, backup, out, kill_epoch, kill_batch = sys.argv[1:7]
    kill_epoch, kill_batch = int(kill_epoch), int(kill_batch)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 8)).astype(dtype)
    y = (np.abs(X[:, :3]).argmax(axis=1)).astype(np.int64)
    m = fastnet.Sequential([fastnet.Dense(16, "relu"), fastnet.Dropout(0.2), fastnet.Dense(3)],
                           backend=backend, seed=5, dtype=dtype)
    m.compile(fastnet.Adam(lr=0.01), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])

    class Kill(fastnet.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_epoch and batch == kill_batch:
                os.kill(os.getpid(), signal.SIGKILL)
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_epoch_end(self, epoch, logs=None):
            if epoch == kill_epoch and kill_batch < 0:
                os.kill(os.getpid(), signal.SIGKILL)

    cbs = [fastnet.BackupAndRestore(backup)] if backup != "-" else []
    if kill_epoch >= 0:
        cbs.append(Kill())
    h = m.fit(X, y, epochs=6, batch_size=16, validation_split=0.2, verbose=0, callbacks=cbs)
    np.savez(out, *(m.get_weights() + [m.optimizer.state, np.array([m.optimizer.iterations]),
                                       np.array(h.epoch), np.array(h.history["loss"])]))
""")


def run(tmp_path, *args):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script)] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=300)


def result(path):
    with np.load(path) as f:
        return [f["arr_%d" % i] for i in range(len(f.files))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_training_resumes_exactly(tmp_path, backend):
    ref = run(tmp_path, backend, "float32", "-", tmp_path / "ref.npz", -1, -1)
    assert ref.returncode == 0, ref.stderr
    want = result(tmp_path / "ref.npz")
    backup = tmp_path / "backup"
    # killed between epochs (after the backup of epoch 3), then mid-epoch 4
    for kill_epoch, kill_batch in ((2, -1), (4, 3)):
        r = run(tmp_path, backend, "float32", backup, tmp_path / "x.npz", kill_epoch, kill_batch)
        assert r.returncode == -signal.SIGKILL, r.stderr
        assert os.path.exists(backup / "backup.fastnet")
    r = run(tmp_path, backend, "float32", backup, tmp_path / "resumed.npz", -1, -1)
    assert r.returncode == 0, r.stderr
    got = result(tmp_path / "resumed.npz")
    n_w = len(want) - 4                                       # weight arrays
    for a, b in zip(got[:n_w + 2], want[:n_w + 2]):           # weights, optimizer state, iterations
        assert np.array_equal(a, b)
    assert list(got[n_w + 2]) == [4, 5]                        # the resumed run's epochs
    assert np.array_equal(got[n_w + 3], want[n_w + 3][4:])     # and their losses
    assert not os.path.exists(backup)                          # deleted after a normal end


def test_backup_resume_in_process_and_keep(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((60, 4)), rng.integers(0, 2, 60)

    def model():
        m = fastnet.Sequential([fastnet.Dense(8, "tanh"), fastnet.Dense(2)], backend="numpy", seed=2)
        m.compile(fastnet.SGD(lr=0.1, momentum=0.9), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
        return m

    class Stop(fastnet.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("crash")

    ref = model()
    ref.fit(X, y, epochs=4, batch_size=8, verbose=0)
    m = model()
    cb = fastnet.BackupAndRestore(tmp_path / "b", delete_checkpoint=False)
    with pytest.raises(RuntimeError):
        m.fit(X, y, epochs=4, batch_size=8, verbose=0, callbacks=[cb, Stop()])
    again = model()
    h = again.fit(X, y, epochs=4, batch_size=8, verbose=0, callbacks=[cb])
    assert h.epoch == [2, 3]
    assert all(np.array_equal(a, b) for a, b in zip(again.get_weights(), ref.get_weights()))
    assert os.path.exists(tmp_path / "b" / "backup.fastnet")   # delete_checkpoint=False
    # a backup of another architecture is refused, naming the file
    other = fastnet.Sequential([fastnet.Dense(5), fastnet.Dense(2)], backend="numpy", seed=2)
    other.compile("sgd", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="backup.fastnet"):
        other.fit(X, y, epochs=4, verbose=0, callbacks=[cb])


def test_backup_arguments(tmp_path):
    with pytest.raises(ValueError, match="save_freq"):
        fastnet.BackupAndRestore(tmp_path, save_freq=5)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        fastnet.BackupAndRestore(tmp_path / "f")
    with pytest.raises(TypeError, match="backup_dir"):
        fastnet.BackupAndRestore(None)
    with pytest.raises(TypeError, match="delete_checkpoint"):
        fastnet.BackupAndRestore(tmp_path, delete_checkpoint="yes")


def header_of(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[8:16])
    return json.loads(data[16:16 + n])


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_checkpoint_writes_whole_models(tmp_path, backend):
    """ModelCheckpoint follows Keras: a whole model (load_model reads it back,
    optimizer and epoch counter included) unless the name is .npz or
    save_weights_only=True; {epoch} / {val_loss} placeholders and
    save_best_only keep working."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((80, 5)), rng.integers(0, 3, 80)
    m = fastnet.Sequential([fastnet.Dense(6, "relu"), fastnet.Dense(3)], backend=backend, seed=4)
    m.compile(fastnet.Adam(lr=0.01), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    cbs = [fastnet.ModelCheckpoint(str(tmp_path / "best.keras"), save_best_only=True),
           fastnet.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.3f}.fastnet")),
           fastnet.ModelCheckpoint(str(tmp_path / "w-{epoch}.npz")),
           fastnet.ModelCheckpoint(str(tmp_path / "forced.npz"), save_weights_only=False)]
    h = m.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=cbs)
    best = fastnet.load_model(tmp_path / "best.keras")
    assert best.optimizer is not None and best.backend_name == backend
    last = sorted(p for p in os.listdir(tmp_path) if p.startswith("m-"))
    assert len(last) == 3 and last[-1] == "m-03-%.3f.fastnet" % h.history["val_loss"][-1]
    final = fastnet.load_model(tmp_path / last[-1])
    assert header_of(tmp_path / last[-1])["state"]["epochs_done"] == 3
    assert final.optimizer.iterations == m.optimizer.iterations
    assert np.array_equal(final.predict(X), m.predict(X))
    with np.load(tmp_path / "w-3.npz") as f:
        assert len(f.files) == len(m.get_weights())
    assert fastnet.load_model(tmp_path / "forced.npz").optimizer.iterations == m.optimizer.iterations
    with pytest.raises(TypeError, match="save_weights_only"):
        fastnet.ModelCheckpoint("x.keras", save_weights_only="yes")
