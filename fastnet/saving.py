"""Whole-model files: ``model.save(path)`` and ``fastnet.load_model(path)``.

One file holds everything a model needs to predict and to resume training
exactly: the architecture (every layer's configuration), the compile
configuration (optimizer and its hyper-parameters, loss, metrics), the weights,
the optimizer state and step count, the epoch counter, the seed and the
position of each of the model's random streams, and metadata.  Pickling and
copying a model go through the same bytes (``Sequential.__reduce__``).

Format (version 1; described for other languages in docs/FORMAT.md)::

    bytes 0-7     magic  b"FASTNETM"
    bytes 8-15    N, the header's length, unsigned 64-bit little-endian
    N bytes       the header: UTF-8 JSON, padded with spaces to a multiple of 8
    the rest      the tensors' raw little-endian bytes, back to back

The header's ``tensors`` list gives each tensor's name, dtype (``float32``,
``float64`` or ``int64``), shape and ``[begin, end)`` byte offsets into the
data; the tensors tile the data exactly, in order.  There is no pickle anywhere:
classes are looked up by name in fastnet's own modules (user-defined metrics
only through ``custom_objects=``), and a reader treats the file as hostile:
the header is capped, every offset, shape and dtype is checked against the file
size and the architecture before anything is allocated, and any problem is a
``ValueError`` naming the file.  Nothing is compressed, so no input can expand
beyond its own size.

Versioning: a file records ``format_version``; this version writes 1 and reads
every version up to 1 (older versions are upgraded on load, in
``_UPGRADES``); a file from a newer fastnet is refused with a clear message.
"""
import inspect
import json
import os
import struct

import numpy as np

from ._io import BadFileError
from ._kernels import defs

MAGIC = b"FASTNETM"
FORMAT = "fastnet-model"
FORMAT_VERSION = 1
#: the header is configuration only: a few KB for any real model
MAX_HEADER_BYTES = 4 << 20
_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8"), "int64": np.dtype("<i8")}
_STREAMS = ("shuffle", "split", "dropout")
_MAX_NDIM = 4
#: older format versions -> a function upgrading their header to the next one
_UPGRADES = {}


class _Bad(Exception):
    """A problem with the file (turned into BadFileError naming it)."""


class MissingFileError(BadFileError, FileNotFoundError):
    """``load_model`` of a path where there is no file: a ValueError like every
    other bad file, and a FileNotFoundError."""


# ---------------------------------------------------------------------------
# objects <-> JSON
# ---------------------------------------------------------------------------
def _fastnet_modules():
    from . import activations, callbacks, initializers, layers, losses, metrics, optimizers, regularizers
    mods = [activations, initializers, layers, losses, metrics, optimizers, regularizers, callbacks]
    try:
        from . import schedules
        mods.append(schedules)
    except ImportError:
        pass
    return mods


def _registry():
    """(module short name, class name) -> class, for every public class of
    fastnet's configurable modules."""
    table = {}
    for mod in _fastnet_modules():
        short = mod.__name__.rsplit(".", 1)[-1]
        for name, obj in vars(mod).items():
            if isinstance(obj, type) and obj.__module__ == mod.__name__ and not name.startswith("_"):
                table[(short, name)] = obj
    return table


