"""The executable contract: every backend exposes the functions of
``_api.KERNELS`` with their signatures and ``KERNEL_DOCS`` docstrings, and every
backend rejects the same malformed ``train_batches`` / ``forward`` /
``regularize`` calls with the same exception and message (the shared validator,
``_api.VALIDATORS``) before anything runs, leaving params, grads and state as
they were."""
import inspect
import re

import numpy as np
import pytest

from fastnet._kernels import defs
from fastnet.backends import _api, get_backend
from conftest import BACKENDS, make_spec, train

N, BS, N_IN, K = 40, 8, 5, 3


def _train_case(head=defs.HEAD_SOFTMAX_XENT, sparse=True):
    """A well-formed train_batches call: 5 -> 6 (relu, dropout) -> 3, Adam,
    batches 1..2 of an epoch of 40 rows, with scores and diagnostics."""
    rng = np.random.default_rng(3)
    layers, P = make_spec(N_IN, [6, K], [defs.ACT_RELU, defs.ACT_LINEAR], drop=[0.25, 0.0])
    X = rng.standard_normal((N, N_IN))
    labels = rng.integers(0, K, N).astype(np.int64) if sparse else np.empty(0, np.int64)
    Y = np.empty((0, K)) if sparse else rng.random((N, K))
    hyper = np.zeros(defs.NH)
    hyper[defs.H_LR], hyper[defs.H_BETA1], hyper[defs.H_BETA2], hyper[defs.H_EPS] = 1e-2, 0.9, 0.999, 1e-8
    args = dict(X=X, Y=Y, labels=labels, sw=rng.random(N), perm=rng.permutation(N).astype(np.int64),
                batch_size=BS, first_batch=1, n_batches=2, layers=layers, head=head,
                opt=defs.OPT_ADAM, hyper=hyper, t0=4, rng_key=2 ** 64 + 5,
                params=rng.standard_normal(P) / 4, grads=np.full(P, np.nan),
                state=np.zeros((defs.N_STATE, P)), work=np.zeros(_api.workspace_size(layers, BS)),
                batch_loss=np.full(2, np.nan), scores=np.full((N, K), np.nan), n_threads=2,
                diag=np.zeros(defs.diag_size(layers)))
    return args


WORK = _api.workspace_size(_train_case()["layers"], BS)


def _forward_case():
    a = _train_case()
    return dict(X=a["X"], layers=a["layers"], params=a["params"],
                work=np.zeros(_api.forward_workspace_size(a["layers"], N)), out=np.empty((N, K)),
                n_threads=2)


def _regularize_case():
    a = _train_case()
    return dict(layers=a["layers"], params=a["params"], grads=np.zeros_like(a["params"]),
                penalty=np.zeros(1), n_threads=2)


def _set(**changes):
    return lambda a: a.update(changes)


def _spec(name, row, field, value):
    def change(a):
        a[name] = a[name].copy()
        a[name][row][field] = value
    return change


def _entry(name, index, value):
    def change(a):
        a[name] = a[name].copy()
        a[name][index] = value
    return change


def _cast(name, dtype):
    return lambda a: a.update({name: a[name].astype(dtype)})


def _perm_at_label(value):
    """The label of a row the first batch trains on (perm[8]) set to value."""
    def change(a):
        a["labels"] = a["labels"].copy()
        a["labels"][a["perm"][BS]] = value
    return change


def _non_contiguous(name):
    def change(a):
        wide = np.zeros(a[name].shape[:-1] + (2 * a[name].shape[-1],), a[name].dtype)
        wide[..., ::2] = a[name]
        a[name] = wide[..., ::2]
    return change


def _read_only(name):
    def change(a):
        a[name] = a[name].copy()
        a[name].flags.writeable = False
    return change


def _last_prelu(a):
    """The last layer made PReLU, its slopes a valid block of the buffer."""
    _spec("layers", -1, "act", defs.ACT_PRELU)(a)
    a["layers"][-1]["slopes_offset"] = 0


