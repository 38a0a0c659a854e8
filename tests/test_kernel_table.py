"""Generic kernel tests over the table of tests/kernel_table.py (entries x backends
x dtypes), in the spirit of PyTorch's OpInfo tests:

* reference parity: every compiled backend's outputs (inout arguments included)
  equal the NumPy reference's within the entry's tolerance;
* thread invariance: each compiled backend gives the same bits for n_threads 1, 2
  and 3, on the samples past the parallel thresholds too;
* twins: numba and Cython give the same bits where the entry says so;
* read-only inputs: every "in" array passed read-only gives the same bits;
* aliasing: the aliased calls the contract allows give the non-aliased call's bits;
* error inputs: every backend raises the entry's exception with a matching message
  and leaves every output as it was (raised before any work); the validated
  kernels (_api.VALIDATORS) raise the same exception and message everywhere;
* completeness: an entry for every kernel of the contract but kernel_table.EXCLUDED.
"""
import os
import re

import numpy as np
import pytest

from fastnet._kernels import defs
from fastnet.backends import _api, get_backend

import kernel_table as kt
from conftest import BACKENDS, COMPILED

DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
SEED = 1234
THREADS = (1, 2, 3)
ENTRIES = [pytest.param(e, id=e.name) for e in kt.KERNEL_TABLE]
TWINS = {"numba", "cython"} <= set(COMPILED)


def _dtype_id(dt):
    return np.dtype(dt).name


def _samples(entry, dtype):
    return entry.sample_inputs(np.dtype(dtype), np.random.default_rng(SEED))


def _run(be_name, entry, args, n_threads):
    """Run one call of ``entry`` on ``args`` (changed in place); returns args."""
    with np.errstate(all="ignore"):
        entry.run(get_backend(be_name), args, n_threads)
    return args


def _bits_equal(a, b):
    """The same bits, element for element, except that any NaN equals any NaN (IEEE
    leaves a NaN's sign and payload to the operation: numba and Cython give one row
    of dZ NaNs of either sign).  -0.0 and +0.0 differ."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.tobytes() == b.tobytes():
        return True
    if a.dtype.kind != "f":
        return False
    nan = np.isnan(a)
    if not np.array_equal(nan, np.isnan(b)):
        return False
    return a[~nan].tobytes() == b[~nan].tobytes()


def _close(entry, dtype, got, want):
    """None when got equals want within the entry's tolerance, else the reason."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return "shape / dtype %s %s != %s %s" % (got.shape, got.dtype, want.shape, want.dtype)
    if want.dtype.kind in "iub":
        return None if np.array_equal(got, want) else "integers differ"
    rtol = entry.rtol[np.dtype(dtype)]
    ref = want.astype(np.float64)
    finite = np.isfinite(ref)
    scale = max(1.0, float(np.abs(ref[finite]).max())) if finite.any() else 1.0
    try:
        np.testing.assert_allclose(got.astype(np.float64), ref, rtol=rtol, atol=rtol * scale,
                                   equal_nan=True)
    except AssertionError as exc:
        return str(exc).strip().splitlines()[-3:]
    return None


def _sample_params(test, backends):
    """(entry, backend, dtype, sample id) parameters of a sample test: per entry,
    backend and dtype one case over every sample (sample id None) but the known
    bugs, and one xfail(strict=True) case per known bug, on its sample alone."""
    params = []
    for entry in kt.KERNEL_TABLE:
        for backend in backends:
            for dtype in DTYPES:
                pid = "-".join(x for x in (entry.name, backend, dtype.name) if x)
                params.append(pytest.param(entry, backend, dtype, None, id=pid))
                for bug in entry.known_bugs:
                    if bug.applies(test, backend, dtype):
                        params.append(pytest.param(entry, backend, dtype, bug.sample, id=pid + "-" + bug.sample,
                                                   marks=pytest.mark.xfail(strict=True, reason=bug.reason)))
    return params


def _for_each_sample(entry, dtype, check, test, backend=None, only=None):
    """check(sample) -> list of problems, over the samples (``only``: that one;
    else all but the known bugs of ``test``); fails listing every problem."""
    skip = {b.sample for b in entry.known_bugs if b.applies(test, backend, dtype)}
    problems, n = [], 0
    for sample in _samples(entry, dtype):
        wanted = sample.id == only if only is not None else sample.id not in skip
        if not wanted:
            continue
        n += 1
        problems += ["%s: %s" % (sample.id, p) for p in check(sample)]
    assert n, "no samples"
    assert not problems, "\n".join(str(p) for p in problems[:20])


