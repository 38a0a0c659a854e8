"""The whole network in one compiled call (numba twin of kernels/cython/network.pyx).

``train_batches`` runs ``n_batches`` complete training steps without returning
to Python: for each batch it gathers the batch's rows of the caller's ``X``
through ``perm`` into the workspace (the epoch's data is never copied), runs
the forward pass through every layer (dropout included), the fused loss head,
the backward pass, the regularization and the optimizer update.
``forward`` is the inference pass (no dropout).  A small first layer's product
is formed in two halves of p, as the Cython twin's (``_ksplit``: the same bits),
and with two threads ``step_plan`` gives each half to its own thread: the split
step (its section below; the adapter picks it).

Both are serial drivers: every layer operation is a call to a contract kernel
(``matmul``, ``bias_act_forward``, ...) which itself runs serially or in
parallel depending on the shape; the driver's own row loops (loss head,
dropout) do the same (parallel from ``ELEM_PAR_MIN`` elements).  Nothing is
allocated inside the batch loop; the only allocations are per call: the layer
offsets, one float64 row-loss buffer (batch_size; the contract's workspace has
the model dtype, and the loss sum is float64), the 1-element penalty, a copy of
``hyper`` (clipping writes its factor there) and, with meProp, one (bs, k) int64
index buffer and one (z width x in) scratch for the sparse products.

The further techniques (kernels of layers.py): a Maxout layer's A is the max
over its pieces of Z; a PReLU layer adds its bias to Z, then A = prelu(Z) with
the slopes at layers[l].slopes_offset (their gradient goes to grads at the same
offset); meProp (0 < layers[l].topk < z width, Dense only) keeps each row's k
largest |dz| and forms the weight gradient and the delta below with the sparse
products.  Gradient clipping takes float64 norms and updates each parameter
array (clipnorm: W, b, slopes, each over its own range) or the whole buffer
(global_clipnorm) with its factor as the update's grad_scale.  The optional ``diag``
buffer (kernels/defs.py) adds finiteness checks after each stage, per-unit
counts and per-layer gradient norms; when it is empty none of that code runs.

Dropout mask (kernels/defs.py): for batch ``b`` (the absolute batch index,
first_batch + i, so splitting an epoch into several calls gives the same
masks), layer ``l``, row ``i`` of the batch, column ``j``:
``c = ((b L + l) bs + i) width + j``, ``u = mix64(key + (c + 1) GOLDEN)``, keep
when ``(u >> 11) 2^-53 >= rate``; kept values are scaled by 1 / (1 - rate).
All of it is uint64 arithmetic: every constant is an ``np.uint64`` (mixing
uint64 with a Python int makes numba compute in float64).
"""
import os
from math import isfinite

import numpy as np

from .. import defs
from ._jit import (kernel_helper, helper, inlined, serial, strict, prange, serial_twin, specialise, ELEM_PAR_MIN, FLAT_TILE,
                   MATMUL_PAR_MIN)
from .atomics import atomic_add, atomic_cas, atomic_load, atomic_store, spin_pause
from .refs import borrow, keep, view2d
from .matmul import matmul, matmul_tn, nt_ws, _ldpad, _strided
from .simd import prefetch
from ._generated_elementwise import (bias_act_forward, act_backward, _opt_tile, _opt_typed, NS_MAX,
                                     ALL_ACTS, ALL_OPTS, FWD_MASK, BWD_MASK, OPT_MASK)
from .losses import _softmax_xent_block, XENT_ROWS, _sigmoid_bce_row, _mse_row, _mae_row
from .reduce import gather_rows, bias_grad, regularize
from .layers import (prelu_forward, prelu_backward, maxout_forward, maxout_backward,
                     topk_rows, tn_sparse_ws, nt_sparse_ws)

LAYER_DENSE = defs.LAYER_DENSE
LAYER_MAXOUT = defs.LAYER_MAXOUT
ACT_LINEAR = defs.ACT_LINEAR
ACT_SIGMOID = defs.ACT_SIGMOID
ACT_TANH = defs.ACT_TANH
ACT_RELU = defs.ACT_RELU
ACT_RELU6 = defs.ACT_RELU6
ACT_PRELU = defs.ACT_PRELU
OPT_NONE = defs.OPT_NONE
OPT_MAX = max(d["code"] for d in defs.OPTIMIZERS)
H_CLIPNORM = defs.H_CLIPNORM
H_GLOBAL_CLIPNORM = defs.H_GLOBAL_CLIPNORM
NH = defs.NH
DG_BATCH = defs.DG_BATCH
DG_LAYER = defs.DG_LAYER
DG_STAGE = defs.DG_STAGE
DG_ROWS = defs.DG_ROWS
DG_HEAD = defs.DG_HEAD
STAGE_FORWARD = defs.STAGE_FORWARD
STAGE_LOSS = defs.STAGE_LOSS
STAGE_BACKWARD = defs.STAGE_BACKWARD
STAGE_UPDATE = defs.STAGE_UPDATE
SAT_SIGMOID = defs.SATURATION * 0.25
SAT_TANH = defs.SATURATION
HEAD_MSE = defs.HEAD_MSE
HEAD_MAE = defs.HEAD_MAE
HEAD_SOFTMAX_XENT = defs.HEAD_SOFTMAX_XENT
HEAD_SIGMOID_BCE = defs.HEAD_SIGMOID_BCE
#: the loss rows _head_one compiles: bit 1 softmax cross-entropy on labels, 2 on
#: Y rows, 4 sigmoid BCE, 8 mse, 16 mae (see _jit.specialise; a narrower copy
#: leaves the row loss 0 for a head outside its mask: train_batches checks)
HEAD_ALL = 31
HEAD_MASK = HEAD_ALL

# dropout hash constants, all uint64
GOLDEN = np.uint64(defs.GOLDEN)
MIX1 = np.uint64(defs.MIX1)
MIX2 = np.uint64(defs.MIX2)
_ONE = np.uint64(1)
_S11 = np.uint64(11)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_TWO_M53 = 2.0 ** -53


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------
@helper
def _mix64(z):
    """splitmix64 finaliser (uint64 in, uint64 out, wrapping)."""
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


@serial
def dropout_keep(key, c, rate):
    """Whether element counter ``c`` (uint64) is kept for ``key`` (uint64)."""
    u = _mix64(key + (c + _ONE) * GOLDEN)
    return np.float64(u >> _S11) * _TWO_M53 >= rate


@helper
def _dropout_row(src, dst, rate, key, cbase):
    """dst[j] = src[j] * the mask value: 1 / (1 - rate) rounded to the array dtype
    where kept, 0 where dropped (so inf and NaN stay non-finite), multiplied in the
    array dtype (the Cython twin and the reference); cbase = counter of j = 0."""
    keep_scale = dst.dtype.type(1.0 / (1.0 - rate))
    zero = dst.dtype.type(0.0)
    for j in range(dst.shape[0]):
        if dropout_keep(key, cbase + np.uint64(j), rate):
            dst[j] = src[j] * keep_scale
        else:
            dst[j] = src[j] * zero


@kernel_helper
def _dropout(src, dst, rate, key, b, L, l, bs):
    """Apply the mask of batch b, layer l to the (nb, width) batch ``src`` into
    ``dst`` (dst may be src: the backward pass masks the delta in place)."""
    nb = dst.shape[0]
    width = np.uint64(dst.shape[1])
    row0 = (np.uint64(b) * np.uint64(L) + np.uint64(l)) * np.uint64(bs)
    if nb * dst.shape[1] >= ELEM_PAR_MIN:
        for i in prange(nb):
            _dropout_row(src[i], dst[i], rate, key, (row0 + np.uint64(i)) * width)
    else:
        for i in range(nb):
            _dropout_row(src[i], dst[i], rate, key, (row0 + np.uint64(i)) * width)


# ---------------------------------------------------------------------------
# loss head over the rows of one batch
# ---------------------------------------------------------------------------
@strict
def _sum_in_order(x, n):
    """x[0] + ... + x[n-1] left to right (strict: not reassociated into vector
    partial sums), the Cython twin's order for the batch loss."""
    acc = 0.0
    for i in range(n):
        acc += x[i]
    return acc