# (id, the case's head / sparse, change, exception, message fragment)
TRAIN_ERRORS = [
    ("perm_eq_N", {}, _entry("perm", BS + 3, N), IndexError, r"perm\[11\] = 40 is out of range \[0, 40\)"),
    ("perm_negative", {}, _entry("perm", 2 * BS + 1, -1), IndexError, r"perm\[17\] = -1 is out of range"),
    ("label_out_of_range", {}, _perm_at_label(K), ValueError, r"labels\[\d+\] = 3 is out of range \[0, 3\)"),
    ("label_negative", {}, _perm_at_label(-2), ValueError, r"labels\[\d+\] = -2 is out of range"),
    ("X_width", {}, lambda a: a.update(X=np.ascontiguousarray(a["X"][:, :-1])), ValueError,
     "X has 4 columns, the network takes 5"),
    ("sw_float32", {}, _cast("sw", np.float32), TypeError, "sw has dtype float32; expected float64"),
    ("Y_float32", dict(head=defs.HEAD_MSE, sparse=False), _cast("Y", np.float32), TypeError,
     "Y has dtype float32; expected float64"),
    ("X_int", {}, _cast("X", np.int64), TypeError, "X has dtype int64; expected float32 or float64"),
    ("perm_int32", {}, _cast("perm", np.int32), TypeError, "perm has dtype int32; expected int64"),
    ("hyper_float32", {}, _cast("hyper", np.float32), TypeError, "hyper has dtype float32; expected float64"),
    ("X_list", {}, lambda a: a.update(X=a["X"].tolist()), TypeError, "X must be a numpy array; got list"),
    ("X_not_contiguous", {}, _non_contiguous("X"), ValueError, "X must be C-contiguous"),
    ("state_not_contiguous", {}, _non_contiguous("state"), ValueError, "state must be C-contiguous"),
    ("params_read_only", {}, _read_only("params"), ValueError, "params is read-only"),
    ("work_short", {}, lambda a: a.update(work=a["work"][:-1].copy()), ValueError,
     "work has %d elements, workspace_size gives %d" % (WORK - 1, WORK)),
    ("layer_kind", {}, _spec("layers", 0, "kind", 7), ValueError, "layer 0: unknown layer kind 7"),
    ("activation_code", {}, _spec("layers", 0, "act", 99), ValueError, "layer 0: unknown activation code 99"),
    ("layer_outside_params", {}, _spec("layers", 1, "w_offset", 10 ** 6), ValueError,
     r"layer 1: kernel \[1000000, 1000018\) outside the 57 parameters"),
    ("widths_do_not_chain", {}, _spec("layers", 1, "n_in", 4), ValueError,
     "layer 1: input width 4 != the output width 6 of layer 0"),
    ("maxout_pieces", {}, lambda a: (_spec("layers", 0, "kind", defs.LAYER_MAXOUT)(a),
                                     a["layers"][0].__setitem__("act", defs.ACT_LINEAR),
                                     a["layers"][0].__setitem__("pieces", 0)), ValueError,
     "layer 0: Maxout needs pieces >= 1"),
    ("dropout_rate_one", {}, _spec("layers", 0, "dropout", 1.0), ValueError,
     r"layer 0: dropout rate 1.0 not in \[0, 1\)"),
    ("dropout_rate_nan", {}, _spec("layers", 0, "dropout", np.nan), ValueError, "layer 0: dropout rate nan"),
    ("dropout_last_layer", {}, _spec("layers", -1, "dropout", 0.5), ValueError,
     "the last layer cannot have dropout"),
    ("prelu_last_layer_fused_head", {}, _last_prelu, ValueError, "the last layer cannot be PReLU"),
    ("prelu_last_layer_mse", dict(head=defs.HEAD_MSE, sparse=False), _last_prelu, ValueError,
     "the last layer cannot be PReLU"),
    ("maxout_last_layer", {}, lambda a: (_spec("layers", -1, "kind", defs.LAYER_MAXOUT)(a),
                                         a["layers"][-1].__setitem__("pieces", 1)), ValueError,
     "the last layer cannot be Maxout"),
    ("layers_dtype", {}, lambda a: a.update(layers=np.zeros((2, 15), np.int64)), TypeError,
     r"layers has dtype int64; expected defs.LAYER_DTYPE"),
    ("layers_fields", {}, lambda a: a.update(layers=np.ones(2, [("n_in", "<i8"), ("n_out", "<i8")])), TypeError,
     r"expected defs.LAYER_DTYPE \(fields n_in, n_out, act"),
    ("layers_2d", {}, lambda a: a.update(layers=a["layers"].reshape(1, -1)), ValueError,
     r"layers must have shape \(L,\) with L >= 1"),
    ("layers_empty", {}, lambda a: a.update(layers=a["layers"][:0].copy()), ValueError,
     r"layers must have shape \(L,\) with L >= 1"),
    ("head_code", {}, _set(head=9), ValueError, "unknown head code 9"),
    ("optimizer_code", {}, _set(opt=42), ValueError, "unknown optimizer code 42"),
    ("hyper_length", {}, lambda a: a.update(hyper=np.zeros(defs.NH - 1)), ValueError,
     "hyper must have defs.NH = %d entries" % defs.NH),
    ("batches_past_epoch", {}, _set(first_batch=4, n_batches=2), ValueError,
     r"batches 4..5 of 8 rows start past the end of perm \(40 entries\)"),
    ("batch_loss_length", {}, lambda a: a.update(batch_loss=np.zeros(3)), ValueError,
     "batch_loss has 3 entries, expected n_batches = 2"),
    ("diag_size", {}, lambda a: a.update(diag=np.zeros(5)), ValueError, "diag has 5 entries, expected"),
    ("labels_length", {}, lambda a: a.update(labels=a["labels"][:-1].copy()), ValueError,
     "labels has 39 entries, expected 40"),
    ("labels_with_mse", dict(head=defs.HEAD_MSE, sparse=False),
     lambda a: a.update(labels=np.zeros(N, np.int64)), ValueError, "labels are read by the softmax"),
    ("Y_rows", dict(head=defs.HEAD_SIGMOID_BCE, sparse=False), lambda a: a.update(Y=a["Y"][:-1].copy()),
     ValueError, r"Y has shape \(39, 3\), expected \(40, 3\)"),
    ("sw_length", {}, lambda a: a.update(sw=a["sw"][:-2].copy()), ValueError, "sw has 38 entries"),
    ("scores_shape", {}, lambda a: a.update(scores=np.zeros((N, K + 1))), ValueError, "scores has shape"),
    ("state_shape", {}, lambda a: a.update(state=np.zeros((1, a["params"].shape[0]))), ValueError,
     "grads has shape"),
    ("batch_size_zero", {}, _set(batch_size=0), ValueError, "need batch_size >= 1"),
    ("batch_size_float", {}, _set(batch_size=8.0), TypeError, "batch_size must be an integer; got 8.0"),
    ("t0_negative", {}, _set(t0=-1), ValueError, "t0 must be >= 0"),
    ("n_threads_zero", {}, _set(n_threads=0), ValueError, "n_threads must be >= 1; got 0"),
]