def _ctor_params(cls):
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return []
    return [p for p in list(sig.parameters.values())[1:]
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _is_fastnet_object(obj):
    mod = type(obj).__module__ or ""
    return mod.startswith("fastnet.") and not isinstance(obj, type)


def serialize(obj, custom=None):
    """A JSON-able description of ``obj``: plain values as themselves, fastnet
    objects as ``{"class_name", "module", "config"}`` whose config holds the
    constructor's arguments (from ``get_config()``, completed from the
    attributes of the same names), other callables as ``{"custom": name}``
    (collected into ``custom``)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("cannot save the non-finite value %r" % value)
        return value
    if isinstance(obj, (list, tuple)):
        return [serialize(v, custom) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise ValueError("cannot save a dict with non-string keys: %r" % (obj,))
        return {k: serialize(v, custom) for k, v in obj.items()}
    if _is_fastnet_object(obj) and not _is_function_metric(obj):
        cls = type(obj)
        cfg = obj.get_config() if hasattr(obj, "get_config") else {}
        # layers' and metrics' get_config leave out some constructor arguments
        # (initializers, regularizers, thresholds): those are read from the
        # attributes of the same names
        from .layers import Layer
        from .metrics import Metric
        complete = isinstance(obj, (Layer, Metric)) or not hasattr(obj, "get_config")
        out = {}
        attrs = vars(obj) if complete else {}
        for p in _ctor_params(cls):
            if p.name in attrs:   # the live object (an activation with its slope, not its name)
                out[p.name] = serialize(attrs[p.name], custom)
            elif p.name in cfg:
                out[p.name] = serialize(cfg[p.name], custom)
        return {"class_name": cls.__name__, "module": cls.__module__.rsplit(".", 1)[-1], "config": out}
    if _is_function_metric(obj):
        return {"class_name": "FunctionMetric", "module": "metrics",
                "config": {"fn": serialize(obj.fn, custom), "name": obj.name}}
    if callable(obj):
        name = getattr(obj, "__name__", None) or type(obj).__name__
        if custom is not None:
            custom[name] = obj
        return {"custom": name}
    raise ValueError("cannot save an object of type %s (%r)" % (type(obj).__name__, obj))


def _is_function_metric(obj):
    from .metrics import FunctionMetric
    return isinstance(obj, FunctionMetric)


def deserialize(spec, custom_objects=None, _registry_cache=None, _depth=0):
    """The object ``serialize`` described (classes from fastnet's registry only,
    callables only from ``custom_objects``)."""
    if _depth > 32:
        raise _Bad("configuration nested too deeply")
    table = _registry_cache if _registry_cache is not None else _registry()
    if spec is None or isinstance(spec, (bool, int, float, str)):
        return spec
    if isinstance(spec, list):
        return [deserialize(v, custom_objects, table, _depth + 1) for v in spec]
    if not isinstance(spec, dict):
        raise _Bad("unexpected value %r in the configuration" % (spec,))
    if set(spec) == {"custom"}:
        name = spec["custom"]
        if not isinstance(name, str) or not custom_objects or name not in custom_objects:
            raise _Bad("the model uses the custom object %r: pass it as load_model(..., "
                       "custom_objects={%r: ...})" % (name, name))
        return custom_objects[name]
    if set(spec) != {"class_name", "module", "config"}:
        return {str(k): deserialize(v, custom_objects, table, _depth + 1) for k, v in spec.items()}
    key = (spec["module"], spec["class_name"])
    cls = table.get(key) if all(isinstance(k, str) for k in key) else None
    if cls is None and custom_objects and spec["class_name"] in custom_objects:
        cls = custom_objects[spec["class_name"]]
    if cls is None:
        raise _Bad("unknown class %r in module %r (not a fastnet class; a user-defined class must be "
                   "passed in custom_objects=)" % (spec["class_name"], spec["module"]))
    cfg = spec["config"]
    if not isinstance(cfg, dict):
        raise _Bad("the configuration of %s is not an object" % spec["class_name"])
    kwargs = {str(k): deserialize(v, custom_objects, table, _depth + 1) for k, v in cfg.items()}
    for k in ("betas",):  # tuples that JSON turned into lists
        if isinstance(kwargs.get(k), list):
            kwargs[k] = tuple(kwargs[k])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise _Bad("cannot rebuild %s from its configuration: %s" % (spec["class_name"], exc)) from None


# ---------------------------------------------------------------------------
# random streams
# ---------------------------------------------------------------------------
def _stream_state(rng):
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":  # pragma: no cover - fastnet only makes PCG64 streams
        raise ValueError("cannot save a %s random stream" % st.get("bit_generator"))
    return {"bit_generator": "PCG64", "state": str(int(st["state"]["state"])),
            "inc": str(int(st["state"]["inc"])), "has_uint32": int(st["has_uint32"]),
            "uinteger": int(st["uinteger"])}


def _stream_from_state(d, what):
    if not isinstance(d, dict) or d.get("bit_generator") != "PCG64":
        raise _Bad("random stream %r: expected a PCG64 state" % what)
    try:
        state, inc = int(d["state"]), int(d["inc"])
        has, uint = int(d["has_uint32"]), int(d["uinteger"])
    except (KeyError, TypeError, ValueError):
        raise _Bad("random stream %r: malformed state" % what) from None
    if not (0 <= state < 1 << 128 and 0 < inc < 1 << 128 and inc % 2 == 1 and has in (0, 1)
            and 0 <= uint < 1 << 32):
        raise _Bad("random stream %r: state out of range" % what)
    bg = np.random.PCG64()
    bg.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                "has_uint32": has, "uinteger": uint}
    return np.random.Generator(bg)


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------
def _tensors(model):
    """(name, array) of everything stored as raw data."""
    out = []
    if model.built:
        out.extend((name, view) for name, view in model._weight_views(model._params))
        opt = model.optimizer
        if opt is not None and opt.state is not None:
            out.append(("optimizer.state", opt.state))
    return out


def model_header(model, custom=None):
    """The header's dict (without the tensor table)."""
    import fastnet
    from .layers import Layer  # noqa: F401
    layers = [serialize(layer, custom) for layer in model.layers]
    compiled = None
    if model.optimizer is not None and model.loss is not None:
        compiled = {"optimizer": serialize(model.optimizer, custom), "loss": serialize(model.loss, custom),
                    "metrics": [serialize(m, custom) for m in model.metrics]}
    streams = {}
    for s in _STREAMS:
        rng = getattr(model, "_%s_rng" % s, None)
        if rng is not None:
            streams[s] = _stream_state(rng)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": {"fastnet_version": fastnet.__version__, "numpy_version": np.__version__,
                     "dtype": model.dtype.name, "backend": model.backend_name},
        "model": {"class_name": "Sequential",
                  "config": {"name": model.name, "seed": model.seed, "dtype": model.dtype.name,
                             "layers": layers},
                  "built": bool(model.built),
                  "input_dim": int(model._input_dim) if model.built else None},
        "compile": compiled,
        "state": {"iterations": int(model.optimizer.iterations) if model.optimizer is not None else 0,
                  "optimizer_has_state": model.optimizer is not None and model.optimizer.state is not None,
                  "epochs_done": int(getattr(model, "_epochs_done", 0)),
                  "random_streams": streams},
    }


