"""PReLU, Maxout and meProp kernels (numba twin of kernels/cython/layers.pyx).

    prelu_forward     A = Z where Z > 0, else slope[j] Z          parallel over rows
    prelu_backward    dslope[j] = sum_i dA Z over Z <= 0 (float64, rows in order);
                      dZ = dA where Z > 0, else slope[j] dA     parallel over column tiles
    maxout_forward    A[i, j] = max_p Z[i, j q + p]              parallel over rows
    maxout_backward   dZ[i, j q + p] = dA[i, j] at the first arg max, dA[i, j] * 0
                      at the other pieces                        parallel over rows
    topk_rows         per row keep the k largest |D|             parallel over row tiles
    matmul_tn_sparse  C = A.T @ D, D row-sparse at idx           parallel over column tiles of C
    matmul_nt_sparse  C = D @ B.T, D row-sparse at idx           parallel over B tiles, rows of C

Each kernel loops serially below a size (``ELEM_PAR_MIN`` elements,
``MATMUL_PAR_MIN`` multiply-adds for the sparse products) and with ``prange``
above it, over the same tiles fixed by the shape, so results are bit-identical
for any thread count.  (Helpers are never called with a literal argument such
as ``0``: numba compiles a separate specialisation for a literal.)

topk_rows selects in O(m) per row: the k-th largest magnitude is found by
Hoare's selection (Wirth's "find", median-of-three pivot) on a float64 scratch
copy of the magnitudes (NaN counted as +inf, as the largest), then one pass in
column order keeps every entry above that threshold and the first entries equal
to it until k are kept (ties: lower column), zeroes the others and writes the
kept columns in increasing order.

The sparse products cost O(n k k_in + k_in m), with contiguous (vectorised)
inner loops, as the Cython twin: ``matmul_tn_sparse`` accumulates C transposed
in a (m, k_in) scratch T, per tile of SPARSE_COLS columns of D (T[j] += D[i, j]
A[i] for the kept j of the tile, samples in order), then copies the tile into
C (so C is fully written); ``matmul_nt_sparse`` transposes B into a (m, k_in)
scratch in SPARSE_COLS blocks, then row i of C is the sum of D[i, j] Bt[j] over
the kept columns in the order of idx.  Accumulation is in the array dtype (as
the dense products).
"""
import numpy as np

from ._jit import helper, kernel, serial, prange, ELEM_PAR_MIN, ELEM_TILE, COL_TILE, MATMUL_PAR_MIN
from .matmul import _transpose

#: sparse products: columns of D per tile (matmul_tn_sparse's parallel unit, the
#: blocks of matmul_nt_sparse's transpose of B), as the Cython twin.
SPARSE_COLS = 32


# ---------------------------------------------------------------------------
# PReLU
# ---------------------------------------------------------------------------
@helper
def _prelu_row(z, s, a):
    for j in range(a.shape[0]):
        x = z[j]
        a[j] = x if x > 0 else s[j] * x


@kernel
def prelu_forward(Z, slope, A, n_threads):
    """A = Z where Z > 0, else slope[j] * Z (A may be Z)."""
    n, m = A.shape
    if slope.shape[0] != m or Z.shape[0] != n or Z.shape[1] != m:
        raise ValueError("prelu_forward: shapes do not match")
    if n > 1 and n * m >= ELEM_PAR_MIN:
        for i in prange(n):
            _prelu_row(Z[i], slope, A[i])
    else:
        for i in range(n):
            _prelu_row(Z[i], slope, A[i])


@helper
def _prelu_bwd_cols(Z, dA, slope, dslope, dZ, j0, j1):
    """Columns j0:j1: dslope summed over rows in order (float64), dZ written
    row by row after its element of dA was read (so dZ may be dA)."""
    acc = np.zeros(j1 - j0, np.float64)
    s = slope[j0:j1]
    for i in range(Z.shape[0]):
        z = Z[i, j0:j1]
        d = dA[i, j0:j1]
        o = dZ[i, j0:j1]
        for j in range(acc.shape[0]):
            x = z[j]
            g = d[j]
            if x > 0:
                o[j] = g
            else:
                acc[j] += np.float64(g) * np.float64(x)
                o[j] = s[j] * g
    out = dslope[j0:j1]
    for j in range(acc.shape[0]):
        out[j] = acc[j]