def _attempt(fn, args):
    """(exception type, message) of fn(**args), checking that params, grads and
    state (and the other outputs) were left untouched."""
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    with pytest.raises(Exception) as info:
        fn(**_api.pack(fn.__name__, args))
    for k, v in before.items():
        assert args[k].tobytes() == v.tobytes(), "%s changed by a rejected call" % k
    return type(info.value), str(info.value)


def _same_everywhere(kernel, make, change, exc, fragment):
    results = {}
    for name in BACKENDS:
        args = make()
        change(args)
        results[name] = _attempt(getattr(get_backend(name), kernel), args)
    first = results[BACKENDS[0]]
    assert first[0] is exc, results
    assert first[1].startswith(kernel + ": "), first
    assert re.search(fragment, first[1]), first
    assert all(r == first for r in results.values()), results


@pytest.mark.parametrize("case", TRAIN_ERRORS, ids=[c[0] for c in TRAIN_ERRORS])
def test_train_batches_rejects_the_same_calls_everywhere(case):
    _, how, change, exc, fragment = case
    _same_everywhere("train_batches", lambda: _train_case(**how), change, exc, fragment)


@pytest.mark.parametrize("name", BACKENDS)
def test_train_batches_takes_its_records(name):
    """Each record argument must be its _api record (a tuple of the same fields in
    another type is refused, naming the argument, before any work); the records
    are namedtuples, so fields can be passed by name and replaced."""
    be = get_backend(name)
    call = _api.pack("train_batches", _train_case())
    for arg in ("batches", "network", "train_state", "buffers"):
        bad = dict(call)
        bad[arg] = tuple(call[arg])
        before = call["network"].params.copy()
        with pytest.raises(TypeError, match=r"train_batches: %s must be a fastnet.backends._api.%s record "
                                            r"\(fields %s\); got tuple"
                                            % (arg, type(call[arg]).__name__, ", ".join(call[arg]._fields))):
            be.train_batches(**bad)
        assert call["network"].params.tobytes() == before.tobytes()
    call["batches"] = call["batches"]._replace(n_batches=1)
    call["buffers"] = call["buffers"]._replace(batch_loss=np.full(1, np.nan))
    be.train_batches(**call)
    assert np.isfinite(call["buffers"].batch_loss).all()


