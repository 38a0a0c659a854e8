"""Optimizers: fastnet's classes and every backend's ``optimizer_update`` against
an independent transcription of PyTorch's torch.optim algorithms.

1. ``ref_step`` below is a plain-Python, element-by-element (Python float,
   i.e. float64) transcription of torch.optim's single-tensor algorithms
   (SGD, Adagrad, RMSprop, Adam, AdamW; the pseudo-code of the torch.optim
   docs, with the order of operations of ``torch/optim/*.py``).  It uses no
   fastnet code and none of the formula strings of ``kernels/defs.py``.
2. Golden values: a few steps on one scalar, worked out by hand (the
   arithmetic is in the comments), so a wrong transcription cannot hide
   behind self-consistency.
3. Through the model: ``fit`` must pass the step number and the state so that
   the weights follow the transcription applied to ``model.gradients``.
4. Argument validation and the Keras ``learning_rate`` alias.
5. When PyTorch is installed: a direct comparison with ``torch.optim``
   (``foreach=False``) in float64 and float32.
"""
import itertools
import math
import zlib

import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs
from fastnet.backends import get_backend

BACKENDS = fastnet.available_backends()
DTYPES = ["float64", "float32"]
N_STEPS = 6
P = 11

CLASSES = {"sgd": fastnet.SGD, "adagrad": fastnet.Adagrad, "rmsprop": fastnet.RMSprop,
           "adam": fastnet.Adam, "adamw": fastnet.AdamW}
# torch's per-parameter state names, in the row order of the state array
SLOTS = {"sgd": ("momentum_buffer",), "adagrad": ("sum",),
         "rmsprop": ("square_avg", "momentum_buffer", "grad_avg"),
         "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
         "adamw": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")}
DEFAULTS = {
    "sgd": dict(lr=0.001, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, maximize=False),
    "adagrad": dict(lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                    maximize=False),
    "rmsprop": dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                    maximize=False),
    "adam": dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False),
    "adamw": dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False, maximize=False),
}


# ===========================================================================
# 1. The reference: torch.optim's algorithms, one Python float at a time
# ===========================================================================

def ref_init(name, opts, n):
    """torch's lazily created per-parameter state (None = not created yet)."""
    o = dict(DEFAULTS[name], **opts)
    st = {"step": 0}
    if name == "sgd":
        st["momentum_buffer"] = None                  # created on the first step
    elif name == "adagrad":
        st["sum"] = [float(o["initial_accumulator_value"])] * n
    elif name == "rmsprop":
        st["square_avg"] = [0.0] * n
        st["momentum_buffer"] = [0.0] * n if o["momentum"] > 0 else None
        st["grad_avg"] = [0.0] * n if o["centered"] else None
    else:
        st["exp_avg"] = [0.0] * n
        st["exp_avg_sq"] = [0.0] * n
        st["max_exp_avg_sq"] = [0.0] * n if o["amsgrad"] else None
    return st


def ref_step(name, opts, p, grad, st):
    """One optimizer step on the list of floats ``p`` (updated in place) with
    gradient ``grad``; ``st`` from :func:`ref_init` (updated in place)."""
    o = dict(DEFAULTS[name], **opts)
    lr, wd, maximize = float(o["lr"]), float(o["weight_decay"]), o["maximize"]
    st["step"] += 1
    t = st["step"]
    n = len(p)
    # every algorithm starts with  g <- -grad if maximize  (torch: "grad = -grad");
    # the SGD doc pseudo-code instead flips the sign of the final update, which
    # differs when weight_decay != 0 -- the code (used here) decays towards 0.
    g = [(-float(x) if maximize else float(x)) for x in grad]
    if name == "sgd":
        mu, tau = float(o["momentum"]), float(o["dampening"])
        if wd != 0:
            g = [g[i] + wd * p[i] for i in range(n)]
        if mu != 0:
            if st["momentum_buffer"] is None:         # first step: b_1 = g_1 (no dampening)
                st["momentum_buffer"] = list(g)
            else:                                     # b_t = mu b_{t-1} + (1 - tau) g_t
                b = st["momentum_buffer"]
                for i in range(n):
                    b[i] = mu * b[i] + (1.0 - tau) * g[i]
            b = st["momentum_buffer"]
            if o["nesterov"]:
                g = [g[i] + mu * b[i] for i in range(n)]
            else:
                g = list(b)
        for i in range(n):
            p[i] = p[i] - lr * g[i]
    elif name == "adagrad":
        if wd != 0:
            g = [g[i] + wd * p[i] for i in range(n)]
        clr = lr / (1.0 + (t - 1) * float(o["lr_decay"]))
        s = st["sum"]
        for i in range(n):
            s[i] = s[i] + g[i] * g[i]
            p[i] = p[i] - clr * g[i] / (math.sqrt(s[i]) + float(o["eps"]))
    elif name == "rmsprop":
        alpha, eps, mu = float(o["alpha"]), float(o["eps"]), float(o["momentum"])
        if wd != 0:
            g = [g[i] + wd * p[i] for i in range(n)]
        v = st["square_avg"]
        for i in range(n):
            v[i] = alpha * v[i] + (1.0 - alpha) * g[i] * g[i]
            vt = v[i]
            if o["centered"]:
                ga = st["grad_avg"]
                ga[i] = alpha * ga[i] + (1.0 - alpha) * g[i]
                vt = vt - ga[i] * ga[i]
            den = math.sqrt(vt) + eps
            if mu > 0:
                b = st["momentum_buffer"]
                b[i] = mu * b[i] + g[i] / den
                p[i] = p[i] - lr * b[i]
            else:
                p[i] = p[i] - lr * g[i] / den
    else:  # adam / adamw
        b1, b2 = (float(x) for x in o["betas"])
        eps = float(o["eps"])
        if name == "adamw":
            for i in range(n):                        # decoupled: theta <- theta (1 - lr wd)
                p[i] = p[i] * (1.0 - lr * wd)
        elif wd != 0:
            g = [g[i] + wd * p[i] for i in range(n)]  # Adam: L2 added to the gradient
        m, v, vmax = st["exp_avg"], st["exp_avg_sq"], st["max_exp_avg_sq"]
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        for i in range(n):
            m[i] = b1 * m[i] + (1.0 - b1) * g[i]
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i]
            mhat = m[i] / bc1
            if o["amsgrad"]:                          # torch keeps the max of the raw v
                vmax[i] = max(vmax[i], v[i])
                vhat = vmax[i] / bc2
            else:
                vhat = v[i] / bc2
            p[i] = p[i] - lr * mhat / (math.sqrt(vhat) + eps)
    return p


