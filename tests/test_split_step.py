"""The two-thread split step of both compiled twins (kernels/cython/split.pyx,
kernels/numba/network.py's split section): small batches of a network whose first
layer dominates give each half of that layer's p to its own thread.  The bits are
the plain step's at any thread count, in each twin and across the twins; numba's
team of two Python threads never waits for a worker that does not come."""
import importlib
import os
import threading

import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs
from fastnet.backends import _api, get_backend

from conftest import COMPILED, OPT_NAMES, TRAIN_ARG, head_cases, make_optimizer as _optimizer, \
    make_spec, make_targets, train

DTYPES = ["float32", "float64"]
HEADS = head_cases(mse_act=defs.ACT_TANH)
OPTS = OPT_NAMES


@pytest.fixture(params=COMPILED, scope="module")
def twin(request):
    """(backend, its kernels' network module: step_plan)."""
    return (get_backend(request.param),
            importlib.import_module("fastnet._kernels.%s.network" % request.param))


SPLIT_NETS = {
    # first layer >= 4x the rest, batch product < 2**20 multiply-adds
    "2 layers": (110, (40, 10), (defs.ACT_SIGMOID,), 10),
    "3 layers, odd p, no bias": (131, (33, 12, 5), (defs.ACT_TANH, defs.ACT_RELU), 7),
    # over 4 vectors of hidden units (and float64 above): each part of the rows
    # is gathered, not read in place by the narrow kernels
    "2 layers, 70 hidden": (110, (70, 10), (defs.ACT_RELU,), 10),
}


def _split_args(dtype, head_case, opt_name, net, n_threads, N=95):
    _, head, last_act = head_case
    n_in, widths, acts, bs = SPLIT_NETS[net]
    rng = np.random.default_rng(3)
    L = len(widths)
    use_bias = [True] * L if net == "2 layers" else [False, True, False]
    layers, P = make_spec(n_in, list(widths), list(acts) + [last_act], use_bias=use_bias)
    k = widths[-1]
    X = rng.standard_normal((N + 5, n_in)).astype(dtype)
    Y, labels, sw = make_targets(rng, head, last_act, N + 5, k, dtype, real="normal")
    opt = _optimizer(opt_name)
    code = defs.OPT_NONE if opt is None else opt.code
    hyper = np.zeros(defs.NH) if opt is None else opt.hyper()
    state = np.zeros((defs.N_STATE, P), dtype) if opt is None else opt._initial_state(P, dtype)
    params = (rng.standard_normal(P) / 10).astype(dtype)
    perm = rng.permutation(N + 5)[:N].astype(np.int64)     # 5 rows never used
    nb = _api.n_batches(N, bs)                             # the last batch is short
    return [X, Y, labels, sw, perm, bs, 0, nb, layers, head, code, hyper, 0,
            0x0123456789ABCDEF, params, np.zeros(P, dtype), state,
            np.zeros(_api.workspace_size(layers, bs), dtype), np.full(nb, np.nan),
            np.full((N, k), np.nan, dtype), n_threads]


