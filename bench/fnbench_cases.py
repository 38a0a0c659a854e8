"""What the benchmarks run (part of ``fnbench``, which re-exports it): the
workloads and their FLOP counts, their data, the contract kernels at the
workloads' shapes, and the gradient cases (numerical vs backprop)."""
import collections
import math

import numpy as np


# ---------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------
Spec = collections.namedtuple("Spec", "name sizes hidden_act optimizer lr batch n")

SEED = Spec("seed", (784, 30, 10), "sigmoid", "sgd", 0.5, 10, 60000)
WIDE = Spec("wide", (784, 512, 256, 10), "relu", "adam", 1e-3, 128, 60000)
#: predict: the wide network (softmax output); batch-1 latency, batch-1024 throughput
PREDICT = {"sizes": (784, 512, 256, 10), "latency_batch": 1, "throughput_batch": 1024,
           # the Python overhead per call is measured on a net whose forward pass takes about
           # a microsecond, so the difference of two timings is not lost in the big net's noise
           "overhead_sizes": (64, 100, 10)}
#: gradients: networks from ~1e2 to ~1e5 parameters (784-120-10 is the largest)
GRAD_NETS = [(8, 8, 4), (16, 16, 4), (32, 24, 10), (64, 40, 10), (100, 90, 10), (256, 110, 10),
             (784, 120, 10)]
#: gradients: samples per gradient evaluation
GRAD_N = 100
#: gradients: numerical gradients are run for every parameter up to this P,
#: for a random subsample of GRAD_SUBSAMPLE parameters above it (the per-parameter
#: cost is then extrapolated to all P parameters: it does not depend on which
#: parameter is perturbed, every perturbation costs two full forward passes)
GRAD_FULL_MAX = 3500
GRAD_SUBSAMPLE = 400

QUICK_SEED = Spec("seed", (784, 30, 10), "sigmoid", "sgd", 0.5, 10, 200)
QUICK_WIDE = Spec("wide", (784, 64, 32, 10), "relu", "adam", 1e-3, 128, 256)
QUICK_PREDICT = {"sizes": (784, 64, 32, 10), "latency_batch": 1, "throughput_batch": 64,
                 "overhead_sizes": (64, 100, 10)}
QUICK_GRAD_NETS = [(8, 8, 4), (16, 16, 4), (32, 24, 10)]
QUICK_GRAD_N = 16


def workloads(quick=False):
    """The (seed, wide) training specs, the predict spec and the gradient nets."""
    if quick:
        return {"seed": QUICK_SEED, "wide": QUICK_WIDE, "predict": QUICK_PREDICT,
                "grad_nets": QUICK_GRAD_NETS, "grad_n": QUICK_GRAD_N, "gemm_big": 64}
    return {"seed": SEED, "wide": WIDE, "predict": PREDICT, "grad_nets": GRAD_NETS,
            "grad_n": GRAD_N, "gemm_big": 1024}


def layer_pairs(sizes):
    return list(zip(sizes[:-1], sizes[1:]))


def n_params(sizes):
    return sum(i * o + o for i, o in layer_pairs(sizes))


def forward_flops(sizes, n):
    """2 N sum(in * out): the multiply-adds of the forward matmuls."""
    return 2.0 * n * sum(i * o for i, o in layer_pairs(sizes))


def epoch_flops(sizes, n):
    """Forward + backward FLOPs of an epoch over n samples (gemms only).

    backward = weight gradients (2 N sum in*out) + deltas (2 N sum in*out over
    every layer but the first, whose input delta is not needed), i.e. about
    2x the forward.  Elementwise work (bias, activations, loss, optimizer) is
    not counted: it is O(N sum out + P), small next to the gemms."""
    pairs = layer_pairs(sizes)
    s = sum(i * o for i, o in pairs)
    fwd = 2.0 * n * s
    bwd = 2.0 * n * s + 2.0 * n * (s - pairs[0][0] * pairs[0][1])
    return fwd + bwd


def step_gemms(sizes, bs):
    """The gemms of one training step: (form, n, k, m) with C (n, m) and the
    contraction over k (flops 2 n k m).

    forward ``matmul`` (bs, in, out) per layer; weight gradient ``matmul_tn``
    (in, bs, out) per layer (C = X^T delta); delta ``matmul_nt`` (bs, out, in)
    per layer but the first (C = delta W^T)."""
    pairs = layer_pairs(sizes)
    out = [("matmul", bs, i, o) for i, o in pairs]
    out += [("matmul_tn", i, bs, o) for i, o in pairs]
    out += [("matmul_nt", bs, o, i) for l, (i, o) in enumerate(pairs) if l > 0]
    return out