# ===========================================================================
# helpers
# ===========================================================================

def make_opt(name, opts):
    return CLASSES[name](**opts)


def _valid(name, opts):
    return not (name == "sgd" and opts.get("nesterov") and (opts.get("momentum", 0) <= 0
                                                             or opts.get("dampening", 0) != 0))


def _grid(name, axes):
    keys = sorted(axes)
    out = []
    for values in itertools.product(*(axes[k] for k in keys)):
        opts = dict(zip(keys, values))
        if _valid(name, opts):
            out.append((name, opts))
    return out


GRID = {
    "sgd": dict(lr=[0.05], momentum=[0.0, 0.9], dampening=[0.0, 0.3], nesterov=[False, True],
                weight_decay=[0.0, 0.05], maximize=[False, True]),
    "adagrad": dict(lr=[0.1], lr_decay=[0.0, 0.2], weight_decay=[0.0, 0.05],
                    initial_accumulator_value=[0.0, 0.5], maximize=[False, True]),
    "rmsprop": dict(lr=[0.01], alpha=[0.99, 0.6], eps=[1e-8], weight_decay=[0.0, 0.05], momentum=[0.0, 0.8],
                    centered=[False, True], maximize=[False, True]),
    "adam": dict(lr=[0.02], betas=[(0.9, 0.999), (0.5, 0.8)], weight_decay=[0.0, 0.05],
                 amsgrad=[False, True], maximize=[False, True]),
    "adamw": dict(lr=[0.02], betas=[(0.9, 0.999), (0.5, 0.8)], weight_decay=[0.0, 0.1],
                  amsgrad=[False, True], maximize=[False, True]),
}
# a large eps changes the update visibly; crossed with a few options only
EXTRA = [("adagrad", dict(lr=0.1, eps=1e-2)), ("adagrad", dict(lr=0.1, eps=1e-2, lr_decay=0.2, weight_decay=0.05)),
         ("rmsprop", dict(lr=0.01, eps=1e-2, centered=True, momentum=0.8)),
         ("adam", dict(lr=0.02, eps=1e-2)), ("adam", dict(lr=0.02, eps=1e-2, amsgrad=True, weight_decay=0.05)),
         ("adamw", dict(lr=0.02, eps=1e-2, betas=(0.5, 0.8), maximize=True)),
         ("adam", dict(lr=0.02, betas=(0.0, 0.5))), ("adamw", dict(lr=0.02, betas=(0.0, 0.0), amsgrad=True))]
CASES = [c for name in CLASSES for c in _grid(name, GRID[name])] + EXTRA


def _case_id(case):
    name, opts = case
    nondefault = ["%s=%s" % (k, v) for k, v in sorted(opts.items()) if k != "lr" and v != DEFAULTS[name][k]]
    return "-".join([name] + nondefault)


def _data(case, n_steps, dtype):
    """Initial params and a gradient sequence, fixed per case, rounded to dtype."""
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()))
    p0 = rng.normal(size=P).astype(dtype)
    grads = [(rng.normal(size=P) * rng.uniform(0.2, 3.0)).astype(dtype) for _ in range(n_steps)]
    return p0, grads