def model_to_bytes(model, custom=None, extra=None):
    """The model file's bytes (``extra``: a JSON-able dict kept in the header,
    read back as ``model._saved_extra``; BackupAndRestore's epoch)."""
    header = model_header(model, custom)
    if extra is not None:
        header["extra"] = serialize(extra)
    table, chunks, pos = [], [], 0
    for name, arr in _tensors(model):
        a = np.ascontiguousarray(arr)
        if a.dtype.name not in _DTYPES:  # pragma: no cover - model buffers are float32/64
            raise ValueError("cannot save tensor %r of dtype %s" % (name, a.dtype))
        raw = a.astype(_DTYPES[a.dtype.name], copy=False).tobytes()
        table.append({"name": name, "dtype": a.dtype.name, "shape": list(a.shape), "offsets": [pos, pos + len(raw)]})
        chunks.append(raw)
        pos += len(raw)
    header["tensors"] = table
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([MAGIC, struct.pack("<Q", len(text)), text] + chunks)


def save_model(model, filepath, extra=None):
    """Write ``model`` to ``filepath`` atomically (a temporary file in the same
    folder, fsync, ``os.replace``): a crash leaves the previous file intact."""
    from ._io import atomic_write
    path = _check_path(filepath, "save")
    if os.path.isdir(path):
        raise ValueError("save: %s is a folder; give a file name" % path)
    data = model_to_bytes(model, extra=extra)
    with atomic_write(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
def _check_path(filepath, verb):
    if isinstance(filepath, bytes):
        filepath = os.fsdecode(filepath)
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError("%s: filepath must be a str or os.PathLike; got %r" % (verb, type(filepath).__name__))
    return os.fspath(filepath)


def _describe_foreign(head):
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "a zip archive (an .npz weights file from save_weights? load it with model.load_weights)"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy file"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (a Keras .h5 model?)"
    if head.startswith(b"\x80"):
        return "a Python pickle (never loaded: pickles can run code)"
    if not head:
        return "empty"
    return "not a fastnet model file (no FASTNETM signature)"


def read_header(data, source):
    """Parse and check the header of a model file's bytes; returns (header,
    data offset)."""
    if len(data) < 16 or data[:8] != MAGIC:
        raise _Bad(_describe_foreign(bytes(data[:8])))
    (n,) = struct.unpack("<Q", data[8:16])
    if n > MAX_HEADER_BYTES:
        raise _Bad("header of %d bytes exceeds the %d-byte limit" % (n, MAX_HEADER_BYTES))
    if 16 + n > len(data):
        raise _Bad("truncated: the header needs %d bytes, the file has %d" % (16 + n, len(data)))
    if n % 8:
        raise _Bad("header length %d is not a multiple of 8" % n)

    def no_constants(name):
        raise _Bad("the header contains %s, which is not valid JSON" % name)

    try:
        header = json.loads(bytes(data[16:16 + n]).decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Bad("the header is not valid JSON (%s)" % type(exc).__name__) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Bad("the header does not describe a fastnet model")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _Bad("invalid format_version %r" % (version,))
    if version > FORMAT_VERSION:
        raise _Bad("written by a newer fastnet (format version %d); this fastnet reads versions up to %d: "
                   "upgrade fastnet" % (version, FORMAT_VERSION))
    while version < FORMAT_VERSION:  # pragma: no cover - no older version yet
        header = _UPGRADES[version](header)
        version += 1
    return header, 16 + n


def _read_tensors(header, data, start):
    """name -> array (views of ``data``), after checking that the tensors tile
    the data region exactly."""
    table = header.get("tensors")
    if not isinstance(table, list):
        raise _Bad("the header has no tensor table")
    size = len(data) - start
    out, pos = {}, 0
    for i, t in enumerate(table):
        if not isinstance(t, dict) or set(t) != {"name", "dtype", "shape", "offsets"}:
            raise _Bad("tensor entry %d is malformed" % i)
        name, dtype, shape, offsets = t["name"], t["dtype"], t["shape"], t["offsets"]
        if not isinstance(name, str) or name in out:
            raise _Bad("tensor entry %d has a missing or duplicate name" % i)
        if dtype not in _DTYPES:
            raise _Bad("tensor %r has dtype %r; allowed: %s" % (name, dtype, ", ".join(_DTYPES)))
        if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 40 for d in shape)):
            raise _Bad("tensor %r has an invalid shape %r" % (name, shape))
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise _Bad("tensor %r has invalid offsets %r" % (name, offsets))
        begin, end = offsets
        if begin != pos:
            raise _Bad("tensor %r starts at byte %d, expected %d (tensors must tile the data)" % (name, begin, pos))
        nbytes = int(np.prod(shape, dtype=object)) * _DTYPES[dtype].itemsize
        if end - begin != nbytes:
            raise _Bad("tensor %r: offsets span %d bytes but its shape and dtype need %d" % (name, end - begin, nbytes))
        if end > size:
            raise _Bad("truncated: tensor %r ends at byte %d of a %d-byte data section" % (name, end, size))
        arr = np.frombuffer(data, dtype=_DTYPES[dtype], count=nbytes // _DTYPES[dtype].itemsize,
                            offset=start + begin).reshape(shape)
        out[name] = arr
        pos = end
    if pos != size:
        raise _Bad("%d bytes after the last tensor" % (size - pos))
    return out


