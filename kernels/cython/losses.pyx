# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Loss heads (Cython twin of kernels/numba/losses.py).

    softmax_xent   fused stable softmax + cross-entropy on logits
    sigmoid_bce    fused stable sigmoid + binary cross-entropy on logits
    mse, mae       regression losses on the activations

Every kernel works row by row: rows run in parallel (each thread owns its
rows), a row's reductions run in order in double.  ``loss`` receives the
unweighted per-row loss (float64); the gradient is scaled by ``w_i * scale``
(and ``/ k`` for the per-column means), ``w_i`` = 1 when ``sw`` is empty.

The cdef versions (``*_c``, declared in losses.pxd) take an optional row index
``rows``: row i of the batch reads its targets and weight at ``rows[i]``, so the
training step reads them straight from the caller's arrays, without a copy.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log, log1p, fabs, fmax
from libc.stdint cimport int64_t

from ._types cimport ELEM_PAR_MIN
from ._generated_elementwise cimport exp_inplace_c

cdef extern from *:
    """
    /* no contraction of a multiply and an add into an FMA (gcc does it for an
       -march with FMA): the loss heads round as the numba twin's strict row
       functions do, whatever the build's instruction set */
    #pragma GCC optimize ("fp-contract=off")
    """


cdef inline Py_ssize_t _row(const int64_t* rows, Py_ssize_t i) noexcept nogil:
    return rows[i] if rows != NULL else i


cdef inline double _sign(double x) noexcept nogil:
    """np.sign: -1, 0 or 1, NaN for NaN (as the reference and the numba twin)."""
    return x if x != x else <double> ((x > 0) - (x < 0))


# ---------------------------------------------------------------------------
# cdef entry points (declared in losses.pxd).  Each loss runs its rows through
# one ``_<loss>_rows(i0, i1, ...)`` function: once per tile of HEAD_TILE elements'
# worth of rows inside a prange when the call is big enough for threads, once for
# all rows otherwise (no OpenMP region at all: libgomp charges even for a disabled
# one).  Rows are independent: the tiling never changes a bit.
# ---------------------------------------------------------------------------
cdef enum:
    # softmax_xent: rows per block (z - max of the block's rows into P, one vector
    # exponential over them, then each row's sums); any block size gives the same bits
    XENT_ROWS = 256
    # rows of a parallel task: this many elements' worth (at least one row)
    HEAD_TILE = 2048


cdef inline void _softmax_xent_rows(Py_ssize_t i0, Py_ssize_t i1, const floating* Z,
                                    const floating* Y, const int64_t* labels,
                                    const floating* sw, const int64_t* rows, double scale,
                                    floating* P, double* loss, floating* dZ,
                                    Py_ssize_t k) noexcept nogil:
    """Rows i0..i1-1, the numba twin's formula and order (same bits): jm = the first
    column of the row max mx; e_j = fn_exp(z_j - mx) in the array dtype (fn_math.h's
    vector loop, through exp_inplace_c, written into P: P must not overlap Z); s_rest =
    (e_jm - 1) + sum over j != jm of e_j in column order, in double; p_j = e_j / (1 +
    s_rest); loss = sum_j y_j ((mx - z_j) + log1p(s_rest)).  The delta p - y at jm is
    ((1 - y) - y s_rest) / (1 + s_rest): for a confident, correct prediction p_jm - 1 =
    -s_rest / (1 + s_rest) keeps its relative precision (1 / (1 + s_rest) - 1 loses it
    to cancellation once the logit gap is 10-30)."""
    cdef Py_ssize_t b0, b1, i, j, r, lab, jm
    cdef const floating* z
    cdef floating* p
    cdef floating* d
    cdef floating mx
    cdef double mxd, s_rest, inv, l1p, ws, acc, y, pj, el
    cdef Py_ssize_t jms[XENT_ROWS]
    b0 = i0
    while b0 < i1:
        b1 = min(b0 + XENT_ROWS, i1)
        for i in range(b0, b1):
            z = Z + i * k
            p = P + i * k
            jm = 0
            mx = z[0]
            for j in range(1, k):
                if z[j] > mx:
                    mx = z[j]
                    jm = j
            jms[i - b0] = jm
            for j in range(k):
                p[j] = z[j] - mx
        exp_inplace_c(P + b0 * k, (b1 - b0) * k)
        for i in range(b0, b1):
            r = _row(rows, i)
            z = Z + i * k
            p = P + i * k
            d = dZ + i * k
            jm = jms[i - b0]
            mxd = z[jm]
            # e^0 - 1 = 0, or NaN for an infinite max: then the row is NaN, as the reference's
            s_rest = <double> p[jm] - 1.0
            for j in range(k):
                if j != jm:
                    s_rest = s_rest + p[j]
            inv = 1.0 / (1.0 + s_rest)
            l1p = log1p(s_rest)
            ws = (sw[r] if sw != NULL else 1.0) * scale
            if labels != NULL:
                lab = labels[r]
                loss[i] = (mxd - z[lab]) + l1p
                el = p[lab]
                for j in range(k):
                    pj = p[j] * inv
                    p[j] = <floating> pj
                    d[j] = <floating> (pj * ws)
                d[lab] = <floating> ((-s_rest * inv if lab == jm else el * inv - 1.0) * ws)
            else:
                acc = 0.0
                for j in range(k):
                    y = Y[r * k + j]
                    if y != 0.0:
                        # (a zero target skips its term: 0 * inf for a -inf logit is NaN)
                        acc = acc + y * ((mxd - z[j]) + l1p)
                loss[i] = acc
                for j in range(k):
                    pj = p[j] * inv
                    p[j] = <floating> pj
                    d[j] = <floating> ((pj - Y[r * k + j]) * ws)
                y = Y[r * k + jm]
                d[jm] = <floating> ((((1.0 - y) - y * s_rest) * inv) * ws)
        b0 = b1