def _tol(dtype):
    return (1e-12, 1e-14) if dtype == "float64" else (1e-5, 1e-7)


def assert_close(actual, desired, dtype, what):
    """rtol relative; atol scaled to the array's magnitude (entries that cancel
    to ~0 are judged against the size of their neighbours)."""
    rtol, atol = _tol(dtype)
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), desired, rtol=rtol, atol=atol * scale,
                               err_msg=what)


def run_backend(backend, opt, p0, grads, dtype, n_threads=1, t0=0):
    """Apply ``backend.optimizer_update`` for each gradient; returns the
    (params, state) after every step."""
    be = get_backend(backend)
    params = np.array(p0, dtype=dtype)
    state = opt._initial_state(params.shape[0], np.dtype(dtype))
    assert state.shape == (defs.N_STATE, params.shape[0]) and state.dtype == np.dtype(dtype)
    hyper = opt.hyper()
    assert hyper.dtype == np.float64 and hyper.shape == (defs.NH,)
    out = []
    for k, g in enumerate(grads):
        be.optimizer_update(opt.code, hyper, 1.0, t0 + k + 1, np.ascontiguousarray(g, dtype=dtype), params, state,
                            n_threads)
        out.append((params.copy(), state.copy()))
    return out


def check_state(state, st, name, dtype, what):
    """Rows of the backend's state against the reference's named slots; rows
    the optimizer does not use (here or at all) must stay at their initial 0."""
    for row, slot in enumerate(SLOTS[name]):
        ref = st.get(slot)
        if ref is None:
            assert not state[row].any(), "%s: unused slot %s was written" % (what, slot)
        else:
            assert_close(state[row], ref, dtype, "%s: slot %s" % (what, slot))
    assert not state[len(SLOTS[name]):].any(), "%s: rows beyond the slots were written" % what


# ===========================================================================
# 1. table-driven: every backend against the transcription
# ===========================================================================

def test_classes_match_the_kernel_table():
    for name, cls in CLASSES.items():
        entry = [d for d in defs.OPTIMIZERS if d["code"] == cls.code]
        assert len(entry) == 1 and entry[0]["name"] == name == cls.name
        assert cls.slots == SLOTS[name]
        assert len(entry[0]["slots"]) == len(SLOTS[name]) <= defs.N_STATE
    assert len({cls.code for cls in CLASSES.values()}) == len(CLASSES)
    assert defs.OPT_NONE not in {cls.code for cls in CLASSES.values()}


def test_hyper_vector_layout():
    h = fastnet.SGD(lr=0.3, momentum=0.7, dampening=0.2, weight_decay=0.05, maximize=True).hyper()
    assert (h[defs.H_LR], h[defs.H_MOMENTUM], h[defs.H_DAMPENING], h[defs.H_WEIGHT_DECAY],
            h[defs.H_MAXIMIZE], h[defs.H_NESTEROV]) == (0.3, 0.7, 0.2, 0.05, 1.0, 0.0)
    h = fastnet.Adam(lr=0.02, betas=(0.8, 0.95), eps=1e-6, amsgrad=True).hyper()
    assert (h[defs.H_LR], h[defs.H_BETA1], h[defs.H_BETA2], h[defs.H_EPS], h[defs.H_AMSGRAD],
            h[defs.H_WEIGHT_DECAY], h[defs.H_MAXIMIZE]) == (0.02, 0.8, 0.95, 1e-6, 1.0, 0.0, 0.0)
    assert fastnet.AdamW().hyper()[defs.H_WEIGHT_DECAY] == 0.01      # torch's AdamW default
    h = fastnet.RMSprop(alpha=0.9, centered=True, momentum=0.5).hyper()
    assert (h[defs.H_SMOOTHING], h[defs.H_CENTERED], h[defs.H_MOMENTUM]) == (0.9, 1.0, 0.5)
    h = fastnet.Adagrad(lr_decay=0.1, initial_accumulator_value=0.25).hyper()
    assert (h[defs.H_LR_DECAY], h[defs.H_INITIAL_ACC]) == (0.1, 0.25)
    st = fastnet.Adagrad(initial_accumulator_value=0.25)._initial_state(4, np.dtype("float32"))
    assert st.dtype == np.float32 and (st[0] == 0.25).all() and not st[1:].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_update_matches_transcription(backend, case, dtype):
    name, opts = case
    opt = make_opt(name, opts)
    p0, grads = _data(case, N_STEPS, dtype)
    got = run_backend(backend, opt, p0, grads, dtype)
    p = [float(x) for x in p0]
    st = ref_init(name, opts, P)
    for k, g in enumerate(grads):
        ref_step(name, opts, p, g, st)
        what = "%s %s %s step %d" % (backend, _case_id(case), dtype, k + 1)
        assert_close(got[k][0], p, dtype, what + ": params")
        check_state(got[k][1], st, name, dtype, what)


