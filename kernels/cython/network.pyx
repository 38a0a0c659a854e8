# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Whole-network drivers (Cython twin of kernels/numba/network.py).

    forward         inference through every layer (no dropout)
    train_batches   the whole training step, batch after batch

The Python wrappers check every shape and index once, take the memoryviews,
then run everything inside ``with nogil:``: for each batch, gather its rows by
index from the caller's X (no copy of the epoch's data), forward through every
layer (with dropout), the fused loss head (targets and weights read through
the same row index), backward, regularization and the optimizer update.  The
inner kernels are the cdef functions of matmul / _generated_elementwise /
losses / reduce (cimported through their .pxd files); each runs its own
parallel loops over output tiles, so results are bit-identical for any
``n_threads``.

The training workspace ``work`` follows ``fastnet.backends._api.workspace_layout``:
X (bs x n_in), then per layer Z_l, A_l and (with dropout) M_l (bs x out_l),
then two delta buffers D0, D1 (bs x max width).  The fused heads write P into
A of the last layer (whose activation is not applied in training).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

import numpy as np

from ._types cimport ELEM_PAR_MIN
from .matmul cimport matmul_c, matmul_tn_c, matmul_nt_c
from ._generated_elementwise cimport bias_act_forward_c, act_backward_c, optimizer_update_c
from .losses cimport softmax_xent_c, sigmoid_bce_c, mse_c, mae_c
from .reduce cimport bias_grad_c, gather_rows_c, regularize_c, regularize_scratch

from fastnet._kernels import defs
from .reduce import check_spec
from ._generated_elementwise import N_SLOTS

# codes and spec columns, read from the one table at import
cdef Py_ssize_t I_IN = defs.I_IN
cdef Py_ssize_t I_OUT = defs.I_OUT
cdef Py_ssize_t I_ACT = defs.I_ACT
cdef Py_ssize_t I_W = defs.I_W
cdef Py_ssize_t I_B = defs.I_B
cdef Py_ssize_t F_ALPHA = defs.F_ALPHA
cdef Py_ssize_t F_DROP = defs.F_DROP
cdef Py_ssize_t F_L1 = defs.F_L1
cdef Py_ssize_t F_L2 = defs.F_L2
cdef int ACT_LINEAR = defs.ACT_LINEAR
cdef int HEAD_MSE = defs.HEAD_MSE
cdef int HEAD_MAE = defs.HEAD_MAE
cdef int HEAD_SOFTMAX_XENT = defs.HEAD_SOFTMAX_XENT
cdef int HEAD_SIGMOID_BCE = defs.HEAD_SIGMOID_BCE
# dropout hash constants (splitmix64)
cdef uint64_t GOLDEN = defs.GOLDEN
cdef uint64_t MIX1 = defs.MIX1
cdef uint64_t MIX2 = defs.MIX2
cdef double TWO_M53 = 2.0 ** -53


# ---------------------------------------------------------------------------
# dropout: the counter-based mask of kernels/defs.py
# ---------------------------------------------------------------------------
cdef inline bint _keep(uint64_t key, uint64_t c, double rate) noexcept nogil:
    """keep <=> (mix64(key + (c + 1) * GOLDEN) >> 11) * 2**-53 >= rate (uint64 wrapping)."""
    cdef uint64_t z = key + (c + 1) * GOLDEN
    z = (z ^ (z >> 30)) * MIX1
    z = (z ^ (z >> 27)) * MIX2
    z = z ^ (z >> 31)
    return <double> (z >> 11) * TWO_M53 >= rate


def dropout_keep(uint64_t key, uint64_t c, double rate):
    """Whether element counter ``c`` (uint64) is kept for ``key`` (uint64)."""
    return _keep(key, c, rate)


cdef void _dropout(floating* X, floating* out, Py_ssize_t n, Py_ssize_t w,
                   uint64_t key, uint64_t base, double rate, int n_threads) noexcept nogil:
    """out = X * mask (out may be X), mask = 1/(1-rate) (in the array dtype) where
    kept, 0 where dropped; element (i, j) uses counter base + i*w + j, with
    base = (b * L + l) * batch_size * w."""
    cdef floating keep_scale = <floating> (1.0 / (1.0 - rate))
    cdef Py_ssize_t i, j
    for i in prange(n, schedule='static', num_threads=n_threads,
                    use_threads_if=n > 1 and n * w >= ELEM_PAR_MIN):
        for j in range(w):
            if _keep(key, base + <uint64_t> (i * w + j), rate):
                out[i * w + j] = X[i * w + j] * keep_scale
            else:
                out[i * w + j] = X[i * w + j] * 0


