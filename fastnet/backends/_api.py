"""THE backend contract: every kernel's name, argument order, shapes and dtypes.

Every backend (``numpy_ref``, ``numba``, ``cython``) is a module-like object that
exposes exactly the functions listed in :data:`KERNELS`, with these signatures.
The model (``fastnet/model.py``) calls nothing else.

Conventions (as in scikit-learn's ``_loss`` module)
---------------------------------------------------
* Inputs first, outputs last, ``n_threads`` the final positional argument (only
  ``train_batches`` has an optional keyword after it, ``diag``).
* Outputs are passed in (``OUT``) or updated in place (``INOUT``); kernels never
  allocate arrays that outlive the call and never return arrays.  They return
  ``None``.
* Arrays are C-contiguous.  "float" means the model dtype, float32 or float64,
  the same for every float array of one call except where float64 is stated.
  Integer arrays are int64.
* A length-0 array stands for "absent" (no bias, no sample weights, no labels).
* ``n_threads`` >= 1.  Parallel loops run over *output* indices, so each thread
  owns what it writes; every reduction runs in a fixed order.  Results are
  therefore bit-identical for any thread count.
* Integer codes (activations, heads, optimizers, spec columns, hyper slots) come
  from ``fastnet._kernels.defs`` (source: ``kernels/defs.py``).

Network description
-------------------
``ispec`` int64 (L, defs.NI) and ``fspec`` float64 (L, defs.NF) describe the L weight
layers in order (columns ``defs.I_*`` / ``defs.F_*``).  Layer ``l`` maps an input of
width ``ispec[l, I_IN]`` to ``ispec[l, I_OUT]`` units.  With ``q`` = 1 for
``KIND_DENSE`` and ``q = ispec[l, I_PIECES]`` (>= 1) for ``KIND_MAXOUT``:
``z = x @ W + b`` with ``W = params[w:w+in*out*q].reshape(in, out*q)``
(``w = ispec[l, I_W]``) and ``b = params[bo:bo+out*q]`` (``bo = ispec[l, I_B]``, -1 =
no bias).  Dense: ``a = act(z)``; with ``act = ACT_PRELU`` the slopes are
``s = params[ap:ap+out]`` (``ap = ispec[l, I_APAR]``) and ``a = z if z > 0 else s z``
(per column).  Maxout: ``a[:, j] = max_p z[:, j*q + p]`` (the activation code is
ACT_LINEAR; a Maxout or PReLU layer is never the last layer).  ``grads`` has the same
layout as ``params``.

meProp (``ispec[l, I_TOPK]`` = k, 0 < k < the width of the layer's z, Dense only): in
``train_batches``, after the layer's dz is formed (head or activation backward), each
row keeps only its k largest |dz| entries (ties: the lower column index) and the
others become 0 (``topk_rows``); the weight gradient, the bias gradient and the delta
passed to the layer below are computed from that sparse dz (``matmul_tn_sparse`` /
``matmul_nt_sparse``: O(n k in) instead of O(n out in)).  k = 0 or k >= the width: the
ordinary (dense) backward, bit-identical to no meProp.

Training workspace
------------------
``train_batches`` and ``forward`` use a flat float workspace ``work`` whose size
is :func:`workspace_size`; its layout is :func:`workspace_layout` (backends may
use it as they like, but must not need more).

Loss heads
----------
``head`` (``defs.HEAD_*``) says how the last layer meets the loss:

* ``HEAD_SOFTMAX_XENT``: the last layer's ``z`` are logits; p = softmax(z);
  loss_i = -sum_j y_ij log p_ij (with integer ``labels``: -log p_i,label);
  dz = (p - y) * w_i * scale.  The last layer's activation code is ignored in
  training (the model builds it so: softmax output or logits).
* ``HEAD_SIGMOID_BCE``: logits z; loss_i = mean_j [softplus(z) - y z]
  (= BCE of sigmoid(z), stable); dz = (sigmoid(z) - y) * w_i * scale / k.
* ``HEAD_MSE`` / ``HEAD_MAE``: loss on a = act(z): mean_j (a - y)^2 or
  mean_j |a - y|; da = 2 (a - y) w_i scale / k  or  sign(a - y) w_i scale / k,
  then dz = da * g'(z) through the last activation.

``w_i`` is the sample weight (1 when ``sw`` is empty); ``scale`` is 1 / n_batch
so the batch loss is the Keras "sum over batch size" mean:
``loss = sum_i w_i loss_i / n``.

Optimizer update (PyTorch ``torch.optim`` single-tensor semantics)
------------------------------------------------------------------
``opt`` (``defs.OPT_*``), ``hyper`` float64 (defs.NH,) (slots ``defs.H_*``),
``state`` float (defs.N_STATE, P) with the optimizer's slots in its first rows
(order of ``defs.OPTIMIZERS[...]["slots"]``), ``t`` the 1-based step number of
this update.  ``OPT_NONE`` leaves params and state untouched (used by
``model.gradients``).

Dropout
-------
``fspec[l, F_DROP]`` > 0 drops entries of layer ``l``'s output (never the last
layer's) during ``train_batches`` with the counter-based mask defined in
``kernels/defs.py`` (identical in every backend); ``forward`` never drops.

Gradient clipping (Keras meaning; the model allows at most one)
---------------------------------------------------------------
``hyper[H_CLIPNORM]`` = c > 0: ``train_batches`` takes the float64 norm of each
parameter array's gradient (per layer: W, then b, then the PReLU slopes), and
updates that array with ``hyper[H_GRAD_SCALE] = 1 if norm <= c else c / norm`` (so a
NaN norm gives a NaN factor).  ``hyper[H_GLOBAL_CLIPNORM]`` = c > 0: one norm over
all gradients, one such factor.  ``optimizer_update`` multiplies the gradient by
``hyper[H_GRAD_SCALE]`` (when not 0), then clips it elementwise to
``[-hyper[H_CLIPVALUE], hyper[H_CLIPVALUE]]`` (when not 0), then applies the
optimizer's rule.  Norms are summed in float64 in an order fixed by the array's
length (never by the thread count).
``grads`` keeps the unclipped gradients.

Diagnostics
-----------
``train_batches(..., diag=buf)`` (keyword, float64, ``defs.diag_size(ispec)``
elements, accumulated, never zeroed by the kernel; default: empty = off) records
per-unit activity and saturation counts, per-layer gradient norms and the first
non-finite value's batch, layer and stage; see ``kernels/defs.py``.  Stages are
checked in order: forward (layer l's z or a), loss (the row losses and the head's
delta), backward (layer l's weight / bias / slope gradients, then the delta it
passes down), update (layer l's parameters after the update, layers in order).
On the first non-finite value the call records it and returns at once (later
entries of batch_loss are not written).  With diag empty nothing of this runs.

Regularization
--------------
``fspec[l, F_L1]``, ``fspec[l, F_L2]``: penalty l1 * sum|W| + l2 * sum W^2 over the
kernel W, gradient l1 * sign(W) + 2 l2 W, added to ``grads`` after backprop;
``fspec[l, F_BL1]``, ``fspec[l, F_BL2]``: the same over the bias b (Keras's
bias_regularizer; nothing without a bias).  ``train_batches`` adds the penalty of
the pre-update weights to each reported batch loss.
"""

