# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Reductions and data movement (Cython twin of kernels/numba/reduce.py).

    bias_grad     db = column sums of dZ (rows summed in order)
    gather_rows   out[r] = X[idx[r]]
    all_finite    flag[0] = 1 if every element of X is finite
    regularize    L1 / L2 penalty of the kernels and its gradient

Parallel loops run over fixed tiles of the OUTPUT (columns of db, rows of out,
FLAT_TILE-element tiles of a kernel W); the penalty is summed per tile in order,
then over tiles in order, so it does not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memcpy

import numpy as np
cimport numpy as cnp

from ._types cimport ELEM_PAR_MIN, FLAT_TILE, COL_TILE
from ._generated_layer cimport layer_t
from ._generated_elementwise cimport reg_span_c, col_sums_c

from fastnet._kernels import defs

cnp.import_array()

# codes, read from the one table at import
cdef int64_t LAYER_MAXOUT = defs.LAYER_MAXOUT
cdef object LAYER_DTYPE = defs.LAYER_DTYPE
cdef int64_t ACT_PRELU = defs.ACT_PRELU


cdef inline Py_ssize_t kernel_size(const layer_t* row) noexcept nogil:
    """Entries of a layer's W: in * out, times the pieces for Maxout."""
    cdef Py_ssize_t size = row.n_in * row.n_out
    if row.kind == LAYER_MAXOUT and row.pieces > 1:
        size = size * row.pieces
    return size


cdef inline Py_ssize_t _cdiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


# ---------------------------------------------------------------------------
# cdef entry points (declared in reduce.pxd)
# ---------------------------------------------------------------------------
cdef inline void _col_sums(const floating* dZ, floating* db, Py_ssize_t n, Py_ssize_t m,
                           Py_ssize_t jn) noexcept nogil:
    """db[0:jn] = sum_i dZ[i*m + 0:jn], rows in order (jn <= COL_TILE), in this CPU's
    vector loop, not the baseline build's SSE2 one (bench/REPORT.md's bias_grad rows)."""
    col_sums_c(dZ, db, n, m, jn)


cdef void bias_grad_c(const floating* dZ, floating* db, Py_ssize_t n, Py_ssize_t m,
                      int n_threads) noexcept nogil:
    cdef Py_ssize_t ntiles = _cdiv(m, COL_TILE)
    cdef Py_ssize_t t
    # below the thresholds no OpenMP region at all (libgomp charges even for a disabled one)
    if ntiles > 1 and n * m >= ELEM_PAR_MIN:
        for t in prange(ntiles, schedule='static', num_threads=n_threads):
            _col_sums(dZ + t * COL_TILE, db + t * COL_TILE, n, m,
                      min(<Py_ssize_t> COL_TILE, m - t * COL_TILE))
    else:
        for t in range(ntiles):
            _col_sums(dZ + t * COL_TILE, db + t * COL_TILE, n, m,
                      min(<Py_ssize_t> COL_TILE, m - t * COL_TILE))


