# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Whole-network drivers (Cython twin of kernels/numba/network.py).

    forward         inference through every layer (no dropout)
    train_batches   the whole training step, batch after batch

The Python wrappers check every shape and index once, take the memoryviews,
then run everything inside ``with nogil:``: for each batch, gather its rows by
index from the caller's X (no copy of the epoch's data), forward through every
layer (with dropout), the fused loss head (targets and weights read through
the same row index), backward, regularization and the optimizer update (each
layer's W and b as soon as the backward pass is done with them, when no
clipping, L1/L2, PReLU or diagnostics needs every gradient first).  The
inner kernels are the cdef functions of matmul / _generated_elementwise /
losses / reduce (cimported through their .pxd files); each runs its own
parallel loops over output tiles, so results are bit-identical for any
``n_threads``.

Small batches of a network whose first layer dominates (the seed workload,
784-30-10 at batch 10: every product far below the parallel thresholds) take
the first layer's product in two halves of p (``_ksplit``, decided by the shapes
alone, so every driver and thread count forms the same sums), and with two
threads train_batches hands the batches to the split step (``step_plan`` decides;
kernels/cython/split.pyx runs it): each thread owns one half of p (its rows of
W_0, its columns of the batch), the rest of the step runs on both, one team
barrier per batch.  The numba twin
forms the first layer in the same two halves (same bits, on one thread).

The training workspace ``work`` follows ``fastnet.backends._api.workspace_layout``:
X (bs x n_in), then per layer Z_l (bs x z width: out_l, or out_l * pieces for
Maxout), A_l and (with dropout) M_l (bs x out_l), then two delta buffers D0, D1
(bs x max width, z widths included).  The fused heads write P into A of the last
layer (whose activation is not applied in training).

The further techniques (kernels of layers.pyx): a Maxout layer's A is the max
over its pieces of Z; a PReLU layer adds its bias to Z, then A = prelu(Z) with
the slopes at layers[l].slopes_offset (their gradient goes to grads at the same
offset); meProp (0 < layers[l].topk < z width, Dense only) keeps each row's
k largest |dz| and forms the weight gradient and the delta below with the
sparse products.  Gradient clipping takes float64 norms (8 interleaved partial
sums, a fixed order) and updates each parameter array (clipnorm) or the whole buffer
(global_clipnorm) with its factor as the update's grad_scale.  The optional ``diag`` buffer (kernels/defs.py) adds finiteness checks
after each stage, per-unit counts and per-layer gradient norms; when it is
empty none of that code runs.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

import numpy as np

from ._types cimport ELEM_PAR_MIN, MATMUL_PAR_MIN
from ._generated_layer cimport layer_t
from .matmul cimport matmul_c, matmul_tn_c, matmul_nt_c, matmul_lda_c, matmul_ptr_c
from ._generated_elementwise cimport bias_act_forward_c, act_backward_c, optimizer_update_c
from .losses cimport softmax_xent_c, sigmoid_bce_c, mse_c, mae_c
from .reduce cimport bias_grad_c, gather_rows_c, regularize_c, regularize_scratch, records, all_finite_c
from .split cimport train_split
from .layers cimport (prelu_forward_c, prelu_backward_c, maxout_forward_c, maxout_backward_c,
                      topk_rows_c, matmul_tn_sparse_c, matmul_nt_sparse_c)

from fastnet._kernels import defs
from .reduce import check_layers
from ._generated_elementwise import N_SLOTS

# codes, read from the one table at import
cdef int64_t LAYER_DENSE = defs.LAYER_DENSE
cdef int64_t LAYER_MAXOUT = defs.LAYER_MAXOUT
cdef int ACT_PRELU = defs.ACT_PRELU
cdef int ACT_RELU = defs.ACT_RELU
cdef int ACT_RELU6 = defs.ACT_RELU6
cdef int ACT_SIGMOID = defs.ACT_SIGMOID
cdef int ACT_TANH = defs.ACT_TANH
cdef int OPT_NONE = defs.OPT_NONE
cdef Py_ssize_t H_CLIPNORM = defs.H_CLIPNORM
cdef Py_ssize_t H_GLOBAL_CLIPNORM = defs.H_GLOBAL_CLIPNORM
cdef Py_ssize_t DG_BATCH = defs.DG_BATCH
cdef Py_ssize_t DG_LAYER = defs.DG_LAYER
cdef Py_ssize_t DG_STAGE = defs.DG_STAGE
cdef Py_ssize_t DG_ROWS = defs.DG_ROWS
cdef double STAGE_FORWARD = defs.STAGE_FORWARD
cdef double STAGE_LOSS = defs.STAGE_LOSS
cdef double STAGE_BACKWARD = defs.STAGE_BACKWARD
cdef double STAGE_UPDATE = defs.STAGE_UPDATE
cdef double SATURATION = defs.SATURATION
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
    cdef Py_ssize_t i
    if n > 1 and n * w >= ELEM_PAR_MIN:
        for i in prange(n, schedule='static', num_threads=n_threads):
            _dropout_rows(X, out, i, i + 1, w, key, base, rate)
    else:
        _dropout_rows(X, out, 0, n, w, key, base, rate)