from .._kernels import defs

# kind of each argument: "in", "out", "inout", "int", "float" (Python scalar),
# "threads".  Shapes are descriptive.
KERNELS = {
    "matmul": [("A", "in", "(n, k)"), ("B", "in", "(k, m)"), ("C", "out", "(n, m)"),
               ("n_threads", "threads", "")],
    "matmul_tn": [("A", "in", "(k, n)"), ("B", "in", "(k, m)"), ("C", "out", "(n, m)"),
                  ("n_threads", "threads", "")],
    "matmul_nt": [("A", "in", "(n, k)"), ("B", "in", "(m, k)"), ("C", "out", "(n, m)"),
                  ("n_threads", "threads", "")],
    "bias_act_forward": [("b", "in", "(m,) or (0,)"), ("act", "int", ""), ("alpha", "float", ""),
                         ("Z", "inout", "(n, m)"), ("A", "out", "(n, m)"),
                         ("n_threads", "threads", "")],
    "act_backward": [("Z", "in", "(n, m)"), ("A", "in", "(n, m)"), ("dA", "in", "(n, m)"),
                     ("act", "int", ""), ("alpha", "float", ""), ("dZ", "out", "(n, m)"),
                     ("n_threads", "threads", "")],
    "softmax_xent": [("Z", "in", "(n, k)"), ("Y", "in", "(n, k) or (0, k)"),
                     ("labels", "in", "(n,) int64 or (0,)"), ("sw", "in", "(n,) or (0,)"),
                     ("scale", "float", ""), ("P", "out", "(n, k)"),
                     ("loss", "out", "(n,) float64"), ("dZ", "out", "(n, k)"),
                     ("n_threads", "threads", "")],
    "sigmoid_bce": [("Z", "in", "(n, k)"), ("Y", "in", "(n, k)"), ("sw", "in", "(n,) or (0,)"),
                    ("scale", "float", ""), ("P", "out", "(n, k)"),
                    ("loss", "out", "(n,) float64"), ("dZ", "out", "(n, k)"),
                    ("n_threads", "threads", "")],
    "mse": [("A", "in", "(n, k)"), ("Y", "in", "(n, k)"), ("sw", "in", "(n,) or (0,)"),
            ("scale", "float", ""), ("loss", "out", "(n,) float64"), ("dA", "out", "(n, k)"),
            ("n_threads", "threads", "")],
    "mae": [("A", "in", "(n, k)"), ("Y", "in", "(n, k)"), ("sw", "in", "(n,) or (0,)"),
            ("scale", "float", ""), ("loss", "out", "(n,) float64"), ("dA", "out", "(n, k)"),
            ("n_threads", "threads", "")],
    "bias_grad": [("dZ", "in", "(n, m)"), ("db", "out", "(m,)"), ("n_threads", "threads", "")],
    "gather_rows": [("X", "in", "(N, m)"), ("idx", "in", "(n,) int64"), ("out", "out", "(n, m)"),
                    ("n_threads", "threads", "")],
    "all_finite": [("X", "in", "(n, m)"), ("flag", "out", "(1,) int64"),
                   ("n_threads", "threads", "")],
    "regularize": [("ispec", "in", "(L, NI) int64"), ("fspec", "in", "(L, NF) float64"),
                   ("params", "in", "(P,)"), ("grads", "inout", "(P,)"),
                   ("penalty", "out", "(1,) float64"), ("n_threads", "threads", "")],
    "optimizer_update": [("opt", "int", ""), ("hyper", "in", "(NH,) float64"), ("t", "int", ""),
                         ("grads", "in", "(P,)"), ("params", "inout", "(P,)"),
                         ("state", "inout", "(N_STATE, P)"), ("n_threads", "threads", "")],
    "prelu_forward": [("Z", "in", "(n, m)"), ("slope", "in", "(m,)"), ("A", "out", "(n, m)"),
                      ("n_threads", "threads", "")],
    "prelu_backward": [("Z", "in", "(n, m)"), ("dA", "in", "(n, m)"), ("slope", "in", "(m,)"),
                       ("dslope", "out", "(m,)"), ("dZ", "out", "(n, m)"),
                       ("n_threads", "threads", "")],
    "maxout_forward": [("Z", "in", "(n, m * q)"), ("pieces", "int", "q"), ("A", "out", "(n, m)"),
                       ("n_threads", "threads", "")],
    "maxout_backward": [("Z", "in", "(n, m * q)"), ("dA", "in", "(n, m)"), ("pieces", "int", "q"),
                        ("dZ", "out", "(n, m * q)"), ("n_threads", "threads", "")],
    "topk_rows": [("D", "inout", "(n, m)"), ("k", "int", "1 <= k <= m"),
                  ("idx", "out", "(n, k) int64"), ("n_threads", "threads", "")],
    "matmul_tn_sparse": [("A", "in", "(n, k_in)"), ("D", "in", "(n, m)"),
                         ("idx", "in", "(n, k) int64"), ("C", "out", "(k_in, m)"),
                         ("n_threads", "threads", "")],
    "matmul_nt_sparse": [("D", "in", "(n, m)"), ("idx", "in", "(n, k) int64"),
                         ("B", "in", "(k_in, m)"), ("C", "out", "(n, k_in)"),
                         ("n_threads", "threads", "")],
    "forward": [("X", "in", "(n, n_in)"), ("ispec", "in", ""), ("fspec", "in", ""),
                ("params", "in", "(P,)"), ("work", "out", "(>= forward_workspace_size,)"),
                ("out", "out", "(n, n_out)"), ("n_threads", "threads", "")],
    "train_batches": [
        ("X", "in", "(N, n_in)"), ("Y", "in", "(N, n_out) or (0, n_out)"),
        ("labels", "in", "(N,) int64 or (0,)"), ("sw", "in", "(N,) or (0,)"),
        ("perm", "in", "(M,) int64 row indices into X, the epoch's order"),
        ("batch_size", "int", ""), ("first_batch", "int", ""), ("n_batches", "int", ""),
        ("ispec", "in", ""), ("fspec", "in", ""), ("head", "int", ""),
        ("opt", "int", ""), ("hyper", "in", "(NH,) float64"), ("t0", "int", ""),
        ("rng_key", "int", "uint64 as Python int"),
        ("params", "inout", "(P,)"), ("grads", "out", "(P,)"),
        ("state", "inout", "(N_STATE, P)"), ("work", "out", "(>= workspace_size,)"),
        ("batch_loss", "out", "(n_batches,) float64"),
        ("scores", "out", "(M, n_out) or (0, n_out)"),
        ("n_threads", "threads", ""),
        ("diag", "inout", "optional keyword: (defs.diag_size(ispec),) float64 or None/(0,) = off")],
}

