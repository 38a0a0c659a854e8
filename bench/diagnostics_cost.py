"""Cost of fit(..., diagnostics=True) on the seed workload (784-30-10 sigmoid,
softmax + cross-entropy, SGD lr 0.5, batch 10, one epoch over the 60,000 MNIST
training images), per compiled backend: off and on alternated over ``--rounds``
rounds in one process (medians; compare the on/off ratio, not absolute times).

    python bench/diagnostics_cost.py [--threads 1] [--rounds 5]
    python bench/diagnostics_cost.py --quick     # 2,000 images, 1 round, no numba (smoke run)

Off, train_batches gets an empty diag buffer and skips every diagnostics branch;
on, it checks each stage's output for NaN/inf and counts per-unit activity and
saturation and per-layer gradient norms.
"""
import argparse
import time

import numpy as np

import fastnet


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    fastnet.set_num_threads(args.threads)
    try:
        (X, y), _ = fastnet.datasets.load_mnist(flatten=True)
        X = (X / 255.0).astype(np.float32)
    except Exception:  # noqa: BLE001 - MNIST not installed: random data times the same
        rng = np.random.default_rng(0)
        X, y = rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000)
    if args.quick:
        X, y, args.rounds = X[:2000], y[:2000], 1
    models = {}
    for be in [b for b in fastnet.available_backends() if b != "numpy" and not (args.quick and b == "numba")]:
        for diag in (False, True):
            m = fastnet.Sequential([fastnet.Dense(30, "sigmoid"), fastnet.Dense(10)], backend=be, seed=0)
            m.compile(fastnet.SGD(0.5), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
            m.fit(X[:100], y[:100], epochs=1, batch_size=10, verbose=0, diagnostics=diag)   # compile / warm up
            models[(be, diag)] = m
    times = {k: [] for k in models}
    for _ in range(args.rounds):
        for (be, diag), m in models.items():
            t0 = time.perf_counter()
            m.fit(X, y, epochs=1, batch_size=10, verbose=0, diagnostics=diag)
            times[(be, diag)].append(time.perf_counter() - t0)
    print("| backend | off (median s) | on (median s) | on / off |")
    print("|---|---|---|---|")
    for be in sorted({k[0] for k in times}):
        off, on = np.median(times[(be, False)]), np.median(times[(be, True)])
        print("| %s | %.3f | %.3f | %.2fx |" % (be, off, on, on / off))


if __name__ == "__main__":
    main()