@pytest.mark.parametrize("backend", BACKENDS)
def test_opt_none_leaves_everything_alone(backend):
    p0, grads = _data(("sgd", {}), 1, "float64")
    params, state = p0.copy(), np.full((defs.N_STATE, P), 0.5)
    get_backend(backend).optimizer_update(defs.OPT_NONE, fastnet.SGD(lr=1.0, momentum=0.9).hyper(), 1.0, 1,
                                          grads[0], params, state, 1)
    assert np.array_equal(params, p0) and (state == 0.5).all()


ALL_ON = [("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True)),
          ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.05)),
          ("adagrad", dict(lr=0.1, lr_decay=0.2, weight_decay=0.05, initial_accumulator_value=0.5, maximize=True)),
          ("rmsprop", dict(lr=0.01, alpha=0.6, weight_decay=0.05, momentum=0.8, centered=True, maximize=True)),
          ("adam", dict(lr=0.02, betas=(0.5, 0.8), weight_decay=0.05, amsgrad=True, maximize=True)),
          ("adamw", dict(lr=0.02, betas=(0.5, 0.8), weight_decay=0.1, amsgrad=True, maximize=True))]


@pytest.mark.parametrize("case", ALL_ON, ids=_case_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_thread_count_and_size_independent(backend, case):
    """Bit-identical for any n_threads, and an element's update does not depend
    on the buffer's length (a long buffer exercises the parallel paths)."""
    name, opts = case
    rng = np.random.default_rng(7)
    n = 10007
    p0 = rng.normal(size=n)
    grads = [rng.normal(size=n) for _ in range(3)]
    one = run_backend(backend, make_opt(name, opts), p0, grads, "float64", n_threads=1)
    for nt in (2, 4):
        many = run_backend(backend, make_opt(name, opts), p0, grads, "float64", n_threads=nt)
        for (pa, sa), (pb, sb) in zip(one, many):
            assert np.array_equal(pa, pb) and np.array_equal(sa, sb)
    head = run_backend(backend, make_opt(name, opts), p0[:5], [g[:5] for g in grads], "float64")
    p = [float(x) for x in p0[:5]]
    st = ref_init(name, opts, 5)
    for k, g in enumerate(grads):
        ref_step(name, opts, p, g[:5], st)
        assert_close(head[k][0], p, "float64", "short buffer")
        assert_close(one[k][0][:5], p, "float64", "long buffer")


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_number_is_honoured(backend):
    """Starting at t0 > 0 (resumed training) applies the bias corrections and
    SGD's momentum rule of step t0 + 1, not of step 1."""
    p0, grads = _data(("adam", {}), 2, "float64")
    # Adam: steps 1-2 replayed with their real step numbers from a pre-filled state
    full = run_backend(backend, fastnet.Adam(lr=0.02), p0, grads, "float64")
    opt = fastnet.Adam(lr=0.02)
    params, state = full[0][0].copy(), full[0][1].copy()
    get_backend(backend).optimizer_update(opt.code, opt.hyper(), 1.0, 2, grads[1], params, state, 1)
    assert np.array_equal(params, full[1][0]) and np.array_equal(state, full[1][1])
    # SGD with momentum at t = 5 must not overwrite the buffer with g
    opt = fastnet.SGD(lr=0.1, momentum=0.9)
    params, state = p0.copy(), opt._initial_state(P, np.dtype("float64"))
    state[0] = 1.0
    get_backend(backend).optimizer_update(opt.code, opt.hyper(), 1.0, 5, grads[0], params, state, 1)
    np.testing.assert_allclose(state[0], 0.9 + grads[0], rtol=1e-15)
    np.testing.assert_allclose(params, p0 - 0.1 * (0.9 + grads[0]), rtol=1e-15)


# ===========================================================================
# 2. golden values, worked out by hand (p0 = 1 unless stated)
# ===========================================================================

GOLDEN = [
    # b1 = 1, p = 1 - .1 = .9 ; b2 = .9 + 1 = 1.9, p = .9 - .19 = .71 ; b3 = 1.71 + 1, p = .71 - .271
    ("sgd", dict(lr=0.1, momentum=0.9), 1.0, [1, 1, 1], [0.9, 0.71, 0.439]),
    ("sgd", dict(lr=0.1), 1.0, [1, -2, 0.5], [0.9, 1.1, 1.05]),
    # Nesterov: b1 = 1, g = 1 + .9 = 1.9, p = .81 ; b2 = 1.9, g = 1 + 1.71 = 2.71, p = .539
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True), 1.0, [1, 1], [0.81, 0.539]),
    # dampening .5: b1 = 1 (no dampening on step 1), b2 = .9 + .5 = 1.4, b3 = 1.26 + .5 = 1.76
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.5), 1.0, [1, 1, 1], [0.9, 0.76, 0.584]),
    # L2: g = 1 + .1 * 1 = 1.1, p = .89 ; g = 1 + .089, p = .89 - .1089 = .7811
    ("sgd", dict(lr=0.1, weight_decay=0.1), 1.0, [1, 1], [0.89, 0.7811]),
    # maximize: g = -1 + .1 * 1 = -.9, p = 1.09 ; g = -1 + .109, p = 1.09 + .0891 = 1.1791
    ("sgd", dict(lr=0.1, weight_decay=0.1, maximize=True), 1.0, [1, 1], [1.09, 1.1791]),
    # Adagrad (eps 0): sum 1, p = .9 ; sum 2, p -= .1/sqrt2 ; sum 3, p -= .1/sqrt3
    ("adagrad", dict(lr=0.1, eps=0.0), 1.0, [1, 1, 1],
     [0.9, 0.829289321881345248, 0.771554294962382671]),
    # lr_decay 1: clr1 = .1, sum 4, p = 1 - .1*2/2 ; clr2 = .1/2, sum 8, p -= .05*2/sqrt8 = .05/sqrt2
    ("adagrad", dict(lr=0.1, lr_decay=1.0, eps=0.0), 1.0, [2, 2], [0.9, 0.864644660940672624]),
    # initial_accumulator_value 3: sum = 3 + 1 = 4, p = 1 - .1 * 1/2 = .95 ;
    #   g = -2 sqrt3: sum = 4 + 12 = 16, p = .95 + .1 * 2 sqrt3/4 = .95 + .05 sqrt3
    ("adagrad", dict(lr=0.1, eps=0.0, initial_accumulator_value=3.0), 1.0, [1, -2 * math.sqrt(3.0)],
     [0.95, 1.03660254037844386]),
    # maximize: g = -1, sum 1, p = 1 + .1
    ("adagrad", dict(lr=0.1, eps=0.0, maximize=True), 1.0, [1], [1.1]),
    # RMSprop (eps 0): v1 = .01, p = 1 - .01 * 1/.1 = .9 ; v2 = .0099 + .01 = .0199, p = .9 - .01/sqrt(.0199)
    ("rmsprop", dict(lr=0.01, eps=0.0), 1.0, [1, 1], [0.9, 0.829111879499166410]),
    # centered, alpha .5: v1 = 2, ga1 = 1, p = 1 - .1 * 2/sqrt(2 - 1) = .8 ;
    #                     v2 = 1 + 2 = 3, ga2 = .5 + 1 = 1.5, p = .8 - .1 * 2/sqrt(3 - 2.25)
    ("rmsprop", dict(lr=0.1, alpha=0.5, eps=0.0, centered=True), 1.0, [2, 2], [0.8, 0.569059892324149694]),
    # momentum .5, alpha .5: v1 = 2, b1 = 2/sqrt2 = sqrt2, p = 1 - .1 sqrt2 ;
    #                        v2 = 3, b2 = sqrt2/2 + 2/sqrt3, p -= .1 b2
    ("rmsprop", dict(lr=0.1, alpha=0.5, eps=0.0, momentum=0.5), 1.0, [2, 2],
     [0.858578643762690495, 0.672397911806110590]),
    # L2 .5, alpha .5: g = 2 + .5 * 1 = 2.5, v = 3.125, p = 1 - .1 * 2.5/sqrt(3.125) = 1 - .1 sqrt2
    ("rmsprop", dict(lr=0.1, alpha=0.5, eps=0.0, weight_decay=0.5), 1.0, [2], [0.858578643762690495]),
    # Adam with a constant gradient: m_hat = g, v_hat = g^2, every step moves exactly lr
    ("adam", dict(lr=0.1, eps=0.0), 1.0, [1, 1, 1], [0.9, 0.8, 0.7]),
    ("adam", dict(lr=0.1, eps=0.0), 1.0, [-3, -3], [1.1, 1.2]),
    # first step with eps: p = 1 - .1 * .5/(.5 + 1e-8)
    ("adam", dict(lr=0.1), 1.0, [0.5], [0.90000000199999996]),
    # g = 1, -1: m2 = .09 - .1 = -.01, m_hat = -.01/.19 = -1/19 ; v2 = .000999 + .001 = .001999,
    # v_hat = .001999/(1 - .998001) = 1  ->  p = .9 + .1/19
    ("adam", dict(lr=0.1, eps=0.0), 1.0, [1, -1], [0.9, 0.905263157894736842]),
    # betas (.9, .5), g = 2, 0: v1 = 2, v2 = 1, bc2 = .75 ; m_hat2 = .18/.19 = 18/19
    #   plain:   p = .9 - .1 (18/19)/sqrt(1/.75)  ;  amsgrad (vmax = 2): p = .9 - .1 (18/19)/sqrt(2/.75)
    ("adam", dict(lr=0.1, eps=0.0, betas=(0.9, 0.5)), 1.0, [2, 0], [0.9, 0.817955488062526865]),
    ("adam", dict(lr=0.1, eps=0.0, betas=(0.9, 0.5), amsgrad=True), 1.0, [2, 0], [0.9, 0.841985769249872098]),
    # Adam's L2 changes only the gradient: g = 1.1 constant-ish, step 1 still moves lr
    ("adam", dict(lr=0.1, eps=0.0, weight_decay=0.1), 1.0, [1], [0.9]),
    ("adam", dict(lr=0.1, eps=0.0, maximize=True), 1.0, [1, 1], [1.1, 1.2]),
    # AdamW: p = 1 * (1 - .1 * .1) = .99, then - .1 -> .89 ; .89 * .99 = .8811 - .1 = .7811
    ("adamw", dict(lr=0.1, eps=0.0, weight_decay=0.1), 1.0, [1, 1], [0.89, 0.7811]),
    # maximize: the decay still pulls towards 0: 1 * .99 + .1 = 1.09 ; 1.09 * .99 + .1 = 1.0791 + .1
    ("adamw", dict(lr=0.1, eps=0.0, weight_decay=0.1, maximize=True), 1.0, [1, 1], [1.09, 1.1791]),
    # AdamW with weight_decay 0 is Adam
    ("adamw", dict(lr=0.1, eps=0.0, weight_decay=0.0), 1.0, [1, -1], [0.9, 0.905263157894736842]),
]