KERNEL_DOCS = {
    "matmul": "C = A @ B.",
    "matmul_tn": "C = A.T @ B (the weight gradient X^T delta).",
    "matmul_nt": "C = A @ B.T (the back-propagated delta delta W^T).",
    "bias_act_forward": "Z += b (when b is not empty), then A = act(Z) elementwise "
                        "(row-wise stable softmax for ACT_SOFTMAX). A may be Z (in place).",
    "act_backward": "dZ = dA * g'(Z) elementwise, g' written from A where possible; "
                    "softmax: dZ = A * (dA - sum_j dA A). dZ may be dA.",
    "softmax_xent": "Fused stable softmax + cross-entropy: P = softmax(Z); "
                    "loss[i] = -sum_j Y log P (or -log P[i, labels[i]] when labels is "
                    "not empty), unweighted; dZ = (P - Y) * w_i * scale.",
    "sigmoid_bce": "Fused stable sigmoid + binary cross-entropy on logits: P = sigmoid(Z); "
                   "loss[i] = mean_j(max(z,0) - z y + log1p(exp(-|z|))), unweighted; "
                   "dZ = (P - Y) * w_i * scale / k.",
    "mse": "loss[i] = mean_j (A - Y)^2 (unweighted); dA = 2 (A - Y) * w_i * scale / k.",
    "mae": "loss[i] = mean_j |A - Y| (unweighted); dA = sign(A - Y) * w_i * scale / k.",
    "bias_grad": "db[j] = sum_i dZ[i, j], rows summed in order.",
    "gather_rows": "out[r] = X[idx[r]].",
    "all_finite": "flag[0] = 1 if every element of X is finite, else 0 (the input check of "
                  "fit / evaluate / predict: one pass at memory speed).",
    "regularize": "grads[W_l] += l1 sign(W_l) + 2 l2 W_l for every layer with a "
                  "penalty; penalty[0] = sum_l l1 sum|W_l| + l2 sum W_l^2 (float64).",
    "optimizer_update": "One optimizer step over the flat buffer (PyTorch rules).",
    "prelu_forward": "A = Z where Z > 0, else slope[j] * Z (A may be Z).",
    "prelu_backward": "dslope[j] = sum_i dA[i, j] * Z[i, j] over Z <= 0 (rows in order, "
                      "float64 accumulation); then dZ = dA where Z > 0, else slope[j] * dA "
                      "(dZ may be dA).",
    "maxout_forward": "A[i, j] = max_p Z[i, j*q + p] (NaN propagates).",
    "maxout_backward": "dZ[i, j*q + p] = dA[i, j] for the first p where Z[i, j*q + p] "
                       "is the maximum (the first NaN if any), dA[i, j] * 0 for the other "
                       "pieces (0 unless dA is inf or NaN).",
    "topk_rows": "Per row: keep the k entries of largest |D| (ties: lower column; a NaN "
                 "counts as an infinite magnitude, tying with +-inf), set the others to 0; "
                 "idx[i] = the kept columns in increasing order.",
    "matmul_tn_sparse": "C = A.T @ D where row i of D is nonzero only at columns idx[i] "
                        "(C is fully written; rows of A summed in order).",
    "matmul_nt_sparse": "C = D @ B.T using only columns idx[i] of row i of D "
                        "(summed in the order of idx).",
    "forward": "out = the last layer's activations of the network on X (inference: "
               "no dropout).",
    "train_batches": "For b in first_batch .. first_batch + n_batches - 1: take rows "
                     "perm[b*bs : min((b+1)*bs, M)], run forward (with dropout), the "
                     "fused loss head, backward, regularization and the optimizer update "
                     "with t = t0 + (b - first_batch) + 1.  batch_loss[b - first_batch] = "
                     "the batch's mean weighted data loss before the update plus the "
                     "regularization penalty of the pre-update weights.  When scores "
                     "has M rows, scores[perm position] = the head's outputs (P for "
                     "the fused heads, A for mse/mae) computed in that forward pass.  "
                     "grads holds the last batch's gradients on return (unclipped).  "
                     "The optional keyword diag (after n_threads, the one exception to "
                     "n_threads coming last) turns on the diagnostics described above.",
}