def test_the_records_hold_every_field_once():
    """The records' fields are the compiled kernels' flat arguments (FLAT_ORDER,
    with n_threads and diag), each once."""
    fields = [f for f, _, _ in _api.record_fields("train_batches")]
    assert len(fields) == len(set(fields))
    assert sorted(fields) == sorted(_api.FLAT_ORDER["train_batches"])
    for name, cls in _api.RECORD_CLASSES.items():
        assert cls._fields == tuple(f for f, _, _ in _api.RECORDS[name])


@pytest.mark.parametrize("name", BACKENDS)
def test_train_batches_takes_read_only_inputs(name):
    """Every input of train_batches (the records' IN fields) may be read-only:
    the same bits as writable ones."""
    be = get_backend(name)
    want = _train_case()
    train(be, **want)
    got = _train_case()
    for a, kind, _ in _api.record_fields("train_batches"):
        if kind == "in":
            got[a].flags.writeable = False
    train(be, **got)
    for a in ("params", "grads", "state", "batch_loss", "scores", "diag"):
        assert got[a].tobytes() == want[a].tobytes(), a


def test_the_base_calls_are_well_formed():
    """The table's starting points run on every backend (so each error above
    comes from its one change)."""
    for name in BACKENDS:
        be = get_backend(name)
        for how in ({}, dict(head=defs.HEAD_MSE, sparse=False), dict(head=defs.HEAD_SIGMOID_BCE, sparse=False)):
            args = _train_case(**how)
            train(be, **args)
            assert np.isfinite(args["batch_loss"]).all() and np.isfinite(args["params"]).all()
        args = _forward_case()
        be.forward(**args)
        assert np.isfinite(args["out"]).all()
        args = _regularize_case()
        be.regularize(**args)


FORWARD_ERRORS = [
    ("X_width", lambda a: a.update(X=np.ascontiguousarray(a["X"][:, 1:])), ValueError,
     "X has 4 columns, the network takes 5"),
    ("out_shape", lambda a: a.update(out=np.empty((N - 1, K))), ValueError,
     r"out has shape \(39, 3\), expected \(40, 3\)"),
    ("work_short", lambda a: a.update(work=a["work"][:-1].copy()), ValueError,
     "work has %d elements, forward_workspace_size gives" % (2 * N * 6 - 1)),
    ("params_float32", _cast("params", np.float32), TypeError, "params has dtype float32; expected float64"),
    ("X_not_contiguous", _non_contiguous("X"), ValueError, "X must be C-contiguous"),
    ("out_read_only", _read_only("out"), ValueError, "out is read-only"),
    ("layer_kind", _spec("layers", 1, "kind", -1), ValueError, "layer 1: unknown layer kind -1"),
    ("prelu_last_layer", _last_prelu, ValueError, "the last layer cannot be PReLU"),
    ("bias_outside_params", _spec("layers", 1, "b_offset", 56), ValueError, "layer 1: bias offset 56 invalid"),
    ("n_threads_zero", _set(n_threads=0), ValueError, "n_threads must be >= 1"),
]


@pytest.mark.parametrize("case", FORWARD_ERRORS, ids=[c[0] for c in FORWARD_ERRORS])
def test_forward_rejects_the_same_calls_everywhere(case):
    _, change, exc, fragment = case
    _same_everywhere("forward", _forward_case, change, exc, fragment)


REGULARIZE_ERRORS = [
    ("layer_outside_params", _spec("layers", 1, "w_offset", 50), ValueError,
     r"layer 1: kernel \[50, 68\) outside the 57 parameters"),
    ("grads_length", lambda a: a.update(grads=a["grads"][:-1].copy()), ValueError,
     "grads must have 57 entries"),
    ("penalty_float32", _cast("penalty", np.float32), TypeError, "penalty has dtype float32; expected float64"),
]


@pytest.mark.parametrize("case", REGULARIZE_ERRORS, ids=[c[0] for c in REGULARIZE_ERRORS])
def test_regularize_rejects_the_same_calls_everywhere(case):
    """numba's regularize checked nothing before the shared validator."""
    _, change, exc, fragment = case
    _same_everywhere("regularize", _regularize_case, change, exc, fragment)