# ---------------------------------------------------------------------------
# workspace layout (kept in step with fastnet.backends._api.workspace_layout)
# ---------------------------------------------------------------------------
cdef Py_ssize_t _layout(const int64_t* ispec, const double* fspec, Py_ssize_t L,
                        Py_ssize_t ni, Py_ssize_t nf, Py_ssize_t bs,
                        Py_ssize_t* offs) noexcept nogil:
    """offs[3l], offs[3l+1], offs[3l+2] = offsets of Z_l, A_l, M_l (-1: no dropout);
    offs[3L], offs[3L+1] = D0, D1.  Returns the total size (X at offset 0)."""
    cdef Py_ssize_t l, w, maxw = ispec[I_IN]
    cdef Py_ssize_t pos = bs * ispec[I_IN]
    for l in range(L):
        w = ispec[l * ni + I_OUT]
        maxw = max(maxw, w)
        offs[3 * l] = pos
        pos += bs * w
        offs[3 * l + 1] = pos
        pos += bs * w
        if fspec[l * nf + F_DROP] > 0:
            offs[3 * l + 2] = pos
            pos += bs * w
        else:
            offs[3 * l + 2] = -1
    offs[3 * L] = pos
    pos += bs * maxw
    offs[3 * L + 1] = pos
    pos += bs * maxw
    return pos


def workspace_offsets(const int64_t[:, ::1] ispec, const double[:, ::1] fspec,
                      Py_ssize_t batch_size):
    """The offsets this module uses, in the form of ``_api.workspace_layout`` (for tests)."""
    cdef Py_ssize_t L = ispec.shape[0], l
    cdef Py_ssize_t[::1] offs = np.empty(3 * L + 2, dtype=np.intp)
    size = _layout(&ispec[0, 0], &fspec[0, 0], L, ispec.shape[1], fspec.shape[1],
                   batch_size, &offs[0])
    out = {"X": 0, "D0": offs[3 * L], "D1": offs[3 * L + 1], "size": size}
    for l in range(L):
        out[("Z", l)] = offs[3 * l]
        out[("A", l)] = offs[3 * l + 1]
        if offs[3 * l + 2] >= 0:
            out[("M", l)] = offs[3 * l + 2]
    return out


# ---------------------------------------------------------------------------
# the compiled drivers
# ---------------------------------------------------------------------------
cdef void _forward(const floating* X, const int64_t* ispec, const double* fspec,
                   Py_ssize_t L, Py_ssize_t ni, Py_ssize_t nf, const floating* params,
                   floating* work, floating* out, Py_ssize_t n, Py_ssize_t maxw,
                   int n_threads) noexcept nogil:
    cdef const floating* inp = X
    cdef floating* dest
    cdef const floating* bias
    cdef Py_ssize_t l, n_in, n_out, bo
    for l in range(L):
        n_in = ispec[l * ni + I_IN]
        n_out = ispec[l * ni + I_OUT]
        bo = ispec[l * ni + I_B]
        bias = params + bo if bo >= 0 else NULL
        if l == L - 1:
            dest = out
        else:
            dest = work + (l % 2) * n * maxw
        matmul_c(inp, params + ispec[l * ni + I_W], dest, n, n_in, n_out, n_threads)
        bias_act_forward_c(bias, <int> ispec[l * ni + I_ACT], fspec[l * nf + F_ALPHA],
                           dest, dest, n, n_out, n_threads)
        inp = dest