@kernel
def prelu_backward(Z, dA, slope, dslope, dZ, n_threads):
    """dslope[j] = sum_i dA[i, j] * Z[i, j] over Z <= 0 (rows in order, float64
    accumulation); then dZ = dA where Z > 0, else slope[j] * dA (dZ may be dA)."""
    n, m = Z.shape
    if dA.shape[0] != n or dA.shape[1] != m or dZ.shape[0] != n or dZ.shape[1] != m or \
            slope.shape[0] != m or dslope.shape[0] != m:
        raise ValueError("prelu_backward: shapes do not match")
    ntiles = (m + COL_TILE - 1) // COL_TILE
    if ntiles > 1 and n * m >= ELEM_PAR_MIN:
        for t in prange(ntiles):
            _prelu_bwd_cols(Z, dA, slope, dslope, dZ, t * COL_TILE, min(t * COL_TILE + COL_TILE, m))
    else:
        for t in range(ntiles):
            _prelu_bwd_cols(Z, dA, slope, dslope, dZ, t * COL_TILE, min(t * COL_TILE + COL_TILE, m))


# ---------------------------------------------------------------------------
# Maxout
# ---------------------------------------------------------------------------
@helper
def _argmax(z, base, q):
    """First p of max z[base + p], p < q; the first NaN if any."""
    best = 0
    mx = z[base]
    if mx != mx:
        return 0
    for p in range(1, q):
        v = z[base + p]
        if v != v:
            return p
        if v > mx:
            best = p
            mx = v
    return best


@helper
def _maxout_fwd_row(z, q, a):
    for j in range(a.shape[0]):
        a[j] = z[j * q + _argmax(z, j * q, q)]


@helper
def _maxout_bwd_row(z, d, q, dz):
    zero = dz.dtype.type(0)
    for j in range(d.shape[0]):
        base = j * q
        best = _argmax(z, base, q)
        g = d[j]
        for p in range(q):
            dz[base + p] = g if p == best else g * zero     # dA * 0: NaN for an inf/NaN dA


@kernel
def maxout_forward(Z, pieces, A, n_threads):
    """A[i, j] = max_p Z[i, j*q + p] (NaN propagates)."""
    n, m = A.shape
    q = pieces
    if q < 1 or Z.shape[0] != n or Z.shape[1] != m * q:
        raise ValueError("maxout_forward: Z must be (n, m * pieces), pieces >= 1")
    if n > 1 and n * m * q >= ELEM_PAR_MIN:
        for i in prange(n):
            _maxout_fwd_row(Z[i], q, A[i])
    else:
        for i in range(n):
            _maxout_fwd_row(Z[i], q, A[i])


@kernel
def maxout_backward(Z, dA, pieces, dZ, n_threads):
    """dZ[i, j*q + p] = dA[i, j] for the first p where Z[i, j*q + p] is the
    maximum (the first NaN if any), dA[i, j] * 0 for the other pieces (0 unless
    dA is inf or NaN)."""
    n, m = dA.shape
    q = pieces
    if q < 1 or Z.shape[0] != n or Z.shape[1] != m * q or dZ.shape[0] != n or \
            dZ.shape[1] != m * q:
        raise ValueError("maxout_backward: Z and dZ must be (n, m * pieces), pieces >= 1")
    if n > 1 and n * m * q >= ELEM_PAR_MIN:
        for i in prange(n):
            _maxout_bwd_row(Z[i], dA[i], q, dZ[i])
    else:
        for i in range(n):
            _maxout_bwd_row(Z[i], dA[i], q, dZ[i])


