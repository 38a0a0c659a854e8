# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Matrix products of the dense layers (Cython twin of kernels/numba/matmul.py).

    matmul     C = A @ B      forward        z = x W
    matmul_tn  C = A.T @ B    weight grad    dW = x^T delta
    matmul_nt  C = A @ B.T    backprop       delta_prev = delta W^T

Our own loops, no BLAS: the reduction order of every output element is fixed
by the shape (p = 0, 1, ..., k-1, accumulated in the array dtype, as BLAS does),
and work is split over OUTPUT tiles (``MATMUL_MR`` rows x a panel of at most
``MATMUL_NB`` columns of C), so each thread owns the tiles it writes and the
result is bit-identical for any thread count.

``matmul`` / ``matmul_tn`` use the "axpy" form: a tile of C is accumulated from
rows of B, ``acc[r, :] += a_rp * B[p, j0:j1]``, four rows of C and four values of
p per pass (each B element loaded once feeds four multiply-adds; the inner loop
over columns runs over contiguous memory and vectorises).  The accumulators are stack arrays, which
the compiler knows alias nothing, so the loop needs no runtime alias checks.
``matmul_nt`` transposes B (m, k) into a scratch (k, m) block by block, then runs
the same kernel.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free

from ._types cimport MATMUL_PAR_MIN, MATMUL_MR, MATMUL_NB, ELEM_PAR_MIN

cdef enum:
    # minimum number of output tiles wanted before panels are narrowed (shape-only)
    MIN_TILES = 8
    # narrowest panel the splitter goes down to
    MIN_NB = 16
    # transpose block
    TB = 32


# ---------------------------------------------------------------------------
# micro-kernels: one tile of C (4, 2 or 1 rows x jn <= MATMUL_NB columns)
#
# A[r, p] is read at A[r*sa_i + p*sa_p] (sa_i = k, sa_p = 1 for A (n, k);
# sa_i = 1, sa_p = n for A.T with A (k, n)); B[p, j] at B[p*ldb + j].
# Each pass over the accumulators applies four values of p,
#     acc = (((acc + a_p x_p) + a_p+1 x_p+1) + a_p+2 x_p+2) + a_p+3 x_p+3,
# the same additions in the same order as one p at a time, so every kernel
# gives every element the same bits (a row's result never depends on n or on
# the tiling); the accumulators go through L1 four times less often.
# ---------------------------------------------------------------------------
cdef inline void _rows4(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                        const floating* B, Py_ssize_t ldb,
                        floating* C, Py_ssize_t ldc,
                        Py_ssize_t jn, Py_ssize_t k) noexcept nogil:
    """C[r, 0:jn] = sum_p A[r, p] B[p, 0:jn] for r = 0..3."""
    cdef floating acc0[MATMUL_NB]
    cdef floating acc1[MATMUL_NB]
    cdef floating acc2[MATMUL_NB]
    cdef floating acc3[MATMUL_NB]
    cdef floating a00, a01, a02, a03, a10, a11, a12, a13
    cdef floating a20, a21, a22, a23, a30, a31, a32, a33
    cdef floating x0, x1, x2, x3
    cdef const floating* b
    cdef const floating* a
    cdef Py_ssize_t p = 0, j
    for j in range(jn):
        acc0[j] = 0
        acc1[j] = 0
        acc2[j] = 0
        acc3[j] = 0
    while p + 4 <= k:
        a = A + p * sa_p
        a00 = a[0]
        a01 = a[sa_p]
        a02 = a[2 * sa_p]
        a03 = a[3 * sa_p]
        a10 = a[sa_i]
        a11 = a[sa_i + sa_p]
        a12 = a[sa_i + 2 * sa_p]
        a13 = a[sa_i + 3 * sa_p]
        a20 = a[2 * sa_i]
        a21 = a[2 * sa_i + sa_p]
        a22 = a[2 * sa_i + 2 * sa_p]
        a23 = a[2 * sa_i + 3 * sa_p]
        a30 = a[3 * sa_i]
        a31 = a[3 * sa_i + sa_p]
        a32 = a[3 * sa_i + 2 * sa_p]
        a33 = a[3 * sa_i + 3 * sa_p]
        b = B + p * ldb
        for j in range(jn):
            x0 = b[j]
            x1 = b[ldb + j]
            x2 = b[2 * ldb + j]
            x3 = b[3 * ldb + j]
            acc0[j] = (((acc0[j] + a00 * x0) + a01 * x1) + a02 * x2) + a03 * x3
            acc1[j] = (((acc1[j] + a10 * x0) + a11 * x1) + a12 * x2) + a13 * x3
            acc2[j] = (((acc2[j] + a20 * x0) + a21 * x1) + a22 * x2) + a23 * x3
            acc3[j] = (((acc3[j] + a30 * x0) + a31 * x1) + a32 * x2) + a33 * x3
        p = p + 4
    while p < k:
        a = A + p * sa_p
        a00 = a[0]
        a10 = a[sa_i]
        a20 = a[2 * sa_i]
        a30 = a[3 * sa_i]
        b = B + p * ldb
        for j in range(jn):
            x0 = b[j]
            acc0[j] = acc0[j] + a00 * x0
            acc1[j] = acc1[j] + a10 * x0
            acc2[j] = acc2[j] + a20 * x0
            acc3[j] = acc3[j] + a30 * x0
        p = p + 1
    for j in range(jn):
        C[j] = acc0[j]
        C[ldc + j] = acc1[j]
        C[2 * ldc + j] = acc2[j]
        C[3 * ldc + j] = acc3[j]