def spec_batches(spec):
    """[(rows, count)] of an epoch: full batches and the last partial one."""
    full, rem = divmod(spec.n, spec.batch)
    out = [(spec.batch, full)] if full else []
    if rem:
        out.append((rem, 1))
    return out

# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
Data = collections.namedtuple("Data", "X y X_test y_test source")


def load_data(n, source="auto", n_test=10000, seed=0):
    """(X float32 (n, 784) in [0, 1], y int64 labels 0..9, test split, source).

    ``source``: "mnist" (real MNIST via fastnet.datasets.load_mnist; n <= 60000),
    "random" (uniform pixels, random labels: timing is the same) or "auto"
    (MNIST when it is installed locally, else random)."""
    if source not in ("auto", "mnist", "random"):
        raise ValueError("data source must be auto, mnist or random; got %r" % (source,))
    if source in ("auto", "mnist") and n <= 60000:
        try:
            from fastnet.datasets import load_mnist
            (X, y), (Xt, yt) = load_mnist(flatten=True)
            X = np.ascontiguousarray(X[:n], dtype=np.float32)
            X /= 255.0
            Xt = np.ascontiguousarray(Xt[:n_test], dtype=np.float32)
            Xt /= 255.0
            return Data(X, y[:n].astype(np.int64), Xt, yt[:n_test].astype(np.int64), "mnist")
        except Exception:  # noqa: BLE001 - not installed: fall back to random data
            if source == "mnist":
                raise
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    n_t = min(n_test, max(n // 6, 10))
    Xt = rng.random((n_t, 784), dtype=np.float32)
    yt = rng.integers(0, 10, n_t).astype(np.int64)
    return Data(X, y, Xt, yt, "random")


def glorot(rng, n_in, n_out, dtype=np.float32):
    lim = math.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-lim, lim, size=(n_in, n_out)).astype(dtype)

# ---------------------------------------------------------------------------
# kernel cases (contract kernels at the workloads' shapes)
# ---------------------------------------------------------------------------
class KernelCase:
    """One contract kernel at one shape.  ``group`` is "op:shape";
    ``build(impl, threads)`` returns a zero-argument callable running it once.
    ``impls`` lists the extra non-backend impls of the group ("blas" for gemms)."""

    def __init__(self, group, kernel, make, flops=None, blas=False, desc=""):
        self.group, self.kernel, self._make = group, kernel, make
        self.flops, self.blas, self.desc = flops, blas, desc

    def build(self, impl, threads):
        return self._make(impl, threads)

    def __repr__(self):
        return "KernelCase(%s)" % self.group


def _backend(name):
    import fastnet.backends
    return fastnet.backends.get_backend(name)


def gemm_case(form, n, k, m, dtype=np.float32):
    rng = np.random.default_rng(n * 1000003 + k * 1009 + m)
    if form == "matmul":
        A, B = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    elif form == "matmul_tn":
        A, B = rng.standard_normal((k, n)), rng.standard_normal((k, m))
    elif form == "matmul_nt":
        A, B = rng.standard_normal((n, k)), rng.standard_normal((m, k))
    else:
        raise ValueError(form)
    A, B = A.astype(dtype), B.astype(dtype)
    C = np.empty((n, m), dtype=dtype)

    def make(impl, threads):
        if impl == "blas":
            if form == "matmul":
                return lambda: np.matmul(A, B, out=C)
            if form == "matmul_tn":
                At = A.T
                return lambda: np.matmul(At, B, out=C)
            Bt = B.T
            return lambda: np.matmul(A, Bt, out=C)
        fn = getattr(_backend(impl), form)
        return lambda: fn(A, B, C, threads)
    what = {"matmul": "C = A @ B", "matmul_tn": "C = A.T @ B", "matmul_nt": "C = A @ B.T"}[form]
    return KernelCase("%s:%dx%dx%d" % (form, n, k, m), form, make, flops=2.0 * n * k * m, blas=True,
                      desc="%s, C %dx%d, inner %d" % (what, n, m, k))


def _act_code(name):
    from fastnet._kernels import defs
    return defs.ACT[name]


def bias_act_case(act, n, m, dtype=np.float32):
    rng = np.random.default_rng(n * 31 + m)
    b = (rng.standard_normal(m) * 1e-6).astype(dtype)
    Z = rng.standard_normal((n, m)).astype(dtype)
    A = np.empty_like(Z)
    code = _act_code(act)

    def make(impl, threads):
        fn = _backend(impl).bias_act_forward
        return lambda: fn(b, code, 0.0, Z, A, threads)
    return KernelCase("bias_act_forward:%s:%dx%d" % (act, n, m), "bias_act_forward", make)


def act_backward_case(act, n, m, dtype=np.float32):
    rng = np.random.default_rng(n * 37 + m)
    Z = rng.standard_normal((n, m)).astype(dtype)
    A = np.maximum(Z, 0) if act == "relu" else (1 / (1 + np.exp(-Z))).astype(dtype)
    dA = rng.standard_normal((n, m)).astype(dtype)
    dZ = np.empty_like(Z)
    code = _act_code(act)

    def make(impl, threads):
        fn = _backend(impl).act_backward
        return lambda: fn(Z, A, dA, code, 0.0, dZ, threads)
    return KernelCase("act_backward:%s:%dx%d" % (act, n, m), "act_backward", make)


def softmax_xent_case(n, k, dtype=np.float32):
    rng = np.random.default_rng(n * 41 + k)
    Z = rng.standard_normal((n, k)).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int64)
    Y = np.empty((0, k), dtype=dtype)
    sw = np.empty(0, dtype=dtype)
    P, dZ = np.empty_like(Z), np.empty_like(Z)
    loss = np.empty(n, dtype=np.float64)

    def make(impl, threads):
        fn = _backend(impl).softmax_xent
        return lambda: fn(Z, Y, labels, sw, 1.0 / n, P, loss, dZ, threads)
    return KernelCase("softmax_xent:%dx%d" % (n, k), "softmax_xent", make)