cdef inline void _sigmoid_bce_rows(Py_ssize_t i0, Py_ssize_t i1, const floating* Z,
                                   const floating* Y, const floating* sw,
                                   const int64_t* rows, double scale, floating* P, double* loss,
                                   floating* dZ, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t i, j, r
    cdef double z, y, e, acc, wk, pj
    for i in range(i0, i1):
        r = _row(rows, i)
        wk = (sw[r] if sw != NULL else 1.0) * scale / k
        acc = 0.0
        for j in range(k):
            z = Z[i * k + j]
            y = Y[r * k + j]
            e = exp(-fabs(z))
            # softplus(z) - y z = max(z, 0) + log1p(e^-|z|) - y z
            acc = acc + (fmax(z, 0.0) - z * y + log1p(e))
            # p - y from p in double, not from the stored (rounded) P: the numba twin's bits
            pj = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
            P[i * k + j] = <floating> pj
            dZ[i * k + j] = <floating> ((pj - y) * wk)
        loss[i] = acc / k


cdef void softmax_xent_c(const floating* Z, const floating* Y, const int64_t* labels,
                         const floating* sw, const int64_t* rows, double scale,
                         floating* P, double* loss, floating* dZ,
                         Py_ssize_t n, Py_ssize_t k, int n_threads) noexcept nogil:
    _head(HEAD_SOFTMAX_XENT, Z, Y, labels, sw, rows, scale, P, loss, dZ, n, k, n_threads)


cdef void sigmoid_bce_c(const floating* Z, const floating* Y, const floating* sw,
                        const int64_t* rows, double scale,
                        floating* P, double* loss, floating* dZ,
                        Py_ssize_t n, Py_ssize_t k, int n_threads) noexcept nogil:
    _head(HEAD_SIGMOID_BCE, Z, Y, NULL, sw, rows, scale, P, loss, dZ, n, k, n_threads)


cdef inline void _regression_rows(bint absolute, Py_ssize_t i0, Py_ssize_t i1,
                                  const floating* A, const floating* Y, const floating* sw,
                                  const int64_t* rows, double scale, double* loss,
                                  floating* dA, Py_ssize_t k) noexcept nogil:
    """mse (absolute false) or mae rows i0..i1-1 (the choice is made per row, outside
    the element loop)."""
    cdef Py_ssize_t i, j, r
    cdef double diff    # a - y in double: exact for float32 (the numba twin's bits)
    cdef double acc, wk
    for i in range(i0, i1):
        r = _row(rows, i)
        wk = (sw[r] if sw != NULL else 1.0) * scale / k
        acc = 0.0
        if absolute:
            for j in range(k):
                diff = <double> A[i * k + j] - Y[r * k + j]
                acc = acc + fabs(diff)
                # sign(diff) with sign(0) = 0 and NaN for NaN
                dA[i * k + j] = <floating> (_sign(diff) * wk)
        else:
            for j in range(k):
                diff = <double> A[i * k + j] - Y[r * k + j]
                acc = acc + diff * diff
                dA[i * k + j] = <floating> (2.0 * diff * wk)
        loss[i] = acc / k


# the loss heads' codes (kernels/defs.py HEAD_*; test_contract checks the values)
cdef enum:
    HEAD_MSE = 0
    HEAD_MAE = 1
    HEAD_SOFTMAX_XENT = 2
    HEAD_SIGMOID_BCE = 3


cdef inline void _head_rows(int head, Py_ssize_t i0, Py_ssize_t i1, const floating* Z,
                            const floating* Y, const int64_t* labels, const floating* sw,
                            const int64_t* rows, double scale, floating* P, double* loss,
                            floating* D, Py_ssize_t k) noexcept nogil:
    """Rows i0..i1-1 of one loss (Z: logits for the fused heads, activations for
    the regression ones, which have no P)."""
    if head == HEAD_SOFTMAX_XENT:
        _softmax_xent_rows(i0, i1, Z, Y, labels, sw, rows, scale, P, loss, D, k)
    elif head == HEAD_SIGMOID_BCE:
        _sigmoid_bce_rows(i0, i1, Z, Y, sw, rows, scale, P, loss, D, k)
    else:
        _regression_rows(head == HEAD_MAE, i0, i1, Z, Y, sw, rows, scale, loss, D, k)


cdef void _head(int head, const floating* Z, const floating* Y, const int64_t* labels,
                const floating* sw, const int64_t* rows, double scale, floating* P,
                double* loss, floating* D, Py_ssize_t n, Py_ssize_t k,
                int n_threads) noexcept nogil:
    cdef Py_ssize_t t, nt, rt
    if k <= 0:
        return
    if n > 1 and n * k >= ELEM_PAR_MIN:
        rt = max(HEAD_TILE // k, 1)
        nt = (n + rt - 1) // rt
        for t in prange(nt, schedule='static', num_threads=n_threads):
            _head_rows(head, t * rt, min(t * rt + rt, n), Z, Y, labels, sw, rows, scale, P,
                       loss, D, k)
    else:
        _head_rows(head, 0, n, Z, Y, labels, sw, rows, scale, P, loss, D, k)


cdef void mse_c(const floating* A, const floating* Y, const floating* sw,
                const int64_t* rows, double scale, double* loss, floating* dA,
                Py_ssize_t n, Py_ssize_t k, int n_threads) noexcept nogil:
    _head(HEAD_MSE, A, Y, NULL, sw, rows, scale, NULL, loss, dA, n, k, n_threads)


cdef void mae_c(const floating* A, const floating* Y, const floating* sw,
                const int64_t* rows, double scale, double* loss, floating* dA,
                Py_ssize_t n, Py_ssize_t k, int n_threads) noexcept nogil:
    _head(HEAD_MAE, A, Y, NULL, sw, rows, scale, NULL, loss, dA, n, k, n_threads)


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
cdef int _check_rows(str name, Py_ssize_t n, Py_ssize_t k, Py_ssize_t y_rows, Py_ssize_t y_cols,
                     bint need_y, Py_ssize_t sw_n, Py_ssize_t loss_n,
                     Py_ssize_t o1_rows, Py_ssize_t o1_cols,
                     Py_ssize_t o2_rows, Py_ssize_t o2_cols) except -1:
    if need_y and (y_rows != n or y_cols != k):
        raise ValueError("%s: Y has shape (%d, %d), expected (%d, %d)" % (name, y_rows, y_cols, n, k))
    if sw_n != 0 and sw_n != n:
        raise ValueError("%s: sw has %d entries, expected %d or 0" % (name, sw_n, n))
    if loss_n != n:
        raise ValueError("%s: loss has %d entries, expected %d" % (name, loss_n, n))
    if o1_rows != n or o1_cols != k or o2_rows != n or o2_cols != k:
        raise ValueError("%s: outputs must have shape (%d, %d)" % (name, n, k))
    return 0


def softmax_xent(const floating[:, ::1] Z,       # IN (n, k) logits
                 const floating[:, ::1] Y,       # IN (n, k) or (0, k)
                 const int64_t[::1] labels,      # IN (n,) or (0,)
                 const floating[::1] sw,         # IN (n,) or (0,)
                 double scale,
                 floating[:, ::1] P,             # OUT (n, k)
                 double[::1] loss,               # OUT (n,)
                 floating[:, ::1] dZ,            # OUT (n, k)
                 int n_threads):
    """Fused stable softmax + cross-entropy: P = softmax(Z); loss[i] = -sum_j Y
    log P (or -log P[i, labels[i]] when labels is not empty), unweighted;
    dZ = (P - Y) * w_i * scale."""
    cdef Py_ssize_t n = Z.shape[0], k = Z.shape[1], i
    cdef bint sparse = labels.shape[0] != 0
    _check_rows("softmax_xent", n, k, Y.shape[0], Y.shape[1], not sparse, sw.shape[0],
                loss.shape[0], P.shape[0], P.shape[1], dZ.shape[0], dZ.shape[1])
    if sparse:
        if labels.shape[0] != n:
            raise ValueError("softmax_xent: labels has %d entries, expected %d or 0"
                             % (labels.shape[0], n))
        for i in range(n):
            if labels[i] < 0 or labels[i] >= k:
                raise ValueError("softmax_xent: label %d out of range [0, %d)" % (labels[i], k))
    if n == 0:
        return
    if k == 0:
        raise ValueError("softmax_xent: Z has no columns")
    with nogil:
        softmax_xent_c(&Z[0, 0], &Y[0, 0] if not sparse else NULL,
                       &labels[0] if sparse else NULL, &sw[0] if sw.shape[0] else NULL,
                       NULL, scale, &P[0, 0], &loss[0], &dZ[0, 0], n, k, max(n_threads, 1))


def sigmoid_bce(const floating[:, ::1] Z,       # IN (n, k) logits
                const floating[:, ::1] Y,       # IN (n, k)
                const floating[::1] sw,         # IN (n,) or (0,)
                double scale,
                floating[:, ::1] P,             # OUT (n, k)
                double[::1] loss,               # OUT (n,)
                floating[:, ::1] dZ,            # OUT (n, k)
                int n_threads):
    """Fused stable sigmoid + binary cross-entropy on logits: P = sigmoid(Z);
    loss[i] = mean_j(max(z,0) - z y + log1p(exp(-|z|))), unweighted;
    dZ = (P - Y) * w_i * scale / k."""
    cdef Py_ssize_t n = Z.shape[0], k = Z.shape[1]
    _check_rows("sigmoid_bce", n, k, Y.shape[0], Y.shape[1], True, sw.shape[0],
                loss.shape[0], P.shape[0], P.shape[1], dZ.shape[0], dZ.shape[1])
    if n == 0 or k == 0:
        return
    with nogil:
        sigmoid_bce_c(&Z[0, 0], &Y[0, 0], &sw[0] if sw.shape[0] else NULL, NULL, scale,
                      &P[0, 0], &loss[0], &dZ[0, 0], n, k, max(n_threads, 1))


def mse(const floating[:, ::1] A,       # IN (n, k)
        const floating[:, ::1] Y,       # IN (n, k)
        const floating[::1] sw,         # IN (n,) or (0,)
        double scale,
        double[::1] loss,               # OUT (n,)
        floating[:, ::1] dA,            # OUT (n, k)
        int n_threads):
    """loss[i] = mean_j (A - Y)^2 (unweighted); dA = 2 (A - Y) * w_i * scale / k."""
    cdef Py_ssize_t n = A.shape[0], k = A.shape[1]
    _check_rows("mse", n, k, Y.shape[0], Y.shape[1], True, sw.shape[0],
                loss.shape[0], dA.shape[0], dA.shape[1], dA.shape[0], dA.shape[1])
    if n == 0 or k == 0:
        return
    with nogil:
        mse_c(&A[0, 0], &Y[0, 0], &sw[0] if sw.shape[0] else NULL, NULL, scale,
              &loss[0], &dA[0, 0], n, k, max(n_threads, 1))


def mae(const floating[:, ::1] A,       # IN (n, k)
        const floating[:, ::1] Y,       # IN (n, k)
        const floating[::1] sw,         # IN (n,) or (0,)
        double scale,
        double[::1] loss,               # OUT (n,)
        floating[:, ::1] dA,            # OUT (n, k)
        int n_threads):
    """loss[i] = mean_j |A - Y| (unweighted); dA = sign(A - Y) * w_i * scale / k."""
    cdef Py_ssize_t n = A.shape[0], k = A.shape[1]
    _check_rows("mae", n, k, Y.shape[0], Y.shape[1], True, sw.shape[0],
                loss.shape[0], dA.shape[0], dA.shape[1], dA.shape[0], dA.shape[1])
    if n == 0 or k == 0:
        return
    with nogil:
        mae_c(&A[0, 0], &Y[0, 0], &sw[0] if sw.shape[0] else NULL, NULL, scale,
              &loss[0], &dA[0, 0], n, k, max(n_threads, 1))