cdef inline void _rows2(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                        const floating* B, Py_ssize_t ldb,
                        floating* C, Py_ssize_t ldc,
                        Py_ssize_t jn, Py_ssize_t k) noexcept nogil:
    """C[r, 0:jn] = sum_p A[r, p] B[p, 0:jn] for r = 0, 1 (rows left by _rows4)."""
    cdef floating acc0[MATMUL_NB]
    cdef floating acc1[MATMUL_NB]
    cdef floating a00, a01, a02, a03, a10, a11, a12, a13
    cdef floating x0, x1, x2, x3
    cdef const floating* b
    cdef const floating* a
    cdef Py_ssize_t p = 0, j
    for j in range(jn):
        acc0[j] = 0
        acc1[j] = 0
    while p + 4 <= k:
        a = A + p * sa_p
        a00 = a[0]
        a01 = a[sa_p]
        a02 = a[2 * sa_p]
        a03 = a[3 * sa_p]
        a10 = a[sa_i]
        a11 = a[sa_i + sa_p]
        a12 = a[sa_i + 2 * sa_p]
        a13 = a[sa_i + 3 * sa_p]
        b = B + p * ldb
        for j in range(jn):
            x0 = b[j]
            x1 = b[ldb + j]
            x2 = b[2 * ldb + j]
            x3 = b[3 * ldb + j]
            acc0[j] = (((acc0[j] + a00 * x0) + a01 * x1) + a02 * x2) + a03 * x3
            acc1[j] = (((acc1[j] + a10 * x0) + a11 * x1) + a12 * x2) + a13 * x3
        p = p + 4
    while p < k:
        a = A + p * sa_p
        a00 = a[0]
        a10 = a[sa_i]
        b = B + p * ldb
        for j in range(jn):
            x0 = b[j]
            acc0[j] = acc0[j] + a00 * x0
            acc1[j] = acc1[j] + a10 * x0
        p = p + 1
    for j in range(jn):
        C[j] = acc0[j]
        C[ldc + j] = acc1[j]