cdef void gather_rows_c(const floating* X, const int64_t* idx, floating* out,
                        Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil:
    cdef Py_ssize_t r
    if n > 1 and n * m >= ELEM_PAR_MIN:
        for r in prange(n, schedule='static', num_threads=n_threads):
            memcpy(out + r * m, X + idx[r] * m, m * sizeof(floating))
    else:
        for r in range(n):
            memcpy(out + r * m, X + idx[r] * m, m * sizeof(floating))


cdef enum:
    # all_finite: elements per tile, and parallel from this many elements
    FINITE_TILE = 1 << 16
    FINITE_PAR_MIN = 1 << 20


cdef inline int _finite_span(const floating* x, Py_ssize_t n) noexcept nogil:
    """1 if x[0:n] is all finite: x - x is 0 for finite x, NaN for NaN and +-inf
    (blocks of 256 without an exit inside, so gcc vectorises the test)."""
    cdef Py_ssize_t i, i0
    cdef int ok = 1
    for i0 in range(0, n, 256):
        for i in range(i0, min(i0 + 256, n)):
            ok = ok & (x[i] - x[i] == 0)
        if not ok:
            return 0
    return 1


cdef int all_finite_c(const floating* x, Py_ssize_t size, int n_threads) noexcept nogil:
    cdef Py_ssize_t t, ntiles = _cdiv(size, FINITE_TILE)
    cdef int ok = 1
    if ntiles > 1 and size >= FINITE_PAR_MIN:
        for t in prange(ntiles, schedule='static', num_threads=n_threads):
            ok &= _finite_span(x + t * FINITE_TILE, min(<Py_ssize_t> FINITE_TILE,
                                                        size - t * FINITE_TILE))
    else:
        ok = _finite_span(x, size)
    return ok


cdef Py_ssize_t regularize_scratch(const layer_t* layers, Py_ssize_t L) noexcept nogil:
    cdef Py_ssize_t l, size = 0
    for l in range(L):
        size = max(size, kernel_size(layers + l))
    return 2 * _cdiv(size, FLAT_TILE) + 2


cdef inline void _reg_tile(const floating* W, floating* G, Py_ssize_t t, Py_ssize_t size,
                           double l1, double l2, double* scratch) noexcept nogil:
    """Tile t of one kernel: G += l1 sign(W) + 2 l2 W; its sum |w|, sum w^2 to scratch
    (the element loop: _generated_elementwise.reg_span_c, vectorised per ISA).
    A zero coefficient's term is left out (not added as 0 * inf = NaN for an
    infinite weight), as in the numba twin and the reference."""
    cdef Py_ssize_t e0 = t * FLAT_TILE, e1 = min(t * FLAT_TILE + FLAT_TILE, size)
    reg_span_c(W + e0, G + e0, e1 - e0, l1, l2, &scratch[2 * t])


cdef inline double _penalty(double l1, double s1, double l2, double s2) noexcept nogil:
    """l1 s1 + l2 s2 without the term of a zero coefficient (0 * inf would be NaN)."""
    if l2 == 0.0:
        return l1 * s1
    if l1 == 0.0:
        return l2 * s2
    return l1 * s1 + l2 * s2


cdef double _reg_range(const floating* W, floating* G, Py_ssize_t size, double l1, double l2,
                       double* scratch, int n_threads) noexcept nogil:
    """G += l1 sign(W) + 2 l2 W over one weight array; returns its penalty."""
    cdef Py_ssize_t ntiles = _cdiv(size, FLAT_TILE), t
    cdef double s1 = 0.0, s2 = 0.0
    if ntiles > 1 and size >= ELEM_PAR_MIN:
        for t in prange(ntiles, schedule='static', num_threads=n_threads):
            _reg_tile(W, G, t, size, l1, l2, scratch)
    else:
        for t in range(ntiles):
            _reg_tile(W, G, t, size, l1, l2, scratch)
    for t in range(ntiles):
        s1 = s1 + scratch[2 * t]
        s2 = s2 + scratch[2 * t + 1]
    return _penalty(l1, s1, l2, s2)


cdef double regularize_c(const layer_t* layers, Py_ssize_t L, const floating* params,
                         floating* grads, double* scratch, int n_threads) noexcept nogil:
    cdef Py_ssize_t l, w0, b0
    cdef double l1, l2, total = 0.0
    for l in range(L):
        l1 = layers[l].l1
        l2 = layers[l].l2
        if l1 != 0.0 or l2 != 0.0:
            w0 = layers[l].w_offset
            total = total + _reg_range(params + w0, grads + w0, kernel_size(layers + l),
                                       l1, l2, scratch, n_threads)
        # the bias (Keras's bias_regularizer): its own coefficients, its own sums
        l1 = layers[l].bias_l1
        l2 = layers[l].bias_l2
        b0 = layers[l].b_offset
        if (l1 != 0.0 or l2 != 0.0) and b0 >= 0:
            total = total + _reg_range(params + b0, grads + b0,
                                       kernel_size(layers + l) // layers[l].n_in,
                                       l1, l2, scratch, n_threads)
    return total


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
def bias_grad(const floating[:, ::1] dZ,  # IN (n, m)
              floating[::1] db,           # OUT (m,)
              int n_threads):
    """db[j] = sum_i dZ[i, j], rows summed in order."""
    cdef Py_ssize_t n = dZ.shape[0], m = dZ.shape[1]
    if db.shape[0] != m:
        raise ValueError("bias_grad: db has %d entries, expected %d" % (db.shape[0], m))
    with nogil:
        bias_grad_c(&dZ[0, 0], &db[0], n, m, max(n_threads, 1))


def all_finite(const floating[:, ::1] X,      # IN (n, m)
               int64_t[::1] flag,              # OUT (1,)
               int n_threads):
    """flag[0] = 1 if every element of X is finite, else 0."""
    if flag.shape[0] != 1:
        raise ValueError("all_finite: flag has %d entries, expected 1" % flag.shape[0])
    if X.shape[0] == 0 or X.shape[1] == 0:
        flag[0] = 1
        return
    with nogil:
        flag[0] = all_finite_c(&X[0, 0], X.shape[0] * X.shape[1], n_threads)


def gather_rows(const floating[:, ::1] X,     # IN (N, m)
                const int64_t[::1] idx,       # IN (n,) int64
                floating[:, ::1] out,         # OUT (n, m)
                int n_threads):
    """out[r] = X[idx[r]]."""
    cdef Py_ssize_t N = X.shape[0], m = X.shape[1], n = idx.shape[0], r
    if out.shape[0] != n or out.shape[1] != m:
        raise ValueError("gather_rows: out has shape (%d, %d), expected (%d, %d)"
                         % (out.shape[0], out.shape[1], n, m))
    for r in range(n):
        if idx[r] < 0 or idx[r] >= N:
            raise IndexError("gather_rows: index %d out of range [0, %d)" % (idx[r], N))
    with nogil:
        gather_rows_c(&X[0, 0], &idx[0], &out[0, 0], n, m, max(n_threads, 1))


cdef const layer_t* records(object table, Py_ssize_t* L) except NULL:
    """The records of ``table`` (a 1-D, C-contiguous, non-empty array of
    defs.LAYER_DTYPE) as a pointer, their count in L[0].  Not a typed memoryview:
    a struct buffer's format string is built and parsed on every call, which the
    batch-1 predict feels (bench/REPORT.md, predict batch 1; commit 3738674)."""
    if not isinstance(table, np.ndarray):
        raise TypeError("layers must be a numpy array of defs.LAYER_DTYPE records; got %s"
                        % type(table).__name__)
    cdef cnp.ndarray a = <cnp.ndarray> table
    cdef object dt = <object> cnp.PyArray_DESCR(a)
    if dt is not LAYER_DTYPE and dt != LAYER_DTYPE:
        raise TypeError("layers has dtype %s; expected defs.LAYER_DTYPE" % (dt,))
    if cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_DIMS(a)[0] < 1:
        raise ValueError("layers must have shape (L,) with L >= 1; got %s" % (table.shape,))
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError("layers must be C-contiguous")
    L[0] = cnp.PyArray_DIMS(a)[0]
    return <const layer_t*> cnp.PyArray_DATA(a)


def check_layers(object layers, Py_ssize_t P):
    """Validate a layer table against a parameter buffer of P elements (raises
    ValueError / TypeError); the compiled kernels trust a checked table."""
    cdef Py_ssize_t L, l, n_in, n_out, w, b, zw, ap
    cdef const layer_t* net = records(layers, &L)
    for l in range(L):
        n_in = net[l].n_in
        n_out = net[l].n_out
        w = net[l].w_offset
        b = net[l].b_offset
        if n_in < 1 or n_out < 1:
            raise ValueError("layer %d: widths must be >= 1, got %d -> %d" % (l, n_in, n_out))
        if l > 0 and n_in != net[l - 1].n_out:
            raise ValueError("layer %d: input width %d != previous output width %d"
                             % (l, n_in, net[l - 1].n_out))
        # Maxout: W (in, out * pieces), b (out * pieces,); PReLU: slopes (out,) at slopes_offset
        zw = n_out
        if net[l].kind == LAYER_MAXOUT:
            if net[l].pieces < 1 or net[l].pieces > P:
                raise ValueError("layer %d: Maxout needs pieces >= 1, got %d"
                                 % (l, net[l].pieces))
            zw = n_out * net[l].pieces
        if w < 0 or w + n_in * zw > P:
            raise ValueError("layer %d: kernel [%d, %d) outside the %d parameters"
                             % (l, w, w + n_in * zw, P))
        if b < -1 or (b >= 0 and b + zw > P):
            raise ValueError("layer %d: bias offset %d invalid for %d parameters" % (l, b, P))
        if net[l].act == ACT_PRELU:
            ap = net[l].slopes_offset
            if ap < 0 or ap + n_out > P:
                raise ValueError("layer %d: PReLU slopes at offset %d invalid for %d parameters"
                                 % (l, ap, P))
        if not (0.0 <= net[l].dropout < 1.0):
            raise ValueError("layer %d: dropout rate %r not in [0, 1)" % (l, net[l].dropout))


def regularize(object layers,                 # IN (L,) defs.LAYER_DTYPE
               const floating[::1] params,    # IN (P,)
               floating[::1] grads,           # INOUT (P,)
               double[::1] penalty,           # OUT (1,) float64
               int n_threads):
    """grads[W_l] += l1 sign(W_l) + 2 l2 W_l for every layer with a penalty;
    penalty[0] = sum_l l1 sum|W_l| + l2 sum W_l^2 (float64, from params as given)."""
    cdef Py_ssize_t P = params.shape[0], L
    cdef const layer_t* net = records(layers, &L)
    if grads.shape[0] != P or penalty.shape[0] < 1:
        raise ValueError("regularize: grads must have %d entries and penalty at least 1" % P)
    check_layers(layers, P)
    cdef double[::1] scratch = np.empty(regularize_scratch(net, L), dtype=np.float64)
    with nogil:
        penalty[0] = regularize_c(net, L, &params[0], &grads[0], &scratch[0],
                                  max(n_threads, 1))
