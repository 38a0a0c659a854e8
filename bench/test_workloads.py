"""Per workload x impl: seed and wide training epochs, predict latency and
throughput, numerical vs backprop gradients.

impl: the fastnet backends ("numpy" = the reference, "numba", "cython"; an
unavailable one skips with the reason) and the optional peers ("numpy-loop" =
a hand-written NumPy loop, "torch", "jax", "sklearn"; skipped when not
installed or not selected with --bench-peers).  Every epoch is timed as one
round (pedantic mode) after an untimed warm-up on a small slice (JIT compile);
JAX's compile time is recorded in extra_info["compile s"].
"""
import numpy as np
import pytest

import fnbench

SLOW = {"sklearn"}


def _rounds(quick, impl):
    if quick:
        return 1
    return 3 if impl in SLOW else 5


@pytest.mark.parametrize("workload", ["seed", "wide"])
def test_epoch(benchmark, bench_threads, bench_quick, bench_workloads, bench_peers, train_data,
               workload, train_impl):
    fnbench.skip_unless(train_impl, bench_peers)
    spec = bench_workloads[workload]
    X, y = train_data.X[:spec.n], train_data.y[:spec.n]
    trainer = fnbench.make_trainer(train_impl, spec, X, y, bench_threads)
    trainer.warmup()
    benchmark.group = "epoch:%s" % workload
    benchmark.extra_info.update({"workload": spec._asdict(), "data": train_data.source,
                                 "threads": bench_threads, "flops": fnbench.epoch_flops(spec.sizes, spec.n)})
    benchmark.extra_info.update({k: v for k, v in trainer.info.items()})
    benchmark.pedantic(trainer.epoch, rounds=_rounds(bench_quick, train_impl), iterations=1)
    scores = trainer.predict(train_data.X_test[:100])
    assert scores.shape == (min(100, train_data.X_test.shape[0]), spec.sizes[-1])
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("which", ["latency", "throughput"])
def test_predict(benchmark, bench_threads, bench_workloads, bench_peers, predict_impl, which):
    fnbench.skip_unless(predict_impl, bench_peers)
    p = bench_workloads["predict"]
    n = p["latency_batch"] if which == "latency" else p["throughput_batch"]
    x = np.random.default_rng(0).random((n, p["sizes"][0]), dtype=np.float32)
    fn = fnbench.make_predictor(predict_impl, p["sizes"], bench_threads)
    out = fn(x)  # warm-up (JIT compile)
    assert out.shape == (n, p["sizes"][-1])
    benchmark.group = "predict:batch%d" % n
    benchmark.extra_info.update({"sizes": p["sizes"], "batch": n, "threads": bench_threads})
    benchmark(fn, x)


def test_gradients_backprop(benchmark, bench_threads, bench_workloads, grad_backend, grad_net):
    fnbench.skip_unless(grad_backend)
    case = fnbench.GradCase(grad_backend, grad_net, bench_workloads["grad_n"], bench_threads)
    case.backprop()
    benchmark.group = "gradients-backprop:%s" % "x".join(map(str, grad_net))
    benchmark.extra_info.update({"P": case.P, "N": case.n})
    benchmark(case.backprop)


def test_gradients_numerical(benchmark, bench_threads, bench_workloads, grad_backend, grad_net):
    """Central differences over (a subsample of) the parameters: the time of
    all P parameters is this time x P / params_timed (extra_info)."""
    fnbench.skip_unless(grad_backend)
    case = fnbench.GradCase(grad_backend, grad_net, bench_workloads["grad_n"], bench_threads)
    k = case.P if case.P <= fnbench.GRAD_FULL_MAX else fnbench.GRAD_SUBSAMPLE
    idx = case.sample(k)
    num = case.numerical(idx[:8])
    bp = case.backprop_flat()[idx[:8]]
    assert np.allclose(num, bp, rtol=1e-4, atol=1e-7), (num, bp)
    benchmark.group = "gradients-numerical:%s" % "x".join(map(str, grad_net))
    benchmark.extra_info.update({"P": case.P, "N": case.n, "params_timed": len(idx),
                                 "extrapolate_to_P": case.P / len(idx)})
    benchmark.pedantic(case.numerical, args=(idx,), rounds=3, iterations=1)