def _golden_id(case):
    return "%s-%s-%s" % (case[0], "-".join("%s=%s" % kv for kv in sorted(case[1].items())), case[3])


@pytest.mark.parametrize("case", GOLDEN, ids=_golden_id)
def test_golden_transcription(case):
    name, opts, p0, grads, expected = case
    p, st = [p0], ref_init(name, opts, 1)
    for g, e in zip(grads, expected):
        ref_step(name, opts, p, [g], st)
        assert p[0] == pytest.approx(e, rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("case", GOLDEN, ids=_golden_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_backend(backend, case):
    name, opts, p0, grads, expected = case
    got = run_backend(backend, make_opt(name, opts), np.array([p0]), [np.array([float(g)]) for g in grads],
                      "float64")
    for (params, _), e in zip(got, expected):
        assert params[0] == pytest.approx(e, rel=1e-14, abs=1e-15)


# ===========================================================================
# 3. through the model: fit passes the step number and the state
# ===========================================================================

def _flat(weights):
    return [float(x) for w in weights for x in np.asarray(w, dtype=np.float64).ravel()]


def _regression(n=8, d=3, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ np.array([[0.5], [-1.0], [2.0]])[:d] + 0.3 + 0.1 * rng.normal(size=(n, 1))
    return X, y


def _model(backend, opt, d=3):
    model = fastnet.Sequential([fastnet.Dense(1, use_bias=True)], backend=backend, seed=0, dtype="float64")
    model.compile(optimizer=opt, loss="mse")
    model.build(d)
    return model


MODEL_CASES = [
    ("sgd", dict(lr=0.05)),
    ("sgd", dict(lr=0.05, momentum=0.9)),                       # first step: buf = g
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.5)),        # dampening only from step 2
    ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("adagrad", dict(lr=0.1, lr_decay=0.5, initial_accumulator_value=0.2)),   # clr depends on t
    ("rmsprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("adam", dict(lr=0.05)),                                    # bias corrections of step t
    ("adam", dict(lr=0.05, betas=(0.5, 0.8), amsgrad=True, weight_decay=0.1)),
    ("adamw", dict(lr=0.05, weight_decay=0.2, maximize=True)),
]


@pytest.mark.parametrize("case", MODEL_CASES, ids=_case_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_follows_transcription(backend, case):
    name, opts = case
    X, y = _regression()
    opt = make_opt(name, opts)
    model = _model(backend, opt)
    assert model.optimizer is opt
    p = _flat(model.get_weights())
    st = ref_init(name, opts, len(p))
    for epoch in range(5):
        g = _flat(model.gradients(X, y))
        ref_step(name, opts, p, g, st)
        model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, verbose=0)
        assert opt.iterations == epoch + 1
        assert_close(_flat(model.get_weights()), p, "float64", "%s %s epoch %d" % (backend, _case_id(case), epoch))
        check_state(opt.state, st, name, "float64", "model state")


@pytest.mark.parametrize("case", [c for c in MODEL_CASES if c[0] in ("sgd", "adam")][1::2], ids=_case_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_several_batches_per_epoch(backend, case):
    """Within one fit call the batches get t = iterations + 1, + 2, ...: replay
    the batches with a twin model holding the reference weights."""
    name, opts = case
    X, y = _regression(n=9)
    model = _model(backend, make_opt(name, opts))
    twin = _model(backend, make_opt(name, opts))
    p = _flat(model.get_weights())
    st = ref_init(name, opts, len(p))
    batches = [slice(0, 4), slice(4, 8), slice(8, 9)]           # the last batch is partial
    for epoch in range(2):
        for sl in batches:
            twin.set_weights([np.array(p[:3]).reshape(3, 1), np.array(p[3:])])
            ref_step(name, opts, p, _flat(twin.gradients(X[sl], y[sl])), st)
        model.fit(X, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
        assert model.optimizer.iterations == 3 * (epoch + 1)
        assert_close(_flat(model.get_weights()), p, "float64", "epoch %d" % epoch)
    # one call with 2 epochs == two calls with 1 epoch
    again = _model(backend, make_opt(name, opts))
    again.fit(X, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(again.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_learning_rate_setter_changes_the_next_update(backend, name):
    opts = dict(lr=0.05, momentum=0.5) if name != "adam" else dict(lr=0.05)
    X, y = _regression()
    model = _model(backend, make_opt(name, opts))
    p = _flat(model.get_weights())
    st = ref_init(name, opts, len(p))
    for epoch in range(4):
        if epoch == 2:
            model.optimizer.learning_rate = 0.2
            opts = dict(opts, lr=0.2)
            assert model.optimizer.lr == 0.2 and model.optimizer.hyper()[defs.H_LR] == 0.2
        ref_step(name, opts, p, _flat(model.gradients(X, y)), st)
        model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, verbose=0)
        assert_close(_flat(model.get_weights()), p, "float64", "epoch %d" % epoch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_by_name_uses_defaults(backend):
    X, y = _regression()
    model = fastnet.Sequential([fastnet.Dense(1)], backend=backend, seed=0, dtype="float64")
    model.compile(optimizer="Adam", loss="mse")
    assert isinstance(model.optimizer, fastnet.Adam) and model.optimizer.learning_rate == 0.001
    model.build(3)
    p = _flat(model.get_weights())
    st = ref_init("adam", {}, len(p))
    ref_step("adam", {}, p, _flat(model.gradients(X, y)), st)
    model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, verbose=0)
    assert_close(_flat(model.get_weights()), p, "float64", "adam by name")


# ===========================================================================
# 4. argument validation
# ===========================================================================

@pytest.mark.parametrize("cls,kwargs,arg", [
    (fastnet.SGD, dict(lr=-0.1), "lr"),
    (fastnet.SGD, dict(lr=float("nan")), "lr"),
    (fastnet.SGD, dict(momentum=-0.5), "momentum"),
    (fastnet.SGD, dict(weight_decay=-1e-4), "weight_decay"),
    (fastnet.Adagrad, dict(lr=-1.0), "lr"),
    (fastnet.Adagrad, dict(lr_decay=-0.1), "lr_decay"),
    (fastnet.Adagrad, dict(weight_decay=-0.1), "weight_decay"),
    (fastnet.Adagrad, dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (fastnet.Adagrad, dict(eps=-1e-10), "eps"),
    (fastnet.RMSprop, dict(lr=-0.01), "lr"),
    (fastnet.RMSprop, dict(alpha=-0.1), "alpha"),
    (fastnet.RMSprop, dict(eps=-1e-8), "eps"),
    (fastnet.RMSprop, dict(momentum=-0.9), "momentum"),
    (fastnet.RMSprop, dict(weight_decay=-0.1), "weight_decay"),
    (fastnet.Adam, dict(lr=-1e-3), "lr"),
    (fastnet.Adam, dict(betas=(1.0, 0.999)), "betas"),
    (fastnet.Adam, dict(betas=(-0.1, 0.999)), "betas"),
    (fastnet.Adam, dict(betas=(0.9, 1.0)), "betas"),
    (fastnet.Adam, dict(betas=(0.9, -0.5)), "betas"),
    (fastnet.Adam, dict(eps=-1e-8), "eps"),
    (fastnet.Adam, dict(weight_decay=-0.01), "weight_decay"),
    (fastnet.AdamW, dict(lr=-1e-3), "lr"),
    (fastnet.AdamW, dict(betas=(0.9, 1.5)), "betas"),
    (fastnet.AdamW, dict(eps=-1.0), "eps"),
    (fastnet.AdamW, dict(weight_decay=-0.01), "weight_decay"),
])
def test_invalid_values_raise_valueerror_naming_the_argument(cls, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        cls(**kwargs)


def test_boundary_values_are_accepted():
    # torch accepts these (betas in [0, 1), everything else >= 0)
    fastnet.Adam(lr=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0)
    fastnet.AdamW(betas=(0.999, 0.9999))
    fastnet.SGD(lr=0.0, momentum=0.0, weight_decay=0.0)
    fastnet.RMSprop(alpha=0.0, eps=0.0)
    fastnet.Adagrad(eps=0.0, lr_decay=0.0, initial_accumulator_value=0.0)


@pytest.mark.parametrize("kwargs", [dict(nesterov=True), dict(nesterov=True, momentum=0.0),
                                    dict(nesterov=True, momentum=0.9, dampening=0.1)])
def test_nesterov_requires_momentum_and_zero_dampening(kwargs):
    with pytest.raises(ValueError, match="[Nn]esterov"):
        fastnet.SGD(lr=0.1, **kwargs)
    fastnet.SGD(lr=0.1, momentum=0.9, nesterov=True)          # the valid combination


def test_wrong_types():
    with pytest.raises(TypeError):
        fastnet.Adam(betas=0.9)
    with pytest.raises(TypeError):
        fastnet.Adam(betas=(0.9, 0.99, 0.999))
    with pytest.raises(TypeError):
        fastnet.SGD(lr="0.1")
    with pytest.raises(TypeError):
        fastnet.SGD(nesterov="yes", momentum=0.9)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_learning_rate_alias(name):
    cls = CLASSES[name]
    opt = cls(learning_rate=0.125)
    assert opt.learning_rate == 0.125 and opt.lr == 0.125 and opt.hyper()[defs.H_LR] == 0.125
    assert cls(lr=0.25).learning_rate == 0.25
    assert cls().learning_rate == DEFAULTS[name]["lr"]
    with pytest.raises(TypeError):
        cls(lr=0.3, learning_rate=0.125)
    with pytest.raises(ValueError, match="learning_rate|lr"):
        cls(learning_rate=-1.0)
    opt.learning_rate = 0.5
    assert opt.lr == 0.5 and opt.hyper()[defs.H_LR] == 0.5
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -0.5
    assert opt.lr == 0.5


def test_adam_learning_rate_alias_literal():
    assert fastnet.Adam(learning_rate=1e-3).learning_rate == 1e-3
    assert fastnet.Adam(learning_rate=0.5).get_config()["lr"] == 0.5


def test_unknown_optimizer_name():
    model = fastnet.Sequential([fastnet.Dense(1)], backend=BACKENDS[0], seed=0)
    with pytest.raises(ValueError, match="nadam"):
        model.compile(optimizer="nadam", loss="mse")
    with pytest.raises(TypeError):
        model.compile(optimizer=3, loss="mse")
    for name, cls in CLASSES.items():
        model.compile(optimizer=name.upper(), loss="mse")
        assert type(model.optimizer) is cls


# ===========================================================================
# 5. PyTorch itself (skipped when torch is not installed)
# ===========================================================================

TORCH_STEPS = 10


def _torch_run(torch, name, opts, p0, grads, dtype):
    cls = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop,
           "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    tdt = {"float64": torch.float64, "float32": torch.float32}[dtype]
    param = torch.nn.Parameter(torch.tensor(np.asarray(p0, dtype=np.float64), dtype=tdt))
    opt = cls([param], foreach=False, **opts)
    out = []
    for g in grads:
        param.grad = torch.tensor(np.asarray(g, dtype=np.float64), dtype=tdt)
        opt.step()
        st = opt.state[param]
        out.append((param.detach().double().numpy().copy(),
                    {k: (None if st.get(k) is None else st[k].detach().double().numpy().copy())
                     for k in SLOTS[name]}))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_against_torch(case, dtype):
    torch = pytest.importorskip("torch")
    name, opts = case
    p0, grads = _data(case, TORCH_STEPS, dtype)
    ref = _torch_run(torch, name, opts, p0, grads, dtype)
    # the transcription itself (float64 arithmetic on the same rounded inputs)
    p, st = [float(x) for x in p0], ref_init(name, opts, P)
    for k, g in enumerate(grads):
        ref_step(name, opts, p, g, st)
        assert_close(ref[k][0], p, dtype, "torch vs transcription, step %d" % (k + 1))
    for backend in BACKENDS:
        got = run_backend(backend, make_opt(name, opts), p0, grads, dtype)
        for k, ((params, state), (tp, tst)) in enumerate(zip(got, ref)):
            what = "%s vs torch, %s %s step %d" % (backend, _case_id(case), dtype, k + 1)
            assert_close(params, tp, dtype, what)
            check_state(state, tst, name, dtype, what)


@pytest.mark.parametrize("case", GOLDEN, ids=_golden_id)
def test_golden_torch(case):
    torch = pytest.importorskip("torch")
    name, opts, p0, grads, expected = case
    got = _torch_run(torch, name, opts, [p0], [[float(g)] for g in grads], "float64")
    for (params, _), e in zip(got, expected):
        assert params[0] == pytest.approx(e, rel=1e-14, abs=1e-15)