# ---------------------------------------------------------------------------
# the table itself
# ---------------------------------------------------------------------------
def test_the_table_covers_every_kernel_of_the_contract():
    """Every kernel of _api.KERNELS has an entry, except those of the one
    exclusion set; no entry for a kernel the contract lacks, none twice."""
    names = [e.name for e in kt.KERNEL_TABLE]
    assert len(names) == len(set(names)), "an entry twice"
    assert not set(names) & set(kt.EXCLUDED), "an excluded kernel has an entry"
    assert set(names) | set(kt.EXCLUDED) == set(_api.KERNELS), (
        "kernels without an entry: %s; entries without a kernel: %s"
        % (sorted(set(_api.KERNELS) - set(names) - set(kt.EXCLUDED)),
           sorted(set(names) - set(_api.KERNELS))))


def _contract_dtype(entry, arg, dtype):
    """The dtype the contract gives an array argument in a call of this dtype."""
    shape_text = dict((a, s) for a, _, s in entry.contract)[arg]
    if "LAYER_DTYPE" in shape_text:
        return defs.LAYER_DTYPE
    if "int64" in shape_text:
        return np.dtype(np.int64)
    if "float64" in shape_text:
        return np.dtype(np.float64)
    return np.dtype(dtype)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
def test_the_entry_is_well_formed(entry, dtype):
    """Samples hold every argument of the contract by name, arrays of the
    contract's dtypes, C-contiguous and writable; ids are unique; some sample is
    past the parallel thresholds; every alias pair names an output and an input
    of one shape; every error input names every argument."""
    names = set(entry.args)
    ids, large = set(), 0
    for s in _samples(entry, dtype):
        assert s.id not in ids, "sample id %s twice" % s.id
        ids.add(s.id)
        assert set(s.args) == names, (s.id, sorted(set(s.args) ^ names))
        large += s.large
        for a, kind, _ in entry.contract:
            if kind in ("in", "out", "inout"):
                v = s.args[a]
                assert isinstance(v, np.ndarray), (s.id, a)
                assert v.dtype == _contract_dtype(entry, a, dtype), (s.id, a, v.dtype)
                assert v.flags.c_contiguous and v.flags.writeable, (s.id, a)
            elif kind in ("int", "key"):
                assert isinstance(s.args[a], (int, np.integer)), (s.id, a)
            elif kind == "float":
                assert isinstance(s.args[a], (float, int)), (s.id, a)
        for out, inp in entry.aliases:
            assert s.args[out].shape == s.args[inp].shape, (s.id, out, inp)
    assert large, "no sample reaches the compiled kernels' parallel paths"
    for bug in entry.known_bugs:
        assert bug.test in ("parity", "threads", "twins", "read_only", "aliasing"), bug
        if bug.dtype in (None, dtype.name):
            assert bug.sample in ids, "known bug on a sample the entry lacks: %s" % bug.sample
    for out, inp in entry.aliases:
        assert out in entry.outputs and inp in entry.inputs + entry.outputs and out != inp
    assert set(entry.scratch) <= set(entry.outputs) and entry.compared
    cases = list(entry.error_inputs(np.dtype(dtype)))
    assert cases, "no error inputs"
    assert len({c.id for c in cases}) == len(cases), "an error input id twice"
    for c in cases:
        assert set(c.args) == names, (c.id, sorted(set(c.args) ^ names))
        re.compile(c.match)
        for exc in (c.exc if isinstance(c.exc, tuple) else (c.exc,)):
            assert issubclass(exc, Exception), c.id
        assert set(c.bugs) <= {"numpy", "numba", "cython"}, c.id
        assert not (c.reference and c.reference_writes), c.id


