"""The kernel test table, in the spirit of PyTorch's OpInfo: one :class:`KernelInfo`
per kernel of the contract (``fastnet/backends/_api.py: KERNELS``), holding what
the generic tests of tests/test_kernel_table.py need to test it on every backend:

* ``sample_inputs(dtype, rng)``: :class:`Sample` s, each a dict of every argument
  by its contract name (``n_threads`` aside: the tests pass it) with fresh arrays,
  covering the edges (one row, odd widths, widths that are not a multiple of a SIMD
  vector, every activation / optimizer / head code the kernel takes, absent optional
  inputs as length-0 arrays) and at least one ``large`` sample just past the
  compiled kernels' parallel thresholds (``THRESHOLDS``), so their ``prange`` paths
  run too;
* ``error_inputs(dtype)``: :class:`ErrorInput` s, malformed calls with the exception
  every backend must raise before it writes anything (the reference's exemptions
  and the known backend bugs are marked on the case, each with its reason);
* ``aliases``: the (output, input) pairs the contract lets be one array
  (``KERNEL_DOCS``: "A may be Z", "dZ may be dA");
* the tolerances against the reference, and whether the compiled twins (numba,
  Cython) must give the same bits (docs/ARCHITECTURE.md: "The twins are arithmetic
  twins").

Arguments are named and classified from ``_api.KERNELS`` only (``KernelInfo.args``,
``.inputs``, ``.outputs``), so a call is ``be.<name>(**sample.args, n_threads=k)``.
"""
import dataclasses
import os
import re
from typing import Callable, Dict, Iterator, Optional, Tuple

import numpy as np

from fastnet._kernels import defs
from fastnet.backends import _api

F32, F64, I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)

#: The compiled kernels' parallel thresholds (kernels/cython/_types.pxd,
#: kernels/numba/_jit.py; all_finite's in kernels/cython/reduce.pyx and
#: kernels/numba/reduce.py), which the ``large`` samples cross.
#: tests/test_kernel_table.py checks them against the sources.
THRESHOLDS = {
    "ELEM_PAR_MIN": 1 << 15,      # elementwise, row-wise, layer kernels, optimizer, penalty
    "MATMUL_PAR_MIN": 1 << 20,    # matmul family and the sparse products (multiply-adds)
    "FINITE_PAR_MIN": 1 << 20,    # all_finite (elements)
    "FLAT_TILE": 4096,            # optimizer / regularization tiles
    "COL_TILE": 64,               # bias_grad, prelu_backward's dslope column tiles
}
ELEM_PAR_MIN = THRESHOLDS["ELEM_PAR_MIN"]
MATMUL_PAR_MIN = THRESHOLDS["MATMUL_PAR_MIN"]

#: Default tolerances against the reference (relative; the absolute one is the same
#: times max(1, max |reference|) of the output): float32 a few ulp of its 6e-8 times
#: the sums' lengths here, float64 far above its rounding yet far below any formula
#: error.
RTOL = {F32: 1e-5, F64: 1e-10}


# ---------------------------------------------------------------------------
# the entry types
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Sample:
    """One well-formed call: ``args`` holds every argument of the contract (not
    n_threads) by name.  ``large``: its shapes pass a parallel threshold."""
    id: str
    args: Dict[str, object]
    large: bool = False

    def fresh(self):
        """A copy of the arguments with fresh (writable) copies of the arrays."""
        return {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v)
                for k, v in self.args.items()}