cdef void _train(
        const floating* X, Py_ssize_t n_in, const floating* Y, const int64_t* labels,
        const floating* sw, const int64_t* perm, Py_ssize_t M,
        Py_ssize_t bs, Py_ssize_t first_batch, Py_ssize_t n_batches,
        const int64_t* ispec, const double* fspec, Py_ssize_t L, Py_ssize_t ni, Py_ssize_t nf,
        int head, int opt, const double* hyper, Py_ssize_t t0, uint64_t key,
        floating* params, floating* grads, floating* state, Py_ssize_t P,
        floating* work, double* batch_loss, floating* scores,
        const Py_ssize_t* offs, double* row_loss, floating* wt, double* reg_scratch,
        bint regularized, int n_threads) noexcept nogil:
    cdef Py_ssize_t step, b, r0, nb, l, i, k, w_in, w_out, bo
    cdef const int64_t* rows
    cdef const floating* inp
    cdef floating* Z
    cdef floating* A
    cdef floating* D
    cdef floating* D2
    cdef floating* tmp
    cdef double rate, data, alpha
    cdef int act
    cdef bint fused = head == HEAD_SOFTMAX_XENT or head == HEAD_SIGMOID_BCE
    cdef floating* Xb = work
    cdef floating* ZL = work + offs[3 * (L - 1)]
    cdef floating* AL = work + offs[3 * (L - 1) + 1]
    k = ispec[(L - 1) * ni + I_OUT]

    for step in range(n_batches):
        b = first_batch + step
        r0 = b * bs
        nb = min(bs, M - r0)
        rows = perm + r0

        # ---- forward, keeping Z_l, A_l (and the dropped-out copy M_l)
        gather_rows_c(X, rows, Xb, nb, n_in, n_threads)
        inp = Xb
        for l in range(L):
            w_in = ispec[l * ni + I_IN]
            w_out = ispec[l * ni + I_OUT]
            bo = ispec[l * ni + I_B]
            Z = work + offs[3 * l]
            A = work + offs[3 * l + 1]
            matmul_c(inp, params + ispec[l * ni + I_W], Z, nb, w_in, w_out, n_threads)
            if l == L - 1 and fused:
                # logits: add the bias only; the head writes P into A
                if bo >= 0:
                    bias_act_forward_c(params + bo, ACT_LINEAR, 0.0, Z, Z, nb, w_out, n_threads)
            else:
                bias_act_forward_c(params + bo if bo >= 0 else NULL, <int> ispec[l * ni + I_ACT],
                                   fspec[l * nf + F_ALPHA], Z, A, nb, w_out, n_threads)
            inp = A
            if l < L - 1 and offs[3 * l + 2] >= 0:
                _dropout(A, work + offs[3 * l + 2], nb, w_out, key,
                         ((<uint64_t> b * <uint64_t> L + <uint64_t> l) * <uint64_t> bs) * <uint64_t> w_out,
                         fspec[l * nf + F_DROP], n_threads)
                inp = work + offs[3 * l + 2]

        # ---- loss head: per-row losses, dL/dz of the last layer into D
        D = work + offs[3 * L]
        D2 = work + offs[3 * L + 1]
        if head == HEAD_SOFTMAX_XENT:
            softmax_xent_c(ZL, Y, labels, sw, rows, 1.0 / nb, AL, row_loss, D, nb, k, n_threads)
        elif head == HEAD_SIGMOID_BCE:
            sigmoid_bce_c(ZL, Y, sw, rows, 1.0 / nb, AL, row_loss, D, nb, k, n_threads)
        else:
            if head == HEAD_MSE:
                mse_c(AL, Y, sw, rows, 1.0 / nb, row_loss, D, nb, k, n_threads)
            else:
                mae_c(AL, Y, sw, rows, 1.0 / nb, row_loss, D, nb, k, n_threads)
            act_backward_c(ZL, AL, D, <int> ispec[(L - 1) * ni + I_ACT],
                           fspec[(L - 1) * nf + F_ALPHA], D, nb, k, n_threads)
        data = 0.0
        for i in range(nb):
            data = data + (sw[rows[i]] if sw != NULL else 1.0) * row_loss[i]
        data = data / nb
        if scores != NULL:
            memcpy(scores + r0 * k, AL, nb * k * sizeof(floating))

        # ---- backward: D holds dL/dz of layer l
        for l in range(L - 1, -1, -1):
            w_in = ispec[l * ni + I_IN]
            w_out = ispec[l * ni + I_OUT]
            bo = ispec[l * ni + I_B]
            if l == 0:
                inp = Xb
            elif offs[3 * (l - 1) + 2] >= 0:
                inp = work + offs[3 * (l - 1) + 2]
            else:
                inp = work + offs[3 * (l - 1) + 1]
            matmul_tn_c(inp, D, grads + ispec[l * ni + I_W], w_in, nb, w_out, n_threads)
            if bo >= 0:
                bias_grad_c(D, grads + bo, nb, w_out, n_threads)
            if l > 0:
                # delta through W (pre-update weights), the dropout mask, g'
                matmul_nt_c(D, params + ispec[l * ni + I_W], D2, nb, w_out, w_in, wt, n_threads)
                rate = fspec[(l - 1) * nf + F_DROP]
                if offs[3 * (l - 1) + 2] >= 0:
                    _dropout(D2, D2, nb, w_in, key,
                             ((<uint64_t> b * <uint64_t> L + <uint64_t> (l - 1)) * <uint64_t> bs)
                             * <uint64_t> w_in, rate, n_threads)
                act_backward_c(work + offs[3 * (l - 1)], work + offs[3 * (l - 1) + 1], D2,
                               <int> ispec[(l - 1) * ni + I_ACT], fspec[(l - 1) * nf + F_ALPHA],
                               D2, nb, w_in, n_threads)
                tmp = D
                D = D2
                D2 = tmp

        # ---- regularization (pre-update weights), loss, update
        if regularized:
            data = data + regularize_c(ispec, fspec, L, ni, nf, params, grads, reg_scratch,
                                       n_threads)
        batch_loss[step] = data
        optimizer_update_c(opt, hyper, t0 + step + 1, grads, params, state, P, n_threads)


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
def forward(const floating[:, ::1] X,        # IN (n, n_in)
            const int64_t[:, ::1] ispec,     # IN (L, NI)
            const double[:, ::1] fspec,      # IN (L, NF)
            const floating[::1] params,      # IN (P,)
            floating[::1] work,              # OUT (>= forward_workspace_size,)
            floating[:, ::1] out,            # OUT (n, n_out)
            int n_threads):
    """out = the last layer's activations of the network on X (inference: no
    dropout).  work: two ping-pong buffers of n x (max layer width)."""
    cdef Py_ssize_t n = X.shape[0], L = ispec.shape[0], l, maxw = 0
    check_spec(ispec, fspec, params.shape[0])
    for l in range(L):
        maxw = max(maxw, <Py_ssize_t> ispec[l, I_OUT])
    if X.shape[1] != ispec[0, I_IN]:
        raise ValueError("forward: X has %d columns, the network takes %d"
                         % (X.shape[1], ispec[0, I_IN]))
    if out.shape[0] != n or out.shape[1] != ispec[L - 1, I_OUT]:
        raise ValueError("forward: out has shape (%d, %d), expected (%d, %d)"
                         % (out.shape[0], out.shape[1], n, ispec[L - 1, I_OUT]))
    if L > 1 and work.shape[0] < 2 * n * maxw:
        raise ValueError("forward: work has %d elements, needs %d" % (work.shape[0], 2 * n * maxw))
    if n == 0:
        return
    with nogil:
        _forward(&X[0, 0], &ispec[0, 0], &fspec[0, 0], L, ispec.shape[1], fspec.shape[1],
                 &params[0], &work[0], &out[0, 0], n, maxw, max(n_threads, 1))


