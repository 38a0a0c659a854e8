"""Matrix products of the dense layers (numba twin of kernels/cython/matmul.pyx).

    matmul     C = A @ B      forward        z = x W
    matmul_tn  C = A.T @ B    weight grad    dW = x^T delta
    matmul_nt  C = A @ B.T    backprop       delta_prev = delta W^T

Our own loops, no BLAS: the reduction order of every output element is fixed
by the shape, and work is split over OUTPUT rows (tiles of
``MATMUL_ROW_TILE`` rows of C), so each thread owns the rows it writes and the
result is bit-identical for any thread count.

``matmul`` / ``matmul_tn`` use the "axpy" form: a C row is accumulated from rows
of B, ``C[i, :] += a_ip * B[p, :]`` for p = 0, 1, ..., k-1 in order, with two rows
of C and four values of p per pass over the row (each B element loaded once
feeds eight multiply-adds; the inner loop over columns vectorises).
``matmul_nt`` is a dot product of two contiguous rows per output element.
Accumulation is in the array dtype, as BLAS does.
"""
import numpy as np

from ._jit import kernel, serial, prange, MATMUL_PAR_MIN, MATMUL_ROW_TILE


# ---------------------------------------------------------------------------
# micro-kernels: rows [i0, i1) of C, all columns
# ---------------------------------------------------------------------------
@serial
def _mm_rows(A, B, C, i0, i1):
    """C[i0:i1] = A[i0:i1] @ B.  A (n, k), B (k, m), C (n, m)."""
    k = A.shape[1]
    m = B.shape[1]
    zero = C.dtype.type(0)
    i = i0
    while i + 2 <= i1:
        c0 = C[i]
        c1 = C[i + 1]
        for j in range(m):
            c0[j] = zero
            c1[j] = zero
        p = 0
        while p + 4 <= k:
            a0 = A[i, p]
            a1 = A[i, p + 1]
            a2 = A[i, p + 2]
            a3 = A[i, p + 3]
            e0 = A[i + 1, p]
            e1 = A[i + 1, p + 1]
            e2 = A[i + 1, p + 2]
            e3 = A[i + 1, p + 3]
            b0 = B[p]
            b1 = B[p + 1]
            b2 = B[p + 2]
            b3 = B[p + 3]
            for j in range(m):
                x0 = b0[j]
                x1 = b1[j]
                x2 = b2[j]
                x3 = b3[j]
                c0[j] = c0[j] + a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                c1[j] = c1[j] + e0 * x0 + e1 * x1 + e2 * x2 + e3 * x3
            p += 4
        while p < k:
            a0 = A[i, p]
            e0 = A[i + 1, p]
            b0 = B[p]
            for j in range(m):
                x0 = b0[j]
                c0[j] = c0[j] + a0 * x0
                c1[j] = c1[j] + e0 * x0
            p += 1
        i += 2
    if i < i1:
        c0 = C[i]
        for j in range(m):
            c0[j] = zero
        p = 0
        while p + 4 <= k:
            a0 = A[i, p]
            a1 = A[i, p + 1]
            a2 = A[i, p + 2]
            a3 = A[i, p + 3]
            b0 = B[p]
            b1 = B[p + 1]
            b2 = B[p + 2]
            b3 = B[p + 3]
            for j in range(m):
                c0[j] = c0[j] + a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
            p += 4
        while p < k:
            a0 = A[i, p]
            b0 = B[p]
            for j in range(m):
                c0[j] = c0[j] + a0 * b0[j]
            p += 1