@helper
def _head_one(head, Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, i):
    """Row i of the batch (sample perm[r0 + i]): the sigmoid BCE head on logits Z
    (P into A) or the mse/mae loss on A (dA into D); wloss[i] = w_i loss_i;
    scores[r0 + i] = P or A when scores is not empty (softmax: _xent_rows)."""
    k = Z.shape[1]
    src = perm[r0 + i]
    w = np.float64(sw[src]) if sw.shape[0] > 0 else 1.0
    li = 0.0
    if head == HEAD_SIGMOID_BCE:
        if HEAD_MASK & 4:
            li = _sigmoid_bce_row(Z[i], Y[src], w * scale / k, A[i], D[i])
    elif head == HEAD_MSE:
        if HEAD_MASK & 8:
            li = _mse_row(A[i], Y[src], w * scale / k, D[i])
    elif HEAD_MASK & 16:
        li = _mae_row(A[i], Y[src], w * scale / k, D[i])
    wloss[i] = w * li
    if scores.shape[0] > 0:
        out = scores[r0 + i]
        a = A[i]
        for j in range(k):
            out[j] = a[j]


@helper
def _xent_rows(Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, i0, i1):
    """Rows i0..i1-1 of the softmax cross-entropy head: softmax_xent's block (the
    rows' exponentials in one vector loop: a row of 10 is mostly a vector
    remainder), then each row's weighted loss and scores, as _head_one's."""
    _softmax_xent_block(Z, Y, labels, sw, perm, r0, scale, A, wloss, D, i0, i1)
    k = Z.shape[1]
    for i in range(i0, i1):
        src = perm[r0 + i]
        wloss[i] = (np.float64(sw[src]) if sw.shape[0] > 0 else 1.0) * wloss[i]
        if scores.shape[0] > 0:
            out = scores[r0 + i]
            a = A[i]
            for j in range(k):
                out[j] = a[j]


@kernel_helper
def _head(head, Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores):
    """The loss head over the rows of one batch (see _head_one, _xent_rows)."""
    nb = Z.shape[0]
    if HEAD_MASK & 3 and head == HEAD_SOFTMAX_XENT:
        nblk = (nb + XENT_ROWS - 1) // XENT_ROWS
        if nb * Z.shape[1] >= ELEM_PAR_MIN:
            for t in prange(nblk):
                _xent_rows(Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, t * XENT_ROWS,
                           min(nb, (t + 1) * XENT_ROWS))
        else:
            for t in range(nblk):
                _xent_rows(Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, t * XENT_ROWS,
                           min(nb, (t + 1) * XENT_ROWS))
        return
    if nb * Z.shape[1] >= ELEM_PAR_MIN:
        for i in prange(nb):  # int64 like range's index: one specialisation of _head_one
            _head_one(head, Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, np.int64(i))
    else:
        for i in range(nb):
            _head_one(head, Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, i)


# ---------------------------------------------------------------------------
# workspace, layer description
# ---------------------------------------------------------------------------
@helper
def _head_bit(head, labels):
    """The HEAD_MASK bit of a head code (softmax cross-entropy: on labels or Y rows)."""
    if head == HEAD_SOFTMAX_XENT:
        return 1 if labels.shape[0] > 0 else 2
    if head == HEAD_SIGMOID_BCE:
        return 4
    if head == HEAD_MSE:
        return 8
    return 16


@helper
def _zw(layers, l):
    """Columns of layer l's z: out * pieces for Maxout, out otherwise."""
    if layers[l].kind == LAYER_MAXOUT:
        return layers[l].n_out * max(1, layers[l].pieces)
    return layers[l].n_out


@helper
def _topk_of(layers, l):
    """meProp k of layer l if it sparsifies (0 < k < z width, Dense), else 0."""
    k = layers[l].topk
    if layers[l].kind == LAYER_DENSE and 0 < k and k < _zw(layers, l):
        return k
    return 0


@helper
def _layout(layers, bs):
    """Offsets of kernels' workspace_layout (fastnet/backends/_api.py):
    X at 0, then per layer Z (bs x z width), A (and M when dropout), then D0,
    D1 (bs x the largest width, z widths included).
    Returns (offZ, offA, offM, offD0, offD1, size); offM[l] = -1 without dropout."""
    L = layers.shape[0]
    offZ = np.empty(L, np.int64)
    offA = np.empty(L, np.int64)
    offM = np.empty(L, np.int64)
    n_in = layers[0].n_in
    pos = bs * n_in
    maxw = n_in
    for l in range(L):
        w = layers[l].n_out
        zw = _zw(layers, l)
        maxw = max(maxw, zw)
        offZ[l] = pos
        pos += bs * zw
        offA[l] = pos
        pos += bs * w
        if layers[l].dropout > 0:
            offM[l] = pos
            pos += bs * w
        else:
            offM[l] = -1
    offD0 = pos
    pos += bs * maxw
    offD1 = pos
    pos += bs * maxw
    return offZ, offA, offM, offD0, offD1, pos


@helper
def _check_layers(layers, n_params, n_in, n_out):
    """O(L) checks that keep a wrong description from reading or writing out of
    bounds: chained widths, known kinds, Maxout pieces >= 1, parameter offsets
    (W, b, PReLU slopes) inside the flat buffer."""
    L = layers.shape[0]
    if L < 1:
        raise ValueError("the network has no layer")
    if layers[0].n_in != n_in:
        raise ValueError("X has a different width than the first layer's input")
    if layers[L - 1].n_out != n_out:
        raise ValueError("the output array has a different width than the last layer")
    for l in range(L):
        w_in = layers[l].n_in
        w_out = layers[l].n_out
        if w_in < 1 or w_out < 1 or (l > 0 and w_in != layers[l - 1].n_out):
            raise ValueError("layer widths do not chain")
        kind = layers[l].kind
        if kind != LAYER_DENSE and kind != LAYER_MAXOUT:
            raise ValueError("unknown layer kind")
        if kind == LAYER_MAXOUT and layers[l].pieces < 1:
            raise ValueError("a Maxout layer needs pieces >= 1")
        zw = _zw(layers, l)
        w0 = layers[l].w_offset
        bo = layers[l].b_offset
        if w0 < 0 or w0 + w_in * zw > n_params or bo < -1 or (bo >= 0 and bo + zw > n_params):
            raise ValueError("a layer's parameters lie outside the parameter buffer")
        if kind == LAYER_DENSE and layers[l].act == ACT_PRELU:
            ap = layers[l].slopes_offset
            if ap < 0 or ap + w_out > n_params:
                raise ValueError("a layer's PReLU slopes lie outside the parameter buffer")


@helper
def _prefetch_part(X, perm, lo, hi, c0, c1):
    """Prefetch columns c0..c1 of the rows X[perm[lo:hi]] into L2."""
    step = 64 // X.itemsize
    for i in range(lo, hi):
        row = X[perm[i], c0:c1]
        for j in range(0, row.shape[0], step):
            prefetch(row, j)