def test_a_float32_call_is_checked_against_float32():
    """The call's float dtype is X's: a float64 params with a float32 X is named."""
    for name in BACKENDS:
        args = _train_case()
        for k in ("X", "Y", "sw", "work", "scores", "state"):
            args[k] = args[k].astype(np.float32)
        args["grads"] = args["grads"].astype(np.float32)
        with pytest.raises(TypeError, match="train_batches: params has dtype float64; expected float32"):
            train(get_backend(name), **args)
        args["params"] = args["params"].astype(np.float32)
        train(get_backend(name), **args)


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_function_has_the_contracts_signature_and_docstring(name):
    be = get_backend(name)
    for kernel, args in _api.KERNELS.items():
        fn = getattr(be, kernel)
        params = inspect.signature(fn).parameters
        assert list(params) == [a for a, _, _ in args], (name, kernel)
        optional = _api.OPTIONAL.get(kernel, {})
        for p in params.values():
            want = None if p.name in optional else inspect.Parameter.empty
            assert p.default is want, (name, kernel, p.name)
            assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, (name, kernel, p.name)
        assert fn.__doc__ == _api.kernel_doc(kernel), (name, kernel)
        assert fn.__doc__.startswith(_api.KERNEL_DOCS[kernel])
        for a, _, _ in args:                       # the argument list is rendered from KERNELS
            assert "\n    %s " % a in fn.__doc__, (kernel, a)


def test_validator_reads_only_the_slice_of_perm_it_uses():
    """An entry of perm outside the batches of the call is not looked at (a
    per-batch call costs O(batch), not O(epoch)); inside them it is."""
    args = _train_case()
    args["perm"] = args["perm"].copy()
    args["perm"][0] = 10 ** 9                      # batch 0: not trained by batches 1..2
    args["perm"][-1] = -5                          # batch 4
    _api.check_train_batches(**_api.pack("train_batches", args))
    args["first_batch"] = 3
    with pytest.raises(IndexError, match=r"perm\[39\] = -5"):
        _api.check_train_batches(**_api.pack("train_batches", args))


@pytest.mark.parametrize("name", BACKENDS)
def test_scalars_are_normalised_by_their_kind(name):
    """key: any integer, modulo 2**64 (numpy / Python ints, negative ones);
    int: any integer type, never a float; threads: >= 1."""
    be = get_backend(name)
    results = []
    for key, t0, bs in ((5, 4, BS), (np.uint64(5), np.int64(4), np.int32(BS)), (5 + 2 ** 64, 4, BS),
                        (5 - 2 ** 64, 4, BS)):
        args = _train_case()
        args.update(rng_key=key, t0=t0, batch_size=bs)
        train(be, **args)
        results.append(args["params"].tobytes() + args["batch_loss"].tobytes())
    assert len(set(results)) == 1
    args = _train_case()
    args["rng_key"] = 5.0
    with pytest.raises(TypeError, match="train_batches: rng_key must be an integer; got 5.0"):
        train(be, **args)
    if name != "numpy":                            # the reference takes its scalars as given
        Z, A = np.ones((2, 4)), np.empty((2, 2))
        with pytest.raises(TypeError):
            be.maxout_forward(Z, 2.0, A, 1)
        be.maxout_forward(Z, np.int64(2), A, np.int8(1))
        with pytest.raises(ValueError, match="n_threads must be >= 1; got 0"):
            be.maxout_forward(Z, 2, A, 0)


def test_an_adapter_needs_every_kernel_of_the_contract():
    from fastnet.backends import _adapter
    threads = _adapter.thread_count_function(4, starts_openmp=False)
    with pytest.raises(LookupError, match="has no kernel 'matmul' of the contract"):
        _adapter.build_kernels("a_backend", {}, threads, key=int)
    made = _adapter.build_kernels("a_backend", {None: lambda *a: a}, threads, key=int)
    assert set(made) == set(_api.KERNELS) and made["matmul"].__module__ == "a_backend"
    assert threads(10 ** 6) == 4 and threads(np.int64(1)) == 1