@serial
def _mm_tn_rows(A, B, C, i0, i1):
    """C[i0:i1] = (A.T @ B)[i0:i1].  A (k, n), B (k, m), C (n, m).

    ``_mm_rows`` with A indexed [p, i]: calling ``_mm_rows(A.T, ...)`` instead gives
    the same bits but measured 9% slower at the seed shape 784x10x30 (numba's
    code for the F-ordered view), so the loop is written out twice."""
    k = A.shape[0]
    m = B.shape[1]
    zero = C.dtype.type(0)
    i = i0
    while i + 2 <= i1:
        c0 = C[i]
        c1 = C[i + 1]
        for j in range(m):
            c0[j] = zero
            c1[j] = zero
        p = 0
        while p + 4 <= k:
            a0 = A[p, i]
            a1 = A[p + 1, i]
            a2 = A[p + 2, i]
            a3 = A[p + 3, i]
            e0 = A[p, i + 1]
            e1 = A[p + 1, i + 1]
            e2 = A[p + 2, i + 1]
            e3 = A[p + 3, i + 1]
            b0 = B[p]
            b1 = B[p + 1]
            b2 = B[p + 2]
            b3 = B[p + 3]
            for j in range(m):
                x0 = b0[j]
                x1 = b1[j]
                x2 = b2[j]
                x3 = b3[j]
                c0[j] = c0[j] + a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                c1[j] = c1[j] + e0 * x0 + e1 * x1 + e2 * x2 + e3 * x3
            p += 4
        while p < k:
            a0 = A[p, i]
            e0 = A[p, i + 1]
            b0 = B[p]
            for j in range(m):
                x0 = b0[j]
                c0[j] = c0[j] + a0 * x0
                c1[j] = c1[j] + e0 * x0
            p += 1
        i += 2
    if i < i1:
        c0 = C[i]
        for j in range(m):
            c0[j] = zero
        p = 0
        while p + 4 <= k:
            a0 = A[p, i]
            a1 = A[p + 1, i]
            a2 = A[p + 2, i]
            a3 = A[p + 3, i]
            b0 = B[p]
            b1 = B[p + 1]
            b2 = B[p + 2]
            b3 = B[p + 3]
            for j in range(m):
                c0[j] = c0[j] + a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
            p += 4
        while p < k:
            a0 = A[p, i]
            b0 = B[p]
            for j in range(m):
                c0[j] = c0[j] + a0 * b0[j]
            p += 1


@serial
def _mm_nt_rows(A, B, C, i0, i1):
    """C[i0:i1] = (A @ B.T)[i0:i1].  A (n, k), B (m, k), C (n, m)."""
    k = A.shape[1]
    m = B.shape[0]
    zero = C.dtype.type(0)
    for i in range(i0, i1):
        a = A[i]
        c = C[i]
        for j in range(m):
            b = B[j]
            s = zero
            for p in range(k):
                s += a[p] * b[p]
            c[j] = s


# ---------------------------------------------------------------------------
# contract kernels: serial below MATMUL_PAR_MIN multiply-adds, else parallel
# over tiles of MATMUL_ROW_TILE rows of C
# ---------------------------------------------------------------------------
@serial
def _parallel_worth(n, k, m):
    """Shape-only choice of the parallel loop (more than one tile and enough
    multiply-adds to pay for a parallel region)."""
    return n > MATMUL_ROW_TILE and n * k * m >= MATMUL_PAR_MIN


@kernel
def matmul(A, B, C, n_threads):
    """C = A @ B.  A (n, k), B (k, m), C (n, m) OUT."""
    n = C.shape[0]
    if _parallel_worth(n, A.shape[1], C.shape[1]):
        for t in prange((n + MATMUL_ROW_TILE - 1) // MATMUL_ROW_TILE):
            i0 = t * MATMUL_ROW_TILE
            _mm_rows(A, B, C, i0, min(i0 + MATMUL_ROW_TILE, n))
    else:
        _mm_rows(A, B, C, np.int64(0), n)   # not a literal 0: one specialisation, not two


@kernel
def matmul_tn(A, B, C, n_threads):
    """C = A.T @ B.  A (k, n), B (k, m), C (n, m) OUT; rows of A/B summed in order."""
    n = C.shape[0]
    if _parallel_worth(n, A.shape[0], C.shape[1]):
        for t in prange((n + MATMUL_ROW_TILE - 1) // MATMUL_ROW_TILE):
            i0 = t * MATMUL_ROW_TILE
            _mm_tn_rows(A, B, C, i0, min(i0 + MATMUL_ROW_TILE, n))
    else:
        _mm_tn_rows(A, B, C, np.int64(0), n)


@kernel
def matmul_nt(A, B, C, n_threads):
    """C = A @ B.T.  A (n, k), B (m, k), C (n, m) OUT."""
    n = C.shape[0]
    if _parallel_worth(n, A.shape[1], C.shape[1]):
        for t in prange((n + MATMUL_ROW_TILE - 1) // MATMUL_ROW_TILE):
            i0 = t * MATMUL_ROW_TILE
            _mm_nt_rows(A, B, C, i0, min(i0 + MATMUL_ROW_TILE, n))
    else:
        _mm_nt_rows(A, B, C, np.int64(0), n)
