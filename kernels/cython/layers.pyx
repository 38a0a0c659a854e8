# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Kernels of the further layer techniques (Cython twin of kernels/numba/layers.py).

    prelu_forward      A = Z > 0 ? Z : slope_j Z
    prelu_backward     dslope (float64 column sums), dZ
    maxout_forward     A = max over each unit's q adjacent columns of Z
    maxout_backward    dZ = dA routed to the first maximal piece
    topk_rows          meProp: keep the k largest |D| per row (O(m) radix select)
    matmul_tn_sparse   C = A.T @ D, D row-sparse at idx       O(n k k_in)
    matmul_nt_sparse   C = D @ B.T, D row-sparse at idx       O(n k k_in)

Parallel loops run over OUTPUT rows (or column tiles of dslope, row blocks of
C for the tn form), fixed by the shape; every element is computed by the same
code in the same order whichever thread owns it, so results are bit-identical
for any ``n_threads``.  Small shapes run on the calling thread.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport fabs, INFINITY
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

import numpy as np

from ._types cimport ELEM_PAR_MIN, COL_TILE, MATMUL_PAR_MIN

cdef enum:
    # sparse products: columns of D per tile (matmul_tn_sparse's parallel unit, the
    # blocks of matmul_nt_sparse's transpose of B)
    SPARSE_COLS = 32


cdef inline Py_ssize_t _cdiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