def _int(value, what, low=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Bad("%s must be an int >= %d; got %r" % (what, low, value))
    return value


def _param_count(layers, input_dim):
    """Parameters the layers need for ``input_dim`` inputs (checked before
    anything is allocated)."""
    from .layers import Dense, PReLU
    total, width = 0, input_dim
    for layer in layers:
        if isinstance(layer, (Dense, PReLU)):
            cnt = layer.count_params(width)
            if isinstance(layer, Dense):
                width = layer.units
            total += cnt or 0
    return total


def model_from_header(header, tensors, backend=None, custom_objects=None):
    """Rebuild the model the header and tensors describe."""
    from .model import Sequential
    from .layers import Layer
    spec = header.get("model")
    if not isinstance(spec, dict) or spec.get("class_name") != "Sequential" or not isinstance(spec.get("config"), dict):
        raise _Bad("the header has no Sequential model configuration")
    cfg = spec["config"]
    table = _registry()
    layer_specs = cfg.get("layers")
    if not isinstance(layer_specs, list):
        raise _Bad("the model configuration has no layer list")
    layers = [deserialize(s, custom_objects, table) for s in layer_specs]
    if not all(isinstance(layer, Layer) for layer in layers):
        raise _Bad("the layer list holds something that is not a fastnet layer")
    meta = header.get("metadata") if isinstance(header.get("metadata"), dict) else {}
    if backend is None:
        from .backends import available_backends
        saved = meta.get("backend")
        backend = saved if saved in available_backends() else "auto"
    seed = _int(cfg.get("seed"), "seed")
    name = cfg.get("name")
    if not isinstance(name, str):
        raise _Bad("the model name must be a string")
    try:
        model = Sequential(layers, backend=backend, seed=seed, dtype=cfg.get("dtype"), name=name)
    except (TypeError, ValueError) as exc:
        if "backend" in str(exc):
            raise
        raise _Bad("cannot rebuild the model: %s" % exc) from None
    expected = {}
    if spec.get("built"):
        input_dim = _int(spec.get("input_dim"), "input_dim", 1)
        weights = sum(int(a.size) for n, a in tensors.items() if n != "optimizer.state")
        try:
            need = _param_count(model.layers, input_dim)
        except (TypeError, ValueError) as exc:
            raise _Bad("invalid architecture: %s" % exc) from None
        if need != weights:
            raise _Bad("the architecture needs %d weights but the file holds %d" % (need, weights))
        try:
            model.build(input_dim)
        except (TypeError, ValueError) as exc:
            raise _Bad("cannot build the model: %s" % exc) from None
        expected = dict(model._weight_views(model._params))
    comp = header.get("compile")
    if comp is not None:
        if not isinstance(comp, dict) or not isinstance(comp.get("metrics"), list):
            raise _Bad("malformed compile configuration")
        opt = deserialize(comp.get("optimizer"), custom_objects, table)
        loss = deserialize(comp.get("loss"), custom_objects, table)
        metrics = [deserialize(m, custom_objects, table) for m in comp["metrics"]]
        from .optimizers import Optimizer
        from .losses import Loss
        if not isinstance(opt, Optimizer) or not isinstance(loss, Loss):
            raise _Bad("the compile configuration does not name a fastnet optimizer and loss")
        try:
            model.compile(optimizer=opt, loss=loss, metrics=metrics or None)
        except (TypeError, ValueError) as exc:
            raise _Bad("cannot compile the model: %s" % exc) from None
    # every tensor is checked before any is written
    state = header.get("state") if isinstance(header.get("state"), dict) else {}
    names = set(tensors)
    want = set(expected) | ({"optimizer.state"} if state.get("optimizer_has_state") and model.built else set())
    if names != want:
        missing, extra = sorted(want - names), sorted(names - want)
        raise _Bad("the tensors do not match the architecture (missing %s; unexpected %s)"
                   % (missing or "none", extra or "none"))
    for name, arr in tensors.items():
        target = expected.get(name)
        if target is None:
            if model.optimizer is None:
                raise _Bad("optimizer state stored for a model that is not compiled")
            target_shape = (defs.N_STATE, model._params.shape[0])
            if arr.shape != target_shape:
                raise _Bad("tensor %r has shape %s; the model needs %s" % (name, arr.shape, target_shape))
        elif arr.shape != target.shape:
            raise _Bad("tensor %r has shape %s; the model needs %s" % (name, arr.shape, target.shape))
        if arr.dtype != model.dtype:
            raise _Bad("tensor %r is %s but the model is %s" % (name, arr.dtype.name, model.dtype.name))
        if not np.isfinite(arr).all():
            raise _Bad("tensor %r contains NaN or inf" % name)
    iterations = _int(state.get("iterations", 0), "iterations")
    epochs_done = _int(state.get("epochs_done", 0), "epochs_done")
    streams = state.get("random_streams", {})
    if not isinstance(streams, dict) or not set(streams) <= set(_STREAMS):
        raise _Bad("malformed random stream states")
    rngs = {s: _stream_from_state(d, s) for s, d in streams.items()}
    # ---- all checked: fill the model
    for name, arr in tensors.items():
        if name in expected:
            expected[name][...] = arr
    if model.optimizer is not None and model.built:
        model.optimizer._bind(model, model._params.shape[0], model.dtype)
        if "optimizer.state" in tensors:
            model.optimizer.state[...] = tensors["optimizer.state"]
        model.optimizer.iterations = iterations
    for s, rng in rngs.items():
        setattr(model, "_%s_rng" % s, rng)
    model._epochs_done = epochs_done
    extra = header.get("extra")
    model._saved_extra = extra if isinstance(extra, dict) else None
    return model


def model_from_bytes(data, backend=None, custom_objects=None, source="<bytes>"):
    """Rebuild a model from a model file's bytes (ValueError naming ``source``
    on any problem)."""
    try:
        header, start = read_header(data, source)
        tensors = _read_tensors(header, data, start)
        return model_from_header(header, tensors, backend, custom_objects)
    except _Bad as exc:
        raise BadFileError("%s: %s" % (source, exc)) from None
    except (KeyError, IndexError, AttributeError, OverflowError, RecursionError, TypeError) as exc:
        raise BadFileError("%s: malformed model file (%s: %s)" % (source, type(exc).__name__, exc)) from None


def load_model(filepath, backend=None, custom_objects=None):
    """Load a model written by ``model.save``: architecture, compile
    configuration, weights, optimizer state, epoch counter and random streams,
    ready to predict or to continue training exactly where it stopped.

    Parameters
    ----------
    filepath : str or os.PathLike
    backend : "numpy" | "numba" | "cython" | "auto" | None
        None: the backend the model was saved with when it is available here,
        else "auto".  A model saved on one backend loads on any other.
    custom_objects : dict, optional
        name -> callable for user-defined metrics (never looked up anywhere else).

    Raises
    ------
    ValueError
        the path is missing or a folder, or the file is not a valid fastnet model
        file (the message names the file and the problem).
    """
    path = _check_path(filepath, "load_model")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError("load_model: custom_objects must be a dict; got %r" % type(custom_objects).__name__)
    if os.path.isdir(path):
        raise BadFileError("load_model: %s is a folder, not a model file" % path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise MissingFileError("load_model: %s: no such file" % path) from None
    except OSError as exc:
        raise BadFileError("load_model: %s: cannot be read (%s)" % (path, exc.strerror or exc)) from None
    return model_from_bytes(memoryview(data), backend, custom_objects, source=path)


def restore_into(model, source_model):
    """Copy weights, optimizer state, step count, random streams and epoch
    counter of ``source_model`` (same architecture) into ``model``."""
    if [s for s, _ in model._weight_views(model._params)] != [s for s, _ in source_model._weight_views(source_model._params)] \
            or model._params.shape != source_model._params.shape:
        raise ValueError("the backup holds another architecture")
    model._params[...] = source_model._params
    if model.optimizer is not None and source_model.optimizer is not None:
        model.optimizer._bind(model, model._params.shape[0], model.dtype)
        model.optimizer.state[...] = source_model.optimizer.state
        model.optimizer.iterations = source_model.optimizer.iterations
        for k, v in source_model.optimizer._h.items():
            model.optimizer._h[k] = v
    for s in _STREAMS:
        rng = getattr(source_model, "_%s_rng" % s, None)
        if rng is not None:
            setattr(model, "_%s_rng" % s, rng)
    model._epochs_done = getattr(source_model, "_epochs_done", 0)


# ---------------------------------------------------------------------------
# pickling
# ---------------------------------------------------------------------------
def _unpickle(data, custom_objects=None, backend=None):
    return model_from_bytes(memoryview(data), backend=backend, custom_objects=custom_objects, source="<pickle>")


def reduce_model(model):
    """``Sequential.__reduce__``: the model file's bytes (plus any user-defined
    callables, which pickle itself carries)."""
    custom = {}
    data = model_to_bytes(model, custom)
    return _unpickle, (data, custom or None, model.backend_name)