cdef inline void _dropout_rows(floating* X, floating* out, Py_ssize_t i0, Py_ssize_t i1,
                               Py_ssize_t w, uint64_t key, uint64_t base,
                               double rate) noexcept nogil:
    cdef floating keep_scale = <floating> (1.0 / (1.0 - rate))
    cdef Py_ssize_t i, j
    for i in range(i0, i1):
        for j in range(w):
            if _keep(key, base + <uint64_t> (i * w + j), rate):
                out[i * w + j] = X[i * w + j] * keep_scale
            else:
                out[i * w + j] = X[i * w + j] * 0


# ---------------------------------------------------------------------------
# layer geometry and workspace layout (kept in step with fastnet.backends._api)
# ---------------------------------------------------------------------------
cdef inline Py_ssize_t _zw(const layer_t* layers, Py_ssize_t l) noexcept nogil:
    """Columns of layer l's z: out * pieces for Maxout, out otherwise (spec checked)."""
    if layers[l].kind == LAYER_MAXOUT:
        return layers[l].n_out * layers[l].pieces
    return layers[l].n_out


cdef inline Py_ssize_t _topk(const layer_t* layers, Py_ssize_t l) noexcept nogil:
    """meProp k of layer l if it sparsifies (0 < k < z width, Dense), else 0 (_api.topk_of)."""
    cdef Py_ssize_t k = layers[l].topk
    if 0 < k < _zw(layers, l) and layers[l].kind == LAYER_DENSE:
        return k
    return 0


cdef Py_ssize_t _layout(const layer_t* layers, Py_ssize_t L, Py_ssize_t bs,
                        Py_ssize_t* offs) noexcept nogil:
    """offs[3l], offs[3l+1], offs[3l+2] = offsets of Z_l (bs x z width), A_l, M_l
    (-1: no dropout); offs[3L], offs[3L+1] = D0, D1.  Returns the total size (X at
    offset 0)."""
    cdef Py_ssize_t l, w, zw, maxw = layers[0].n_in
    cdef Py_ssize_t pos = bs * layers[0].n_in
    for l in range(L):
        w = layers[l].n_out
        zw = _zw(layers, l)
        maxw = max(maxw, max(w, zw))
        offs[3 * l] = pos
        pos += bs * zw
        offs[3 * l + 1] = pos
        pos += bs * w
        if layers[l].dropout > 0:
            offs[3 * l + 2] = pos
            pos += bs * w
        else:
            offs[3 * l + 2] = -1
    offs[3 * L] = pos
    pos += bs * maxw
    offs[3 * L + 1] = pos
    pos += bs * maxw
    return pos


def workspace_offsets(object layers, Py_ssize_t batch_size):
    """The offsets this module uses, in the form of ``_api.workspace_layout`` (for tests)."""
    cdef Py_ssize_t L, l
    cdef const layer_t* net = records(layers, &L)
    cdef Py_ssize_t[::1] offs = np.empty(3 * L + 2, dtype=np.intp)
    size = _layout(net, L, batch_size, &offs[0])
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
cdef void _layer_z(const floating* inp, const layer_t* layers, Py_ssize_t l, const floating* params,
                   floating* Z, floating* A, Py_ssize_t n, bint logits,
                   int n_threads) noexcept nogil:
    """Z = inp @ W + b (z width columns), then A = the layer's output: the max over
    the pieces (Maxout), prelu(Z), act(Z), or nothing when ``logits`` (Dense only).
    A may be Z except for Maxout."""
    cdef Py_ssize_t n_in = layers[l].n_in, n_out = layers[l].n_out
    cdef Py_ssize_t zw = _zw(layers, l), bo = layers[l].b_offset
    cdef int act = <int> layers[l].act
    cdef const floating* bias = params + bo if bo >= 0 else NULL
    matmul_c(inp, params + layers[l].w_offset, Z, n, n_in, zw, n_threads)
    if layers[l].kind == LAYER_MAXOUT:
        if bias != NULL:
            bias_act_forward_c(bias, ACT_LINEAR, 0.0, Z, Z, n, zw, n_threads)
        maxout_forward_c(Z, layers[l].pieces, A, n, n_out, n_threads)
    elif logits:
        if bias != NULL:
            bias_act_forward_c(bias, ACT_LINEAR, 0.0, Z, Z, n, zw, n_threads)
    elif act == ACT_PRELU:
        if bias != NULL:
            bias_act_forward_c(bias, ACT_LINEAR, 0.0, Z, Z, n, zw, n_threads)
        prelu_forward_c(Z, params + layers[l].slopes_offset, A, n, n_out, n_threads)
    else:
        bias_act_forward_c(bias, act, layers[l].act_param, Z, A, n, n_out, n_threads)


cdef void _forward(const floating* X, const layer_t* layers, Py_ssize_t L, const floating* params,
                   floating* work, floating* out, Py_ssize_t n, Py_ssize_t maxw,
                   int n_threads) noexcept nogil:
    """Two ping-pong buffers: a layer's z goes to the one not holding its input; a
    Maxout layer's output then goes to the other (its input is consumed)."""
    cdef const floating* inp = X
    cdef floating* buf0 = work
    cdef floating* buf1 = work + n * maxw
    cdef floating* zb
    cdef floating* other
    cdef floating* dest
    cdef Py_ssize_t l
    for l in range(L):
        if inp == buf0:
            zb = buf1
            other = buf0
        else:
            zb = buf0
            other = buf1
        if layers[l].kind == LAYER_MAXOUT:
            dest = out if l == L - 1 else other
            _layer_z(inp, layers, l, params, zb, dest, n, False, n_threads)
        else:
            dest = out if l == L - 1 else zb
            _layer_z(inp, layers, l, params, dest, dest, n, False, n_threads)
        inp = dest