cdef inline void _row1(const floating* A, Py_ssize_t sa_p,
                       const floating* B, Py_ssize_t ldb,
                       floating* C, Py_ssize_t jn, Py_ssize_t k) noexcept nogil:
    """C[0:jn] = sum_p A[p] B[p, 0:jn] (the last odd row)."""
    cdef floating acc0[MATMUL_NB]
    cdef floating a00, a01, a02, a03
    cdef floating x0, x1, x2, x3
    cdef const floating* b
    cdef Py_ssize_t p = 0, j
    for j in range(jn):
        acc0[j] = 0
    while p + 4 <= k:
        a00 = A[p * sa_p]
        a01 = A[(p + 1) * sa_p]
        a02 = A[(p + 2) * sa_p]
        a03 = A[(p + 3) * sa_p]
        b = B + p * ldb
        for j in range(jn):
            x0 = b[j]
            x1 = b[ldb + j]
            x2 = b[2 * ldb + j]
            x3 = b[3 * ldb + j]
            acc0[j] = (((acc0[j] + a00 * x0) + a01 * x1) + a02 * x2) + a03 * x3
        p = p + 4
    while p < k:
        a00 = A[p * sa_p]
        b = B + p * ldb
        for j in range(jn):
            acc0[j] = acc0[j] + a00 * b[j]
        p = p + 1
    for j in range(jn):
        C[j] = acc0[j]


cdef inline Py_ssize_t _cdiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline Py_ssize_t _panel_width(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m) noexcept nogil:
    """Columns per tile, from the shape only: MATMUL_NB; for a product big enough
    to run in parallel, halved (down to MIN_NB) while there are fewer than
    MIN_TILES tiles, so that a small batch (few row blocks) still splits evenly
    between threads.  (Narrow panels cost ~20% single-threaded on such shapes.)"""
    cdef Py_ssize_t nb = MATMUL_NB
    cdef Py_ssize_t nrb = _cdiv(n, MATMUL_MR)
    if n * k * m < MATMUL_PAR_MIN:
        return nb
    while nb > MIN_NB and nrb * _cdiv(m, nb) < MIN_TILES:
        nb = nb // 2
    return nb