# ---------------------------------------------------------------------------
# meProp: top-k rows and the sparse products
# ---------------------------------------------------------------------------
@helper
def _mag(x):
    """|x| in float64, NaN counted as the largest (+inf)."""
    v = abs(np.float64(x))
    return np.inf if v != v else v


@helper
def _kth_largest(a, kk):
    """The value at position kk (0-based) of a sorted in decreasing order;
    a (no NaN) is permuted.  Hoare / Wirth selection, median-of-three pivot."""
    lo = 0
    hi = a.shape[0] - 1
    while lo < hi:
        x = a[lo]
        y = a[(lo + hi) >> 1]
        z = a[hi]
        if x < y:
            x, y = y, x
        if y < z:
            y = z
            if x < y:
                y = x
        pivot = y                       # the median of the three, a value of a[lo:hi+1]
        i = lo
        j = hi
        while i <= j:
            while a[i] > pivot:
                i += 1
            while a[j] < pivot:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        # a[lo:j+1] >= pivot, a[i:hi+1] <= pivot, a[j+1:i] == pivot
        if kk <= j:
            hi = j
        elif kk >= i:
            lo = i
        else:
            return a[kk]
    return a[kk]


@helper
def _topk_rows(D, k, idx, i0, i1):
    """Rows i0:i1 of topk_rows, with one scratch row."""
    m = D.shape[1]
    scratch = np.empty(m, np.float64)
    for i in range(i0, i1):
        d = D[i]
        for j in range(m):
            scratch[j] = _mag(d[j])
        thr = _kth_largest(scratch, k - 1)
        above = 0
        for j in range(m):
            if _mag(d[j]) > thr:
                above += 1
        ties = k - above                # entries equal to thr to keep, lowest columns first
        out = idx[i]
        c = 0
        zero = D.dtype.type(0)
        for j in range(m):
            v = _mag(d[j])
            if v > thr:
                out[c] = j
                c += 1
            elif v == thr and ties > 0:
                out[c] = j
                c += 1
                ties -= 1
            else:
                d[j] = zero