# ---------------------------------------------------------------------------
# PReLU
# ---------------------------------------------------------------------------
cdef inline void _prelu_fwd_rows(const floating* Z, const floating* slope, floating* A,
                                 Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating z
    for i in range(i0, i1):
        for j in range(m):
            z = Z[i * m + j]
            A[i * m + j] = z if z > 0 else slope[j] * z


cdef void prelu_forward_c(const floating* Z, const floating* slope, floating* A,
                          Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    if n > 1 and n * m >= ELEM_PAR_MIN:
        for i in prange(n, schedule='static', num_threads=n_threads):
            _prelu_fwd_rows(Z, slope, A, i, i + 1, m)
    else:
        _prelu_fwd_rows(Z, slope, A, 0, n, m)


cdef inline void _dslope_cols(const floating* Z, const floating* dA, floating* ds,
                              Py_ssize_t n, Py_ssize_t m, Py_ssize_t jn) noexcept nogil:
    """ds[0:jn] = sum_i dA * Z over Z <= 0 (not Z > 0: NaN counts), rows in order, double."""
    cdef double acc[COL_TILE]
    cdef Py_ssize_t i, j
    cdef floating z
    for j in range(jn):
        acc[j] = 0.0
    for i in range(n):
        for j in range(jn):
            z = Z[i * m + j]
            if not (z > 0):
                acc[j] = acc[j] + <double> dA[i * m + j] * <double> z
    for j in range(jn):
        ds[j] = <floating> acc[j]


cdef inline void _prelu_bwd_rows(const floating* Z, const floating* dA, const floating* slope,
                                 floating* dZ, Py_ssize_t i0, Py_ssize_t i1,
                                 Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating z
    for i in range(i0, i1):
        for j in range(m):
            z = Z[i * m + j]
            dZ[i * m + j] = dA[i * m + j] if z > 0 else slope[j] * dA[i * m + j]


cdef void prelu_backward_c(const floating* Z, const floating* dA, const floating* slope,
                           floating* dslope, floating* dZ, Py_ssize_t n, Py_ssize_t m,
                           int n_threads) noexcept nogil:
    cdef Py_ssize_t ntiles = _cdiv(m, COL_TILE)
    cdef Py_ssize_t t, i
    cdef bint par = n * m >= ELEM_PAR_MIN
    # the slope gradient first: dZ may be dA
    if ntiles > 1 and par:
        for t in prange(ntiles, schedule='static', num_threads=n_threads):
            _dslope_cols(Z + t * COL_TILE, dA + t * COL_TILE, dslope + t * COL_TILE, n, m,
                         min(<Py_ssize_t> COL_TILE, m - t * COL_TILE))
    else:
        for t in range(ntiles):
            _dslope_cols(Z + t * COL_TILE, dA + t * COL_TILE, dslope + t * COL_TILE, n, m,
                         min(<Py_ssize_t> COL_TILE, m - t * COL_TILE))
    if n > 1 and par:
        for i in prange(n, schedule='static', num_threads=n_threads):
            _prelu_bwd_rows(Z, dA, slope, dZ, i, i + 1, m)
    else:
        _prelu_bwd_rows(Z, dA, slope, dZ, 0, n, m)


# ---------------------------------------------------------------------------
# Maxout
# ---------------------------------------------------------------------------
cdef void maxout_forward_c(const floating* Z, Py_ssize_t q, floating* A,
                           Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    if n > 1 and n * m * q >= ELEM_PAR_MIN:
        for i in prange(n, schedule='static', num_threads=n_threads):
            _maxout_fwd_rows(Z, q, A, i, i + 1, m)
    else:
        _maxout_fwd_rows(Z, q, A, 0, n, m)


cdef inline void _maxout_fwd_rows(const floating* Z, Py_ssize_t q, floating* A,
                                  Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t i, j, p
    cdef floating mx, v
    cdef const floating* z
    for i in range(i0, i1):
        for j in range(m):
            z = Z + (i * m + j) * q
            mx = z[0]
            for p in range(1, q):
                v = z[p]
                if v > mx or v != v:     # NaN propagates (and stays: NaN > x is false)
                    mx = v
            A[i * m + j] = mx


cdef void maxout_backward_c(const floating* Z, const floating* dA, Py_ssize_t q,
                            floating* dZ, Py_ssize_t n, Py_ssize_t m,
                            int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    if n > 1 and n * m * q >= ELEM_PAR_MIN:
        for i in prange(n, schedule='static', num_threads=n_threads):
            _maxout_bwd_rows(Z, dA, q, dZ, i, i + 1, m)
    else:
        _maxout_bwd_rows(Z, dA, q, dZ, 0, n, m)


cdef inline void _maxout_bwd_rows(const floating* Z, const floating* dA, Py_ssize_t q,
                                  floating* dZ, Py_ssize_t i0, Py_ssize_t i1,
                                  Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t i, j, p, best
    cdef floating mx, v, d
    cdef const floating* z
    for i in range(i0, i1):
        for j in range(m):
            z = Z + (i * m + j) * q
            best = 0
            mx = z[0]
            if mx == mx:
                for p in range(1, q):
                    v = z[p]
                    if v != v:           # the first NaN wins (numpy argmax)
                        best = p
                        break
                    if v > mx:
                        mx = v
                        best = p
            d = dA[i * m + j]
            for p in range(q):
                # dA * 0 (not 0) elsewhere: as the reference's one-hot product
                dZ[(i * m + j) * q + p] = d if p == best else d * 0


# ---------------------------------------------------------------------------
# meProp: top-k of each row by magnitude
# ---------------------------------------------------------------------------
cdef inline floating _mag(floating x) noexcept nogil:
    """|x|, with NaN counted as +inf (ties with inf broken by column, as the reference)."""
    if x != x:
        return INFINITY
    return fabs(x)


cdef inline uint64_t _key(floating x) noexcept nogil:
    """The bits of a magnitude (>= 0, no NaN) as an unsigned integer: same order."""
    cdef uint32_t u32
    cdef uint64_t u64
    if floating is float:
        memcpy(&u32, &x, 4)
        return u32
    else:
        memcpy(&u64, &x, 8)
        return u64


cdef inline void _topk_row(floating* d, Py_ssize_t k, int64_t* idx, floating* s,
                           Py_ssize_t m) noexcept nogil:
    """Radix select of the k-th largest magnitude (8-bit digits from the top, each
    pass a branch-free histogram of the remaining candidates, then their
    compaction to the digit that holds the k-th), then one pass in column order:
    keep > threshold, and == threshold while fewer than k are kept."""
    cdef Py_ssize_t j, c, nc = m, need = k, above = 0, acc, bucket
    cdef int sh = (31 if floating is float else 63) - 8
    cdef int hist[256]
    cdef floating thr, v
    if k >= m:
        for j in range(m):
            idx[j] = j
        return
    for j in range(m):
        s[j] = _mag(d[j])
    while True:
        if sh < 0:
            sh = 0
        for c in range(256):
            hist[c] = 0
        for c in range(nc):
            hist[(_key(s[c]) >> sh) & 0xff] += 1
        acc = 0
        bucket = 255
        while acc + hist[bucket] < need:
            acc += hist[bucket]
            bucket -= 1
        above += acc                     # candidates in higher digits: strictly larger
        need -= acc
        j = 0
        for c in range(nc):
            v = s[c]
            s[j] = v
            j += <Py_ssize_t> (((_key(v) >> sh) & 0xff) == <uint64_t> bucket)
        nc = j
        if sh == 0 or nc == need:
            break
        sh -= 8
    # nc == need: every candidate left is kept, the smallest of them is the threshold
    thr = s[0]
    for c in range(1, nc):
        if s[c] < thr:
            thr = s[c]
    # count the candidates above thr among the remaining ones
    for c in range(nc):
        if s[c] > thr:
            above += 1
    need = k - above                     # entries equal to thr kept, lowest columns first
    c = 0
    for j in range(m):
        v = _mag(d[j])
        if v > thr or (v == thr and need > 0):
            if not (v > thr):
                need -= 1
            idx[c] = j
            c += 1
        else:
            d[j] = 0


cdef void topk_rows_c(floating* D, Py_ssize_t k, int64_t* idx, floating* scratch,
                      Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    if n > 1 and n * m >= ELEM_PAR_MIN:
        for i in prange(n, schedule='static', num_threads=n_threads):
            _topk_row(D + i * m, k, idx + i * k, scratch + i * m, m)
    else:
        for i in range(n):
            _topk_row(D + i * m, k, idx + i * k, scratch + i * m, m)


# ---------------------------------------------------------------------------
# sparse products of meProp's backward
# ---------------------------------------------------------------------------
cdef inline void _tn_sparse_tile(const floating* A, const floating* D, const int64_t* idx,
                                 floating* C, floating* T, Py_ssize_t n, Py_ssize_t k_in,
                                 Py_ssize_t m, Py_ssize_t k, Py_ssize_t j0,
                                 Py_ssize_t jn) noexcept nogil:
    """Columns j0 .. j0+jn-1 of C = A.T @ D, accumulated transposed in T (row j of
    T = column j of C, so each kept entry adds a contiguous row of A: a vectorised
    axpy), samples in order; then written into C."""
    cdef Py_ssize_t i, c, r, j, jj
    cdef floating d
    cdef floating* trow
    cdef const floating* arow
    for jj in range(jn):
        trow = T + (j0 + jj) * k_in
        for r in range(k_in):
            trow[r] = 0
    for i in range(n):
        arow = A + i * k_in
        for c in range(k):
            j = idx[i * k + c]
            if j >= j0 and j < j0 + jn:
                d = D[i * m + j]
                trow = T + j * k_in
                for r in range(k_in):
                    trow[r] = trow[r] + arow[r] * d
    for r in range(k_in):
        for jj in range(jn):
            C[r * m + j0 + jj] = T[(j0 + jj) * k_in + r]


cdef void matmul_tn_sparse_c(const floating* A, const floating* D, const int64_t* idx,
                             floating* C, Py_ssize_t n, Py_ssize_t k_in, Py_ssize_t m,
                             Py_ssize_t k, floating* T, int n_threads) noexcept nogil:
    cdef Py_ssize_t ntiles = _cdiv(m, SPARSE_COLS)
    cdef Py_ssize_t t
    if ntiles > 1 and n * k * k_in + k_in * m >= MATMUL_PAR_MIN:
        for t in prange(ntiles, schedule='static', num_threads=n_threads):
            _tn_sparse_tile(A, D, idx, C, T, n, k_in, m, k, t * SPARSE_COLS,
                            min(<Py_ssize_t> SPARSE_COLS, m - t * SPARSE_COLS))
    else:
        for t in range(ntiles):
            _tn_sparse_tile(A, D, idx, C, T, n, k_in, m, k, t * SPARSE_COLS,
                            min(<Py_ssize_t> SPARSE_COLS, m - t * SPARSE_COLS))


cdef inline void _transpose_cols(const floating* B, floating* Bt, Py_ssize_t k_in, Py_ssize_t m,
                                 Py_ssize_t j0) noexcept nogil:
    """Bt[j0:j0+SPARSE_COLS, :] = B[:, j0:j0+SPARSE_COLS].T, in SPARSE_COLS-square blocks."""
    cdef Py_ssize_t rb, r0, rr, jj
    for rb in range(_cdiv(k_in, SPARSE_COLS)):
        r0 = rb * SPARSE_COLS
        for rr in range(min(<Py_ssize_t> SPARSE_COLS, k_in - r0)):
            for jj in range(min(<Py_ssize_t> SPARSE_COLS, m - j0)):
                Bt[(j0 + jj) * k_in + r0 + rr] = B[(r0 + rr) * m + j0 + jj]


cdef inline void _nt_sparse_rows(const floating* D, const int64_t* idx, const floating* Bt,
                                 floating* C, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t k_in,
                                 Py_ssize_t m, Py_ssize_t k) noexcept nogil:
    """Rows i0..i1-1 of C = D @ B.T from the kept columns (Bt = B.T)."""
    cdef Py_ssize_t i, c, r, j
    cdef floating d
    cdef floating* crow
    cdef const floating* brow
    for i in range(i0, i1):
        crow = C + i * k_in
        for r in range(k_in):
            crow[r] = 0
        for c in range(k):
            j = idx[i * k + c]
            d = D[i * m + j]
            brow = Bt + j * k_in
            for r in range(k_in):
                crow[r] = crow[r] + d * brow[r]


cdef void matmul_nt_sparse_c(const floating* D, const int64_t* idx, const floating* B,
                             floating* C, Py_ssize_t n, Py_ssize_t k_in, Py_ssize_t m,
                             Py_ssize_t k, floating* Bt, int n_threads) noexcept nogil:
    cdef Py_ssize_t i, t, ntiles = _cdiv(m, SPARSE_COLS)
    cdef bint par = n * k * k_in + k_in * m >= MATMUL_PAR_MIN
    # Bt (m, k_in) = B.T in SPARSE_COLS x SPARSE_COLS blocks (cache-friendly), so each
    # kept column of a row adds one contiguous row of Bt
    if ntiles > 1 and par:
        for t in prange(ntiles, schedule='static', num_threads=n_threads):
            _transpose_cols(B, Bt, k_in, m, t * SPARSE_COLS)
    else:
        for t in range(ntiles):
            _transpose_cols(B, Bt, k_in, m, t * SPARSE_COLS)
    if n > 1 and par:
        for i in prange(n, schedule='static', num_threads=n_threads):
            _nt_sparse_rows(D, idx, Bt, C, i, i + 1, k_in, m, k)
    else:
        _nt_sparse_rows(D, idx, Bt, C, 0, n, k_in, m, k)


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
def _same(what, *pairs):
    for got, want in pairs:
        if got != want:
            raise ValueError("%s: shapes do not match (%r != %r)" % (what, got, want))


def prelu_forward(const floating[:, ::1] Z,      # IN (n, m)
                  const floating[::1] slope,     # IN (m,)
                  floating[:, ::1] A,            # OUT (n, m), may be Z
                  int n_threads):
    """A = Z where Z > 0, else slope[j] * Z (A may be Z)."""
    cdef Py_ssize_t n = Z.shape[0], m = Z.shape[1]
    _same("prelu_forward", (slope.shape[0], m), ((A.shape[0], A.shape[1]), (n, m)))
    if n == 0 or m == 0:
        return
    with nogil:
        prelu_forward_c(&Z[0, 0], &slope[0], &A[0, 0], n, m, max(n_threads, 1))


def prelu_backward(const floating[:, ::1] Z,     # IN (n, m)
                   const floating[:, ::1] dA,    # IN (n, m)
                   const floating[::1] slope,    # IN (m,)
                   floating[::1] dslope,         # OUT (m,)
                   floating[:, ::1] dZ,          # OUT (n, m), may be dA
                   int n_threads):
    """dslope[j] = sum_i dA[i, j] * Z[i, j] over Z <= 0 (rows in order, float64
    accumulation); then dZ = dA where Z > 0, else slope[j] * dA (dZ may be dA)."""
    cdef Py_ssize_t n = Z.shape[0], m = Z.shape[1]
    _same("prelu_backward", ((dA.shape[0], dA.shape[1]), (n, m)), (slope.shape[0], m),
          (dslope.shape[0], m), ((dZ.shape[0], dZ.shape[1]), (n, m)))
    if m == 0:
        return
    if n == 0:
        dslope[:] = 0
        return
    with nogil:
        prelu_backward_c(&Z[0, 0], &dA[0, 0], &slope[0], &dslope[0], &dZ[0, 0], n, m,
                         max(n_threads, 1))


def maxout_forward(const floating[:, ::1] Z,     # IN (n, m * q)
                   Py_ssize_t pieces,
                   floating[:, ::1] A,           # OUT (n, m)
                   int n_threads):
    """A[i, j] = max_p Z[i, j*q + p] (NaN propagates)."""
    cdef Py_ssize_t n = A.shape[0], m = A.shape[1]
    if pieces < 1:
        raise ValueError("maxout_forward: pieces must be >= 1, got %d" % pieces)
    _same("maxout_forward", ((Z.shape[0], Z.shape[1]), (n, m * pieces)))
    if n == 0 or m == 0:
        return
    with nogil:
        maxout_forward_c(&Z[0, 0], pieces, &A[0, 0], n, m, max(n_threads, 1))


def maxout_backward(const floating[:, ::1] Z,    # IN (n, m * q)
                    const floating[:, ::1] dA,   # IN (n, m)
                    Py_ssize_t pieces,
                    floating[:, ::1] dZ,         # OUT (n, m * q)
                    int n_threads):
    """dZ[i, j*q + p] = dA[i, j] for the first p where Z[i, j*q + p] is the maximum
    (the first NaN if any), 0 for the other pieces."""
    cdef Py_ssize_t n = dA.shape[0], m = dA.shape[1]
    if pieces < 1:
        raise ValueError("maxout_backward: pieces must be >= 1, got %d" % pieces)
    _same("maxout_backward", ((Z.shape[0], Z.shape[1]), (n, m * pieces)),
          ((dZ.shape[0], dZ.shape[1]), (n, m * pieces)))
    if n == 0 or m == 0:
        return
    with nogil:
        maxout_backward_c(&Z[0, 0], &dA[0, 0], pieces, &dZ[0, 0], n, m, max(n_threads, 1))


def topk_rows(floating[:, ::1] D,                # INOUT (n, m)
              Py_ssize_t k,
              int64_t[:, ::1] idx,               # OUT (n, k) int64
              int n_threads):
    """Per row: keep the k entries of largest |D| (ties: lower column; a NaN counts
    as the largest), set the others to 0; idx[i] = the kept columns in
    increasing order."""
    cdef Py_ssize_t n = D.shape[0], m = D.shape[1]
    if k < 1 or k > m:
        raise ValueError("topk_rows: need 1 <= k <= %d, got %d" % (m, k))
    _same("topk_rows", ((idx.shape[0], idx.shape[1]), (n, k)))
    if n == 0:
        return
    scratch_arr = np.empty(n * m if k < m else 1, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] scratch = scratch_arr
    with nogil:
        topk_rows_c(&D[0, 0], k, &idx[0, 0], &scratch[0], n, m, max(n_threads, 1))


cdef int _check_idx(const int64_t[:, ::1] idx, Py_ssize_t m) except -1:
    """Every index in [0, m) (the sparse products run without bounds checks)."""
    cdef Py_ssize_t i, c
    for i in range(idx.shape[0]):
        for c in range(idx.shape[1]):
            if idx[i, c] < 0 or idx[i, c] >= m:
                raise IndexError("idx[%d, %d] = %d out of range [0, %d)" % (i, c, idx[i, c], m))
    return 0


def matmul_tn_sparse(const floating[:, ::1] A,   # IN (n, k_in)
                     const floating[:, ::1] D,   # IN (n, m)
                     const int64_t[:, ::1] idx,  # IN (n, k) int64
                     floating[:, ::1] C,         # OUT (k_in, m)
                     int n_threads):
    """C = A.T @ D where row i of D is nonzero only at columns idx[i] (C is fully
    written; rows of A summed in order)."""
    cdef Py_ssize_t n = A.shape[0], k_in = A.shape[1], m = D.shape[1], k = idx.shape[1]
    _same("matmul_tn_sparse", (D.shape[0], n), (idx.shape[0], n),
          ((C.shape[0], C.shape[1]), (k_in, m)))
    _check_idx(idx, m)
    if k_in == 0 or m == 0:
        return
    if n == 0 or k == 0:
        C[:, :] = 0
        return
    T_arr = np.empty(m * k_in, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] T = T_arr
    with nogil:
        matmul_tn_sparse_c(&A[0, 0], &D[0, 0], &idx[0, 0], &C[0, 0], n, k_in, m, k, &T[0],
                           max(n_threads, 1))


def matmul_nt_sparse(const floating[:, ::1] D,   # IN (n, m)
                     const int64_t[:, ::1] idx,  # IN (n, k) int64
                     const floating[:, ::1] B,   # IN (k_in, m)
                     floating[:, ::1] C,         # OUT (n, k_in)
                     int n_threads):
    """C = D @ B.T using only columns idx[i] of row i of D (summed in the order of idx)."""
    cdef Py_ssize_t n = D.shape[0], m = D.shape[1], k_in = B.shape[0], k = idx.shape[1]
    _same("matmul_nt_sparse", (idx.shape[0], n), (B.shape[1], m),
          ((C.shape[0], C.shape[1]), (n, k_in)))
    _check_idx(idx, m)
    if n == 0 or k_in == 0:
        return
    if m == 0 or k == 0:
        C[:, :] = 0
        return
    Bt_arr = np.empty(m * k_in, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] Bt = Bt_arr
    with nogil:
        matmul_nt_sparse_c(&D[0, 0], &idx[0, 0], &B[0, 0], &C[0, 0], n, k_in, m, k, &Bt[0],
                           max(n_threads, 1))
