"""Command line: ``python -m fastnet demo`` | ``python -m fastnet info``."""
import argparse
import sys
import time


def _demo(args):
    import numpy as np

    import fastnet
    from fastnet.datasets import load_digits, train_test_split

    X, y = load_digits(as_float=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=True, seed=args.seed)
    print("fastnet %s demo: UCI 8x8 digits, %d train / %d test images, backend %r, %d threads"
          % (fastnet.__version__, len(X_train), len(X_test), args.backend, fastnet.get_num_threads()))
    t0 = time.perf_counter()
    model = fastnet.Sequential([
        fastnet.Dense(25, activation="relu"),
        fastnet.Dense(15, activation="relu"),
        fastnet.Dense(10),
    ], backend=args.backend, seed=args.seed)
    model.compile(optimizer=fastnet.Adam(learning_rate=args.lr),
                  loss=fastnet.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.build(X.shape[1])
    model.summary()
    model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(X_test, y_test), verbose=args.verbose)
    acc = float(np.mean(np.argmax(model.predict(X_test), axis=1) == y_test))
    elapsed = time.perf_counter() - t0
    print("test accuracy: %.2f%% (%d/%d)   time: %.2f s (backend %s)"
          % (100 * acc, round(acc * len(y_test)), len(y_test), elapsed, model.backend_name))
    return 0 if acc >= 0.95 else 1


def _info(args):
    import fastnet
    print("fastnet", fastnet.__version__)
    print("threads:", fastnet.get_num_threads())
    for name, reason in fastnet.backend_status().items():
        print("  %-7s %s" % (name, "available" if reason is None else "unavailable: " + reason))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastnet")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="train the 25-15-10 digit classifier and report test accuracy")
    d.add_argument("--backend", default="auto", choices=["auto", "numpy", "numba", "cython"])
    d.add_argument("--epochs", type=int, default=80)
    d.add_argument("--batch-size", type=int, default=32)
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2])
    d.set_defaults(func=_demo)
    i = sub.add_parser("info", help="backends, threads, versions")
    i.set_defaults(func=_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