@pytest.mark.parametrize("net", list(SPLIT_NETS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", OPTS)
@pytest.mark.parametrize("head_case", HEADS, ids=[h[0] for h in HEADS])
def test_split_step_bit_identical_for_any_thread_count_and_the_reference(twin, dtype, head_case,
                                                                        opt_name, net):
    """Small batches of a network whose first layer dominates: two threads run the
    split step (each half of p of the first layer on its own thread), one thread
    the plain step with the same halves (numba: the split worker alone; its plain
    step called directly); all give the same bits, in one call or in chunks of
    batches, and the reference's training."""
    be, network = twin
    runs = []
    for n_threads in (1, 2, 3):
        args = _split_args(dtype, head_case, opt_name, net, n_threads)
        r, two = network.step_plan(args[8], args[14].shape[0], args[11], args[5], n_threads)
        assert r == args[0].shape[1] // 2 and two == (n_threads > 1)
        if n_threads == 3:                       # the epoch in chunks (t0 follows the batch)
            for first in range(0, args[7], 4):
                part = list(args)
                part[6], part[7], part[12] = first, min(4, args[7] - first), first
                part[18] = args[18][first:first + part[7]]
                train(be, *part)
        else:
            train(be, *args)
        runs.append(args)
    if be.__name__.endswith(".numba"):
        # the plain step (the adapter picks the split step at every thread count
        # for these shapes), called directly: the same bits
        import fastnet.backends.numba as nbb
        args = _split_args(dtype, head_case, opt_name, net, 1)
        flat = [nbb._ro(a) if i < 5 else a for i, a in enumerate(args)]
        network.train_variant((False,) * 7)(*flat, np.zeros(0))
        runs.append(args)
    ref = runs[0]
    assert np.isfinite(ref[18]).all() and np.isfinite(ref[14]).all() and np.isfinite(ref[19]).all()
    for other in runs[1:]:
        for i in [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss", "scores")]: 
            np.testing.assert_array_equal(other[i], ref[i], err_msg="argument %d" % i)
    want = _split_args(dtype, head_case, opt_name, net, 1)
    train(get_backend("numpy"), *want)
    tol = 2e-4 if dtype == "float32" else 1e-9
    compare = [TRAIN_ARG[a] for a in ("params", "grads", "batch_loss", "scores")]
    if dtype == "float32" and opt_name in ("adagrad", "rmsprop") and net == "2 layers, 70 hidden":
        # their first step moves each weight by ~lr * sign(g): where a relu net's
        # gradient is float32 rounding noise (the reference's BLAS sums in another
        # order) the sign, and so a whole lr step, can differ; the float64 runs
        # check these optimizers against the reference, here the outputs must agree
        # to a few such steps
        compare, tol = [TRAIN_ARG[a] for a in ("batch_loss", "scores")], 2e-3
    for i in compare:
        np.testing.assert_allclose(ref[i], want[i], rtol=tol, atol=tol, err_msg="argument %d" % i)


def test_step_plan_keeps_the_plain_step_where_the_split_shares_no_state(twin):
    """Dropout, L1/L2, clipping, diagnostics, PReLU, one thread, big batches or a
    first layer that does not dominate: no two-thread step (and no halves of p
    for shapes the plain step runs in parallel or that are too small)."""
    network = twin[1]
    layers, P = make_spec(784, [30, 10], [defs.ACT_SIGMOID, defs.ACT_LINEAR])
    h = fastnet.SGD(0.5).hyper()
    assert network.step_plan(layers, P, h, 10, 2) == (392, True)      # the seed workload
    assert network.step_plan(layers, P, h, 10, 1) == (392, False)
    assert network.step_plan(layers, P, h, 10, 2, True) == (392, False)
    assert network.step_plan(layers, P, h, 128, 2) == (0, False)      # 128*784*30 >= 2**20
    assert network.step_plan(layers, P, fastnet.SGD(0.5, clipnorm=1.0).hyper(), 10, 2) == (392, False)
    for change in ({"drop": [0.2, 0.0]}, {"l2": [1e-3, 0.0]}, {"l1": [0.0, 1e-3]}):
        net2, P2 = make_spec(784, [30, 10], [defs.ACT_SIGMOID, defs.ACT_LINEAR], **change)
        assert network.step_plan(net2, P2, h, 10, 2) == (392, False), change
    net2, P2 = make_spec(784, [30, 10], [defs.ACT_PRELU, defs.ACT_LINEAR])
    assert network.step_plan(net2, P2, h, 10, 2) == (0, False)
    net2, P2 = make_spec(110, [40, 200, 10], [defs.ACT_RELU, defs.ACT_RELU, defs.ACT_LINEAR])
    assert network.step_plan(net2, P2, h, 10, 2) == (55, False)           # rest > first / 4
    net2, P2 = make_spec(64, [25, 15, 10], [defs.ACT_RELU, defs.ACT_RELU, defs.ACT_LINEAR])
    assert network.step_plan(net2, P2, h, 10, 2) == (0, False)            # 1,600 weights


@pytest.mark.skipif(not {"numba", "cython"} <= set(COMPILED), reason="needs both compiled twins")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head_case", HEADS, ids=[h[0] for h in HEADS])
def test_split_step_same_bits_in_both_twins(dtype, head_case):
    """The two twins' split steps (two threads) give the same bits."""
    out = {}
    for name in ("cython", "numba"):
        args = _split_args(dtype, head_case, "adam", "3 layers, odd p, no bias", 2)
        train(get_backend(name), *args)
        out[name] = args
    for i in [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss", "scores")]:
        np.testing.assert_array_equal(out["numba"][i], out["cython"][i], err_msg="argument %d" % i)


@pytest.fixture
def nb_split():
    if "numba" not in COMPILED:
        pytest.skip("numba backend unavailable")
    import fastnet.backends.numba as nbb
    from fastnet._kernels.numba import network
    return nbb, network


def _worker_call(network, args, ctl, tid):
    """The numba split worker tid over train_batches' flat arguments, the inputs
    read-only as the adapter passes them (the same compiled code as a fit's)."""
    import fastnet.backends.numba as nbb
    worker = network.train_variant((False,) * 7, split=True).worker
    X, Y, labels, sw, perm, bs, first, nb, layers, head, opt, hyper, t0, _, params, grads, state, \
        work, batch_loss, scores, _ = args
    X, Y, labels, sw, perm = (nbb._ro(a) for a in (X, Y, labels, sw, perm))
    slots = np.empty(4 * bs * int(layers[0]["n_out"]), work.dtype)
    worker(tid, ctl, slots, X, Y, labels, sw, perm, bs, first, nb, layers, head, opt, hyper, t0, params,
           grads, state, work, batch_loss, scores)


def test_numba_picks_the_split_step_at_any_thread_count_where_its_plan_applies(nb_split):
    """One thread runs the split step's worker alone (no helper woken, no second
    training step compiled for the thread tuner's one-thread calls)."""
    nbb, network = nb_split
    args = _split_args("float32", HEADS[0], "sgd", "2 layers", 2)
    pick = [nbb._train_kernel(args[8], args[10], args[11], None, args[5], args[14], args[9], args[2],
                              n_threads=n) for n in (1, 2)]
    assert isinstance(pick[0], network._SplitStep) and pick[0] is pick[1]
    calls = []
    post = network._SplitStep._post
    network._SplitStep._post = classmethod(
        lambda cls, fn, a, *where: calls.append(a[0]) or post.__func__(cls, fn, a, *where))
    try:
        one = _split_args("float32", HEADS[0], "sgd", "2 layers", 1)
        train(get_backend("numba"), *one)
        assert calls == []                                 # one thread: the helper never woken
        two = _split_args("float32", HEADS[0], "sgd", "2 layers", 2)
        train(get_backend("numba"), *two)
        assert calls == [1]                                # two: worker 1 on the helper
    finally:
        network._SplitStep._post = post
    for i in [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss", "scores")]:
        np.testing.assert_array_equal(one[i], two[i], err_msg="argument %d" % i)
    # a shape outside the plan keeps the plain step at any thread count
    layers, P = make_spec(64, [25, 15, 10], [defs.ACT_RELU, defs.ACT_RELU, defs.ACT_LINEAR])
    for n in (1, 2):
        assert not isinstance(nbb._train_kernel(layers, args[10], args[11], None, 10, np.zeros(P, np.float32),
                                                args[9], args[2], n_threads=n), network._SplitStep)
    # diagnostics (a feature flag) keep the plain step
    diag = np.zeros(defs.diag_size(args[8]))
    assert not isinstance(nbb._train_kernel(args[8], args[10], args[11], diag, args[5], args[14],
                                            args[9], args[2], n_threads=2), network._SplitStep)


def test_numba_worker_alone_runs_every_part_and_a_late_partner_nothing(nb_split):
    """A worker whose partner never arrives (a pool of one thread, an executor
    that runs the two one after the other) waits SOLO_SPINS, then runs both
    halves: the plain step's bits; the partner arriving afterwards changes
    nothing."""
    nbb, network = nb_split
    want = _split_args("float64", HEADS[0], "adam", "3 layers, odd p, no bias", 1)
    train(get_backend("numba"), *want)
    for first in (0, 1):
        args = _split_args("float64", HEADS[0], "adam", "3 layers, odd p, no bias", 2)
        ctl = np.zeros(network.CTL_SIZE, np.int64)
        _worker_call(network, args, ctl, first)
        snap = [a.copy() for a in args if isinstance(a, np.ndarray)]
        _worker_call(network, args, ctl, 1 - first)          # the late partner
        for a, b in zip([a for a in args if isinstance(a, np.ndarray)], snap):
            np.testing.assert_array_equal(a, b)
        for i in [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss", "scores")]:
            np.testing.assert_array_equal(args[i], want[i], err_msg="argument %d" % i)


def test_numba_late_caller_waits_for_a_lone_helper_to_finish(nb_split):
    """Worker 1 (the helper thread) arrived first and runs every batch alone:
    worker 0, the caller's thread, arriving late, does nothing but must not
    return (its caller would read half-updated parameters, and its next call
    would race the helper) before worker 1's last write, CTL_DONE."""
    import threading
    nbb, network = nb_split
    args = _split_args("float64", HEADS[0], "adam", "3 layers, odd p, no bias", 2)
    ctl = np.zeros(network.CTL_SIZE, np.int64)
    ctl[network.CTL_ARRIVED] = 1                         # worker 1 arrived ...
    ctl[network.CTL_MODE] = network.MODE_SOLO            # ... and went alone, still running
    snap = [a.copy() for a in args if isinstance(a, np.ndarray)]
    late = threading.Thread(target=_worker_call, args=(network, args, ctl, 0), daemon=True)
    late.start()
    late.join(0.5)
    assert late.is_alive(), "worker 0 returned while the lone worker 1 was still running"
    ctl[network.CTL_DONE] = 1                            # worker 1's last write
    late.join(30)
    assert not late.is_alive()
    for a, b in zip([a for a in args if isinstance(a, np.ndarray)], snap):
        np.testing.assert_array_equal(a, b)              # the late worker wrote nothing


def test_numba_split_step_rejects_a_network_outside_its_plan(nb_split):
    nbb, network = nb_split
    args = _split_args("float32", HEADS[0], "sgd", "2 layers", 2)
    layers, P = make_spec(110, [40, 10], [defs.ACT_SIGMOID, HEADS[0][2]], drop=[0.2, 0.0])
    assert P == args[14].shape[0]
    args[8] = layers                                   # dropout: no split
    with pytest.raises(ValueError, match="split step"):
        _worker_call(network, args, np.zeros(network.CTL_SIZE, np.int64), 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_numba_split_step_in_a_forked_child(nb_split):
    """The helper thread does not survive fork: a child makes its own and gets
    the parent's bits."""
    nbb, network = nb_split
    args = _split_args("float32", HEADS[0], "sgd", "2 layers", 2)
    train(get_backend("numba"), *args)                  # the parent's helper exists now
    assert network._SplitStep._jobs is not None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                        # pragma: no cover - the child
        ok = 0
        try:
            again = _split_args("float32", HEADS[0], "sgd", "2 layers", 2)
            t = threading.Timer(60, lambda: os._exit(3))
            t.start()
            train(get_backend("numba"), *again)
            t.cancel()
            ok = int(all(np.array_equal(again[i], args[i]) for i in
                         [TRAIN_ARG[a] for a in ("params", "grads", "batch_loss", "scores")]))
        finally:
            os.write(w, bytes([ok]))
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.waitpid(pid, 0)
    assert got == b"\x01"


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs and sched_getaffinity")
def test_numba_split_helper_runs_off_the_callers_cpu(nb_split, monkeypatch):
    """Each call runs the helper on the CPUs the caller may use other than the
    one the caller is on (the workers spin on each other: beside the caller, after
    an idle spell, they ran at one thread's speed); the bits are the one-thread
    call's.  The caller's CPU comes from libc's sched_getcpu, here pinned to one."""
    nbb, network = nb_split
    allowed = os.sched_getaffinity(0)
    want = _split_args("float32", HEADS[0], "sgd", "2 layers", 1)
    train(get_backend("numba"), *want)
    for cpu in sorted(allowed)[:2]:
        monkeypatch.setattr(network, "_GETCPU", lambda cpu=cpu: cpu)
        assert network._other_cpus() == allowed - {cpu}
        args = _split_args("float32", HEADS[0], "sgd", "2 layers", 2)
        train(get_backend("numba"), *args)
        helper = [t for t in threading.enumerate() if t.name == "fastnet-split"]
        assert len(helper) == 1
        assert os.sched_getaffinity(helper[0].native_id) == allowed - {cpu}
        for i in [TRAIN_ARG[a] for a in ("params", "grads", "batch_loss", "scores")]:
            np.testing.assert_array_equal(args[i], want[i])
    monkeypatch.setattr(network, "_GETCPU", lambda: -1)   # the OS does not say: no placement
    assert network._other_cpus() is None
