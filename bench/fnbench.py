"""Shared benchmark code: workloads, peers, kernel cases, FLOP counts, machine facts.

Used by ``bench/conftest.py`` (the pytest-benchmark suites), ``bench/report.py``
(the side-by-side report) and ``tests/test_bench_smoke.py``.  Nothing here times
anything by itself except :func:`time_calls`; everything is parametrised over
an *impl* name:

* fastnet backends: ``"numpy"`` (the reference), ``"numba"``, ``"cython"``
  (whichever ``fastnet.available_backends()`` lists; the others skip);
* ``"blas"``: ``numpy.matmul`` (OpenBLAS) in the gemm kernel groups;
* peers, each optional (skipped when its package is missing):
  ``"numpy-loop"`` (a hand-written NumPy training loop), ``"torch"`` (PyTorch
  CPU, eager), ``"jax"`` (``jit`` + ``lax.scan`` over the whole epoch) and
  ``"sklearn"`` (``MLPClassifier.partial_fit``: one epoch per call).

Workloads (see :data:`SEED`, :data:`WIDE`, :data:`PREDICT`, :data:`GRAD_NETS`):

* **seed**: 784-30-10, sigmoid hidden layer, softmax + cross-entropy, SGD lr 0.5,
  batch 10, one epoch over 60,000 MNIST-shaped float32 samples;
* **wide**: 784-512-256-10, relu, softmax + cross-entropy, Adam lr 1e-3,
  batch 128, one epoch over 60,000;
* **predict**: 784-512-256-10 (softmax output) inference, batch-1 latency and
  batch-1024 throughput;
* **gradients**: naive numerical gradients (central differences, one pair of
  forward passes per parameter: O(N x P)) against backprop (O(N + P) per
  sample), float64, on networks of ~10^2 to ~10^5 parameters.

The code lives in three modules by job, all re-exported here (import
``fnbench``): ``fnbench_env.py`` (impl names, threads, machine, versions,
timing), ``fnbench_cases.py`` (workloads, FLOP counts, data, kernel and
gradient cases) and ``fnbench_peers.py`` (the trainers and predictors per impl).
"""
from fnbench_env import *  # noqa: F401,F403
from fnbench_cases import *  # noqa: F401,F403
from fnbench_peers import *  # noqa: F401,F403