def bias_grad_case(n, m, dtype=np.float32):
    dZ = np.random.default_rng(n * 43 + m).standard_normal((n, m)).astype(dtype)
    db = np.empty(m, dtype=dtype)

    def make(impl, threads):
        fn = _backend(impl).bias_grad
        return lambda: fn(dZ, db, threads)
    return KernelCase("bias_grad:%dx%d" % (n, m), "bias_grad", make)


def gather_case(N, n, m, dtype=np.float32):
    rng = np.random.default_rng(N + n + m)
    X = rng.random((N, m), dtype=np.float32).astype(dtype, copy=False)
    idx = rng.permutation(N)[:n].astype(np.int64)
    out = np.empty((n, m), dtype=dtype)

    def make(impl, threads):
        fn = _backend(impl).gather_rows
        return lambda: fn(X, idx, out, threads)
    return KernelCase("gather_rows:%dof%dx%d" % (n, N, m), "gather_rows", make)


def optimizer_case(opt, P, lr, dtype=np.float32):
    import fastnet
    from fastnet._kernels import defs
    o = fastnet.SGD(lr=lr) if opt == "sgd" else fastnet.Adam(lr=lr)
    code, hyper = o.code, o.hyper()
    rng = np.random.default_rng(P)
    params = rng.standard_normal(P).astype(dtype)
    grads = (rng.standard_normal(P) * 1e-3).astype(dtype)
    state = np.zeros((defs.N_STATE, P), dtype=dtype)

    def make(impl, threads):
        fn = _backend(impl).optimizer_update
        return lambda: fn(code, hyper, 1.0, 10, grads, params, state, threads)
    return KernelCase("optimizer_update:%s:P=%d" % (opt, P), "optimizer_update", make)


def step_calls(spec, bs=None):
    """The contract-kernel calls of one training step of ``spec`` at batch
    ``bs`` (default spec.batch), in order, as KernelCase *keys* (group names)
    with a constructor: [(group, factory)]."""
    bs = spec.batch if bs is None else bs
    sizes, pairs = spec.sizes, layer_pairs(spec.sizes)
    L = len(pairs)
    calls = [("gather_rows:%dof%dx%d" % (bs, spec.n, sizes[0]),
              lambda: gather_case(spec.n, bs, sizes[0]))]
    for l, (i, o) in enumerate(pairs):
        calls.append(("matmul:%dx%dx%d" % (bs, i, o), lambda i=i, o=o: gemm_case("matmul", bs, i, o)))
        act = "linear" if l == L - 1 else spec.hidden_act
        calls.append(("bias_act_forward:%s:%dx%d" % (act, bs, o), lambda act=act, o=o: bias_act_case(act, bs, o)))
    calls.append(("softmax_xent:%dx%d" % (bs, sizes[-1]), lambda: softmax_xent_case(bs, sizes[-1])))
    for l in range(L - 1, -1, -1):
        i, o = pairs[l]
        calls.append(("matmul_tn:%dx%dx%d" % (i, bs, o), lambda i=i, o=o: gemm_case("matmul_tn", i, bs, o)))
        calls.append(("bias_grad:%dx%d" % (bs, o), lambda o=o: bias_grad_case(bs, o)))
        if l > 0:
            calls.append(("matmul_nt:%dx%dx%d" % (bs, o, i), lambda i=i, o=o: gemm_case("matmul_nt", bs, o, i)))
            calls.append(("act_backward:%s:%dx%d" % (spec.hidden_act, bs, i),
                          lambda i=i: act_backward_case(spec.hidden_act, bs, i)))
    P = n_params(sizes)
    calls.append(("optimizer_update:%s:P=%d" % (spec.optimizer, P),
                  lambda: optimizer_case(spec.optimizer, P, spec.lr)))
    return calls


