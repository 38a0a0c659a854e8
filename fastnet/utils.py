"""Keras's ``keras.utils`` helpers: ``to_categorical`` and ``set_random_seed``."""
import numbers
import random
import threading

import numpy as np

__all__ = ["to_categorical", "set_random_seed"]

_seed_lock = threading.Lock()
_global_seed = None
_seed_count = 0


def set_random_seed(seed):
    """Seed everything random in a program at once (Keras's ``set_random_seed``):
    Python's ``random``, NumPy's global generator, and fastnet: a
    ``Sequential`` model created afterwards without ``seed=`` takes the next seed of
    a sequence derived from ``seed``, so the same program gives the same models.
    A model's own ``seed=`` still wins."""
    global _global_seed, _seed_count
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError("set_random_seed: seed must be an int; got %r" % (seed,))
    if not 0 <= seed < 2 ** 32:
        raise ValueError("set_random_seed: seed must be in [0, 2**32); got %d" % seed)
    random.seed(int(seed))
    np.random.seed(int(seed))
    with _seed_lock:
        _global_seed, _seed_count = int(seed), 0


def _next_seed():
    """The seed for an object created without one: the next of the sequence
    set_random_seed started, else fresh entropy from the OS."""
    global _seed_count
    with _seed_lock:
        if _global_seed is None:
            return int(np.random.SeedSequence().entropy % (2 ** 63))
        count = _seed_count
        _seed_count += 1
    state = np.random.SeedSequence(_global_seed, spawn_key=(0x5EED, count)).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encoding of integer class labels (Keras's ``to_categorical``):
    shape (n, num_classes) for labels of shape (n,) (a trailing axis of 1 is
    dropped; other shapes get a new last axis).  ``num_classes`` defaults to
    ``max(y) + 1``."""
    try:
        arr = np.asarray(y)
    except Exception as exc:  # noqa: BLE001
        raise TypeError("to_categorical: y must be array-like; got %s (%s)" % (type(y).__name__, exc)) from None
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError("to_categorical: y must hold integer class labels; got dtype %s" % arr.dtype)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or np.any(arr != np.round(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.round(np.where(np.isfinite(arr), arr, 0))))].flat[0]
            raise ValueError("to_categorical: y must hold integer class labels; got %r" % float(bad))
    if arr.ndim >= 1 and arr.shape[-1] == 1 and arr.ndim > 1:
        arr = arr.reshape(arr.shape[:-1])
    if arr.size and arr.min() < 0:
        raise ValueError("to_categorical: class labels must be >= 0; got %r" % arr.min().item())
    top = int(arr.max()) + 1 if arr.size else 0
    if num_classes is None:
        num_classes = top
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError("to_categorical: num_classes must be a positive int or None; got %r" % (num_classes,))
    elif top > num_classes:
        raise ValueError("to_categorical: label %d is out of range for num_classes=%d" % (top - 1, num_classes))
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError("to_categorical: dtype must be a NumPy dtype; got %r" % (dtype,)) from None
    labels = arr.astype(np.int64)
    out = np.zeros(labels.shape + (int(num_classes),), dtype=dt)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out