# ---- diagnostics helpers (run only when diag is on)
cdef bint _finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """Whether x[0:n] is all finite: x - x is 0 for finite x, NaN for NaN and
    +-inf.  Blocks of 256 without an early exit inside (so gcc vectorises the
    test), an exit between blocks."""
    cdef Py_ssize_t i, i0, i1
    cdef int ok = 1
    for i0 in range(0, n, 256):
        i1 = min(i0 + 256, n)
        for i in range(i0, i1):
            ok = ok & (x[i] - x[i] == 0)
        if not ok:
            return False
    return True


cdef double _sumsq(const floating* x, Py_ssize_t n) noexcept nogil:
    """sum x^2 in float64 with 8 interleaved partial sums (element i goes to
    partial i % 8, the partials are added in order at the end): a fixed order
    for any thread count, without the serial chain's 4-cycle dependency."""
    cdef Py_ssize_t i, j, n8 = n - n % 8
    cdef double p[8]
    cdef double s = 0.0
    for j in range(8):
        p[j] = 0.0
    for i in range(0, n8, 8):
        for j in range(8):
            p[j] = p[j] + <double> x[i + j] * <double> x[i + j]
    for i in range(n8, n):
        p[i - n8] = p[i - n8] + <double> x[i] * <double> x[i]
    for j in range(8):
        s = s + p[j]
    return s


cdef void _counts(double* dg, int act, const floating* a, Py_ssize_t n,
                  Py_ssize_t w) noexcept nogil:
    """Per-unit activity (relu, relu6) or saturation (sigmoid, tanh) counts of the
    pre-dropout activations a (n, w); thresholds compared in the array dtype."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating sat_sig = <floating> (SATURATION * 0.25)
    cdef floating sat_tanh = <floating> SATURATION
    if act == ACT_RELU or act == ACT_RELU6:
        for i in range(n):
            for j in range(w):
                if a[i * w + j] > 0:
                    dg[j] += 1.0
    elif act == ACT_SIGMOID:
        for i in range(n):
            for j in range(w):
                v = a[i * w + j]
                if <floating> (v * (1 - v)) < sat_sig:
                    dg[w + j] += 1.0
    elif act == ACT_TANH:
        for i in range(n):
            for j in range(w):
                v = a[i * w + j]
                if <floating> (1 - v * v) < sat_tanh:
                    dg[w + j] += 1.0


cdef inline void _bad(double* diag, Py_ssize_t b, Py_ssize_t l, double stage) noexcept nogil:
    diag[DG_BATCH] = <double> b
    diag[DG_LAYER] = <double> l
    diag[DG_STAGE] = stage


cdef bint _params_finite(const layer_t* layers, Py_ssize_t l,
                         const floating* buf) noexcept nogil:
    """W, b and the PReLU slopes of layer l in buf are finite."""
    cdef Py_ssize_t zw = _zw(layers, l), bo = layers[l].b_offset
    if not _finite(buf + layers[l].w_offset, layers[l].n_in * zw):
        return False
    if bo >= 0 and not _finite(buf + bo, zw):
        return False
    if layers[l].act == ACT_PRELU and not _finite(buf + layers[l].slopes_offset,
                                                          layers[l].n_out):
        return False
    return True


# ---- the optimizer step with Keras clipping
cdef inline void _clip_step(int opt, const double* h, Py_ssize_t t, double c, Py_ssize_t off,
                            Py_ssize_t size, floating* grads, floating* params,
                            floating* state, Py_ssize_t P, int n_threads) noexcept nogil:
    """Update params[off:off+size] with the factor of its own gradient norm."""
    cdef double norm = sqrt(_sumsq(grads + off, size))
    optimizer_update_c(opt, h, 1.0 if norm <= c else c / norm,       # NaN norm: NaN factor
                       t, grads + off, params + off, state + off, size, P, n_threads)


cdef void _update(int opt, const double* h, Py_ssize_t t, const layer_t* layers, Py_ssize_t L, floating* grads, floating* params, floating* state,
                  Py_ssize_t P, int n_threads) noexcept nogil:
    """numpy_ref._clipped_update: clipnorm per array (per layer W, b, slopes, each
    with its own factor), global_clipnorm one factor, else the plain update."""
    cdef double cn = h[H_CLIPNORM], gcn = h[H_GLOBAL_CLIPNORM], norm, factor = 1.0
    cdef Py_ssize_t l, zw, bo
    if opt != OPT_NONE and cn > 0:
        for l in range(L):
            zw = _zw(layers, l)
            bo = layers[l].b_offset
            _clip_step(opt, h, t, cn, layers[l].w_offset, layers[l].n_in * zw,
                       grads, params, state, P, n_threads)
            if bo >= 0:
                _clip_step(opt, h, t, cn, bo, zw, grads, params, state, P, n_threads)
            if layers[l].act == ACT_PRELU:
                _clip_step(opt, h, t, cn, layers[l].slopes_offset, layers[l].n_out,
                           grads, params, state, P, n_threads)
        return
    if opt != OPT_NONE and gcn > 0:
        norm = sqrt(_sumsq(grads, P))
        factor = 1.0 if norm <= gcn else gcn / norm
    optimizer_update_c(opt, h, factor, t, grads, params, state, P, P, n_threads)


cdef double _loss_head(int head, const floating* ZL, floating* AL, const floating* Y,
                       const int64_t* labels, const floating* sw, const int64_t* rows,
                       const layer_t* layers, Py_ssize_t L, double* row_loss, floating* D, Py_ssize_t nb,
                       Py_ssize_t k, int n_threads) noexcept nogil:
    """The loss head of a batch: per-row losses, dL/dz of the last layer into D (P
    into AL for the fused heads); returns the batch's mean weighted data loss."""
    cdef Py_ssize_t i
    cdef double data = 0.0
    if head == HEAD_SOFTMAX_XENT:
        softmax_xent_c(ZL, Y, labels, sw, rows, 1.0 / nb, AL, row_loss, D, nb, k, n_threads)
    elif head == HEAD_SIGMOID_BCE:
        sigmoid_bce_c(ZL, Y, sw, rows, 1.0 / nb, AL, row_loss, D, nb, k, n_threads)
    else:
        if head == HEAD_MSE:
            mse_c(AL, Y, sw, rows, 1.0 / nb, row_loss, D, nb, k, n_threads)
        else:
            mae_c(AL, Y, sw, rows, 1.0 / nb, row_loss, D, nb, k, n_threads)
        act_backward_c(ZL, AL, D, <int> layers[L - 1].act,
                       layers[L - 1].act_param, D, nb, k, n_threads)
    for i in range(nb):
        data = data + (sw[rows[i]] if sw != NULL else 1.0) * row_loss[i]
    return data / nb