def test_the_thresholds_are_the_kernels():
    """kernel_table.THRESHOLDS (what the large samples cross) are the values the
    kernel sources define (every definition of each name agrees)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = kt.read_threshold_sources(root)
    if found is None:
        pytest.skip("needs the source tree (kernels/)")
    for name, value in kt.THRESHOLDS.items():
        assert name in found, "%s defined in none of the kernel sources" % name
        assert {v for _, v in found[name]} == {value}, (name, found[name])


# ---------------------------------------------------------------------------
# the compiled backends against the reference, the thread counts and each other
# ---------------------------------------------------------------------------
@pytest.mark.skipif(not COMPILED, reason="no compiled backend available")
@pytest.mark.parametrize("entry,backend,dtype,only", _sample_params("parity", COMPILED))
def test_reference_parity(entry, backend, dtype, only):
    def check(sample):
        want = _run("numpy", entry, sample.fresh(), 1)
        got = _run(backend, entry, sample.fresh(), 2)
        return ["%s: %s" % (a, why) for a in entry.compared
                for why in [_close(entry, dtype, got[a], want[a])] if why]
    _for_each_sample(entry, dtype, check, "parity", backend, only)


@pytest.mark.skipif(not COMPILED, reason="no compiled backend available")
@pytest.mark.parametrize("entry,backend,dtype,only", _sample_params("threads", COMPILED))
def test_thread_count_does_not_change_the_bits(entry, backend, dtype, only):
    def check(sample):
        runs = [_run(backend, entry, sample.fresh(), n) for n in THREADS]
        return ["%s differs between %d and %d threads" % (a, THREADS[0], n)
                for a in entry.compared for n, r in zip(THREADS[1:], runs[1:])
                if not _bits_equal(r[a], runs[0][a])]
    _for_each_sample(entry, dtype, check, "threads", backend, only)


@pytest.mark.skipif(not TWINS, reason="needs both compiled twins")
@pytest.mark.parametrize("entry,backend,dtype,only", _sample_params("twins", [None]))
def test_twins_give_the_same_bits(entry, backend, dtype, only):
    if not entry.twins:
        pytest.skip("not bit-identical twins: %s" % entry.twins_reason)
    why = entry.twins_unless() if entry.twins_unless else None
    if why:
        pytest.skip(why)

    def check(sample):
        nb = _run("numba", entry, sample.fresh(), 2)
        cy = _run("cython", entry, sample.fresh(), 2)
        return ["%s differs between numba and cython" % a for a in entry.compared
                if not _bits_equal(nb[a], cy[a])]
    _for_each_sample(entry, dtype, check, "twins", None, only)


# ---------------------------------------------------------------------------
# read-only inputs and aliasing (every backend)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("entry,backend,dtype,only", _sample_params("read_only", BACKENDS))
def test_read_only_inputs_give_the_same_bits(entry, backend, dtype, only):
    def check(sample):
        want = _run(backend, entry, sample.fresh(), 2)
        args = sample.fresh()
        for a in entry.inputs:
            args[a].flags.writeable = False
        got = _run(backend, entry, args, 2)
        return ["%s differs with read-only inputs" % a for a in entry.compared
                if not _bits_equal(got[a], want[a])]
    _for_each_sample(entry, dtype, check, "read_only", backend, only)


@pytest.mark.parametrize("entry,backend,dtype,only",
                         [p for p in _sample_params("aliasing", BACKENDS) if p.values[0].aliases])
def test_allowed_aliasing_gives_the_same_bits(entry, backend, dtype, only):
    def check(sample):
        want = _run(backend, entry, sample.fresh(), 2)
        problems = []
        for out, inp in entry.aliases:
            args = sample.fresh()
            args[out] = args[inp]
            got = _run(backend, entry, args, 2)
            assert got[out] is got[inp]
            problems += ["%s aliased to %s: %s differs" % (out, inp, a) for a in entry.compared
                         if a != inp and not _bits_equal(got[a], want[a])]
        return problems
    _for_each_sample(entry, dtype, check, "aliasing", backend, only)


# ---------------------------------------------------------------------------
# malformed calls
# ---------------------------------------------------------------------------
def _error_params(names=None):
    params = []
    for entry in kt.KERNEL_TABLE:
        if names is not None and entry.name not in names:
            continue
        for dtype in DTYPES:
            for case in entry.error_inputs(dtype):
                for backend in BACKENDS if names is None else [None]:
                    marks = []
                    if backend == "numpy" and case.reference:
                        marks.append(pytest.mark.skip(reason="not asked of the reference: " + case.reference))
                    elif backend in case.bugs:
                        reason, run = case.bugs[backend]
                        marks.append(pytest.mark.xfail(strict=True, run=run, reason=reason))
                    pid = "-".join(x for x in (entry.name, dtype.name, case.id, backend) if x)
                    params.append(pytest.param(entry, dtype, case.id, backend, marks=marks, id=pid))
    return params


def _attempt(entry, backend, case):
    """(exception, {output: changed}) of the malformed call on ``backend``."""
    args = case.args
    before = {a: np.array(args[a], copy=True) for a in entry.outputs if isinstance(args[a], np.ndarray)}
    with pytest.raises(case.exc) as info:
        with np.errstate(all="ignore"):
            entry.run(get_backend(backend), args, case.n_threads)
    changed = [a for a, v in before.items() if not _bits_equal(args[a], v)]
    return info.value, changed


@pytest.mark.parametrize("entry,dtype,case_id,backend", _error_params())
def test_error_inputs_raise_before_any_work(entry, dtype, case_id, backend):
    case = kt.error_input(entry, dtype, case_id)
    exc, changed = _attempt(entry, backend, case)
    assert re.search(case.match, str(exc)), "message %r does not match %r" % (str(exc), case.match)
    if not (backend == "numpy" and case.reference_writes):
        assert not changed, "%s written before the call was refused" % changed


@pytest.mark.parametrize("entry,dtype,case_id,backend", _error_params(set(_api.VALIDATORS)))
def test_validated_kernels_refuse_alike_everywhere(entry, dtype, case_id, backend):
    """The kernels the shared validator checks (_api.VALIDATORS) raise the same
    exception with the same message, naming the kernel, on every backend."""
    results = {}
    for name in BACKENDS:
        exc, _ = _attempt(entry, name, kt.error_input(entry, dtype, case_id))
        results[name] = (type(exc), str(exc))
    first = results[BACKENDS[0]]
    assert first[1].startswith(entry.name + ": "), first
    assert all(r == first for r in results.values()), results