@dataclasses.dataclass
class ErrorInput:
    """A malformed call: every backend raises ``exc`` with a message matching the
    regular expression ``match`` and leaves every output untouched.

    ``reference``: why the NumPy reference need not raise here (None: it must);
    only for bounds / dtype guards the contract asks of the compiled kernels alone.
    ``reference_writes``: why the reference may have written outputs before it
    raised (it must still raise): it has no checks of its own beyond the
    validators, so NumPy meets a mismatched array only at its first use.
    ``bugs``: {backend: (reason, run)} where a backend is known to disagree
    (``run`` False where running the call is undefined behaviour: a kernel without
    bounds checks reading or writing outside an array)."""
    id: str
    args: Dict[str, object]
    exc: object
    match: str
    n_threads: int = 1
    reference: Optional[str] = None
    reference_writes: Optional[str] = None
    bugs: Dict[str, Tuple[str, bool]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class KnownBug:
    """A sample on which a generic test is known to fail (a real disagreement,
    kept visible: the test runs that sample alone under xfail(strict=True)).
    ``test``: "parity", "threads", "twins", "read_only" or "aliasing";
    ``backend`` / ``dtype`` (a dtype name): None for every one."""
    test: str
    sample: str
    reason: str
    backend: Optional[str] = None
    dtype: Optional[str] = None

    def applies(self, test, backend, dtype):
        return (self.test == test and self.backend in (None, backend)
                and self.dtype in (None, np.dtype(dtype).name))


@dataclasses.dataclass
class KernelInfo:
    """What the generic tests need to know about one contract kernel."""
    name: str
    sample_inputs: Callable[[np.dtype, np.random.Generator], Iterator[Sample]]
    error_inputs: Callable[[np.dtype], Iterator[ErrorInput]]
    #: (output, input) pairs the contract allows to be the same array
    aliases: Tuple[Tuple[str, str], ...] = ()
    #: relative tolerance per dtype against the reference (see RTOL), and why it
    #: differs from the default where it does
    rtol: Dict[np.dtype, float] = dataclasses.field(default_factory=lambda: dict(RTOL))
    rtol_reason: str = ""
    #: whether numba and Cython give the same bits (docs/ARCHITECTURE.md), and
    #: ``twins_unless()``: None, or why the guarantee does not hold on this build
    twins: bool = True
    twins_reason: str = ""
    twins_unless: Optional[Callable[[], Optional[str]]] = None
    #: outputs whose contents the contract leaves to the backend (scratch space):
    #: never compared, but still required unchanged by a rejected call
    scratch: Tuple[str, ...] = ()
    #: how to run one call, (backend module, args, n_threads) -> None; None: one
    #: call ``getattr(be, name)(**args, n_threads=n_threads)`` (a training entry
    #: may run an epoch in chunks of batches here)
    call: Optional[Callable] = None
    #: samples on which a generic test is known to fail, each with its reason
    known_bugs: Tuple[KnownBug, ...] = ()

    @property
    def contract(self):
        return _api.KERNELS[self.name]

    @property
    def args(self):
        """Every argument name but n_threads, in the contract's order."""
        return tuple(a for a, kind, _ in self.contract if kind != "threads")

    @property
    def inputs(self):
        """The arrays the kernel only reads (kind "in")."""
        return tuple(a for a, kind, _ in self.contract if kind == "in")

    @property
    def outputs(self):
        """The arrays the kernel writes (kinds "out" and "inout")."""
        return tuple(a for a, kind, _ in self.contract if kind in ("out", "inout"))

    @property
    def compared(self):
        """The outputs the tests compare (scratch space left out)."""
        return tuple(a for a in self.outputs if a not in self.scratch)

    def run(self, be, args, n_threads):
        if self.call is not None:
            self.call(be, args, n_threads)
        else:
            getattr(be, self.name)(**args, n_threads=n_threads)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _normal(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _nan(shape, dtype):
    """An output buffer full of NaN: an element the kernel forgets to write shows."""
    return np.full(shape, np.nan, dtype)


def _other(dtype):
    """The other float dtype (for dtype-mixing errors)."""
    return F64 if np.dtype(dtype) == F32 else F32


ACTS = [a["code"] for a in defs.ACTIVATIONS]
ACT_NAMES = {a["code"]: a["name"] for a in defs.ACTIVATIONS}
#: a code no activation has, and ACT_PRELU (a layer's code, not an elementwise activation)
BAD_ACTS = (99, defs.ACT_PRELU)

# what the numba kernels lack: both twins check every malformed call's shapes and
# indices before touching memory (numba's kernels run without bounds checks,
# kernels/numba/_jit.py: boundscheck=False, and raise constant messages: where a
# Cython message names a value, the case's regular expression takes both wordings),
# but only the Cython twins check dtypes
_NUMBA_MIXED = ("numba's kernel has no dtype check: a mixed-dtype call is typed anew "
                "(a new specialisation that runs, or numba's TypingError, not the "
                "contract's exception, after a failed compile of ~1 s per call, so not run)",
                False)
_REF_DTYPE = ("the reference computes in NumPy's promoted dtype; one float dtype per call "
              "is enforced by the compiled kernels' typed buffers")
_REF_THREADS = ("the reference ignores n_threads; only the validated kernels "
                "(_api.VALIDATORS) check it in every backend")

_REF_WRITES = ("the reference has no shape checks of its own (the contract asks them of the "
               "validated kernels only): NumPy raises at the first use of the mismatched "
               "array, after the outputs computed before it are written")
#: regular expression of a shape error: the Cython twins' "shapes ... do not match"
#: / "expected", numba's, NumPy's broadcast / matmul / reshape messages
SHAPE = r"(do not match|expected|must|mismatch|could not (be )?broadcast|cannot reshape|does not match|of shape)"
DTYPE = r"(dtype|Buffer dtype mismatch|No matching signature)"


def _threads_error(make):
    """n_threads = 0 (every compiled adapter refuses it)."""
    return ErrorInput("n_threads_zero", make(), ValueError, r"n_threads must be >= 1", n_threads=0,
                      reference=_REF_THREADS)


# ---------------------------------------------------------------------------
# matmul, matmul_tn, matmul_nt
# ---------------------------------------------------------------------------
#: (n, k, m): one element, one row (the axpy row path: k not a multiple of 4, a
#: ragged last vector, a panel-wide row), odd widths, one column, k = 0, k past
#: numba's p block, rows past its row block, the direct path (m > 128 columns), a
#: very wide C, and over MATMUL_PAR_MIN the narrow (m <= 128) and packed (m > 128,
#: >= 32 rows) parallel paths, k past the Cython packed path's KC = 1024
MM_SHAPES = [(1, 1, 1), (1, 257, 47), (1, 3, 100), (1, 6, 64), (1, 784, 512), (3, 5, 7), (17, 9, 16),
             (13, 20, 33), (31, 17, 1), (7, 33, 150), (5, 600, 48), (2, 0, 3), (64, 513, 8), (10, 784, 30),
             (10, 10, 30), (30, 10, 10), (9, 1000, 17), (3, 5, 2000), (97, 131, 67)]
MM_LARGE = [(300, 40, 100), (130, 60, 200), (130, 300, 65), (261, 70, 100), (300, 200, 129),
            (17, 784, 128), (40, 2100, 70)]


def _mm_operands(form, n, k, m, rng, dtype):
    A = _normal(rng, (n, k), dtype)
    B = _normal(rng, (k, m), dtype)
    if form == "matmul_tn":
        A = np.ascontiguousarray(A.T)
    elif form == "matmul_nt":
        B = np.ascontiguousarray(B.T)
    return A, B


def _mm_samples(form):
    def samples(dtype, rng):
        for shape in MM_SHAPES + MM_LARGE:
            n, k, m = shape
            A, B = _mm_operands(form, n, k, m, rng, dtype)
            large = n * k * m >= MATMUL_PAR_MIN
            yield Sample("n%d_k%d_m%d" % shape, dict(A=A, B=B, C=_nan((n, m), dtype)), large)
    return samples


def _mm_errors(form):
    def errors(dtype):
        o = _other(dtype)
        A, B = _mm_operands(form, 3, 4, 2, np.random.default_rng(0), dtype)
        Ab, Bb = _mm_operands(form, 3, 5, 2, np.random.default_rng(0), dtype)
        ok = dict(A=A, B=B, C=np.zeros((3, 2), dtype))
        yield ErrorInput("inner_mismatch", dict(ok, B=Bb), ValueError, SHAPE)
        yield ErrorInput("inner_mismatch_A", dict(ok, A=Ab), ValueError, SHAPE)
        yield ErrorInput("C_rows", dict(ok, C=np.zeros((4, 2), dtype)), ValueError, SHAPE)
        yield ErrorInput("C_cols", dict(ok, C=np.zeros((3, 3), dtype)), ValueError, SHAPE)
        yield ErrorInput("B_other_dtype", dict(ok, B=B.astype(o)), (ValueError, TypeError), DTYPE,
                         reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
        yield ErrorInput("C_other_dtype", dict(ok, C=np.zeros((3, 2), o)), (ValueError, TypeError), DTYPE,
                         reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
        yield _threads_error(lambda: dict(ok))
    return errors


# ---------------------------------------------------------------------------
# bias_act_forward, act_backward
# ---------------------------------------------------------------------------
#: (n, m, with bias): one element, one row of 17, odd and SIMD-ragged widths
ACT_SHAPES = [(1, 1, True), (1, 17, False), (3, 3, True), (17, 9, False), (5, 31, True)]
ACT_LARGE = (257, 129)          # 33,153 elements >= ELEM_PAR_MIN, n > 1
#: every regime of the activations: kinks, saturation, exp's over / underflow, NaN, +-inf
EDGE_Z = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e-300, 3.0, -3.0, 6.0, 40.0, -40.0,
          1e4, -1e4, 88.0, -104.0, 709.0, -745.0, 1e16, 1e30, -1e30, 1e300, -1e300]


def _edges(dtype):
    """EDGE_Z in the dtype (float32: the largest ones overflow to +-inf)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.array([EDGE_Z], np.float64).astype(dtype)


def _act_samples(dtype, rng):
    for act in ACTS:
        nm = ACT_NAMES[act]
        for n, m, bias in ACT_SHAPES + [ACT_LARGE + (True,)]:
            b = _normal(rng, m, dtype) if bias else np.empty(0, dtype)
            Z = _normal(rng, (n, m), dtype, 3.0)
            yield Sample("%s_n%d_m%d%s" % (nm, n, m, "_bias" if bias else ""),
                         dict(b=b, act=act, act_param=0.2, Z=Z, A=_nan((n, m), dtype)),
                         n > 1 and n * m >= ELEM_PAR_MIN)
        Z = _edges(dtype)
        yield Sample("%s_edges" % nm, dict(b=np.empty(0, dtype), act=act, act_param=0.2, Z=Z,
                                           A=_nan(Z.shape, dtype)))


def _act_errors(dtype):
    ok = dict(b=np.full(3, 0.5, dtype), act=defs.ACT_TANH, act_param=0.2, Z=np.ones((2, 3), dtype),
              A=np.zeros((2, 3), dtype))
    ref_bias_first = ("the reference adds b to Z (Z += b) before _activate refuses the code: "
                      "Z is changed by a rejected call (both compiled twins check the code first)", True)
    for bad in BAD_ACTS:
        # (with a bias: Z += b must not run before the code is refused)
        yield ErrorInput("unknown_act_%d" % bad, dict(ok, act=bad), ValueError,
                         r"unknown activation code", bugs={"numpy": ref_bias_first})
    yield ErrorInput("unknown_act_no_bias", dict(ok, b=np.zeros(0, dtype), act=-1), ValueError,
                     r"unknown activation code")
    yield ErrorInput("b_length", dict(ok, b=np.zeros(2, dtype)), ValueError, SHAPE)
    yield ErrorInput("A_shape", dict(ok, A=np.zeros((2, 4), dtype)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("A_rows", dict(ok, A=np.zeros((1, 3), dtype)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("b_other_dtype", dict(ok, b=np.zeros(3, _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


def _act_backward_samples(dtype, rng):
    from fastnet.backends import numpy_ref
    for act in ACTS:
        nm = ACT_NAMES[act]
        for n, m, _ in ACT_SHAPES + [ACT_LARGE + (True,)]:
            Z = _normal(rng, (n, m), dtype, 3.0)
            A = np.empty_like(Z)
            numpy_ref.bias_act_forward(np.empty(0, dtype), act, 0.2, Z.copy(), A, 1)
            dA = _normal(rng, (n, m), dtype)
            yield Sample("%s_n%d_m%d" % (nm, n, m),
                         dict(Z=Z, A=A, dA=dA, act=act, act_param=0.2, dZ=_nan((n, m), dtype)),
                         n > 1 and n * m >= ELEM_PAR_MIN)
        Z = _edges(dtype)
        A = np.empty_like(Z)
        with np.errstate(all="ignore"):
            numpy_ref.bias_act_forward(np.empty(0, dtype), act, 0.2, Z.copy(), A, 1)
        yield Sample("%s_edges" % nm, dict(Z=Z, A=A, dA=np.ones_like(Z), act=act, act_param=0.2,
                                           dZ=_nan(Z.shape, dtype)))


def _act_backward_errors(dtype):
    z = np.ones((2, 3), dtype)
    ok = dict(Z=z, A=z, dA=z, act=defs.ACT_TANH, act_param=0.2, dZ=np.zeros((2, 3), dtype))
    for bad in BAD_ACTS:
        yield ErrorInput("unknown_act_%d" % bad, dict(ok, act=bad), ValueError, r"unknown activation code")
    for name in ("A", "dA", "dZ"):
        yield ErrorInput(name + "_shape", dict(ok, **{name: np.zeros((2, 4), dtype)}), ValueError, SHAPE)
    yield ErrorInput("dA_other_dtype", dict(ok, dA=z.astype(_other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


# ---------------------------------------------------------------------------
# the loss heads: softmax_xent, sigmoid_bce, mse, mae
# ---------------------------------------------------------------------------
#: (n, k): one row, one column, odd widths, blocks of rows (> 256: softmax's row block)
HEAD_SHAPES = [(1, 1), (1, 2), (3, 3), (17, 17), (5, 31), (64, 1), (257, 10)]
HEAD_LARGE = (300, 110)         # 33,000 elements >= ELEM_PAR_MIN, two row blocks
#: confident and extreme logits (the fused heads' stable forms)
EXTREME_Z = [[1e4, 0.0, -1e4], [0.0, 1e4, 1e4], [30.0, -30.0, 0.5], [-745.0, 709.0, 0.0]]


def _head_shapes():
    for n, k in HEAD_SHAPES + [HEAD_LARGE]:
        yield n, k, n * k >= ELEM_PAR_MIN


def _sw(rng, n, weighted, dtype):
    return rng.uniform(0.2, 2.0, n).astype(dtype) if weighted else np.empty(0, dtype)


def _softmax_samples(dtype, rng):
    for n, k, large in _head_shapes():
        for sparse in (True, False):
            for weighted in (True, False):
                Z = _normal(rng, (n, k), dtype, 4.0)
                if sparse:
                    Y, labels = np.empty((0, k), dtype), rng.integers(0, k, n).astype(I64)
                else:
                    Y = rng.random((n, k)).astype(dtype)
                    Y /= Y.sum(axis=1, keepdims=True)
                    labels = np.empty(0, I64)
                yield Sample("n%d_k%d_%s_%s" % (n, k, "labels" if sparse else "soft",
                                                "weighted" if weighted else "unweighted"),
                             dict(Z=Z, Y=Y, labels=labels, sw=_sw(rng, n, weighted, dtype), scale=1.0 / n,
                                  P=_nan((n, k), dtype), loss=_nan(n, F64), dZ=_nan((n, k), dtype)), large)
    # confident rows (the max leads by 10-30), rows of 1, 10 and 100 columns (> the Cython
    # twin's 64 kept exponentials), -inf logits, an infinite max, NaN (at the first
    # position, where the running max starts, and inside a row); soft targets with
    # zeros, sample weights; and NaN rows past the parallel threshold
    for k in (1, 10, 100):
        n = 40
        Z = rng.standard_normal((n, k))
        top = rng.integers(0, k, n)
        Z[np.arange(n), top] += rng.uniform(10, 30, n)
        Z[::7] *= 2.0
        if k > 1:
            Z[3, 0], Z[5, 1], Z[6, 0], Z[7, k // 2] = -np.inf, np.inf, np.nan, np.nan
        Z = Z.astype(dtype)
        Y = rng.dirichlet(np.ones(k), n).astype(dtype)
        Y[::3] = 0
        Y[::3, 0] = 1
        for sparse in (True, False):
            yield Sample("gaps_nonfinite_k%d_%s" % (k, "labels" if sparse else "soft"),
                         dict(Z=Z, Y=np.empty((0, k), dtype) if sparse else Y,
                              labels=top.astype(I64) if sparse else np.empty(0, I64),
                              sw=rng.uniform(0.5, 2.0, n).astype(dtype), scale=0.25,
                              P=_nan((n, k), dtype), loss=_nan(n, F64), dZ=_nan((n, k), dtype)))
    n, k = 1000, 40
    Z = _normal(rng, (n, k), dtype)
    Z[1, 0], Z[2, 7], Z[600, 39] = np.nan, np.nan, np.nan
    lab = rng.integers(0, k, n).astype(I64)
    for sparse in (True, False):
        yield Sample("large_nan_rows_" + ("labels" if sparse else "onehot"),
                     dict(Z=Z, Y=np.empty((0, k), dtype) if sparse else np.eye(k, dtype=dtype)[lab],
                          labels=lab if sparse else np.empty(0, I64), sw=np.empty(0, dtype), scale=1.0 / n,
                          P=_nan((n, k), dtype), loss=_nan(n, F64), dZ=_nan((n, k), dtype)), True)
    Z = np.array(EXTREME_Z, dtype)
    n, k = Z.shape
    for sparse in (True, False):
        lab = np.array([2, 0, 1, 0], I64)
        yield Sample("extreme_logits_" + ("labels" if sparse else "onehot"),
                     dict(Z=Z, Y=np.empty((0, k), dtype) if sparse else np.eye(k, dtype=dtype)[lab],
                          labels=lab if sparse else np.empty(0, I64), sw=np.empty(0, dtype), scale=0.5,
                          P=_nan((n, k), dtype), loss=_nan(n, F64), dZ=_nan((n, k), dtype)))


_REF_LABELS = ("the reference indexes log P with the labels (NumPy's IndexError, after P is "
               "written); the range check is the compiled kernels' bounds guard")


def _softmax_errors(dtype):
    n, k = 4, 3
    ok = dict(Z=np.zeros((n, k), dtype), Y=np.empty((0, k), dtype), labels=np.array([0, 1, 2, 0], I64),
              sw=np.empty(0, dtype), scale=0.25, P=np.zeros((n, k), dtype), loss=np.zeros(n),
              dZ=np.zeros((n, k), dtype))
    dense = dict(ok, Y=np.full((n, k), 1.0 / k, dtype), labels=np.empty(0, I64))
    yield ErrorInput("label_eq_k", dict(ok, labels=np.array([0, 1, 3, 0], I64)), ValueError,
                     r"label 3 out of range|label out of range", reference=_REF_LABELS)
    yield ErrorInput("label_negative", dict(ok, labels=np.array([0, -1, 2, 0], I64)), ValueError,
                     r"label -1 out of range|label out of range", reference=_REF_LABELS)
    yield ErrorInput("labels_length", dict(ok, labels=np.array([0, 1, 2], I64)), ValueError,
                     r"labels has 3 entries|labels must have n entries", reference=_REF_LABELS)
    yield ErrorInput("Y_rows", dict(dense, Y=np.full((n - 1, k), 0.5, dtype)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("Y_missing", dict(dense, Y=np.empty((0, k), dtype)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("sw_length", dict(ok, sw=np.ones(n - 1, dtype)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("loss_length", dict(ok, loss=np.zeros(n - 1)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("P_shape", dict(ok, P=np.zeros((n, k + 1), dtype)), ValueError, SHAPE)
    yield ErrorInput("dZ_shape", dict(ok, dZ=np.zeros((n + 1, k), dtype)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("P_other_dtype", dict(ok, P=np.zeros((n, k), _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield ErrorInput("loss_float32", dict(ok, loss=np.zeros(n, F32)), (ValueError, TypeError), DTYPE,
                     reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield ErrorInput("labels_int32", dict(ok, labels=ok["labels"].astype(np.int32)), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


def _sigmoid_samples(dtype, rng):
    for n, k, large in _head_shapes():
        for weighted in (True, False):
            Z = _normal(rng, (n, k), dtype, 4.0)
            Y = (rng.random((n, k)) > 0.5).astype(dtype) if weighted else rng.random((n, k)).astype(dtype)
            yield Sample("n%d_k%d_%s" % (n, k, "binary_weighted" if weighted else "soft_unweighted"),
                         dict(Z=Z, Y=Y, sw=_sw(rng, n, weighted, dtype), scale=1.0 / n,
                              P=_nan((n, k), dtype), loss=_nan(n, F64), dZ=_nan((n, k), dtype)), large)
    Z = np.array(EXTREME_Z, dtype)
    Y = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 1], [0, 1, 0]], dtype)
    yield Sample("extreme_logits", dict(Z=Z, Y=Y, sw=np.empty(0, dtype), scale=0.5, P=_nan(Z.shape, dtype),
                                        loss=_nan(4, F64), dZ=_nan(Z.shape, dtype)))


def _sigmoid_errors(dtype):
    n, k = 4, 3
    ok = dict(Z=np.zeros((n, k), dtype), Y=np.zeros((n, k), dtype), sw=np.empty(0, dtype), scale=0.25,
              P=np.zeros((n, k), dtype), loss=np.zeros(n), dZ=np.zeros((n, k), dtype))
    yield ErrorInput("Y_rows", dict(ok, Y=np.zeros((n - 1, k), dtype)), ValueError, SHAPE)
    yield ErrorInput("Y_cols", dict(ok, Y=np.zeros((n, k - 1), dtype)), ValueError, SHAPE)
    yield ErrorInput("sw_length", dict(ok, sw=np.ones(n + 1, dtype)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("loss_length", dict(ok, loss=np.zeros(n + 1)), ValueError, SHAPE)
    yield ErrorInput("P_shape", dict(ok, P=np.zeros((n, k + 1), dtype)), ValueError, SHAPE,
                     reference_writes=_REF_WRITES)
    yield ErrorInput("Y_other_dtype", dict(ok, Y=np.zeros((n, k), _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


def _regression_samples(kernel):
    def samples(dtype, rng):
        for n, k, large in _head_shapes():
            for weighted in (True, False):
                A = _normal(rng, (n, k), dtype)
                Y = _normal(rng, (n, k), dtype)
                Y.reshape(-1)[::7] = A.reshape(-1)[::7]        # a - y = 0: mae's sign(0) = 0
                yield Sample("n%d_k%d_%s" % (n, k, "weighted" if weighted else "unweighted"),
                             dict(A=A, Y=Y, sw=_sw(rng, n, weighted, dtype), scale=1.0 / n,
                                  loss=_nan(n, F64), dA=_nan((n, k), dtype)), large)
        # NaN in, NaN out (np.sign(NaN) is NaN: the diagnostics must see it)
        A = np.array([[np.nan, 1.0, -1.0, 0.0], [np.inf, 2.0, -np.inf, 0.5]], dtype)
        yield Sample("nonfinite", dict(A=A, Y=np.zeros_like(A), sw=np.empty(0, dtype), scale=1.0,
                                       loss=_nan(2, F64), dA=_nan(A.shape, dtype)))
    return samples


def _regression_errors(dtype):
    n, k = 4, 3
    ok = dict(A=np.zeros((n, k), dtype), Y=np.zeros((n, k), dtype), sw=np.empty(0, dtype), scale=0.25,
              loss=np.zeros(n), dA=np.zeros((n, k), dtype))
    yield ErrorInput("Y_rows", dict(ok, Y=np.zeros((n - 1, k), dtype)), ValueError, SHAPE)
    yield ErrorInput("sw_length", dict(ok, sw=np.ones(n - 1, dtype)), ValueError, SHAPE)
    yield ErrorInput("loss_length", dict(ok, loss=np.zeros(n - 1)), ValueError, SHAPE)
    yield ErrorInput("dA_shape", dict(ok, dA=np.zeros((n, k + 1), dtype)), ValueError, SHAPE)
    yield ErrorInput("A_other_dtype", dict(ok, A=np.zeros((n, k), _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


# ---------------------------------------------------------------------------
# bias_grad, gather_rows, all_finite
# ---------------------------------------------------------------------------
SMALL_SHAPES = [(1, 1), (3, 3), (17, 17), (5, 31), (2, 65)]


def _bias_grad_samples(dtype, rng):
    # (1000, 65): two column tiles (COL_TILE = 64, the second of one column)
    for n, m in SMALL_SHAPES + [(1000, 65)]:
        yield Sample("n%d_m%d" % (n, m), dict(dZ=_normal(rng, (n, m), dtype), db=_nan(m, dtype)),
                     n * m >= ELEM_PAR_MIN and m > THRESHOLDS["COL_TILE"])


def _bias_grad_errors(dtype):
    ok = dict(dZ=np.ones((3, 4), dtype), db=np.zeros(4, dtype))
    yield ErrorInput("db_short", dict(ok, db=np.zeros(3, dtype)), ValueError, SHAPE)
    yield ErrorInput("db_long", dict(ok, db=np.zeros(5, dtype)), ValueError, SHAPE)
    yield ErrorInput("db_other_dtype", dict(ok, db=np.zeros(4, _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


def _gather_samples(dtype, rng):
    for N, m in SMALL_SHAPES + [(200, 65)]:
        X = _normal(rng, (N, m), dtype)
        # repeats, every row, 2N + 1 rows (600 x 65 = 39,000 >= ELEM_PAR_MIN)
        n = 3 * N if N == 200 else 2 * N + 1
        idx = rng.integers(0, N, n).astype(I64)
        idx[:2] = [0, N - 1]
        yield Sample("N%d_m%d_n%d" % (N, m, n), dict(X=X, idx=idx, out=_nan((n, m), dtype)),
                     n > 1 and n * m >= ELEM_PAR_MIN)
    X = _normal(rng, (3, 5), dtype)
    yield Sample("no_rows", dict(X=X, idx=np.empty(0, I64), out=_nan((0, 5), dtype)))


_REF_NEG = ("NumPy's take wraps a negative index (the reference cannot read out of bounds); "
            "the range check is the compiled kernels' bounds guard")


def _gather_errors(dtype):
    X = np.ones((3, 2), dtype)
    ok = dict(X=X, idx=np.array([0, 2], I64), out=np.zeros((2, 2), dtype))
    yield ErrorInput("idx_eq_N", dict(ok, idx=np.array([0, 3], I64)), IndexError,
                     r"\b3\b.*out of (range|bounds)|idx holds a row outside X")
    yield ErrorInput("idx_huge", dict(ok, idx=np.array([1 << 40, 0], I64)), IndexError, r"out of (range|bounds)")
    yield ErrorInput("idx_negative", dict(ok, idx=np.array([0, -1], I64)), IndexError,
                     r"-1 out of range|idx holds a row outside X", reference=_REF_NEG)
    # (NumPy's take: "output array does not match result of ndarray.take")
    yield ErrorInput("out_rows", dict(ok, out=np.zeros((3, 2), dtype)), ValueError, SHAPE)
    yield ErrorInput("out_cols", dict(ok, out=np.zeros((2, 3), dtype)), ValueError, SHAPE)
    yield ErrorInput("idx_int32", dict(ok, idx=ok["idx"].astype(np.int32)), (ValueError, TypeError), DTYPE,
                     reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield ErrorInput("out_other_dtype", dict(ok, out=np.zeros((2, 2), _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


#: (1025, 1024): 1,049,600 elements >= FINITE_PAR_MIN, 17 tiles of 2**16 (the last short)
FINITE_SHAPES = [(1, 1), (3, 17), (300, 129), (1025, 1024)]


def _all_finite_samples(dtype, rng):
    big = float(np.finfo(dtype).max) / 2
    for shape in FINITE_SHAPES:
        large = shape[0] * shape[1] >= THRESHOLDS["FINITE_PAR_MIN"]
        # huge finite values: their sum overflows, every element is finite
        X = (rng.uniform(-1.0, 1.0, shape) * big).astype(dtype)
        size = X.size
        yield Sample("%dx%d_finite" % shape, dict(X=X, flag=np.full(1, -1, I64)), large)
        spots = sorted({0, size - 1, min(size - 1, 1 << 16), size // 2})
        for bad in (np.nan, np.inf, -np.inf):
            for spot in (spots if bad != -np.inf else spots[-1:]):
                Y = X.copy()
                Y.reshape(-1)[spot] = bad
                yield Sample("%dx%d_%s_at_%d" % (shape + (bad, spot)), dict(X=Y, flag=np.full(1, -1, I64)),
                             large)


def _all_finite_errors(dtype):
    ok = dict(X=np.ones((3, 2), dtype), flag=np.zeros(1, I64))
    yield ErrorInput("flag_length", dict(ok, flag=np.zeros(2, I64)), ValueError,
                     r"flag has 2 entries|flag must have exactly 1 entry",
                     reference="the reference writes flag[0] (a longer flag cannot be written out of bounds)")
    yield ErrorInput("flag_empty", dict(ok, flag=np.zeros(0, I64)), (ValueError, IndexError),
                     r"flag has 0 entries|out of bounds|index 0|flag must have exactly 1 entry")
    yield ErrorInput("flag_int32", dict(ok, flag=np.zeros(1, np.int32)), (ValueError, TypeError), DTYPE,
                     reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


# ---------------------------------------------------------------------------
# network descriptions (regularize, forward)
# ---------------------------------------------------------------------------
def net(n_in, plan):
    """(layers, P) for layers given as dicts: units, act (code), kind, pieces,
    prelu (bool), bias (bool, default True), l1, l2, bias_l1, bias_l2, act_param."""
    layers = defs.new_layers(len(plan))
    pos, prev = 0, n_in
    for l, d in enumerate(plan):
        kind = d.get("kind", defs.LAYER_DENSE)
        q = d.get("pieces", 1) if kind == defs.LAYER_MAXOUT else 1
        r = layers[l]
        r["n_in"], r["n_out"], r["kind"], r["pieces"] = prev, d["units"], kind, q
        r["act"] = defs.ACT_PRELU if d.get("prelu") else d.get("act", defs.ACT_LINEAR)
        r["w_offset"] = pos
        pos += prev * d["units"] * q
        if d.get("bias", True):
            r["b_offset"] = pos
            pos += d["units"] * q
        if d.get("prelu"):
            r["slopes_offset"] = pos
            pos += d["units"]
        r["act_param"] = d.get("act_param", 0.1)
        for f in defs.REGULARIZER_FIELDS:
            r[f] = d.get(f, 0.0)
        prev = d["units"]
    return layers, pos


def init_params(layers, P, dtype, rng, scale=0.5):
    """Normal weights; PReLU slopes in [-0.2, 0.5) (a negative slope included)."""
    params = _normal(rng, P, dtype, scale)
    for r in layers:
        if r["act"] == defs.ACT_PRELU:
            params[r["slopes_offset"]:r["slopes_offset"] + r["n_out"]] = rng.uniform(-0.2, 0.5, r["n_out"])
    return params


REG_NETS = {
    "dense_mixed": (7, [dict(units=5, act=defs.ACT_TANH, l1=0.01, bias_l2=0.003),
                        dict(units=3, act=defs.ACT_RELU, bias=False, l2=0.02),
                        dict(units=2, l1=0.003, l2=0.004, bias_l1=0.002, bias_l2=0.001)]),
    "maxout_prelu": (6, [dict(units=5, kind=defs.LAYER_MAXOUT, pieces=3, l2=0.01, bias_l1=0.01),
                         dict(units=4, prelu=True, l1=0.02, bias_l2=0.02),
                         dict(units=3)]),
    "zero_coefficients": (4, [dict(units=3, act=defs.ACT_SIGMOID), dict(units=2)]),
    "one_weight": (1, [dict(units=1, l1=0.5, l2=0.25, bias_l1=0.1)]),
    # 200 x 170 = 34,000 weights >= ELEM_PAR_MIN: 9 FLAT_TILE tiles, the last short
    "large": (200, [dict(units=170, act=defs.ACT_RELU, l1=1e-3, l2=1e-2, bias_l1=1e-3, bias_l2=1e-2),
                    dict(units=3, l2=1e-3)]),
}


def _regularize_samples(dtype, rng):
    for name, (n_in, plan) in REG_NETS.items():
        layers, P = net(n_in, plan)
        yield Sample(name, dict(layers=layers, params=_normal(rng, P, dtype), grads=_normal(rng, P, dtype),
                                penalty=_nan(1, F64)), name == "large")
    # an infinite and a NaN weight: sign(inf) = 1, a zero coefficient's term is left
    # out (not 0 * inf = NaN), NaN propagates
    for bad, l1, l2 in ((np.inf, 0.5, 0.0), (-np.inf, 0.0, 0.25), (np.nan, 0.5, 0.25)):
        layers, P = net(3, [dict(units=2, l1=l1, l2=l2)])
        params = _normal(rng, P, dtype)
        params[1] = bad
        yield Sample("weight_%s_l1_%g_l2_%g" % (bad, l1, l2),
                     dict(layers=layers, params=params, grads=_normal(rng, P, dtype), penalty=_nan(1, F64)))


def _validated_message(name):
    return r"^%s: " % name


def _layer_change(layers, row, **fields):
    layers = layers.copy()
    for f, v in fields.items():
        layers[row][f] = v
    return layers


def _regularize_errors(dtype):
    layers, P = net(5, [dict(units=6, act=defs.ACT_RELU, l2=0.01), dict(units=3, l1=0.01)])
    ok = dict(layers=layers, params=np.ones(P, dtype), grads=np.zeros(P, dtype), penalty=np.zeros(1))
    v = _validated_message("regularize")
    yield ErrorInput("layer_outside_params", dict(ok, layers=_layer_change(layers, 1, w_offset=50)), ValueError,
                     v + r"layer 1: kernel \[50, 68\) outside the 57 parameters")
    yield ErrorInput("grads_length", dict(ok, grads=np.zeros(P - 1, dtype)), ValueError,
                     v + "grads must have 57 entries")
    yield ErrorInput("penalty_empty", dict(ok, penalty=np.zeros(0)), ValueError, v + r"grads must have 57 entries .* and penalty at least 1; got 57 and 0")
    yield ErrorInput("penalty_float32", dict(ok, penalty=np.zeros(1, F32)), TypeError,
                     v + "penalty has dtype float32; expected float64")
    yield ErrorInput("grads_other_dtype", dict(ok, grads=np.zeros(P, _other(dtype))), TypeError,
                     v + "grads has dtype %s; expected %s" % (_other(dtype), dtype))
    yield ErrorInput("params_int", dict(ok, params=np.ones(P, I64)), TypeError,
                     v + "params has dtype int64; expected float32 or float64")
    yield ErrorInput("grads_read_only", dict(ok, grads=_read_only(np.zeros(P, dtype))), ValueError,
                     v + "grads is read-only")
    yield ErrorInput("activation_code", dict(ok, layers=_layer_change(layers, 0, act=99)), ValueError,
                     v + "layer 0: unknown activation code 99")
    yield ErrorInput("widths_do_not_chain", dict(ok, layers=_layer_change(layers, 1, n_in=4)), ValueError,
                     v + "layer 1: input width 4 != the output width 6 of layer 0")
    yield ErrorInput("layers_dtype", dict(ok, layers=np.zeros((2, 15), I64)), TypeError,
                     v + "layers has dtype int64; expected defs.LAYER_DTYPE")
    yield ErrorInput("n_threads_zero", dict(ok), ValueError, v + "n_threads must be >= 1; got 0", n_threads=0)


def _read_only(a):
    a.flags.writeable = False
    return a


# ---------------------------------------------------------------------------
# optimizer_update
# ---------------------------------------------------------------------------
#: (id, optimizer, its hyper-parameters by defs.HYPER name, grad_scale)
OPT_CASES = [
    ("none", "none", {"lr": 0.1}, 1.0),
    ("sgd", "sgd", {"lr": 0.1}, 1.0),
    ("sgd_nesterov_decay", "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": 1.0, "weight_decay": 0.01}, 1.0),
    ("sgd_dampening_maximize_scaled", "sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.1,
                                               "maximize": 1.0}, 0.5),
    ("adagrad_decay_clipvalue", "adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "eps": 1e-10,
                                            "initial_accumulator_value": 0.1, "clipvalue": 0.5}, 1.0),
    ("rmsprop", "rmsprop", {"lr": 0.01, "alpha": 0.99, "eps": 1e-8}, 1.0),
    ("rmsprop_centered_momentum_scaled", "rmsprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "momentum": 0.5,
                                                     "centered": 1.0, "weight_decay": 0.01}, 0.25),
    ("adam", "adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, 1.0),
    ("adam_amsgrad_decay_clipvalue", "adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                              "amsgrad": 1.0, "weight_decay": 0.01, "clipvalue": 0.3}, 1.0),
    ("adamw_maximize_scaled", "adamw", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-7,
                                        "weight_decay": 0.05, "maximize": 1.0}, 0.5),
    ("adamw_amsgrad", "adamw", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "amsgrad": 1.0,
                                "weight_decay": 0.01}, 1.0),
]
#: (P, t): one parameter, an odd count, a FLAT_TILE boundary crossed by an odd count,
#: and 33,001 >= ELEM_PAR_MIN (9 tiles, the last short)
OPT_SIZES = [(1, 1), (7, 2), (4099, 5), (33001, 3)]


def optimizer_args(opt_name, hyper_values, grad_scale, t, grads, params, state):
    """optimizer_update's arguments by name, the hyper-parameters set by their
    defs.HYPER names."""
    hyper = np.zeros(defs.NH)
    for name, value in hyper_values.items():
        hyper[defs.HYPER[name]] = value
    return dict(opt=defs.OPT[opt_name], hyper=hyper, grad_scale=float(grad_scale), t=t, grads=grads,
                params=params, state=state)


def _state(rng, opt_name, P, t, dtype, hyper_values):
    """The optimizer state before step t: zeros at t = 1 (Adagrad: its initial
    accumulator), else a plausible one (accumulators > 0, RMSprop's sq > gavg^2,
    Adam's vmax >= v)."""
    state = np.zeros((defs.N_STATE, P))
    if t == 1:
        if opt_name == "adagrad":
            state[0] = hyper_values.get("initial_accumulator_value", 0.0)
    elif opt_name == "sgd":
        state[0] = 0.1 * rng.standard_normal(P)                           # buf
    elif opt_name == "adagrad":
        state[0] = 0.1 * np.abs(rng.standard_normal(P)) + 0.01           # acc
    elif opt_name == "rmsprop":
        state[0] = 0.1 * np.abs(rng.standard_normal(P)) + 0.01           # sq
        state[1] = 0.1 * rng.standard_normal(P)                           # buf
        state[2] = 0.5 * np.sqrt(state[0]) * np.tanh(rng.standard_normal(P))   # gavg
    elif opt_name in ("adam", "adamw"):
        state[0] = 0.1 * rng.standard_normal(P)                           # m
        state[1] = 0.01 * np.abs(rng.standard_normal(P))                  # v
        state[2] = state[1] + 0.001 * np.abs(rng.standard_normal(P))      # vmax
    return state.astype(dtype)


def _optimizer_samples(dtype, rng):
    for cid, opt_name, hv, scale in OPT_CASES:
        for P, t in OPT_SIZES:
            params = _normal(rng, P, dtype)
            grads = _normal(rng, P, dtype)
            state = _state(rng, opt_name, P, t, dtype, hv)
            yield Sample("%s_P%d_t%d" % (cid, P, t),
                         optimizer_args(opt_name, hv, scale, t, grads, params, state),
                         P >= ELEM_PAR_MIN)


def _optimizer_errors(dtype):
    hv = dict(OPT_CASES[7][2], momentum=0.9)      # (SGD and RMSprop read their state)

    def ok(opt_name="adam", P=5, t=3, **change):
        a = optimizer_args(opt_name, hv, 1.0, t, np.ones(P, dtype), np.ones(P, dtype),
                           np.full((defs.N_STATE, P), 0.5, dtype))
        a.update(change)
        return a
    yield ErrorInput("unknown_optimizer", ok(opt=99), ValueError, r"unknown optimizer code")
    yield ErrorInput("negative_optimizer", ok(opt=-1), ValueError, r"unknown optimizer code")
    yield ErrorInput("t_zero", ok(t=0), ValueError, r"t is 1-based",
                     reference="the reference takes its scalars as given (t = 0 divides by "
                               "1 - beta ** 0 = 0 there)")
    yield ErrorInput("hyper_short", ok(hyper=np.zeros(defs.NH - 1)), ValueError, r"hyper must have",
                     reference="the reference reads hyper's slots by their defs.HYPER names "
                               "(a short hyper fails only where a named slot is missing); the "
                               "length check is the compiled kernels' bounds guard")
    for o in ("sgd", "adagrad", "rmsprop", "adam", "adamw"):
        yield ErrorInput("grads_short_" + o, ok(o, grads=np.ones(4, dtype)), ValueError, SHAPE,
                         reference_writes=_REF_WRITES if o == "sgd" else None)
        yield ErrorInput("state_short_" + o, ok(o, state=np.zeros((defs.N_STATE, 4), dtype)), ValueError,
                         SHAPE)
    yield ErrorInput("state_rows_adam", ok(state=np.zeros((1, 5), dtype)), ValueError, SHAPE,
                     reference="the reference indexes the optimizer's state rows (NumPy's IndexError)")
    yield ErrorInput("grads_other_dtype", ok(grads=np.ones(5, _other(dtype))), (ValueError, TypeError), DTYPE,
                     reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield ErrorInput("hyper_model_dtype", ok(hyper=np.zeros(defs.NH, F32)), (ValueError, TypeError), DTYPE,
                     reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: ok())


# ---------------------------------------------------------------------------
# PReLU, Maxout
# ---------------------------------------------------------------------------
#: (n, m): one element, odd widths, more than one COL_TILE (dslope's tiles), and
#: (300, 129) >= ELEM_PAR_MIN with three column tiles
LAYER_SHAPES = [(1, 1), (3, 5), (17, 31), (64, 100), (1, 70)]
LAYER_LARGE = (300, 129)


def _prelu_inputs(rng, n, m, dtype):
    Z = _normal(rng, (n, m), dtype)
    Z.reshape(-1)[::11] = 0.0                      # z = 0 is the negative side (z > 0 is not)
    slope = rng.uniform(-0.2, 0.5, m).astype(dtype)
    return Z, slope


def _prelu_fwd_samples(dtype, rng):
    for n, m in LAYER_SHAPES + [LAYER_LARGE]:
        Z, slope = _prelu_inputs(rng, n, m, dtype)
        yield Sample("n%d_m%d" % (n, m), dict(Z=Z, slope=slope, A=_nan((n, m), dtype)),
                     n > 1 and n * m >= ELEM_PAR_MIN)


def _prelu_bwd_samples(dtype, rng):
    for n, m in LAYER_SHAPES + [LAYER_LARGE]:
        Z, slope = _prelu_inputs(rng, n, m, dtype)
        yield Sample("n%d_m%d" % (n, m), dict(Z=Z, dA=_normal(rng, (n, m), dtype), slope=slope,
                                              dslope=_nan(m, dtype), dZ=_nan((n, m), dtype)),
                     n * m >= ELEM_PAR_MIN and m > THRESHOLDS["COL_TILE"])


def _prelu_fwd_errors(dtype):
    ok = dict(Z=np.ones((2, 3), dtype), slope=np.ones(3, dtype), A=np.zeros((2, 3), dtype))
    yield ErrorInput("slope_length", dict(ok, slope=np.ones(2, dtype)), ValueError, SHAPE)
    yield ErrorInput("A_shape", dict(ok, A=np.zeros((3, 3), dtype)), ValueError, SHAPE)
    yield ErrorInput("slope_other_dtype", dict(ok, slope=np.ones(3, _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


def _prelu_bwd_errors(dtype):
    z = np.ones((2, 3), dtype)
    ok = dict(Z=z, dA=z, slope=np.ones(3, dtype), dslope=np.zeros(3, dtype), dZ=np.zeros((2, 3), dtype))
    yield ErrorInput("dA_shape", dict(ok, dA=np.ones((2, 4), dtype)), ValueError, SHAPE)
    yield ErrorInput("slope_length", dict(ok, slope=np.ones(4, dtype)), ValueError, SHAPE)
    yield ErrorInput("dslope_length", dict(ok, dslope=np.zeros(2, dtype)), ValueError, SHAPE)
    yield ErrorInput("dZ_shape", dict(ok, dZ=np.zeros((1, 3), dtype)), ValueError, SHAPE)
    yield ErrorInput("dslope_other_dtype", dict(ok, dslope=np.zeros(3, _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


MAXOUT_SHAPES = [(1, 1, 1), (3, 5, 2), (17, 31, 5), (64, 100, 2), (5, 7, 1)]
MAXOUT_LARGE = (257, 43, 3)       # 257 x 129 >= ELEM_PAR_MIN


def _maxout_z(rng, n, m, q, dtype):
    return rng.integers(-4, 5, (n, m * q)).astype(dtype)        # many ties: the first piece wins


def _maxout_fwd_samples(dtype, rng):
    for n, m, q in MAXOUT_SHAPES + [MAXOUT_LARGE]:
        yield Sample("n%d_m%d_q%d" % (n, m, q), dict(Z=_maxout_z(rng, n, m, q, dtype), pieces=q,
                                                     A=_nan((n, m), dtype)),
                     n > 1 and n * m * q >= ELEM_PAR_MIN)
    Z = np.array([[np.nan, 1.0, 2.0, np.nan, -np.inf, -np.inf, np.inf, np.nan]], dtype)
    yield Sample("nonfinite_q2", dict(Z=Z, pieces=2, A=_nan((1, 4), dtype)))


def _maxout_bwd_samples(dtype, rng):
    for n, m, q in MAXOUT_SHAPES + [MAXOUT_LARGE]:
        yield Sample("n%d_m%d_q%d" % (n, m, q), dict(Z=_maxout_z(rng, n, m, q, dtype),
                                                     dA=_normal(rng, (n, m), dtype), pieces=q,
                                                     dZ=_nan((n, m * q), dtype)),
                     n > 1 and n * m * q >= ELEM_PAR_MIN)
    Z = np.array([[np.nan, 1.0, 2.0, np.nan, -np.inf, -np.inf, np.inf, np.nan]], dtype)
    yield Sample("nonfinite_q2", dict(Z=Z, dA=np.array([[1.0, 2.0, 3.0, 4.0]], dtype), pieces=2,
                                      dZ=_nan((1, 8), dtype)))


_REF_PIECES = "the reference reshapes Z by the pieces (NumPy's own error for pieces = 0)"


def _maxout_fwd_errors(dtype):
    ok = dict(Z=np.ones((2, 6), dtype), pieces=3, A=np.zeros((2, 2), dtype))
    yield ErrorInput("pieces_zero", dict(ok, pieces=0), ValueError, r"pieces|" + SHAPE)
    yield ErrorInput("Z_width", dict(ok, pieces=2), ValueError, SHAPE)
    yield ErrorInput("A_rows", dict(ok, A=np.zeros((3, 2), dtype)), ValueError, SHAPE)
    yield ErrorInput("A_other_dtype", dict(ok, A=np.zeros((2, 2), _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


def _maxout_bwd_errors(dtype):
    ok = dict(Z=np.ones((2, 6), dtype), dA=np.ones((2, 2), dtype), pieces=3, dZ=np.zeros((2, 6), dtype))
    yield ErrorInput("pieces_zero", dict(ok, pieces=0), ValueError, r"pieces|" + SHAPE)
    yield ErrorInput("Z_width", dict(ok, Z=np.ones((2, 5), dtype)), ValueError, SHAPE)
    yield ErrorInput("dZ_shape", dict(ok, dZ=np.zeros((2, 5), dtype)), ValueError, SHAPE)
    yield ErrorInput("dA_other_dtype", dict(ok, dA=np.ones((2, 2), _other(dtype))), (ValueError, TypeError),
                     DTYPE, reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


# ---------------------------------------------------------------------------
# meProp: topk_rows, matmul_tn_sparse, matmul_nt_sparse
# ---------------------------------------------------------------------------
TOPK_SHAPES = [(1, 1), (3, 5), (17, 31), (64, 100), (2, 130)]
#: rows full of ties, ties straddling the k-th place, zeros, +-inf and NaN (an
#: infinite magnitude), subnormal-sized values
TIE_ROWS = [
    [1.0] * 12,
    [-2.0, 2.0, -2.0, 2.0, 2.0, -2.0, 2.0, -2.0, 2.0, 2.0, -2.0, 2.0],
    [0.0] * 12,
    [3.0, 1.0, -1.0, 1.0, 0.5, -1.0, 3.0, 1.0, -1.0, 0.0, 1.0, -3.0],
    [np.inf, -np.inf, np.nan, 1.0, np.inf, 1.0, -1.0, np.nan, 2.0, 2.0, 1.0, 0.0],
    [-0.0, 0.0, 1e-30, -1e-30, 1e-30, 0.0, 5.0, 5.0, 5.0, 1e-30, -0.0, 0.0],
]


def _topk_samples(dtype, rng):
    for n, m in TOPK_SHAPES:
        for k in sorted({max(1, int(round(frac * m))) for frac in (0.05, 0.3, 1.0)}):
            D = _normal(rng, (n, m), dtype)
            D[:, ::3] = np.round(D[:, ::3])                     # some ties
            yield Sample("n%d_m%d_k%d" % (n, m, k), dict(D=D, k=k, idx=np.full((n, k), -1, I64)))
    for k in (1, 3, 6, 11, 12):
        yield Sample("ties_k%d" % k, dict(D=np.array(TIE_ROWS, dtype), k=k, idx=np.full((6, k), -1, I64)))
    # rows of ties past the parallel threshold: 64 x 2100 >= ELEM_PAR_MIN
    D = np.tile(np.array([1.0, -1.0, 0.5], dtype), (64, 700))
    for k in (1, 1401, 2100):
        yield Sample("large_ties_k%d" % k, dict(D=D.copy(), k=k, idx=np.full((64, k), -1, I64)), True)
    D = _normal(rng, (300, 129), dtype)
    yield Sample("large_n300_m129_k40", dict(D=D, k=40, idx=np.full((300, 40), -1, I64)), True)
    # the Cython twin's radix select on the magnitudes' bits: ties, zeros, -0.0, NaN,
    # +-inf, magnitudes from 1e-30 to 1e30, nearly equal ones (200 x 301 >= ELEM_PAR_MIN)
    D = rng.integers(-2, 3, (200, 301)).astype(dtype)
    D[:, 5] = np.inf
    D[::3, 17] = np.nan
    D[1::3, 18] = -np.inf
    D[::2, 100:200] = 0
    D[::5, 200] = -0.0
    with np.errstate(over="ignore", under="ignore"):
        D[:, 210:260] = (rng.standard_normal((200, 50)) * 10.0 ** rng.integers(-30, 30, (200, 50))).astype(dtype)
    D[:, 260:270] = D[:, 210:220] * np.float32(1 + 2 ** -20)
    for k in (1, 3, 150, 301):
        yield Sample("radix_k%d" % k, dict(D=D.copy(), k=k, idx=np.full((200, k), -1, I64)), True)


def _topk_errors(dtype):
    ok = dict(D=np.ones((2, 5), dtype), k=2, idx=np.zeros((2, 2), I64))
    yield ErrorInput("k_zero", dict(ok, k=0, idx=np.zeros((2, 0), I64)), ValueError, r"1 <= k",
                     reference="the reference keeps argsort's first k = 0 columns (the contract's "
                               "1 <= k <= m is the compiled kernels' bounds guard)")
    yield ErrorInput("k_past_m", dict(ok, k=6, idx=np.zeros((2, 6), I64)), ValueError, r"1 <= k|" + SHAPE)
    yield ErrorInput("idx_shape", dict(ok, idx=np.zeros((2, 3), I64)), ValueError, SHAPE)
    yield ErrorInput("idx_rows", dict(ok, idx=np.zeros((1, 2), I64)), ValueError, SHAPE)
    yield ErrorInput("idx_int32", dict(ok, idx=np.zeros((2, 2), np.int32)), (ValueError, TypeError), DTYPE,
                     reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
    yield _threads_error(lambda: dict(ok))


def _kept(rng, D, k):
    """idx of k distinct columns per row, increasing (not necessarily the largest)."""
    n, m = D.shape
    return np.sort(np.argsort(rng.random((n, m)), axis=1)[:, :k], axis=1).astype(I64)


#: (n, k_in, m, k): one row and column, odd widths, every column kept (k = m),
#: and over MATMUL_PAR_MIN (n k k_in + k_in m) with several column tiles
SPARSE_SHAPES = [(1, 3, 1, 1), (3, 23, 5, 2), (17, 23, 31, 9), (64, 23, 100, 30), (33, 67, 131, 40),
                 (5, 7, 6, 6)]
SPARSE_LARGE = [(256, 72, 300, 64)]


def _sparse_samples(form):
    def samples(dtype, rng):
        for n, k_in, m, k in SPARSE_SHAPES + SPARSE_LARGE:
            D = rng.integers(-3, 4, (n, m)).astype(dtype) * _normal(rng, (n, m), dtype)
            idx = _kept(rng, D, k)
            if form == "matmul_tn_sparse":
                # the contract's precondition: row i of D is nonzero only at idx[i]
                keep = np.zeros(D.shape, bool)
                np.put_along_axis(keep, idx, True, axis=1)
                D[~keep] = 0
                args = dict(A=_normal(rng, (n, k_in), dtype), D=D, idx=idx, C=_nan((k_in, m), dtype))
            else:
                # only the columns idx[i] are read: the others hold values that must not count
                args = dict(D=D, idx=idx, B=_normal(rng, (k_in, m), dtype), C=_nan((n, k_in), dtype))
            yield Sample("n%d_kin%d_m%d_k%d" % (n, k_in, m, k), args,
                         n * k * k_in + k_in * m >= MATMUL_PAR_MIN)
    return samples


def _sparse_errors(form):
    def errors(dtype):
        n, k_in, m = 3, 4, 5
        idx = np.array([[0, 4], [1, 2], [3, 4]], I64)
        if form == "matmul_tn_sparse":
            ok = dict(A=np.ones((n, k_in), dtype), D=np.ones((n, m), dtype), idx=idx, C=np.zeros((k_in, m), dtype))
            shapes = [("A_rows", dict(A=np.ones((n + 1, k_in), dtype))),
                      ("C_shape", dict(C=np.zeros((k_in, m + 1), dtype)))]
            other = ("A_other_dtype", dict(A=np.ones((n, k_in), _other(dtype))))
        else:
            ok = dict(D=np.ones((n, m), dtype), idx=idx, B=np.ones((k_in, m), dtype), C=np.zeros((n, k_in), dtype))
            shapes = [("B_cols", dict(B=np.ones((k_in, m + 1), dtype))),
                      ("C_shape", dict(C=np.zeros((n, k_in + 1), dtype)))]
            other = ("B_other_dtype", dict(B=np.ones((k_in, m), _other(dtype))))
        ref_idx = ("the reference gathers D at idx with NumPy (its own IndexError, or a wrapped "
                   "negative index); the range check is the compiled kernels' bounds guard")
        for cid, bad in (("idx_eq_m", 5), ("idx_negative", -1)):
            i2 = idx.copy()
            i2[1, 1] = bad
            yield ErrorInput(cid, dict(ok, idx=i2), IndexError, r"idx\[1, 1\] = %d out of range|idx holds a column"
                             % bad, reference=ref_idx)
        yield ErrorInput("idx_rows", dict(ok, idx=idx[:2].copy()), ValueError, SHAPE,
                         reference="the reference gathers D at idx by fancy indexing (NumPy's "
                                   "IndexError for the mismatched rows)")
        for cid, change in shapes:
            yield ErrorInput(cid, dict(ok, **change), ValueError, SHAPE)
        yield ErrorInput(other[0], dict(ok, **other[1]), (ValueError, TypeError), DTYPE,
                         reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
        yield ErrorInput("idx_int32", dict(ok, idx=idx.astype(np.int32)), (ValueError, TypeError), DTYPE,
                         reference=_REF_DTYPE, bugs={"numba": _NUMBA_MIXED})
        yield _threads_error(lambda: dict(ok))
    return errors


# ---------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------
#: (n_in, layers) of nets of Dense layers of every activation, a Maxout and a PReLU
#: layer, with and without bias; "wide" is past every parallel threshold at 300 rows
FORWARD_NETS = {
    "one_unit": (5, [dict(units=1)]),
    "sigmoid_tanh_relu": (3, [dict(units=17, act=defs.ACT_SIGMOID), dict(units=9, act=defs.ACT_TANH, bias=False),
                              dict(units=3, act=defs.ACT_RELU)]),
    "leaky_relu6_elu_swish": (31, [dict(units=17, act=defs.ACT_LEAKY_RELU, act_param=0.2),
                                   dict(units=31, act=defs.ACT_RELU6), dict(units=10, act=defs.ACT_ELU, act_param=0.7),
                                   dict(units=4, act=defs.ACT_SWISH)]),
    "gelu_softplus_softsign_softmax": (8, [dict(units=16, act=defs.ACT_GELU), dict(units=16, act=defs.ACT_SOFTPLUS),
                                           dict(units=7, act=defs.ACT_SOFTSIGN, bias=False),
                                           dict(units=4, act=defs.ACT_SOFTMAX)]),
    "selu_hard_sigmoid_gelu_tanh_step": (6, [dict(units=9, act=defs.ACT_SELU), dict(units=7, act=defs.ACT_HARD_SIGMOID),
                                             dict(units=5, act=defs.ACT_GELU_TANH), dict(units=2, act=defs.ACT_STEP)]),
    "maxout": (6, [dict(units=5, kind=defs.LAYER_MAXOUT, pieces=3), dict(units=4, act=defs.ACT_TANH),
                   dict(units=3, act=defs.ACT_SOFTMAX)]),
    "prelu": (6, [dict(units=5, prelu=True), dict(units=4, prelu=True, bias=False), dict(units=3)]),
    "wide_input": (784, [dict(units=30, act=defs.ACT_SIGMOID), dict(units=10, act=defs.ACT_SOFTMAX)]),
    "maxout_prelu_nobias": (5, [dict(units=4, kind=defs.LAYER_MAXOUT, pieces=2, bias=False),
                                dict(units=6, prelu=True), dict(units=3, act=defs.ACT_SIGMOID)]),
    # 300 rows: 300 x 64 x 128 multiply-adds >= MATMUL_PAR_MIN, 300 x 128 >= ELEM_PAR_MIN
    "wide": (64, [dict(units=128, act=defs.ACT_RELU), dict(units=40, kind=defs.LAYER_MAXOUT, pieces=3),
                  dict(units=110, prelu=True), dict(units=10, act=defs.ACT_SOFTMAX)]),
}
FORWARD_ROWS = [1, 3, 17]


def _forward_args(layers, P, n, rng, dtype):
    n_in = int(layers[0]["n_in"])
    return dict(X=_normal(rng, (n, n_in), dtype), layers=layers, params=init_params(layers, P, dtype, rng),
                work=_nan(_api.forward_workspace_size(layers, n), dtype),
                out=_nan((n, int(layers[-1]["n_out"])), dtype))


def _forward_samples(dtype, rng):
    for name, (n_in, plan) in FORWARD_NETS.items():
        layers, P = net(n_in, plan)
        for n in FORWARD_ROWS + ([300] if name == "wide" else []):
            yield Sample("%s_n%d" % (name, n), _forward_args(layers, P, n, rng, dtype), n == 300)


def _forward_errors(dtype):
    layers, P = net(5, [dict(units=6, act=defs.ACT_RELU), dict(units=3)])
    N, K = 40, 3
    ok = _forward_args(layers, P, N, np.random.default_rng(1), dtype)
    work = ok["work"].shape[0]
    v = _validated_message("forward")

    def wide(a):
        w = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        w[..., ::2] = a
        return w[..., ::2]

    last_prelu = _layer_change(layers, 1, act=defs.ACT_PRELU, slopes_offset=0)
    maxout_last = _layer_change(layers, 1, kind=defs.LAYER_MAXOUT, pieces=1)
    yield ErrorInput("X_width", dict(ok, X=np.ascontiguousarray(ok["X"][:, 1:])), ValueError,
                     v + "X has 4 columns, the network takes 5")
    yield ErrorInput("out_shape", dict(ok, out=np.empty((N - 1, K), dtype)), ValueError,
                     v + r"out has shape \(39, 3\), expected \(40, 3\)")
    yield ErrorInput("work_short", dict(ok, work=ok["work"][:-1].copy()), ValueError,
                     v + "work has %d elements, forward_workspace_size gives %d" % (work - 1, work))
    yield ErrorInput("params_other_dtype", dict(ok, params=ok["params"].astype(_other(dtype))), TypeError,
                     v + "params has dtype %s; expected %s" % (_other(dtype), dtype))
    yield ErrorInput("X_int", dict(ok, X=ok["X"].astype(I64)), TypeError,
                     v + "X has dtype int64; expected float32 or float64")
    yield ErrorInput("X_not_contiguous", dict(ok, X=wide(ok["X"])), ValueError, v + "X must be C-contiguous")
    yield ErrorInput("out_read_only", dict(ok, out=_read_only(ok["out"].copy())), ValueError, v + "out is read-only")
    yield ErrorInput("layer_kind", dict(ok, layers=_layer_change(layers, 1, kind=-1)), ValueError,
                     v + "layer 1: unknown layer kind -1")
    yield ErrorInput("activation_code", dict(ok, layers=_layer_change(layers, 0, act=99)), ValueError,
                     v + "layer 0: unknown activation code 99")
    yield ErrorInput("prelu_last_layer", dict(ok, layers=last_prelu), ValueError,
                     v + "the last layer cannot be PReLU")
    yield ErrorInput("maxout_last_layer", dict(ok, layers=maxout_last), ValueError,
                     v + "the last layer cannot be Maxout")
    yield ErrorInput("maxout_pieces", dict(ok, layers=_layer_change(layers, 0, kind=defs.LAYER_MAXOUT, act=defs.ACT_LINEAR, pieces=0)),
                     ValueError, v + "layer 0: Maxout needs pieces >= 1")
    yield ErrorInput("bias_outside_params", dict(ok, layers=_layer_change(layers, 1, b_offset=P - 1)), ValueError,
                     v + "layer 1: bias offset %d invalid" % (P - 1))
    yield ErrorInput("prelu_slopes_outside_params",
                     dict(ok, layers=_layer_change(layers, 0, act=defs.ACT_PRELU, slopes_offset=P - 2)),
                     ValueError, v + r"layer 0: PReLU slopes \[%d, %d\) outside" % (P - 2, P + 4))
    yield ErrorInput("widths_do_not_chain", dict(ok, layers=_layer_change(layers, 1, n_in=4)), ValueError,
                     v + "layer 1: input width 4 != the output width 6 of layer 0")
    yield ErrorInput("layers_empty", dict(ok, layers=layers[:0].copy()), ValueError,
                     v + r"layers must have shape \(L,\) with L >= 1")
    yield ErrorInput("layers_list", dict(ok, layers=[1, 2]), TypeError, v + "layers must be a numpy array")
    yield ErrorInput("n_threads_zero", dict(ok), ValueError, v + "n_threads must be >= 1", n_threads=0)


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
def _cython_matmul_baseline():
    """Why the twins' products may differ here: the Cython matmul runs its SSE2
    kernel (no FMA; tests/test_twins.py: EXCEPTIONS), else None."""
    try:
        from fastnet._kernels.cython import matmul
    except ImportError:
        return None
    if matmul.isa()["isa"] == "baseline":
        return ("the Cython matmul runs its baseline SSE2 kernel (multiply, then add) "
                "where numba fuses: tests/test_twins.py EXCEPTIONS['cython-matmul-baseline']")
    return None


_MM_TWINS = ("both sum p in order with one fused multiply-add per step (docs/ARCHITECTURE.md; "
             "tests/test_numba_backend.py: test_matmul_bits_equal_the_cython_twins)")

KERNEL_TABLE = [
    KernelInfo("matmul", _mm_samples("matmul"), _mm_errors("matmul"), twins_reason=_MM_TWINS,
               twins_unless=_cython_matmul_baseline),
    KernelInfo("matmul_tn", _mm_samples("matmul_tn"), _mm_errors("matmul_tn"), twins_reason=_MM_TWINS,
               twins_unless=_cython_matmul_baseline),
    KernelInfo("matmul_nt", _mm_samples("matmul_nt"), _mm_errors("matmul_nt"), twins_reason=_MM_TWINS,
               twins_unless=_cython_matmul_baseline),
    KernelInfo("bias_act_forward", _act_samples, _act_errors, aliases=(("A", "Z"),),
               known_bugs=(KnownBug("twins", "relu6_edges",
                                    "relu6 of z = -0.0: the Cython twin gives +0.0 (C's fmax(-0.0, 0.0)), "
                                    "numba and the reference -0.0: equal values, other bits"),)),
    KernelInfo("act_backward", _act_backward_samples, _act_backward_errors, aliases=(("dZ", "dA"),)),
    KernelInfo("softmax_xent", _softmax_samples, _softmax_errors),
    KernelInfo("sigmoid_bce", _sigmoid_samples, _sigmoid_errors),
    KernelInfo("mse", _regression_samples("mse"), _regression_errors),
    KernelInfo("mae", _regression_samples("mae"), _regression_errors),
    KernelInfo("bias_grad", _bias_grad_samples, _bias_grad_errors),
    KernelInfo("gather_rows", _gather_samples, _gather_errors),
    KernelInfo("all_finite", _all_finite_samples, _all_finite_errors),
    KernelInfo("regularize", _regularize_samples, _regularize_errors),
    KernelInfo("optimizer_update", _optimizer_samples, _optimizer_errors),
    KernelInfo("prelu_forward", _prelu_fwd_samples, _prelu_fwd_errors, aliases=(("A", "Z"),)),
    KernelInfo("prelu_backward", _prelu_bwd_samples, _prelu_bwd_errors, aliases=(("dZ", "dA"),)),
    KernelInfo("maxout_forward", _maxout_fwd_samples, _maxout_fwd_errors),
    KernelInfo("maxout_backward", _maxout_bwd_samples, _maxout_bwd_errors),
    KernelInfo("topk_rows", _topk_samples, _topk_errors),
    KernelInfo("matmul_tn_sparse", _sparse_samples("matmul_tn_sparse"), _sparse_errors("matmul_tn_sparse")),
    KernelInfo("matmul_nt_sparse", _sparse_samples("matmul_nt_sparse"), _sparse_errors("matmul_nt_sparse")),
    KernelInfo("forward", _forward_samples, _forward_errors, scratch=("work",), twins_reason=_MM_TWINS,
               twins_unless=_cython_matmul_baseline),
    # -----------------------------------------------------------------------
    # train_batches: its entry goes HERE once its redesign lands (then drop it
    # from EXCLUDED below).  The entry type fits it as it is: samples hold every
    # argument by name, the optional keyword ``diag`` included (a length-0 array
    # = off); ``scratch=("work",)``; ``call=`` may run an epoch in chunks of
    # batches (first_batch / n_batches / t0 following the chunk, batch_loss
    # sliced), so every generic test (reference parity, threads, twins,
    # read-only inputs, rejected calls leaving params / grads / state untouched)
    # applies unchanged.
    # -----------------------------------------------------------------------
]
TABLE = {entry.name: entry for entry in KERNEL_TABLE}

#: The one list of contract kernels without an entry, each with its reason.
EXCLUDED = {
    "train_batches": "its arguments are being redesigned; its entry is added at the marked "
                     "place in KERNEL_TABLE",
}


def error_input(entry, dtype, case_id):
    """The error input ``case_id`` of ``entry`` (fresh arrays)."""
    for case in entry.error_inputs(np.dtype(dtype)):
        if case.id == case_id:
            return case
    raise KeyError(case_id)


def read_threshold_sources(root):
    """{name: value} of the thresholds in THRESHOLDS as the kernel sources define
    them (None where the source tree is not there), for the test that keeps the
    table in step with them."""
    found = {}
    for path in ("kernels/cython/_types.pxd", "kernels/cython/reduce.pyx", "kernels/cython/matmul.pyx",
                 "kernels/numba/_jit.py"):
        full = os.path.join(root, path)
        if not os.path.exists(full):
            return None
        text = open(full).read()
        for name in THRESHOLDS:
            for m in re.finditer(r"^\s*%s\s*=\s*(1\s*<<\s*\d+|\d+)" % name, text, re.M):
                found.setdefault(name, set()).add((path, eval(m.group(1))))  # noqa: S307 - a literal
    return found