def train_batches(const floating[:, ::1] X,       # IN (N, n_in)
                  const floating[:, ::1] Y,       # IN (N, n_out) or (0, n_out)
                  const int64_t[::1] labels,      # IN (N,) int64 or (0,)
                  const floating[::1] sw,         # IN (N,) or (0,)
                  const int64_t[::1] perm,        # IN (M,) row indices into X
                  Py_ssize_t batch_size, Py_ssize_t first_batch, Py_ssize_t n_batches,
                  const int64_t[:, ::1] ispec,    # IN (L, NI)
                  const double[:, ::1] fspec,     # IN (L, NF)
                  int head, int opt,
                  const double[::1] hyper,        # IN (NH,) float64
                  Py_ssize_t t0, uint64_t rng_key,
                  floating[::1] params,           # INOUT (P,)
                  floating[::1] grads,            # OUT (P,)
                  floating[:, ::1] state,         # INOUT (N_STATE, P)
                  floating[::1] work,             # OUT (>= workspace_size,)
                  double[::1] batch_loss,         # OUT (n_batches,) float64
                  floating[:, ::1] scores,        # OUT (M, n_out) or (0, n_out)
                  int n_threads):
    """For b in first_batch .. first_batch + n_batches - 1: take rows
    perm[b*bs : min((b+1)*bs, M)], run forward (with dropout), the fused loss
    head, backward, regularization and the optimizer update with
    t = t0 + (b - first_batch) + 1.  batch_loss[b - first_batch] = the batch's
    mean weighted data loss before the update plus the regularization penalty
    of the pre-update weights.  When scores has M rows, scores[perm position] =
    the head's outputs (P for the fused heads, A for mse/mae).  grads holds the
    last batch's gradients on return."""
    cdef Py_ssize_t N = X.shape[0], M = perm.shape[0], P = params.shape[0]
    cdef Py_ssize_t L = ispec.shape[0], l, r, k, size, maxt = 1, lo, hi
    cdef bint regularized = False
    check_spec(ispec, fspec, P)
    k = ispec[L - 1, I_OUT]
    # ---- shapes
    if X.shape[1] != ispec[0, I_IN]:
        raise ValueError("train_batches: X has %d columns, the network takes %d"
                         % (X.shape[1], ispec[0, I_IN]))
    if head not in (HEAD_MSE, HEAD_MAE, HEAD_SOFTMAX_XENT, HEAD_SIGMOID_BCE):
        raise ValueError("train_batches: unknown head code %d" % head)
    if opt not in N_SLOTS:
        raise ValueError("train_batches: unknown optimizer code %d" % opt)
    if hyper.shape[0] < defs.NH:
        raise ValueError("train_batches: hyper must have %d entries" % defs.NH)
    if grads.shape[0] != P or state.shape[1] != P or state.shape[0] < N_SLOTS[opt]:
        raise ValueError("train_batches: grads (%d,) and state (%d, %d) do not match %d parameters"
                         % (grads.shape[0], state.shape[0], state.shape[1], P))
    if batch_size < 1 or first_batch < 0 or n_batches < 0:
        raise ValueError("train_batches: need batch_size >= 1, first_batch >= 0, n_batches >= 0")
    if n_batches == 0:
        return
    lo = first_batch * batch_size
    hi = min((first_batch + n_batches) * batch_size, M)
    if (first_batch + n_batches - 1) * batch_size >= M:
        raise ValueError("train_batches: batches %d..%d of size %d exceed the %d rows of perm"
                         % (first_batch, first_batch + n_batches - 1, batch_size, M))
    if batch_loss.shape[0] < n_batches:
        raise ValueError("train_batches: batch_loss has %d entries, needs %d"
                         % (batch_loss.shape[0], n_batches))
    if scores.shape[0] not in (0, M) or (scores.shape[0] == M and scores.shape[1] != k):
        raise ValueError("train_batches: scores has shape (%d, %d), expected (%d, %d) or (0, %d)"
                         % (scores.shape[0], scores.shape[1], M, k, k))
    if sw.shape[0] not in (0, N):
        raise ValueError("train_batches: sw has %d entries, expected %d or 0" % (sw.shape[0], N))
    cdef bint sparse = head == HEAD_SOFTMAX_XENT and labels.shape[0] != 0
    if sparse:
        if labels.shape[0] != N:
            raise ValueError("train_batches: labels has %d entries, expected %d or 0"
                             % (labels.shape[0], N))
    elif Y.shape[0] != N or Y.shape[1] != k:
        raise ValueError("train_batches: Y has shape (%d, %d), expected (%d, %d)"
                         % (Y.shape[0], Y.shape[1], N, k))
    # ---- every row index (and label) the batches will read
    for r in range(lo, hi):
        if perm[r] < 0 or perm[r] >= N:
            raise IndexError("train_batches: perm[%d] = %d out of range [0, %d)" % (r, perm[r], N))
        if sparse and (labels[perm[r]] < 0 or labels[perm[r]] >= k):
            raise ValueError("train_batches: label %d out of range [0, %d)" % (labels[perm[r]], k))
    # ---- workspace and scratch
    cdef Py_ssize_t[::1] offs = np.empty(3 * L + 2, dtype=np.intp)
    size = _layout(&ispec[0, 0], &fspec[0, 0], L, ispec.shape[1], fspec.shape[1],
                   batch_size, &offs[0])
    if work.shape[0] < size:
        raise ValueError("train_batches: work has %d elements, needs %d" % (work.shape[0], size))
    for l in range(L):
        if l > 0:
            maxt = max(maxt, <Py_ssize_t> (ispec[l, I_IN] * ispec[l, I_OUT]))
        if fspec[l, F_L1] != 0.0 or fspec[l, F_L2] != 0.0:
            regularized = True
    cdef double[::1] row_loss = np.empty(batch_size, dtype=np.float64)
    cdef double[::1] reg_scratch = np.empty(
        regularize_scratch(&ispec[0, 0], L, ispec.shape[1]), dtype=np.float64)
    wt_arr = np.empty(maxt, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] wt = wt_arr

    with nogil:
        _train(&X[0, 0], X.shape[1], &Y[0, 0] if not sparse else NULL,
               &labels[0] if sparse else NULL, &sw[0] if sw.shape[0] else NULL,
               &perm[0], M, batch_size, first_batch, n_batches,
               &ispec[0, 0], &fspec[0, 0], L, ispec.shape[1], fspec.shape[1],
               head, opt, &hyper[0], t0, rng_key,
               &params[0], &grads[0], &state[0, 0], P, &work[0], &batch_loss[0],
               &scores[0, 0] if scores.shape[0] else NULL,
               &offs[0], &row_loss[0], &wt[0], &reg_scratch[0], regularized,
               max(n_threads, 1))