def kernel_cases(quick=False):
    """Every kernel case of the suite, in a stable order, without duplicates:
    the kernels of one seed step and one wide step, plus the three gemm forms
    at big x big x big (1024^3; 64^3 in quick mode)."""
    w = workloads(quick)
    seen, out = set(), []
    big = w["gemm_big"]
    extra = [("%s:%dx%dx%d" % (f, big, big, big), lambda f=f: gemm_case(f, big, big, big))
             for f in ("matmul", "matmul_tn", "matmul_nt")]
    for group, factory in step_calls(w["seed"]) + step_calls(w["wide"]) + extra:
        if group not in seen:
            seen.add(group)
            out.append((group, factory))
    return out


_case_cache = {}


def get_case(group, factory):
    """Build (once per process) the arrays of a case."""
    if group not in _case_cache:
        _case_cache[group] = factory()
    return _case_cache[group]

# ---------------------------------------------------------------------------
# gradients: numerical (central differences) vs backprop
# ---------------------------------------------------------------------------
class GradCase:
    """One network of the gradients workload on one fastnet backend (float64).

    ``backprop()``: ``model.gradients(X, y)`` (one compiled forward + backward).
    ``numerical(idx)``: central differences for the parameters ``idx`` of the
    flat buffer, two forward passes (``forward`` kernel + ``softmax_xent``)
    per parameter; returns the gradient entries."""

    def __init__(self, backend, sizes, n, threads, seed=0):
        import fastnet
        from fastnet._kernels import defs
        from fastnet.backends import _api
        fastnet.set_num_threads(threads)
        self.sizes, self.n, self.threads = sizes, n, threads
        self.model = _fastnet_model(sizes, "sigmoid", backend, seed, dtype="float64")
        self.model.compile(optimizer=fastnet.SGD(lr=0.1),
                           loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
        self.model.build(sizes[0])
        rng = np.random.default_rng(seed + len(sizes) * 7 + sizes[0])
        self.X = rng.standard_normal((n, sizes[0]))
        self.y = rng.integers(0, sizes[-1], n).astype(np.int64)
        self.P = self.model.count_params()
        be = self.model._backend
        layers = self.model._layer_table
        k = sizes[-1]
        work = np.empty(_api.forward_workspace_size(layers, n))
        Z, Pm, dZ = np.empty((n, k)), np.empty((n, k)), np.empty((n, k))
        loss = np.empty(n)
        Y0, sw0 = np.empty((0, k)), np.empty(0)
        params, X, y = self.model._params, self.X, self.y
        assert layers[-1]["act"] == defs.ACT_LINEAR  # logits
        inv_n = 1.0 / n

        def loss_at():
            be.forward(X, layers, params, work, Z, threads)
            be.softmax_xent(Z, Y0, y, sw0, inv_n, Pm, loss, dZ, threads)
            return loss.sum() * inv_n
        self._loss_at = loss_at
        self._params = params

    def backprop(self):
        return self.model.gradients(self.X, self.y)

    def backprop_flat(self):
        return np.concatenate([g.ravel() for g in self.backprop()])

    def numerical(self, idx, eps=1e-6):
        p, f = self._params, self._loss_at
        out = np.empty(len(idx))
        for j, i in enumerate(idx):
            old = p[i]
            p[i] = old + eps
            fp = f()
            p[i] = old - eps
            fm = f()
            p[i] = old
            out[j] = (fp - fm) / (2 * eps)
        return out

    def sample(self, k, seed=0):
        """k parameter indices (all of them when k >= P), sorted."""
        if k >= self.P:
            return np.arange(self.P)
        return np.sort(np.random.default_rng(seed).choice(self.P, size=k, replace=False))


def loglog_slope(P, ratio):
    """Least-squares slope of log(ratio) against log(P)."""
    P, ratio = np.asarray(P, float), np.asarray(ratio, float)
    ok = (P > 0) & (ratio > 0) & np.isfinite(ratio)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(P[ok]), np.log(ratio[ok]), 1)[0])


def _fastnet_model(sizes, hidden_act, backend, seed, out_act=None, dtype="float32"):
    import fastnet
    layers = [fastnet.Dense(o, activation=hidden_act) for o in sizes[1:-1]]
    layers.append(fastnet.Dense(sizes[-1], activation=out_act))
    return fastnet.Sequential(layers, backend=backend, seed=seed, dtype=dtype)