@kernel
def topk_rows(D, k, idx, n_threads):
    """Per row: keep the k entries of largest |D| (ties: lower column; a NaN
    counts as the largest), set the others to 0; idx[i] = the kept columns in
    increasing order."""
    n, m = D.shape
    if k < 1 or k > m or idx.shape[0] != n or idx.shape[1] != k:
        raise ValueError("topk_rows: need 1 <= k <= m and idx of shape (n, k)")
    rows = max(1, ELEM_TILE // m)       # rows per tile (one scratch row per tile)
    ntiles = (n + rows - 1) // rows
    if ntiles > 1 and n * m >= ELEM_PAR_MIN:
        for t in prange(ntiles):
            _topk_rows(D, k, idx, t * rows, min(t * rows + rows, n))
    else:
        for t in range(ntiles):
            _topk_rows(D, k, idx, t * rows, min(t * rows + rows, n))


@helper
def _check_idx(idx, m):
    """O(n k): every kept column inside [0, m) (a wrong idx must not write out of bounds)."""
    for i in range(idx.shape[0]):
        for t in range(idx.shape[1]):
            if idx[i, t] < 0 or idx[i, t] >= m:
                return False
    return True


@helper
def _tn_sparse_cols(A, D, idx, C, T, j0, j1):
    """Columns j0:j1 of C = A.T @ D, accumulated transposed in T (row j of T =
    column j of C, so each kept entry adds a contiguous row of A: a vectorised
    axpy), samples in order; then written into C."""
    zero = T.dtype.type(0)
    k_in = A.shape[1]
    for j in range(j0, j1):
        t = T[j]
        for r in range(k_in):
            t[r] = zero
    for i in range(A.shape[0]):
        a = A[i]
        d = D[i]
        cols = idx[i]
        for c in range(cols.shape[0]):
            j = cols[c]
            if j >= j0 and j < j1:
                v = d[j]
                t = T[j]
                for r in range(k_in):
                    t[r] += a[r] * v
    for r in range(k_in):
        crow = C[r]
        for j in range(j0, j1):
            crow[j] = T[j, r]


@serial   # checks and the scratch; the parallel loops are in the *_ws kernel
def matmul_tn_sparse(A, D, idx, C, n_threads):
    """C = A.T @ D where row i of D is nonzero only at columns idx[i] (C is
    fully written; rows of A summed in order)."""
    n, k_in = A.shape
    m = D.shape[1]
    k = idx.shape[1]
    if D.shape[0] != n or idx.shape[0] != n or C.shape[0] != k_in or C.shape[1] != m:
        raise ValueError("matmul_tn_sparse: shapes do not match")
    if not _check_idx(idx, m):
        raise IndexError("matmul_tn_sparse: idx holds a column outside D (out of range [0, m))")
    tn_sparse_ws(A, D, idx, C, np.empty((m, k_in), C.dtype), n_threads)


@kernel
def tn_sparse_ws(A, D, idx, C, T, n_threads):
    """matmul_tn_sparse's work, checks done, with the caller's (m, k_in) scratch T
    (train_batches passes one buffer for every batch)."""
    n, k_in = A.shape
    m = D.shape[1]
    k = idx.shape[1]
    ntiles = (m + SPARSE_COLS - 1) // SPARSE_COLS
    if ntiles > 1 and n * k * k_in + k_in * m >= MATMUL_PAR_MIN:
        for t in prange(ntiles):
            j0 = t * SPARSE_COLS
            _tn_sparse_cols(A, D, idx, C, T, j0, min(j0 + SPARSE_COLS, m))
    else:
        for t in range(ntiles):
            j0 = t * SPARSE_COLS
            _tn_sparse_cols(A, D, idx, C, T, j0, min(j0 + SPARSE_COLS, m))


@helper
def _nt_sparse_row(d, cols, Bt, c):
    """c = sum_t d[cols[t]] Bt[cols[t]], t in order (contiguous axpys)."""
    zero = c.dtype.type(0)
    for r in range(c.shape[0]):
        c[r] = zero
    for t in range(cols.shape[0]):
        j = cols[t]
        v = d[j]
        b = Bt[j]
        for r in range(c.shape[0]):
            c[r] += v * b[r]


@serial   # checks and the scratch; the parallel loops are in the *_ws kernel
def matmul_nt_sparse(D, idx, B, C, n_threads):
    """C = D @ B.T using only columns idx[i] of row i of D (summed in the order
    of idx)."""
    n, m = D.shape
    k_in = B.shape[0]
    k = idx.shape[1]
    if idx.shape[0] != n or B.shape[1] != m or C.shape[0] != n or C.shape[1] != k_in:
        raise ValueError("matmul_nt_sparse: shapes do not match")
    if not _check_idx(idx, m):
        raise IndexError("matmul_nt_sparse: idx holds a column outside D (out of range [0, m))")
    nt_sparse_ws(D, idx, B, C, np.empty((m, k_in), B.dtype), n_threads)


@kernel
def nt_sparse_ws(D, idx, B, C, Bt, n_threads):
    """matmul_nt_sparse's work, checks done, with the caller's (m, k_in) scratch Bt
    (train_batches passes one buffer for every batch)."""
    n, m = D.shape
    k_in = B.shape[0]
    k = idx.shape[1]
    ntiles = (m + SPARSE_COLS - 1) // SPARSE_COLS
    if n > 1 and n * k * k_in + k_in * m >= MATMUL_PAR_MIN:
        for t in prange(ntiles):
            _transpose(B, Bt, t * SPARSE_COLS, min(t * SPARSE_COLS + SPARSE_COLS, m))
        for i in prange(n):
            _nt_sparse_row(D[i], idx[i], Bt, C[i])
    else:
        for t in range(ntiles):
            _transpose(B, Bt, t * SPARSE_COLS, min(t * SPARSE_COLS + SPARSE_COLS, m))
        for i in range(n):
            _nt_sparse_row(D[i], idx[i], Bt, C[i])