@helper
def _prefetch_rows(X, perm, lo, hi, g):
    """Share g of 5 of the prefetch into L2 of the rows X[perm[lo:hi]] (the next
    batch's): issued between the stages of a step, so their misses overlap the
    step's work and the gather finds them in cache (the seed epoch of
    bench/REPORT.md reads 10 random rows of 3 KB per step)."""
    n = hi - lo
    _prefetch_part(X, perm, lo + g * n // 5, lo + (g + 1) * n // 5, np.int64(0), X.shape[1])


@helper
def _view(buf, off, n, m):
    """(n, m) C-contiguous view of buf[off:off + n*m] (the callers' offsets and
    sizes come from _layout and _check_layers, checked against the buffers)."""
    return view2d(buf, off, n, m)


@helper
def _bias(params, layers, l):
    bo = layers[l].b_offset
    if bo < 0:
        return params[0:0]
    return params[bo:bo + _zw(layers, l)]


@helper
def _slopes(buf, layers, l):
    """PReLU slopes of layer l (empty when the layer is not a PReLU Dense)."""
    if layers[l].kind != LAYER_DENSE or layers[l].act != ACT_PRELU:
        return buf[0:0]
    ap = layers[l].slopes_offset
    return buf[ap:ap + layers[l].n_out]


@helper
def _affine_act(inp, layers, params, l, act, Z, A, n_threads):
    """Z = inp W + b, then A = act(Z) (A may be Z)."""
    matmul(_strided(inp), _view(params, layers[l].w_offset, layers[l].n_in, Z.shape[1]), Z, n_threads)
    bias_act_forward(_bias(params, layers, l), act, layers[l].act_param, Z, A, n_threads)


#: first layers from this many weights form their product in two halves of p
#: (the Cython twin's KSPLIT_MIN)
KSPLIT_MIN = 4096


@serial                  # (step_plan calls it from Python too)
def _ksplit(layers, bs):
    """Where layer 0's p splits (0: no split), from the shapes only, as the Cython
    twin's _ksplit decides (its two-thread step gives each half to a thread): a
    Dense, non-PReLU first layer of a deeper network whose batch product stays
    below MATMUL_PAR_MIN and has at least KSPLIT_MIN weights."""
    n_in = layers[0].n_in
    zw0 = layers[0].n_out
    if (layers.shape[0] < 2 or layers[0].kind != LAYER_DENSE or layers[0].act == ACT_PRELU
            or n_in < 64 or n_in * zw0 < KSPLIT_MIN or bs * n_in * zw0 >= MATMUL_PAR_MIN):
        return 0
    return n_in // 2


@helper
def _layer0_ksplit(Xb, layers, params, r, Z, A, n_threads):
    """Layer 0's product with the halves of p: Z = Xb[:, :r] W[:r] + Xb[:, r:] W[r:]
    (A holds the second half first), the Cython twin's sums; the caller then adds
    the bias and applies the activation (one call site of bias_act_forward for
    every layer: the driver compiles and links its chain once)."""
    W = _view(params, layers[0].w_offset, layers[0].n_in, Z.shape[1])
    matmul(_strided(Xb[:, :r]), W[:r], Z, n_threads)
    matmul(_strided(Xb[:, r:]), W[r:], A, n_threads)
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[i, j] = Z[i, j] + A[i, j]


@helper
def _act_of(layers, l, linear):
    """(activation code for bias_act_forward, maxout, prelu) of layer l: a Maxout
    or PReLU layer (or ``linear``) gets the identity, its output comes after."""
    maxout = layers[l].kind == LAYER_MAXOUT
    act = layers[l].act
    prelu = act == ACT_PRELU and not (maxout or linear)
    if maxout or linear or prelu:
        act = ACT_LINEAR
    return act, maxout, prelu


# ---------------------------------------------------------------------------
# gradient clipping, diagnostics
# ---------------------------------------------------------------------------
@kernel_helper
def _update_range(opt, hyper, grad_scale, t, grads, params, state, lo, hi, typed):
    """optimizer_update (grad_scale: the gradient's factor) on elements lo:hi of the flat buffers (tiles of
    FLAT_TILE from lo; serial below ELEM_PAR_MIN elements).  typed: the caller's
    NS_MAX scratch (params' dtype) for the step's scalar factors."""
    n = hi - lo
    ntiles = (n + FLAT_TILE - 1) // FLAT_TILE
    # the step's scalar factors in the parameters' dtype (this range's clip factor
    # included), read by every tile
    _opt_typed(opt, hyper, grad_scale, t, typed)
    if n >= ELEM_PAR_MIN:
        for tile in prange(ntiles):
            a = lo + tile * FLAT_TILE
            _opt_tile(opt, hyper, grad_scale, t, grads, params, state, a, min(a + FLAT_TILE, hi), typed)
    else:
        for tile in range(ntiles):
            a = lo + tile * FLAT_TILE
            _opt_tile(opt, hyper, grad_scale, t, grads, params, state, a, min(a + FLAT_TILE, hi), typed)


@helper
def _update(opt, h, t, layers, grads, params, state, clipnorm, gclipnorm, typed):
    """The optimizer step with Keras clipping.  clipnorm > 0:
    each parameter array (per layer: W, b, PReLU slopes) updated on its range
    with its own factor; else one range, the whole buffer, with the global
    factor when gclipnorm > 0 (none otherwise)."""
    if opt == OPT_NONE:
        return
    L = layers.shape[0] if clipnorm > 0 else 1
    for l in range(L):
        for part in range(3 if clipnorm > 0 else 1):
            if clipnorm <= 0:
                lo = layers[l].w_offset * 0      # ranges are never literals: one specialisation
                hi = lo + params.shape[0]
            elif part == 0:
                lo = layers[l].w_offset
                hi = lo + layers[l].n_in * _zw(layers, l)
            elif part == 1:
                lo = layers[l].b_offset
                hi = lo + _zw(layers, l)
            else:
                lo = layers[l].slopes_offset
                hi = lo + _slopes(grads, layers, l).shape[0]
            if lo < 0 or hi == lo:
                continue
            c = clipnorm if clipnorm > 0 else gclipnorm
            factor = _clip_factor(_sumsq(grads[lo:hi]), c) if c > 0 else 1.0
            _update_range(opt, h, factor, t, grads, params, state, lo, hi, typed)


@helper
def _sumsq(x):
    """sum x^2 in float64 with 8 interleaved partial sums (element i goes to
    partial i % 8, the partials are added in order at the end): the Cython twin's
    order, fixed for any thread count, without a serial chain's add latency."""
    n = x.shape[0]
    n8 = n - n % 8
    p = np.zeros(8)
    for i in range(0, n8, 8):
        for j in range(8):
            v = np.float64(x[i + j])
            p[j] = p[j] + v * v
    for i in range(n8, n):
        v = np.float64(x[i])
        p[i - n8] = p[i - n8] + v * v
    s = 0.0
    for j in range(8):
        s = s + p[j]
    return s


@helper
def _clip_factor(sq, c):
    """Keras: 1 if the norm <= c else c / norm (NaN for a NaN norm)."""
    norm = np.sqrt(sq)
    return 1.0 if norm <= c else c / norm


@helper
def _finite(x):
    """Whether every element of the 1-D x is finite: x - x is 0 for finite x,
    NaN for NaN and +-inf.  Blocks of 256 without an early exit inside (so LLVM
    vectorises the test), an exit between blocks (as the Cython twin)."""
    n = x.shape[0]
    for i0 in range(0, n, 256):
        blk = x[i0:min(i0 + 256, n)]
        ok = True
        for i in range(blk.shape[0]):
            ok &= blk[i] - blk[i] == 0
        if not ok:
            return False
    return True


@helper
def _diag_counts(diag, off, act, A):
    """Per-unit activity (relu, relu6) / saturation (sigmoid, tanh) counts of the
    (nb, w) activations A into diag[off:off + 2w] (see kernels/defs.py)."""
    w = A.shape[1]
    one = A.dtype.type(1)
    if act == ACT_RELU or act == ACT_RELU6:
        for i in range(A.shape[0]):
            a = A[i]
            for j in range(w):
                if a[j] > 0:
                    diag[off + j] += 1.0
    elif act == ACT_SIGMOID or act == ACT_TANH:
        thr = A.dtype.type(SAT_SIGMOID if act == ACT_SIGMOID else SAT_TANH)
        for i in range(A.shape[0]):
            a = A[i]
            for j in range(w):
                x = a[j]
                g = x * (one - x) if act == ACT_SIGMOID else one - x * x
                if g < thr:
                    diag[off + w + j] += 1.0


@helper
def _flat(buf, off, n):
    return buf[off:off + n]


# ---------------------------------------------------------------------------
# the two-thread split step (the Cython twin's kernels/cython/split.pyx)
# ---------------------------------------------------------------------------
# Small batches of a network whose first layer dominates (the seed workload,
# 784-30-10 at batch 10): every product is below the parallel thresholds, so the
# plain step runs on one thread.  Its first layer's product is already formed in
# two halves of p (_ksplit); with two threads step_plan hands the batches to
# _SplitStep, whose two workers (_split_worker on the calling thread and on a
# helper thread) each own one half: its columns of the batch's rows, its rows of
# W_0, their gradient and their update.  Per batch, as kernels/cython/split.pyx:
#
#   A  part p: gather its columns of the batch's rows, Xp @ W_0[part] into
#      slot[step % 2][p]                                              (worker p)
#   -- each worker waits for the other's A (one hand-off per batch) --
#   B  Z_0 = slot 0 + slot 1, the bias and activation, layers 1..L-1, the loss
#      head, backward to dz_0 and every gradient but dW_0, their update: both
#      workers, each in its own workspace with its own copy of the parameters
#      other than W_0 (worker 0's are the caller's), updated alike
#   C  part p: dW_0[part] = Xp.T @ dz_0, its update                   (worker p)
#
# Worker p writes slot[(step + 1) % 2][p] only after its B of step, which
# waited for the other's A of step, which came after the other's B of step - 1:
# two slots suffice.  Hand-offs are release stores and acquire loads
# (kernels/numba/atomics.py).  Every element is computed by the plain step's
# operations in its order, so the bits are the plain step's at any thread count.
# The workers first agree that both run (a team); a worker whose partner has not
# arrived after SOLO_SPINS spins (the helper busy with another model's call, or
# not scheduled) runs every part alone, and the late partner does nothing, so no
# order of the two can wait forever; a late worker 0 (the caller's thread) still
# waits for the lone worker 1's last write (CTL_DONE) before its caller reads the
# results.  A call with one thread presets CTL_MODE to MODE_ALONE and runs worker 0
# alone: the plain step's bits without compiling the plain step as well (the thread
# tuner tries one thread first; bench/numba_compile_time.py).

#: the control words, each on its own cache line (int64 index)
CTL_ARRIVED = 0
CTL_MODE = 8
CTL_DONE_A = 16          # + 8 p: worker p's last batch with its A done (plus one)
CTL_DONE = 32
CTL_SIZE = 40
#: spins of a worker waiting for its partner to arrive before it runs alone
#: (tens of microseconds at least, so two threads started together always team)
SOLO_SPINS = 1 << 16
MODE_TEAM = 1
MODE_SOLO = 2
#: preset by a call with one thread (no partner comes): worker 0 runs alone at once
MODE_ALONE = 3
#: the kernels' n_threads in the split step's parts, and the parts' numbers: int64,
#: not literals (numba compiles a callee again for each literal argument), so the
#: parts share one compiled _split_a / _split_c and the plain step's kernels
ONE = np.int64(1)
ZERO = np.int64(0)


@serial                  # (step_plan calls it from Python too)
def _split_plan(layers, P, bs):
    """The half of p at which the two-thread step splits layer 0 (0: the plain step):
    _ksplit's shapes, Dense layers without PReLU, dropout, L1/L2 or meProp (the
    split shares none of their state out), the exact parameter layout of those
    layers, and a first layer of at least 4x the multiply-adds of the rest (worker
    0 runs the rest alone).  Clipping and the diagnostics: the caller's flags."""
    r = _ksplit(layers, bs)
    if r == 0:
        return 0
    total = 0
    rest = 0
    for l in range(layers.shape[0]):
        if (layers[l].kind != LAYER_DENSE or layers[l].act == ACT_PRELU or layers[l].dropout > 0
                or layers[l].l1 != 0.0 or layers[l].l2 != 0.0 or layers[l].bias_l1 != 0.0
                or layers[l].bias_l2 != 0.0 or _topk_of(layers, l) > 0):
            return 0
        total += layers[l].n_in * layers[l].n_out + (layers[l].n_out if layers[l].b_offset >= 0 else 0)
        if l > 0:
            rest += layers[l].n_in * layers[l].n_out
    if total != P or 4 * rest > layers[0].n_in * layers[0].n_out:
        return 0
    return r


@helper
def _team(ctl):
    """MODE_TEAM when both workers run, MODE_SOLO for the one that runs alone, 0
    for a partner that arrives after the other went alone; MODE_SOLO at once when
    the caller preset MODE_ALONE (a call with one thread: no partner comes)."""
    if atomic_load(ctl, CTL_MODE) == MODE_ALONE:
        return MODE_SOLO
    if atomic_add(ctl, CTL_ARRIVED, ONE) == 1:
        seen = atomic_cas(ctl, CTL_MODE, 0, MODE_TEAM)
        return 0 if seen == MODE_SOLO else MODE_TEAM
    spins = 0
    while atomic_load(ctl, CTL_ARRIVED) < 2 and spins < SOLO_SPINS:
        spin_pause()
        spins += 1
    want = MODE_TEAM if atomic_load(ctl, CTL_ARRIVED) == 2 else MODE_SOLO
    seen = atomic_cas(ctl, CTL_MODE, 0, want)
    return want if seen == 0 else seen


@helper
def _wait_for(ctl, i, value):
    while atomic_load(ctl, i) < value:
        spin_pause()


@helper
def _gather_part(X, perm, r0, nb, c0, c1, Xp):
    """Xp[i] = X[perm[r0 + i], c0:c1] for the batch's nb rows (Xp: nb x (c1 - c0))."""
    for i in range(nb):
        src = X[perm[r0 + i], c0:c1]
        dst = Xp[i]
        for j in range(src.shape[0]):
            dst[j] = src[j]


@helper
def _split_a(p, r, X, perm, r0, nb, layers, params, Xp, out):
    """Part p of layer 0's product (phase A): its columns of the batch's rows
    gathered into Xp (nb, part width), Xp @ W_0[part] into out."""
    n_in = layers[0].n_in
    c0 = 0 if p == 0 else r
    c1 = r if p == 0 else n_in
    _gather_part(X, perm, r0, nb, c0, c1, Xp)
    W = _view(params, layers[0].w_offset, n_in, out.shape[1])
    matmul(_strided(Xp), W[c0:c1], out, ONE)


@helper
def _split_c(p, r, Xp, D, layers, opt, hyper, t, grads, params, state, typed):
    """Part p of layer 0's weight gradient and its update (phase C)."""
    n_in = layers[0].n_in
    zw0 = layers[0].n_out
    c0 = 0 if p == 0 else r
    c1 = r if p == 0 else n_in
    w0 = layers[0].w_offset
    matmul_tn(_strided(Xp), D, _view(grads, w0, n_in, zw0)[c0:c1], ONE)
    if opt != OPT_NONE:
        _update_range(opt, hyper, 1.0, t, grads, params, state, w0 + c0 * zw0, w0 + c1 * zw0, typed)


@inlined                 # (one call site: no level of its own to optimise the step again)
def _split_b(bi, r0, nb, Y, labels, sw, perm, layers, head, opt, hyper, t, params, grads, state,
             work, offZ, offA, offD0, offD1, P0, P1, wloss, wt_ws, typed, batch_loss, scores):
    """Phase B from the two parts P0, P1 of layer 0's product: the plain step's
    operations for everything but that product and dW_0; dz_0 is left in D0
    (odd L) or D1 of ``work``."""
    L = layers.shape[0]
    fused = head == HEAD_SOFTMAX_XENT or head == HEAD_SIGMOID_BCE
    n_out = layers[L - 1].n_out
    Z = _view(work, offZ[0], nb, layers[0].n_out)
    A = _view(work, offA[0], nb, layers[0].n_out)
    for i in range(nb):
        for j in range(Z.shape[1]):
            Z[i, j] = P0[i, j] + P1[i, j]
    bias_act_forward(_bias(params, layers, 0), layers[0].act, layers[0].act_param, Z, A, ONE)
    inp = A
    for l in range(1, L):
        Z = _view(work, offZ[l], nb, layers[l].n_out)
        A = _view(work, offA[l], nb, layers[l].n_out)
        act, maxout, prelu = _act_of(layers, l, l == L - 1 and fused)
        matmul(_strided(inp), _view(params, layers[l].w_offset, layers[l].n_in, Z.shape[1]), Z, ONE)
        bias_act_forward(_bias(params, layers, l), act, layers[l].act_param, Z, A, ONE)
        inp = A
    Zl = _view(work, offZ[L - 1], nb, n_out)
    Al = _view(work, offA[L - 1], nb, n_out)
    cur = _view(work, offD0, nb, n_out)
    _head(head, Zl, Al, cur, Y, labels, sw, perm, r0, 1.0 / nb, wloss, scores)
    data_loss = _sum_in_order(wloss, nb) / nb
    if not fused:
        act_backward(Zl, Al, cur, layers[L - 1].act, layers[L - 1].act_param, cur, ONE)
    cur_off = offD0
    for l in range(L - 1, 0, -1):
        w_in = layers[l].n_in
        zw = layers[l].n_out
        W = _view(params, layers[l].w_offset, w_in, zw)
        matmul_tn(_strided(_view(work, offA[l - 1], nb, w_in)), cur, _view(grads, layers[l].w_offset, w_in, zw), ONE)
        gb = _bias(grads, layers, l)
        if gb.shape[0] > 0:
            bias_grad(cur, gb, ONE)
        nxt_off = offD1 if cur_off == offD0 else offD0
        nxt = _view(work, nxt_off, nb, w_in)
        nt_ws(_strided(cur), W, nxt, view2d(wt_ws, 0, zw, _ldpad(w_in, W.itemsize)), ONE)
        act_backward(_view(work, offZ[l - 1], nb, w_in), _view(work, offA[l - 1], nb, w_in), nxt,
                     layers[l - 1].act, layers[l - 1].act_param, nxt, ONE)
        cur = nxt
        cur_off = nxt_off
    gb = _bias(grads, layers, 0)
    if gb.shape[0] > 0:
        bias_grad(cur, gb, ONE)
    batch_loss[bi] = data_loss + 0.0       # the plain step's + penalty (0): the same -0.0
    if opt != OPT_NONE:
        w0 = layers[0].w_offset
        w1 = w0 + layers[0].n_in * layers[0].n_out
        if w0 > 0:
            _update_range(opt, hyper, 1.0, t, grads, params, state, w0 - w0, w0, typed)
        if w1 < params.shape[0]:
            _update_range(opt, hyper, 1.0, t, grads, params, state, w1, params.shape[0], typed)


@serial
def _split_worker(tid, ctl, slots, X, Y, labels, sw, perm, batch_size, first_batch, n_batches, layers,
                  head, opt, hyper, t0, params, grads, state, work, batch_loss, scores):
    """Worker tid (0 or 1) of the split step over train_batches' arguments (checked
    by the contract's validator; the network by _split_plan here), both workers
    sharing ``ctl`` (CTL_SIZE zeros) and ``slots`` (4 batch_size x the first
    layer's width floats).  n_batches = 0 returns before the hand-off."""
    # borrowed (kernels/numba/refs.py): both workers' views of these buffers
    # would otherwise count references on the same cache lines
    X, Y, labels, sw, perm, layers = borrow(X), borrow(Y), borrow(labels), borrow(sw), borrow(perm), borrow(layers)
    ctl, slots, hyper, params, grads = borrow(ctl), borrow(slots), borrow(hyper), borrow(params), borrow(grads)
    state, work, batch_loss, scores = borrow(state), borrow(work), borrow(batch_loss), borrow(scores)
    L = layers.shape[0]
    bs = batch_size
    M = perm.shape[0]
    _check_layers(layers, params.shape[0], X.shape[1], layers[L - 1].n_out)
    r = _split_plan(layers, params.shape[0], bs)
    if r == 0:
        raise ValueError("train_batches: the split step's variant for another network")
    if n_batches <= 0:
        return
    n_in = layers[0].n_in
    zw0 = layers[0].n_out
    if ((first_batch + n_batches - 1) * bs >= M or first_batch < 0 or batch_loss.shape[0] < n_batches
            or ctl.shape[0] < CTL_SIZE or slots.shape[0] < 4 * bs * zw0):
        raise ValueError("train_batches: batch range outside perm")
    offZ, offA, offM, offD0, offD1, size = _layout(layers, bs)
    if work.shape[0] < size:
        raise ValueError("train_batches: work is smaller than workspace_size")
    # B's arrays: in a team worker 1 runs it on its own workspace and copies of
    # what B updates, made before its first A (which worker 0's first B waits
    # for); A and C read and write the caller's W_0 rows of the worker's part
    bparams = params
    bgrads = grads
    bstate = state
    bwork = work
    bloss = batch_loss
    bscores = scores if scores.shape[0] == M else scores[0:0]
    mode = _team(ctl)
    if mode == 0:
        # the partner runs every batch alone; when that is worker 1, the caller's
        # thread (worker 0) returns only after its last write
        if tid == 0:
            _wait_for(ctl, CTL_DONE, ONE)
        return
    solo = mode == MODE_SOLO
    # what this worker allocates: owners kept to the end, used borrowed
    own_p = params[0:0]
    own_g = grads[0:0]
    own_s = state[0:0]
    own_w = work[0:0]
    own_l = batch_loss[0:0]
    if tid == 1 and not solo:
        own_p = params.copy()
        own_g = np.zeros_like(grads)
        own_s = state.copy()
        own_w = np.empty(size, work.dtype)
        own_l = np.empty(n_batches, batch_loss.dtype)
        bparams, bgrads, bstate = borrow(own_p), borrow(own_g), borrow(own_s)
        bwork, bloss = borrow(own_w), borrow(own_l)
        bscores = scores[0:0]
    own_wloss = np.empty(bs, np.float64)
    smax = 1
    for l in range(1, L):
        smax = max(smax, layers[l].n_out * _ldpad(layers[l].n_in, params.itemsize))
    own_wt = np.empty(smax, params.dtype)
    own_typed = np.empty(NS_MAX, params.dtype)
    # the parts' columns of the batch's rows, a buffer per part (no cache line
    # shared between the workers)
    own_x0 = np.empty(bs * r if solo or tid == 0 else 0, work.dtype)
    own_x1 = np.empty(bs * (n_in - r) if solo or tid == 1 else 0, work.dtype)
    wloss, wt_ws, typed = borrow(own_wloss), borrow(own_wt), borrow(own_typed)
    x0, x1 = borrow(own_x0), borrow(own_x1)
    D = _view(bwork, offD0 if L % 2 == 1 else offD1, bs, zw0)
    for bi in range(n_batches):
        r0 = (first_batch + bi) * bs
        nb = min(bs, M - r0)
        nx1 = min(r0 + nb + bs, M) if bi + 1 < n_batches else r0 + nb
        t = t0 + bi + 1
        slot = (bi % 2) * 2 * bs * zw0
        Xp0 = _view(x0, 0, nb if x0.shape[0] > 0 else 0, r)
        Xp1 = _view(x1, 0, nb if x1.shape[0] > 0 else 0, n_in - r)
        if solo or tid == 0:
            _split_a(ZERO, r, X, perm, r0, nb, layers, params, Xp0, _view(slots, slot, nb, zw0))
        if solo or tid == 1:
            _split_a(ONE, r, X, perm, r0, nb, layers, params, Xp1, _view(slots, slot + bs * zw0, nb, zw0))
        if not solo:
            atomic_store(ctl, CTL_DONE_A + 8 * tid, bi + 1)
            # this worker's columns of the next batch's rows, while it waits and runs B
            _prefetch_part(X, perm, r0 + nb, nx1, 0 if tid == 0 else r, r if tid == 0 else n_in)
            _wait_for(ctl, CTL_DONE_A + 8 * (1 - tid), bi + 1)
        else:
            _prefetch_part(X, perm, r0 + nb, nx1, np.int64(0), n_in)
        _split_b(bi, r0, nb, Y, labels, sw, perm, layers, head, opt, hyper, t, bparams, bgrads, bstate,
                 bwork, offZ, offA, offD0, offD1, _view(slots, slot, nb, zw0),
                 _view(slots, slot + bs * zw0, nb, zw0), wloss, wt_ws, typed, bloss, bscores)
        if solo or tid == 0:
            _split_c(ZERO, r, Xp0, D[:nb], layers, opt, hyper, t, grads, params, state, typed)
        if solo or tid == 1:
            _split_c(ONE, r, Xp1, D[:nb], layers, opt, hyper, t, grads, params, state, typed)
    keep(own_p)
    keep(own_g)
    keep(own_s)
    keep(own_w)
    keep(own_l)
    keep(own_wloss)
    keep(own_wt)
    keep(own_typed)
    keep(own_x0)
    keep(own_x1)
    # worker 0 returns (and its caller reads the results) after worker 1's last
    # write, whether worker 1 ran its half or, alone, every batch
    if tid == 1:
        atomic_store(ctl, CTL_DONE, ONE)
    elif not solo:
        _wait_for(ctl, CTL_DONE, ONE)


#: libc's sched_getcpu through ctypes (None: not looked up yet, False: none here)
_GETCPU = None


def _other_cpus():
    """The CPUs the calling thread may run on other than the one it runs on now,
    for the split step's helper to keep to; None where the OS does not say, or
    when no other CPU is allowed."""
    global _GETCPU
    if not hasattr(os, "sched_getaffinity"):   # (Linux only; nor has Windows a CDLL(None))
        return None
    if _GETCPU is None:
        try:
            import ctypes
            fn = ctypes.CDLL(None).sched_getcpu
            fn.restype, fn.argtypes = ctypes.c_int, []
            _GETCPU = fn
        except (OSError, AttributeError, TypeError):
            _GETCPU = False
    if not _GETCPU:
        return None
    cpu = _GETCPU()
    others = os.sched_getaffinity(0) - {cpu} if cpu >= 0 else None
    return others or None


class _SplitStep:
    """train_batches for the calls step_plan gives the split step: ``worker`` (the
    _split_worker variant for the model's codes) runs as worker 0 on the calling
    thread and as worker 1 on a helper thread (the compiled code releases the
    GIL).  numba's prange has no barrier, and a parallel region around the workers
    cost more to compile than the whole training step (bench/numba_compile_time.py),
    so the team is two threads of this process: one helper per process, made again
    in a child process (threads do not survive fork).  Worker 0 waits for worker
    1's last write in compiled code, so a call costs one wake-up of the helper,
    not a Python round trip.  The helper runs each call on the CPUs other than the
    one the caller's thread is on: the two workers spin on each other's progress,
    and after an idle spell the scheduler often put the woken helper beside the
    caller (bench/report.py's seed epoch, which follows a pause of 0.15 s)."""

    _jobs = None
    _pid = None
    _error = []

    def __init__(self, worker):
        self.worker = worker
        self.py_func = worker.py_func if hasattr(worker, "py_func") else worker

    @classmethod
    def _post(cls, fn, args, cpus=None):
        if cls._jobs is None or cls._pid != os.getpid():
            import queue
            import threading
            cls._jobs, cls._pid = queue.SimpleQueue(), os.getpid()
            threading.Thread(target=cls._serve, args=(cls._jobs,), name="fastnet-split",
                             daemon=True).start()
        cls._jobs.put((fn, args, cpus))

    @classmethod
    def _serve(cls, jobs):
        while True:
            fn, args, cpus = jobs.get()
            if cpus is not None:
                try:
                    os.sched_setaffinity(0, cpus)   # (this thread only)
                except OSError:
                    pass
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's next call
                cls._error.append(e)

    def __call__(self, X, Y, labels, sw, perm, batch_size, first_batch, n_batches, layers, head, opt,
                 hyper, t0, rng_key, params, grads, state, work, batch_loss, scores, n_threads, diag):
        args = (X, Y, labels, sw, perm, batch_size, first_batch, n_batches, layers, head, opt, hyper,
                t0, params, grads, state, work, batch_loss, scores)
        ctl = np.zeros(CTL_SIZE, np.int64)
        slots = np.empty(4 * batch_size * int(layers[0]["n_out"]), work.dtype)
        # checks (and a compile, with its notice) on the calling thread, no batch run
        self.worker(0, ctl, slots, *args[:7], 0, *args[8:])
        if n_batches <= 0:
            return
        if n_threads < 2:
            # one thread: worker 0 runs every part itself, no helper woken
            ctl[CTL_MODE] = MODE_ALONE
            self.worker(0, ctl, slots, *args)
            return
        self._post(self.worker, (1, ctl, slots) + args, _other_cpus())
        self.worker(0, ctl, slots, *args)
        if self._error:
            raise self._error.pop()


def step_plan(layers, P, hyper, batch_size, n_threads, diag_on=False):
    """How train_batches runs these shapes: (r, two_threads), the Cython twin's
    answer.  r > 0: the first layer's product is formed in the two halves of p
    at r (_ksplit: shapes only, so every thread count and driver gets the same
    sums); two_threads: the halves go to two threads (the split step:
    ``train_variant(flags, split=True)``).  That needs two threads asked
    for, no diagnostics or clipping, and _split_plan's network."""
    r = int(_ksplit(layers, batch_size))
    if (r == 0 or n_threads < 2 or diag_on
            or hyper[H_CLIPNORM] > 0 or hyper[H_GLOBAL_CLIPNORM] > 0):
        return r, False
    return r, int(_split_plan(layers, P, batch_size)) > 0


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
def _make_forward(MAXOUT, PRELU):
    """``forward`` compiled with only the layer kinds a model has (see
    :func:`_make_train_batches`)."""
    @serial
    def forward(X, layers, params, work, out, n_threads):
        """out = the last layer's activations of the network on X (inference: no
        dropout).  work: two ping-pong buffers of n x (max layer width, z widths
        included)."""
        X, layers, params, work, out = borrow(X), borrow(layers), borrow(params), borrow(work), borrow(out)
        n = X.shape[0]
        L = layers.shape[0]
        _check_layers(layers, params.shape[0], X.shape[1], out.shape[1])
        if out.shape[0] != n:
            raise ValueError("forward: out must have as many rows as X")
        maxw = 0
        for l in range(L):
            maxw = max(maxw, _zw(layers, l))
        if (L > 1 or layers[L - 1].kind == LAYER_MAXOUT) and work.shape[0] < 2 * n * maxw:
            raise ValueError("forward: work is smaller than forward_workspace_size")
        # layer 0 reads X (which may be read-only); the others read the workspace.
        # ``cur``: the buffer holding the layer's input; Z goes to the other one;
        # a Maxout layer's A goes back into ``cur`` (its input is no longer needed).
        cur = 1
        inp = _view(work, cur - cur, cur - cur, cur)     # (0, 1), set by layer 0
        linear = cur == 0                                 # False (a variable, not a literal)
        for l in range(L):
            zw = _zw(layers, l)
            w_out = layers[l].n_out
            Z = _view(work, (1 - cur) * n * maxw, n, zw)
            if layers[l].kind == LAYER_MAXOUT:
                A = out if l == L - 1 else _view(work, cur * n * maxw, n, w_out)
            else:
                if l == L - 1:
                    Z = out
                A = Z
                cur = 1 - cur
            act, maxout, prelu = _act_of(layers, l, linear)
            ZA = Z if maxout or prelu else A
            if l == 0:
                _affine_act(X, layers, params, l, act, Z, ZA, n_threads)
            else:
                _affine_act(inp, layers, params, l, act, Z, ZA, n_threads)
            if MAXOUT and maxout:
                maxout_forward(Z, Z.shape[1] // A.shape[1], A, n_threads)
            elif PRELU and prelu:
                prelu_forward(Z, _slopes(params, layers, l), A, n_threads)
            inp = A
    return forward


def _make_train_batches(DROP, REG, CLIP, MAXOUT, PRELU, MEPROP, DIAG):
    """``train_batches`` compiled with only the features a model uses.

    numba types and compiles every kernel a function can call, taken or not, so
    one driver for every model compiled meProp, Maxout, PReLU, dropout,
    regularization, clipping and the diagnostics for each model.  Each flag
    here is a closure constant: numba prunes the branches it guards before
    typing, so a variant compiles only the kernels of its features.  With a
    flag on, the feature's code runs where the description asks for it (the
    all-on variant is the module's ``train_batches``); with it off, the
    description must not use the feature (the adapter picks the flags from it:
    ``fastnet.backends.numba``).  Variants share one cache file, keyed by the
    flags (numba hashes a closure's variables into the key)."""
    @serial
    def train_batches(X, Y, labels, sw, perm, batch_size, first_batch, n_batches, layers,
                      head, opt, hyper, t0, rng_key, params, grads, state, work, batch_loss,
                      scores, n_threads, diag):
        """For b in first_batch .. first_batch + n_batches - 1: take rows
        perm[b*bs : min((b+1)*bs, M)], run forward (with dropout), the fused loss
        head, backward, regularization and the optimizer update with
        t = t0 + (b - first_batch) + 1.  batch_loss[b - first_batch] = the batch's
        mean weighted data loss before the update plus the regularization penalty
        of the pre-update weights.  When scores has M rows, scores[perm position] =
        the head's outputs (P for the fused heads, A for mse/mae).  grads holds the
        last batch's gradients on return (unclipped).  diag (float64, empty = off)
        accumulates the diagnostics of kernels/defs.py and stops the call at the
        first non-finite value."""
        # the caller holds every argument for the call: borrowed, their views
        # count no references (kernels/numba/refs.py)
        X, Y, labels, sw, perm, layers = borrow(X), borrow(Y), borrow(labels), borrow(sw), borrow(perm), borrow(layers)
        params, grads, state, work = borrow(params), borrow(grads), borrow(state), borrow(work)
        hyper, batch_loss, scores, diag = borrow(hyper), borrow(batch_loss), borrow(scores), borrow(diag)
        L = layers.shape[0]
        if L < 1:
            raise ValueError("the network has no layer")
        M = perm.shape[0]
        bs = batch_size
        n_in = layers[0].n_in
        n_out = layers[L - 1].n_out
        fused = head == HEAD_SOFTMAX_XENT or head == HEAD_SIGMOID_BCE
        # cheap O(L) checks: a wrong call must not read or write out of bounds
        # (the index arrays perm and labels are trusted: the model validates them)
        if not (fused or head == HEAD_MSE or head == HEAD_MAE):
            raise ValueError("train_batches: unknown head code")
        if bs < 1:
            raise ValueError("train_batches: batch_size must be >= 1")
        _check_layers(layers, params.shape[0], X.shape[1], n_out)
        if layers[L - 1].kind == LAYER_MAXOUT or (not fused and layers[L - 1].act == ACT_PRELU):
            raise ValueError("train_batches: a Maxout or PReLU layer cannot be the last layer")
        if grads.shape[0] != params.shape[0] or state.shape[1] != params.shape[0]:
            raise ValueError("train_batches: grads and state must match params")
        offZ, offA, offM, offD0, offD1, size = _layout(layers, bs)
        if work.shape[0] < size:
            raise ValueError("train_batches: work is smaller than workspace_size")
        if n_batches > 0 and (first_batch < 0 or (first_batch + n_batches - 1) * bs >= M):
            raise ValueError("train_batches: batch range outside perm")
        if batch_loss.shape[0] < n_batches:
            raise ValueError("train_batches: batch_loss is shorter than n_batches")
        if head == HEAD_SOFTMAX_XENT:
            if labels.shape[0] == 0 and Y.shape[0] == 0:
                raise ValueError("train_batches: softmax_xent needs Y or labels")
        elif Y.shape[0] == 0:
            raise ValueError("train_batches: this head needs Y")
        if (Y.shape[0] > 0 and (Y.shape[0] != X.shape[0] or Y.shape[1] != n_out)) or \
                (labels.shape[0] > 0 and labels.shape[0] != X.shape[0]) or \
                (sw.shape[0] > 0 and sw.shape[0] != X.shape[0]):
            raise ValueError("train_batches: Y, labels and sw must have one row per row of X")
        if hyper.shape[0] < NH:
            raise ValueError("train_batches: hyper must have defs.NH entries")
        if opt < 0 or opt > OPT_MAX:
            raise ValueError("unknown optimizer code")
        # a copy made by _jit.specialise compiles only its masks' codes: the
        # call must use no other (the adapter picks the masks from the call)
        # (the masks are not passed to a helper: numba would compile it per mask)
        if OPT_MASK != ALL_OPTS and opt != OPT_NONE and (OPT_MASK >> opt) & 1 == 0:
            raise ValueError("train_batches: an optimizer outside this variant")
        if HEAD_MASK != HEAD_ALL and (_head_bit(head, labels) & HEAD_MASK) == 0:
            raise ValueError("train_batches: a loss head outside this variant")
        if FWD_MASK != ALL_ACTS or BWD_MASK != ALL_ACTS:
            for l in range(L):
                a, mo, pr = _act_of(layers, l, l == L - 1 and fused)
                if a < 0 or a > 62 or (FWD_MASK >> a) & 1 == 0:
                    raise ValueError("train_batches: an activation outside this variant")
                if (l == L - 1 and not fused) or (l < L - 1 and not mo and not pr):
                    a = layers[l].act
                    if a < 0 or a > 62 or (BWD_MASK >> a) & 1 == 0:
                        raise ValueError("train_batches: an activation outside this variant")
        any_reg = False
        kmax = 0
        doff = np.empty(L, np.int64)       # diag block of each layer
        pos = DG_HEAD
        for l in range(L):
            if (layers[l].l1 != 0.0 or layers[l].l2 != 0.0
                    or layers[l].bias_l1 != 0.0 or layers[l].bias_l2 != 0.0):
                any_reg = True
            kmax = max(kmax, _topk_of(layers, l))
            doff[l] = pos
            pos += 2 * layers[l].n_out + 2
        on = diag.shape[0] > 0
        if DIAG and on and diag.shape[0] < pos:
            raise ValueError("train_batches: diag is shorter than defs.diag_size(layers)")
        key = np.uint64(rng_key)
        if scores.shape[0] == M:
            if scores.shape[1] != n_out:
                raise ValueError("train_batches: scores must have n_out columns")
            out_scores = scores
        else:
            out_scores = scores[0:0]
        own_wloss = np.empty(bs, np.float64)
        own_pen = np.zeros(1, np.float64)
        own_idx = np.empty(bs * kmax, np.int64)    # meProp's kept columns
        smax = 0                                   # a layer's W^T, (z width, in + _ldpad): matmul_nt's
        for l in range(L):                         # scratch (layers above the first) and meProp's
            if l > 0 or _topk_of(layers, l) > 0:
                smax = max(smax, _zw(layers, l) * _ldpad(layers[l].n_in, params.itemsize))
        own_wt = np.empty(smax, params.dtype)
        own_typed = np.empty(NS_MAX, params.dtype)  # the optimizer's scalar factors, per update
        # the scratch borrowed too; its owners are kept to the end of the call
        wloss, pen, idxbuf = borrow(own_wloss), borrow(own_pen), borrow(own_idx)
        wt_ws, typed = borrow(own_wt), borrow(own_typed)
        offX = size - size                         # X at 0 (not a literal: see _update)
        clipnorm = hyper[H_CLIPNORM] if opt != OPT_NONE else 0.0
        gclipnorm = hyper[H_GLOBAL_CLIPNORM] if opt != OPT_NONE else 0.0
        P = params.shape[0]
        act_last = layers[L - 1].act
        act_param_last = layers[L - 1].act_param
        ksplit = _ksplit(layers, bs)

        for bi in range(n_batches):
            b = first_batch + bi
            r0 = b * bs
            r1 = min(r0 + bs, M)
            nb = r1 - r0

            # ---- gather the batch
            Xb = _view(work, offX, nb, n_in)
            gather_rows(X, perm[r0:r1], Xb, n_threads)
            nx1 = min(r1 + bs, M) if bi + 1 < n_batches else r1    # the next batch's rows
            _prefetch_rows(X, perm, r1, nx1, np.int64(0))

            # ---- forward
            inp = Xb
            for l in range(L):
                w_out = layers[l].n_out
                zw = _zw(layers, l)
                Z = _view(work, offZ[l], nb, zw)
                A = _view(work, offA[l], nb, w_out)
                act, maxout, prelu = _act_of(layers, l, l == L - 1 and fused)
                if l == 0 and ksplit > 0:
                    _layer0_ksplit(Xb, layers, params, ksplit, Z, A, n_threads)
                else:
                    matmul(_strided(inp), _view(params, layers[l].w_offset, layers[l].n_in, zw), Z, n_threads)
                # Z += b, then the activation (into Z for a Maxout or PReLU layer)
                bias_act_forward(_bias(params, layers, l), act, layers[l].act_param, Z,
                                 Z if maxout or prelu else A, n_threads)
                if MAXOUT and maxout:
                    maxout_forward(Z, zw // w_out, A, n_threads)
                elif PRELU and prelu:
                    prelu_forward(Z, _slopes(params, layers, l), A, n_threads)
                if DIAG and on:
                    if not (_finite(_flat(work, offZ[l], nb * zw)) and
                            _finite(_flat(work, offA[l], nb * w_out))):
                        diag[DG_BATCH] = b
                        diag[DG_LAYER] = l
                        diag[DG_STAGE] = STAGE_FORWARD
                        return
                    if not (l == L - 1 and fused):   # a fused head's layer holds logits
                        _diag_counts(diag, doff[l], layers[l].act, A)
                if DROP and offM[l] >= 0 and l < L - 1:
                    Mk = _view(work, offM[l], nb, w_out)
                    _dropout(A, Mk, layers[l].dropout, key, b, L, l, bs)
                    inp = Mk
                else:
                    inp = A
            if DIAG and on:
                diag[DG_ROWS] += nb
            _prefetch_rows(X, perm, r1, nx1, np.int64(1))

            # ---- loss head: P into A_last (fused) or dA into D0; weighted row losses
            Zl = _view(work, offZ[L - 1], nb, n_out)
            Al = _view(work, offA[L - 1], nb, n_out)
            cur = _view(work, offD0, nb, n_out)
            scale = 1.0 / nb
            _head(head, Zl, Al, cur, Y, labels, sw, perm, r0, scale, wloss, out_scores)
            data_loss = _sum_in_order(wloss, nb) / nb
            _prefetch_rows(X, perm, r1, nx1, np.int64(2))
            if not fused:
                act_backward(Zl, Al, cur, act_last, act_param_last, cur, n_threads)
            if DIAG and on and not (isfinite(data_loss) and _finite(_flat(work, offD0, nb * n_out))):
                batch_loss[bi] = data_loss
                diag[DG_BATCH] = b
                diag[DG_LAYER] = L - 1
                diag[DG_STAGE] = STAGE_LOSS
                return

            # ---- backward: cur = dL/dz of layer l (nb x z width), in D0 or D1
            cur_off = offD0
            for l in range(L - 1, -1, -1):
                w_in = layers[l].n_in
                zw = _zw(layers, l)
                if l == 0:
                    inp = Xb
                elif offM[l - 1] >= 0:
                    inp = _view(work, offM[l - 1], nb, w_in)
                else:
                    inp = _view(work, offA[l - 1], nb, w_in)
                W = _view(params, layers[l].w_offset, w_in, zw)
                gW = _view(grads, layers[l].w_offset, w_in, zw)
                gb = _bias(grads, layers, l)
                kk = _topk_of(layers, l)
                idx = view2d(idxbuf, 0, nb, kk)
                if MEPROP and kk > 0:
                    topk_rows(cur, kk, idx, n_threads)
                    tn_sparse_ws(inp, cur, idx, gW, view2d(wt_ws, 0, zw, w_in), n_threads)
                else:
                    matmul_tn(_strided(inp), cur, gW, n_threads)
                if gb.shape[0] > 0:
                    bias_grad(cur, gb, n_threads)
                nxt_off = offD1 if cur_off == offD0 else offD0
                if l > 0:
                    nxt = _view(work, nxt_off, nb, w_in)
                    if MEPROP and kk > 0:
                        nt_sparse_ws(cur, idx, W, nxt, view2d(wt_ws, 0, zw, w_in), n_threads)
                    else:
                        nt_ws(_strided(cur), W, nxt, view2d(wt_ws, 0, zw, _ldpad(w_in, W.itemsize)), n_threads)
                    if DROP and offM[l - 1] >= 0:
                        _dropout(nxt, nxt, layers[l - 1].dropout, key, b, L, l - 1, bs)
                    Zb = _view(work, offZ[l - 1], nb, _zw(layers, l - 1))
                    if MAXOUT and layers[l - 1].kind == LAYER_MAXOUT:
                        # dz of the layer below is wider than nxt: into cur's buffer
                        cur = _view(work, cur_off, nb, Zb.shape[1])
                        maxout_backward(Zb, nxt, layers[l - 1].pieces, cur, n_threads)
                    else:
                        if PRELU and layers[l - 1].act == ACT_PRELU:
                            prelu_backward(Zb, nxt, _slopes(params, layers, l - 1),
                                           _slopes(grads, layers, l - 1), nxt, n_threads)
                        else:
                            act_backward(Zb, _view(work, offA[l - 1], nb, w_in), nxt,
                                         layers[l - 1].act, layers[l - 1].act_param, nxt, n_threads)
                        cur = nxt
                        cur_off = nxt_off
                if DIAG and on:
                    # this layer's gradients are complete (its slopes were done one step earlier)
                    gs = _slopes(grads, layers, l) if l < L - 1 else grads[0:0]
                    gWf = _flat(grads, layers[l].w_offset, w_in * zw)
                    if not (_finite(gWf) and _finite(gb) and _finite(gs) and
                            (l == 0 or _finite(_flat(work, cur_off, cur.shape[0] * cur.shape[1])))):
                        diag[DG_BATCH] = b
                        diag[DG_LAYER] = l
                        diag[DG_STAGE] = STAGE_BACKWARD
                        return
                    o = doff[l] + 2 * layers[l].n_out
                    diag[o] += np.sqrt(_sumsq(gWf) + _sumsq(gb) + _sumsq(gs))
                    diag[o + 1] += 1.0

            _prefetch_rows(X, perm, r1, nx1, np.int64(3))
            # ---- regularization (pre-update weights), update (with clipping)
            penalty = 0.0
            if REG and any_reg:
                regularize(layers, params, grads, pen, n_threads)
                penalty = pen[0]
            batch_loss[bi] = data_loss + penalty
            if CLIP:
                _update(opt, hyper, t0 + bi + 1, layers, grads, params, state, clipnorm, gclipnorm, typed)
            elif opt != OPT_NONE and P > 0:
                _update_range(opt, hyper, 1.0, t0 + bi + 1, grads, params, state, offX, P, typed)
            _prefetch_rows(X, perm, r1, nx1, np.int64(4))
            if DIAG and on:
                for l in range(L):
                    if not (_finite(_flat(params, layers[l].w_offset, layers[l].n_in * _zw(layers, l))) and
                            _finite(_bias(params, layers, l)) and _finite(_slopes(params, layers, l))):
                        diag[DG_BATCH] = b
                        diag[DG_LAYER] = l
                        diag[DG_STAGE] = STAGE_UPDATE
                        return
        keep(own_wloss)
        keep(own_pen)
        keep(own_idx)
        keep(own_wt)
        keep(own_typed)
    return train_batches


#: (DROP, REG, CLIP, MAXOUT, PRELU, MEPROP, DIAG, OPT_MASK, FWD_MASK, BWD_MASK,
#: HEAD_MASK) -> train_batches variant
_TRAIN_VARIANTS = {}
#: flags -> the _SplitStep of the _split_worker variant for them
_SPLIT_VARIANTS = {}
#: the masks of the variant that compiles every code (train_variant pads with these)
_TRAIN_ANY = (True,) * 7 + (ALL_OPTS, ALL_ACTS, ALL_ACTS, HEAD_ALL)
_MASK_NAMES = ("OPT_MASK", "FWD_MASK", "BWD_MASK", "HEAD_MASK")
#: (MAXOUT, PRELU) -> forward variant
_FORWARD_VARIANTS = {}


def train_variant(flags, serial=False, split=False):
    """The train_batches dispatcher compiled for ``flags`` (created once); with
    ``serial``, its serial twin (``_jit.serial_twin``: no parallel region, for
    shapes that reach no kernel's parallel threshold).  ``flags``: the seven
    feature flags of :func:`_make_train_batches`, then optionally the masks
    OPT_MASK, FWD_MASK, BWD_MASK, HEAD_MASK (default: every code): a variant
    with narrower masks is ``_jit.specialise``'s copy of the features' variant,
    which compiles only those optimizers', activations' and heads' loops.  With
    ``split``: the two-thread split step for those codes (a _SplitStep around the
    serial twin of _split_worker), for the calls step_plan gives two threads."""
    flags = tuple(flags) + _TRAIN_ANY[len(flags):]
    consts = {name: v for name, v, every in zip(_MASK_NAMES, flags[7:], _TRAIN_ANY[7:]) if v != every}
    if split:
        # the split step: its worker for these codes, without parallel regions
        disp = _SPLIT_VARIANTS.get(flags)
        if disp is None:
            disp = _SPLIT_VARIANTS.setdefault(flags, _SplitStep(serial_twin(
                specialise(_split_worker, dict(consts, PAD_COPY=0)))))
        return disp
    disp = _TRAIN_VARIANTS.get(flags)
    if disp is None:
        base = _TRAIN_VARIANTS.get(flags[:7] + _TRAIN_ANY[7:])
        if base is None:
            base = _TRAIN_VARIANTS.setdefault(flags[:7] + _TRAIN_ANY[7:], _make_train_batches(*flags[:7]))
        disp = _TRAIN_VARIANTS.setdefault(flags, specialise(base, consts) if consts else base)
    return serial_twin(disp) if serial else disp


def forward_variant(flags):
    """The forward dispatcher compiled for ``flags`` (MAXOUT, PRELU)."""
    disp = _FORWARD_VARIANTS.get(flags)
    if disp is None:
        disp = _FORWARD_VARIANTS.setdefault(flags, _make_forward(*flags))
    return disp


#: every feature compiled in: for callers that do not pick a variant
train_batches = train_variant((True,) * 7)
forward = forward_variant((True, True))