def _widths(ispec):
    return [int(ispec[l, defs.I_OUT]) for l in range(ispec.shape[0])]


def z_width(ispec, l):
    """Columns of layer l's z: out * pieces for Maxout, out otherwise."""
    w = int(ispec[l, defs.I_OUT])
    if int(ispec[l, defs.I_KIND]) == defs.KIND_MAXOUT:
        w *= max(1, int(ispec[l, defs.I_PIECES]))
    return w


def topk_of(ispec, l):
    """meProp k of layer l if it sparsifies (0 < k < z width), else 0."""
    k = int(ispec[l, defs.I_TOPK])
    return k if 0 < k < z_width(ispec, l) and int(ispec[l, defs.I_KIND]) == defs.KIND_DENSE else 0


def workspace_layout(ispec, fspec, batch_size):
    """Offsets (in elements) into the training workspace for a batch size.

    Returns a dict: ``"X"`` (gathered batch, bs x n_in), for each layer l
    ``("Z", l)`` (bs x z_width(l)), ``("A", l)`` (bs x out_l), ``("M", l)`` (the
    dropped-out copy of A, only when fspec[l, F_DROP] > 0), ``"D0"``, ``"D1"``
    (two bs x max width delta buffers, z widths included) and ``"size"`` (the
    total).  (meProp's (bs, k) int64 index buffer is allocated by the kernel.)
    """
    bs = int(batch_size)
    n_in = int(ispec[0, defs.I_IN])
    widths = _widths(ispec)
    off = {"X": 0}
    pos = bs * n_in
    for l, w in enumerate(widths):
        off[("Z", l)] = pos
        pos += bs * z_width(ispec, l)
        off[("A", l)] = pos
        pos += bs * w
        if fspec[l, defs.F_DROP] > 0:
            off[("M", l)] = pos
            pos += bs * w
    maxw = max([n_in] + widths + [z_width(ispec, l) for l in range(len(widths))])
    off["D0"] = pos
    pos += bs * maxw
    off["D1"] = pos
    pos += bs * maxw
    off["size"] = pos
    return off


def workspace_size(ispec, fspec, batch_size):
    """Elements of ``work`` that ``train_batches`` needs for this batch size."""
    return workspace_layout(ispec, fspec, batch_size)["size"]


def forward_workspace_size(ispec, n_rows):
    """Elements of ``work`` that ``forward`` needs for ``n_rows`` rows: two
    ping-pong buffers of n_rows x (max layer width, z widths included)."""
    maxw = max(z_width(ispec, l) for l in range(ispec.shape[0]))
    return 2 * int(n_rows) * maxw


def n_batches(n_rows, batch_size):
    """Number of batches in an epoch of ``n_rows`` (the last partial batch counts)."""
    return (int(n_rows) + int(batch_size) - 1) // int(batch_size)