cdef bint _per_layer_update(int opt, const double* h, const layer_t* layers, Py_ssize_t L, bint regularized, bint diag_on) noexcept nogil:
    """Whether the step updates each layer's W and b as soon as the backward pass is
    done with them (no clipping: its norms need every gradient; no L1/L2: the
    penalty gradients come after the backward pass; no PReLU: its slopes' gradient
    is formed one layer down; no diagnostics: they check the whole update)."""
    cdef Py_ssize_t l
    if opt == OPT_NONE or regularized or diag_on or h[H_CLIPNORM] > 0 or h[H_GLOBAL_CLIPNORM] > 0:
        return False
    for l in range(L):
        if layers[l].act == ACT_PRELU:
            return False
    return True


cdef extern from *:
    """
    #if defined(__GNUC__)
    #define FN_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
    #else
    #define FN_PREFETCH_L2(p) ((void) (p))
    #endif
    """
    void FN_PREFETCH_L2(const void* p) noexcept nogil


cdef inline void _prefetch_rows(const floating* X, Py_ssize_t n_in, const int64_t* perm,
                                Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t g) noexcept nogil:
    """Share g of 5 of the prefetch into L2 of the rows X[perm[lo:hi]] (the next
    batch's; the numba twin's _prefetch_rows): issued between the stages of a step,
    so their misses overlap the step's work and the gather finds them in cache
    (make_classification 100k x 50 in bench/sklearn_vs_fastnet.py: 20 MB of rows)."""
    cdef Py_ssize_t n = hi - lo, i, j, step = 64 // <Py_ssize_t> sizeof(floating)
    cdef const floating* row
    for i in range(lo + g * n // 5, lo + (g + 1) * n // 5):
        row = X + perm[i] * n_in
        j = 0
        while j < n_in:
            FN_PREFETCH_L2(row + j)
            j += step


cdef void _train(
        const floating* X, Py_ssize_t n_in, const floating* Y, const int64_t* labels,
        const floating* sw, const int64_t* perm, Py_ssize_t M,
        Py_ssize_t bs, Py_ssize_t first_batch, Py_ssize_t n_batches,
        const layer_t* layers, Py_ssize_t L,
        int head, int opt, const double* h, Py_ssize_t t0, uint64_t key,
        floating* params, floating* grads, floating* state, Py_ssize_t P,
        floating* work, double* batch_loss, floating* scores,
        const Py_ssize_t* offs, double* row_loss, floating* wt, double* reg_scratch,
        bint regularized, int64_t* tidx, double* diag, const Py_ssize_t* doffs,
        Py_ssize_t r_split, const floating** rowp, int n_threads) noexcept nogil:
    cdef Py_ssize_t step, b, r0, nb, l, i, k, w_in, w_out, zw, bo, kk, off, below, nx1
    cdef const int64_t* rows
    cdef const floating* inp
    cdef floating* Z
    cdef floating* A
    cdef floating* D
    cdef floating* D2
    cdef floating* tmp
    cdef double rate, data, sq
    cdef bint fused = head == HEAD_SOFTMAX_XENT or head == HEAD_SIGMOID_BCE
    cdef bint last, on = diag != NULL
    cdef floating* Xb = work
    # (_ksplit layers only: their products run on one thread, and no meProp on layer 0)
    cdef bint direct = (r_split > 0 and _topk(layers, 0) == 0
                        and matmul_ptr_c(0, rowp, 0, params, work, 0, 0, layers[0].n_out) == 0)
    cdef floating* ZL = work + offs[3 * (L - 1)]
    cdef floating* AL = work + offs[3 * (L - 1) + 1]
    cdef bint per_layer = _per_layer_update(opt, h, layers, L, regularized, diag != NULL)
    k = layers[L - 1].n_out

    for step in range(n_batches):
        b = first_batch + step
        r0 = b * bs
        nb = min(bs, M - r0)
        rows = perm + r0
        nx1 = min(r0 + nb + bs, M) if step + 1 < n_batches else r0 + nb  # the next batch's rows

        # ---- forward, keeping Z_l, A_l (and the dropped-out copy M_l); layer 0 of the
        # halves of p reads the batch's rows in place where the narrow kernels apply
        if direct:
            for i in range(nb):
                rowp[i] = X + rows[i] * n_in
        else:
            gather_rows_c(X, rows, Xb, nb, n_in, n_threads)
        _prefetch_rows(X, n_in, perm, r0 + nb, nx1, 0)
        inp = Xb
        for l in range(L):
            w_out = layers[l].n_out
            Z = work + offs[3 * l]
            A = work + offs[3 * l + 1]
            last = l == L - 1
            if l == 0 and r_split > 0:
                _layer0_ksplit(Xb, rowp if direct else NULL, n_in, r_split, layers,
                               params, Z, A, nb, n_threads)
            else:
                # the fused heads take logits: the last layer adds its bias only (P goes to A)
                _layer_z(inp, layers, l, params, Z, A, nb, last and fused,
                         n_threads)
            if on:
                if last and fused:
                    A = Z                 # the reference's a is the logits
                if not (_finite(Z, nb * _zw(layers, l)) and _finite(A, nb * w_out)):
                    _bad(diag, b, l, STAGE_FORWARD)
                    return
                if not (last and fused):   # a fused head's layer holds logits
                    _counts(diag + doffs[l], <int> layers[l].act, A, nb, w_out)
                A = work + offs[3 * l + 1]
            inp = A
            if not last and offs[3 * l + 2] >= 0:
                _dropout(A, work + offs[3 * l + 2], nb, w_out, key,
                         ((<uint64_t> b * <uint64_t> L + <uint64_t> l) * <uint64_t> bs) * <uint64_t> w_out,
                         layers[l].dropout, n_threads)
                inp = work + offs[3 * l + 2]
        if on:
            diag[DG_ROWS] += nb
        _prefetch_rows(X, n_in, perm, r0 + nb, nx1, 1)

        # ---- loss head: per-row losses, dL/dz of the last layer into D
        D = work + offs[3 * L]
        D2 = work + offs[3 * L + 1]
        data = _loss_head(head, ZL, AL, Y, labels, sw, rows, layers, L, row_loss,
                          D, nb, k, n_threads)
        if scores != NULL:
            memcpy(scores + r0 * k, AL, nb * k * sizeof(floating))
        _prefetch_rows(X, n_in, perm, r0 + nb, nx1, 2)
        if on and not (data - data == 0 and _finite(D, nb * k)):
            batch_loss[step] = data
            _bad(diag, b, L - 1, STAGE_LOSS)
            return

        # ---- backward: D holds dL/dz of layer l (z width)
        for l in range(L - 1, -1, -1):
            w_in = layers[l].n_in
            w_out = layers[l].n_out
            zw = _zw(layers, l)
            bo = layers[l].b_offset
            kk = _topk(layers, l)
            if l == 0:
                inp = Xb
            elif offs[3 * (l - 1) + 2] >= 0:
                inp = work + offs[3 * (l - 1) + 2]
            else:
                inp = work + offs[3 * (l - 1) + 1]
            if kk:
                # meProp: D2 (not yet written) is the selection's scratch
                topk_rows_c(D, kk, tidx, D2, nb, zw, n_threads)
                # wt (the transposed-W scratch of the delta product, not in use yet)
                matmul_tn_sparse_c(inp, D, tidx, grads + layers[l].w_offset, nb, w_in, zw, kk,
                                   wt, n_threads)
            elif l == 0 and direct:
                matmul_ptr_c(1, rowp, 0, D, grads + layers[0].w_offset, w_in, nb, zw)
            else:
                matmul_tn_c(inp, D, grads + layers[l].w_offset, w_in, nb, zw, n_threads)
            if bo >= 0:
                bias_grad_c(D, grads + bo, nb, zw, n_threads)
            if l > 0:
                # delta through W (pre-update weights), the dropout mask, g'
                if kk:
                    matmul_nt_sparse_c(D, tidx, params + layers[l].w_offset, D2, nb, w_in, zw,
                                       kk, wt, n_threads)
                else:
                    matmul_nt_c(D, params + layers[l].w_offset, D2, nb, zw, w_in, NULL, n_threads)
                rate = layers[l - 1].dropout
                if offs[3 * (l - 1) + 2] >= 0:
                    _dropout(D2, D2, nb, w_in, key,
                             ((<uint64_t> b * <uint64_t> L + <uint64_t> (l - 1)) * <uint64_t> bs)
                             * <uint64_t> w_in, rate, n_threads)
                below = l - 1
                if layers[below].kind == LAYER_MAXOUT:
                    # dz of the pieces (wider than da) into D, which is done with
                    maxout_backward_c(work + offs[3 * below], D2, layers[below].pieces, D,
                                      nb, w_in, n_threads)
                else:
                    if layers[below].act == ACT_PRELU:
                        prelu_backward_c(work + offs[3 * below], D2,
                                         params + layers[below].slopes_offset,
                                         grads + layers[below].slopes_offset, D2, nb, w_in,
                                         n_threads)
                    else:
                        act_backward_c(work + offs[3 * below], work + offs[3 * below + 1], D2,
                                       <int> layers[below].act,
                                       layers[below].act_param, D2, nb, w_in, n_threads)
                    tmp = D
                    D = D2
                    D2 = tmp
            if per_layer:
                # W and b of this layer are done with (the delta below read W): update them
                # while their gradient is still in cache
                optimizer_update_c(opt, h, 1.0, t0 + step + 1, grads + layers[l].w_offset,
                                   params + layers[l].w_offset, state + layers[l].w_offset,
                                   w_in * zw, P, n_threads)
                if bo >= 0:
                    optimizer_update_c(opt, h, 1.0, t0 + step + 1, grads + bo, params + bo, state + bo,
                                       zw, P, n_threads)
            if on:
                # this layer's gradients are complete (its slopes were formed one step earlier)
                if not (_finite(grads + layers[l].w_offset, w_in * zw)
                        and (bo < 0 or _finite(grads + bo, zw))
                        and (l == L - 1 or layers[l].act != ACT_PRELU
                             or _finite(grads + layers[l].slopes_offset, w_out))
                        and (l == 0 or _finite(D, nb * _zw(layers, l - 1)))):
                    _bad(diag, b, l, STAGE_BACKWARD)
                    return
                sq = _sumsq(grads + layers[l].w_offset, w_in * zw)
                if bo >= 0:
                    sq = sq + _sumsq(grads + bo, zw)
                if l < L - 1 and layers[l].act == ACT_PRELU:
                    sq = sq + _sumsq(grads + layers[l].slopes_offset, w_out)
                off = doffs[l] + 2 * w_out
                diag[off] += sqrt(sq)
                diag[off + 1] += 1.0

        _prefetch_rows(X, n_in, perm, r0 + nb, nx1, 3)

        # ---- regularization (pre-update weights), loss, update
        if regularized:
            data = data + regularize_c(layers, L, params, grads, reg_scratch,
                                       n_threads)
        batch_loss[step] = data
        if not per_layer:
            _update(opt, h, t0 + step + 1, layers, L, grads, params, state, P, n_threads)
        if on:
            for l in range(L):
                if not _params_finite(layers, l, params):
                    _bad(diag, b, l, STAGE_UPDATE)
                    return
        _prefetch_rows(X, n_in, perm, r0 + nb, nx1, 4)


# ---------------------------------------------------------------------------
# small first layers: two halves of p (the two-thread step: split.pyx)
# ---------------------------------------------------------------------------
# A batch-10 step of 784-30-10 is a few microseconds on one core; every product
# in it is far below the parallel thresholds, so the plain step runs on one thread.  When the
# first layer is small enough for that (_ksplit) its product is formed in two
# halves of p, Z_0 = X_b[:, :r] @ W_0[:r] + X_b[:, r:] @ W_0[r:] (then the bias),
# by every driver and thread count, and train_batches can give each half to its
# own thread (step_plan), which owns the rows of W_0 and the columns of X that
# half reads, writes and updates, so only the two partial Z_0 cross between the
# cores, at one team barrier per step (kernels/cython/split.pyx).

cdef enum:
    # first layers from this many weights take the two halves of p (below: no gain
    # worth the changed sum); the batch's product must stay below MATMUL_PAR_MIN
    KSPLIT_MIN = 4096


cdef Py_ssize_t _ksplit(const layer_t* layers, Py_ssize_t L,
                        Py_ssize_t bs) noexcept nogil:
    """Where layer 0's p splits (0: no split), from the shapes only: a Dense,
    non-PReLU first layer of a deeper network whose batch product runs on one
    thread (bs * in * out < MATMUL_PAR_MIN) and has at least KSPLIT_MIN weights."""
    cdef Py_ssize_t n_in = layers[0].n_in, zw0 = layers[0].n_out
    if (L < 2 or layers[0].kind != LAYER_DENSE or layers[0].act == ACT_PRELU or n_in < 64
            or n_in * zw0 < KSPLIT_MIN or bs * n_in * zw0 >= MATMUL_PAR_MIN):
        return 0
    return n_in // 2


cdef void _layer0_ksplit(const floating* Xb, const floating** rowp, Py_ssize_t n_in,
                         Py_ssize_t r, const layer_t* layers,
                         const floating* params, floating* Z, floating* A,
                         Py_ssize_t nb, int n_threads) noexcept nogil:
    """Layer 0 in the plain step with the halves of p (A is the second half's
    scratch before it takes the activations), from the gathered rows Xb or, when
    rowp is not NULL, from the rows in place."""
    cdef Py_ssize_t zw0 = layers[0].n_out, W0 = layers[0].w_offset, bo0 = layers[0].b_offset, i
    if rowp != NULL:
        matmul_ptr_c(0, rowp, 0, params + W0, Z, nb, r, zw0)
        matmul_ptr_c(0, rowp, r, params + W0 + r * zw0, A, nb, n_in - r, zw0)
    else:
        matmul_lda_c(Xb, n_in, params + W0, Z, nb, r, zw0, n_threads)
        matmul_lda_c(Xb + r, n_in, params + W0 + r * zw0, A, nb, n_in - r, zw0, n_threads)
    for i in range(nb * zw0):
        Z[i] = Z[i] + A[i]
    bias_act_forward_c(params + bo0 if bo0 >= 0 else NULL, <int> layers[0].act, layers[0].act_param,
                       Z, A, nb, zw0, n_threads)


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
cdef Py_ssize_t _forward_checks(const floating[:, ::1] X, object layers,
                                const floating[::1] params, floating[::1] work,
                                floating[:, ::1] out, const layer_t** net,
                                Py_ssize_t* L) except -1:
    """forward's argument checks; returns the widest z (the workspace's row)."""
    cdef Py_ssize_t n = X.shape[0], l, maxw = 0
    net[0] = records(layers, L)
    check_layers(layers, params.shape[0])
    for l in range(L[0]):
        maxw = max(maxw, _zw(net[0], l))
    if X.shape[1] != net[0][0].n_in:
        raise ValueError("forward: X has %d columns, the network takes %d"
                         % (X.shape[1], net[0][0].n_in))
    if out.shape[0] != n or out.shape[1] != net[0][L[0] - 1].n_out:
        raise ValueError("forward: out has shape (%d, %d), expected (%d, %d)"
                         % (out.shape[0], out.shape[1], n, net[0][L[0] - 1].n_out))
    if ((L[0] > 1 or net[0][L[0] - 1].kind == LAYER_MAXOUT)
            and work.shape[0] < 2 * n * maxw):
        raise ValueError("forward: work has %d elements, needs %d" % (work.shape[0], 2 * n * maxw))
    return maxw


def forward(const floating[:, ::1] X,        # IN (n, n_in)
            object layers,                   # IN (L,) defs.LAYER_DTYPE
            const floating[::1] params,      # IN (P,)
            floating[::1] work,              # OUT (>= forward_workspace_size,)
            floating[:, ::1] out,            # OUT (n, n_out)
            int n_threads):
    """out = the last layer's activations of the network on X (inference: no
    dropout).  work: two ping-pong buffers of n x (max layer width, z widths
    included)."""
    cdef Py_ssize_t n = X.shape[0], L
    cdef const layer_t* net
    cdef Py_ssize_t maxw = _forward_checks(X, layers, params, work, out, &net, &L)
    if n == 0:
        return
    with nogil:
        _forward(&X[0, 0], net, L,
                 &params[0], &work[0], &out[0, 0], n, maxw, max(n_threads, 1))


def forward_if_finite(const floating[:, ::1] X, object layers, const floating[::1] params,
                      floating[::1] work, floating[:, ::1] out, int n_threads):
    """Model.predict's fast path (not in the contract): forward's checks, then
    ``forward`` when every element of X is finite (True) or nothing written
    (False).  One call instead of all_finite and forward: at batch 1 the
    call itself is a large share of predict's time (bench/REPORT.md's predict
    overhead)."""
    cdef Py_ssize_t n = X.shape[0], L
    cdef const layer_t* net
    cdef Py_ssize_t maxw = _forward_checks(X, layers, params, work, out, &net, &L)
    cdef int ok = 1
    if n == 0:
        return True
    with nogil:
        ok = all_finite_c(&X[0, 0], n * X.shape[1], 1)
        if ok:
            _forward(&X[0, 0], net, L,
                     &params[0], &work[0], &out[0, 0], n, maxw, max(n_threads, 1))
    return ok != 0


def step_plan(object layers, Py_ssize_t P,
              const double[::1] hyper, Py_ssize_t batch_size, int n_threads,
              bint diag_on=False):
    """How train_batches runs these shapes: (r, two_threads).  r > 0: the first
    layer's product is formed in the two halves of p at r (_ksplit: shapes only,
    so every thread count and driver gets the same sums); two_threads: the
    halves go to two threads (the split step).  That needs two threads asked
    for, Dense layers only (no PReLU, Maxout, dropout, meProp, L1/L2, clipping or
    diagnostics: the split shares none of their state out), the exact parameter
    layout of those layers, and a first layer of at least 4x the multiply-adds
    of the rest of the network (the rest runs on both threads)."""
    cdef Py_ssize_t L, l, rest = 0, total = 0
    cdef const layer_t* net = records(layers, &L)
    cdef Py_ssize_t r = _ksplit(net, L, batch_size)
    if (r == 0 or n_threads < 2 or diag_on
            or hyper[H_CLIPNORM] > 0 or hyper[H_GLOBAL_CLIPNORM] > 0):
        return r, False
    for l in range(L):
        if (net[l].kind != LAYER_DENSE or net[l].act == ACT_PRELU
                or net[l].dropout > 0 or net[l].l1 != 0.0 or net[l].l2 != 0.0
                or net[l].bias_l1 != 0.0 or net[l].bias_l2 != 0.0
                or _topk(net, l)):
            return r, False
        total += net[l].n_in * net[l].n_out + (net[l].n_out if net[l].b_offset >= 0 else 0)
        if l > 0:
            rest += net[l].n_in * net[l].n_out
    return r, total == P and 4 * rest <= net[0].n_in * net[0].n_out


def train_batches(const floating[:, ::1] X,       # IN (N, n_in)
                  const floating[:, ::1] Y,       # IN (N, n_out) or (0, n_out)
                  const int64_t[::1] labels,      # IN (N,) int64 or (0,)
                  const floating[::1] sw,         # IN (N,) or (0,)
                  const int64_t[::1] perm,        # IN (M,) row indices into X
                  Py_ssize_t batch_size, Py_ssize_t first_batch, Py_ssize_t n_batches,
                  object layers,                  # IN (L,) defs.LAYER_DTYPE
                  int head, int opt,
                  const double[::1] hyper,        # IN (NH,) float64
                  Py_ssize_t t0, uint64_t rng_key,
                  floating[::1] params,           # INOUT (P,)
                  floating[::1] grads,            # OUT (P,)
                  floating[:, ::1] state,         # INOUT (N_STATE, P)
                  floating[::1] work,             # OUT (>= workspace_size,)
                  double[::1] batch_loss,         # OUT (n_batches,) float64
                  floating[:, ::1] scores,        # OUT (M, n_out) or (0, n_out)
                  int n_threads,
                  double[::1] diag=None):         # INOUT (diag_size,) float64 or (0,) = off
    """For b in first_batch .. first_batch + n_batches - 1: take rows
    perm[b*bs : min((b+1)*bs, M)], run forward (with dropout), the fused loss
    head, backward, regularization and the optimizer update with
    t = t0 + (b - first_batch) + 1.  batch_loss[b - first_batch] = the batch's
    mean weighted data loss before the update plus the regularization penalty
    of the pre-update weights.  When scores has M rows, scores[perm position] =
    the head's outputs (P for the fused heads, A for mse/mae).  grads holds the
    last batch's gradients on return (unclipped).  diag (optional, after
    n_threads): the diagnostics of kernels/defs.py; empty or None = off."""
    cdef Py_ssize_t N = X.shape[0], M = perm.shape[0], P = params.shape[0]
    cdef Py_ssize_t L, l, r, k, size, maxt = 1, maxk = 0, lo, hi, pos
    cdef const layer_t* net = records(layers, &L)
    cdef bint regularized = False
    check_layers(layers, P)
    k = net[L - 1].n_out
    # ---- shapes
    if X.shape[1] != net[0].n_in:
        raise ValueError("train_batches: X has %d columns, the network takes %d"
                         % (X.shape[1], net[0].n_in))
    if net[L - 1].kind == LAYER_MAXOUT or net[L - 1].act == ACT_PRELU:
        raise ValueError("train_batches: the last layer cannot be Maxout or PReLU")
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
    cdef bint on = diag is not None and diag.shape[0] > 0
    if on and diag.shape[0] < defs.diag_size(layers):
        raise ValueError("train_batches: diag has %d entries, defs.diag_size(layers) = %d"
                         % (diag.shape[0], defs.diag_size(layers)))
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
    size = _layout(net, L, batch_size, &offs[0])
    if work.shape[0] < size:
        raise ValueError("train_batches: work has %d elements, needs %d" % (work.shape[0], size))
    cdef Py_ssize_t[::1] doffs = np.empty(L, dtype=np.intp)
    pos = defs.DG_HEAD
    for l in range(L):
        doffs[l] = pos
        pos += 2 * net[l].n_out + 2
        # scratch of both sparse products (meProp layers; matmul_nt needs none)
        if _topk(net, l):
            maxt = max(maxt, <Py_ssize_t> (net[l].n_in * _zw(net, l)))
        maxk = max(maxk, _topk(net, l))
        if (net[l].l1 != 0.0 or net[l].l2 != 0.0
                or net[l].bias_l1 != 0.0 or net[l].bias_l2 != 0.0):
            regularized = True
    cdef double[::1] row_loss = np.empty(batch_size, dtype=np.float64)
    cdef double[::1] reg_scratch = np.empty(
        regularize_scratch(net, L), dtype=np.float64)
    wt_arr = np.empty(maxt, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] wt = wt_arr
    # meProp's kept columns, (bs, k) per layer (one buffer of the largest k)
    cdef int64_t[::1] tidx = np.empty(max(1, batch_size * maxk), dtype=np.int64)
    cdef const double[::1] h = hyper
    cdef Py_ssize_t r_split, zw0 = net[0].n_out
    cdef Py_ssize_t rowp_addr
    r_split, two_threads = step_plan(layers, P, h, batch_size, n_threads, on)
    if two_threads:
        train_split(X, Y, labels, sw, perm, batch_size, first_batch, n_batches, layers, head, opt,
                    h, t0, params, grads, state, work, batch_loss, scores, offs, r_split, sparse)
        return

    # the batch's row pointers (layer 0 read in place, the halves of p)
    rowp_arr = np.empty(batch_size, dtype=np.intp)
    rowp_addr = <Py_ssize_t> rowp_arr.ctypes.data
    with nogil:
        _train(&X[0, 0], X.shape[1], &Y[0, 0] if not sparse else NULL,
               &labels[0] if sparse else NULL, &sw[0] if sw.shape[0] else NULL,
               &perm[0], M, batch_size, first_batch, n_batches,
               net, L,
               head, opt, &h[0], t0, rng_key,
               &params[0], &grads[0], &state[0, 0], P, &work[0], &batch_loss[0],
               &scores[0, 0] if scores.shape[0] else NULL,
               &offs[0], &row_loss[0], &wt[0], &reg_scratch[0], regularized,
               &tidx[0], &diag[0] if on else NULL, &doffs[0], r_split,
               <const floating**> rowp_addr, max(n_threads, 1))