@pytest.mark.parametrize("n", [1, 256, 257, 5000])
def test_range_check_of_perm_and_labels(n):
    """Both paths of the range check (Python for a batch, one uint64 max for a
    long slice) find an entry = hi, a negative one and int64's extremes."""
    ok = np.arange(n, dtype=np.int64) % 7
    assert not _api._outside(ok, 7)
    for bad in (7, -1, np.iinfo(np.int64).min, np.iinfo(np.int64).max):
        v = ok.copy()
        v[n // 2] = bad
        assert _api._outside(v, 7), (n, bad)


def test_workspaces_grow_linearly_with_the_rows():
    """The validator sizes work as rows x (the size for one row)."""
    a = _train_case()
    for layers in (a["layers"], make_spec(7, [9, 4, 2], [defs.ACT_TANH, defs.ACT_RELU, defs.ACT_LINEAR],
                                          drop=[0.0, 0.5, 0.0])[0]):
        for rows in (1, 2, 3, 32, 1000):
            assert _api.workspace_size(layers, rows) == rows * _api.workspace_size(layers, 1)
            assert _api.forward_workspace_size(layers, rows) == rows * _api.forward_workspace_size(layers, 1)


@pytest.mark.parametrize("backend_name", [b for b in BACKENDS if b != "numpy"])
def test_unchecked_entries_skip_only_the_validator(backend_name):
    """``fn.unchecked`` (Model's predict path: arguments valid by construction) runs
    the same kernel without the contract's validator: same outputs on a valid
    call, and a call the validator rejects gets past it; kernels without a
    validator are their own unchecked entry."""
    be = get_backend(backend_name)
    for name in _api.KERNELS:
        fn = getattr(be, name)
        assert (fn.unchecked is fn) == (name not in _api.VALIDATORS), name
    args = _forward_case()
    want, got = args["out"].copy(), args["out"].copy()
    be.forward(**dict(args, out=want))
    be.forward.unchecked(**dict(args, out=got))
    assert np.isfinite(want).all()
    np.testing.assert_array_equal(got, want)
    # a read-only out: the validator refuses it, the unchecked entry goes on to the
    # kernel (Cython's memoryview or numba's typing then refuses it its own way)
    ro = args["out"].copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        be.forward(**dict(args, out=ro))
    with pytest.raises(Exception) as info:
        be.forward.unchecked(**dict(args, out=ro))
    assert "out is read-only" not in str(info.value)


def _geometry_nets():
    """Descriptions with every block kind: Maxout, PReLU, no bias, dropout, meProp."""
    from test_layer_kernels import spec
    yield make_spec(7, [9, 4, 2], [defs.ACT_TANH, defs.ACT_RELU, defs.ACT_LINEAR], drop=[0.0, 0.5, 0.0],
                    use_bias=[True, False, True])[0]
    yield spec(6, [dict(units=5, kind=defs.LAYER_MAXOUT, pieces=3, drop=0.25),
                   dict(units=8, prelu=True, topk=3), dict(units=4, act=defs.ACT_RELU, bias=False),
                   dict(units=3)])[0]


@pytest.mark.parametrize("which", [0, 1])
def test_geometry_is_the_one_decoding(which):
    """fastnet/backends/_geometry.py against the records and the compiled twins'
    own decoding: the parameter blocks tile the buffer, the views are those
    blocks, and both twins lay out the workspace as the geometry does."""
    from fastnet.backends._geometry import geometry
    layers = list(_geometry_nets())[which]
    geo = geometry(layers)
    assert geometry(layers.copy()) is geo                      # memoised per description
    spans = sorted(geo.spans())
    assert spans[0][0] == 0 and all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))
    assert spans[-1][0] + spans[-1][1] == geo.n_params
    buf = np.arange(geo.n_params, dtype=np.float64)
    for l in range(geo.n_layers):
        W, b, s = geo.views(buf, l)
        r = layers[l]
        assert W.shape == (r["n_in"], geo.z_widths[l]) and W[0, 0] == r["w_offset"]
        assert (b is None) == (r["b_offset"] < 0) and (b is None or b[0] == r["b_offset"])
        assert (s is None) == (r["act"] != defs.ACT_PRELU) and (s is None or s.shape == (r["n_out"],))
        assert geo.diag_offsets[l] == defs.diag_offset(layers, l)
    assert [v.size for _, v in geo.arrays(buf)] == [n for _, n in geo.spans()]
    for bs in (1, 5):
        want = geo.workspace_layout(bs)
        if "cython" in BACKENDS:
            from fastnet._kernels.cython import network
            assert network.workspace_offsets(layers, bs) == want
        if "numba" in BACKENDS:
            from fastnet._kernels.numba.network import _layout
            offZ, offA, offM, d0, d1, size = _layout(layers, bs)
            got = {"X": 0, "D0": d0, "D1": d1, "size": size}
            for l in range(geo.n_layers):
                got[("Z", l)], got[("A", l)] = offZ[l], offA[l]
                if offM[l] >= 0:
                    got[("M", l)] = offM[l]
            assert got == want