cdef void _tiles(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                 const floating* B, floating* C,
                 Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    """C (n, m) = sum_p A[i*sa_i + p*sa_p] B[p, :] over output tiles.

    Tiles are numbered row block fastest, so consecutive tiles (one thread's
    static share) reuse the same panel of B from cache."""
    cdef Py_ssize_t nb = _panel_width(n, k, m)
    cdef Py_ssize_t nrb = _cdiv(n, MATMUL_MR)
    cdef Py_ssize_t ntiles = nrb * _cdiv(m, nb)
    cdef bint par = ntiles > 1 and n * k * m >= MATMUL_PAR_MIN
    cdef Py_ssize_t t, cb, rb, i0, j0, jn, r
    if n <= 0 or m <= 0:
        return
    for t in prange(ntiles, schedule='static', num_threads=n_threads, use_threads_if=par):
        cb = t // nrb
        rb = t - cb * nrb
        i0 = rb * MATMUL_MR
        j0 = cb * nb
        jn = min(nb, m - j0)
        r = min(<Py_ssize_t> MATMUL_MR, n - i0)
        if r == 4:
            _rows4(A + i0 * sa_i, sa_i, sa_p, B + j0, m, C + i0 * m + j0, m, jn, k)
        else:
            if r >= 2:
                _rows2(A + i0 * sa_i, sa_i, sa_p, B + j0, m, C + i0 * m + j0, m, jn, k)
                i0 = i0 + 2
            if r != 2:
                _row1(A + i0 * sa_i, sa_p, B + j0, m, C + i0 * m + j0, jn, k)


cdef void _transpose(const floating* B, floating* Bt, Py_ssize_t m, Py_ssize_t k,
                     int n_threads) noexcept nogil:
    """Bt (k, m) = B (m, k).T in TB x TB blocks, parallel over row blocks of Bt."""
    cdef Py_ssize_t nblk = _cdiv(k, TB)
    cdef Py_ssize_t bp, bj, p0, p1, j0, j1, p, j
    for bp in prange(nblk, schedule='static', num_threads=n_threads,
                     use_threads_if=nblk > 1 and m * k >= ELEM_PAR_MIN):
        p0 = bp * TB
        p1 = min(p0 + TB, k)
        for bj in range(_cdiv(m, TB)):
            j0 = bj * TB
            j1 = min(j0 + TB, m)
            for p in range(p0, p1):
                for j in range(j0, j1):
                    Bt[p * m + j] = B[j * k + p]


# ---------------------------------------------------------------------------
# cdef entry points (declared in matmul.pxd; used by network.pyx without the GIL)
# ---------------------------------------------------------------------------
cdef void matmul_c(const floating* A, const floating* B, floating* C,
                   Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    _tiles(A, k, 1, B, C, n, k, m, n_threads)


cdef void matmul_tn_c(const floating* A, const floating* B, floating* C,
                      Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    _tiles(A, 1, n, B, C, n, k, m, n_threads)


cdef void matmul_nt_c(const floating* A, const floating* B, floating* C,
                      Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, floating* Bt,
                      int n_threads) noexcept nogil:
    if n <= 0 or m <= 0:
        return
    _transpose(B, Bt, m, k, n_threads)
    _tiles(A, k, 1, Bt, C, n, k, m, n_threads)


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
def _shape_error(name, A, B, C):
    return ValueError("%s: shapes A %s, B %s, C %s do not match"
                      % (name, tuple(A.shape[:2]), tuple(B.shape[:2]), tuple(C.shape[:2])))


def matmul(const floating[:, ::1] A,  # IN (n, k)
           const floating[:, ::1] B,  # IN (k, m)
           floating[:, ::1] C,        # OUT (n, m)
           int n_threads):
    """C = A @ B.  A (n, k), B (k, m), C (n, m) OUT."""
    cdef Py_ssize_t n = A.shape[0], k = A.shape[1], m = B.shape[1]
    if not (B.shape[0] == k and C.shape[0] == n and C.shape[1] == m):
        raise _shape_error("matmul", A, B, C)
    with nogil:
        matmul_c(&A[0, 0], &B[0, 0], &C[0, 0], n, k, m, max(n_threads, 1))


def matmul_tn(const floating[:, ::1] A,  # IN (k, n)
              const floating[:, ::1] B,  # IN (k, m)
              floating[:, ::1] C,        # OUT (n, m)
              int n_threads):
    """C = A.T @ B.  A (k, n), B (k, m), C (n, m) OUT; rows of A/B summed in order."""
    cdef Py_ssize_t k = A.shape[0], n = A.shape[1], m = B.shape[1]
    if not (B.shape[0] == k and C.shape[0] == n and C.shape[1] == m):
        raise _shape_error("matmul_tn", A, B, C)
    with nogil:
        matmul_tn_c(&A[0, 0], &B[0, 0], &C[0, 0], n, k, m, max(n_threads, 1))


def matmul_nt(const floating[:, ::1] A,  # IN (n, k)
              const floating[:, ::1] B,  # IN (m, k)
              floating[:, ::1] C,        # OUT (n, m)
              int n_threads):
    """C = A @ B.T.  A (n, k), B (m, k), C (n, m) OUT."""
    cdef Py_ssize_t n = A.shape[0], k = A.shape[1], m = B.shape[0]
    if not (B.shape[1] == k and C.shape[0] == n and C.shape[1] == m):
        raise _shape_error("matmul_nt", A, B, C)
    cdef floating* Bt = <floating*> malloc(max(k * m, 1) * sizeof(floating))
    if Bt == NULL:
        raise MemoryError()
    try:
        with nogil:
            matmul_nt_c(&A[0, 0], &B[0, 0], &C[0, 0], n, k, m, Bt, max(n_threads, 1))
    finally:
        free(Bt)
