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
* ``train_batches``, ``forward`` and ``regularize`` check their arguments with
  :data:`VALIDATORS` in every backend before any kernel runs: a malformed call
  raises the same ValueError / TypeError (IndexError for a ``perm`` entry that
  is not a row of X) naming the argument everywhere.  The compiled backends'
  public functions are built from :data:`KERNELS` (``_adapter.py``).

Network description
-------------------
``layers`` is a 1-D array of ``defs.LAYER_DTYPE`` records, one per weight layer in
order (fields ``defs.LAYER_FIELDS``; the Cython twin reads the same bytes as its
``layer_t`` packed struct, numba as records).  Layer ``l`` maps an input of width
``layers[l]["n_in"]`` to ``layers[l]["n_out"]`` units.  With ``q`` = 1 for
``LAYER_DENSE`` and ``q = layers[l]["pieces"]`` (>= 1) for ``LAYER_MAXOUT``:
``z = x @ W + b`` with ``W = params[w:w+in*out*q].reshape(in, out*q)``
(``w = layers[l]["w_offset"]``) and ``b = params[bo:bo+out*q]``
(``bo = layers[l]["b_offset"]``, -1 = no bias).  Dense: ``a = act(z)`` (``act``,
with its parameter ``act_param``); with ``act = ACT_PRELU`` the slopes are
``s = params[ap:ap+out]`` (``ap = layers[l]["slopes_offset"]``) and ``a = z if z > 0 else s z``
(per column).  Maxout: ``a[:, j] = max_p z[:, j*q + p]`` (the activation code is
ACT_LINEAR; a Maxout or PReLU layer is never the last layer).  ``grads`` has the same
layout as ``params``.

meProp (``layers[l]["topk"]`` = k, 0 < k < the width of the layer's z, Dense only): in
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
``layers[l]["dropout"]`` > 0 drops entries of layer ``l``'s output (never the last
layer's) during ``train_batches`` with the counter-based mask defined in
``kernels/defs.py`` (identical in every backend); ``forward`` never drops.

Gradient clipping (Keras meaning; the model allows at most one)
---------------------------------------------------------------
``hyper[H_CLIPNORM]`` = c > 0: ``train_batches`` takes the float64 norm of each
parameter array's gradient (per layer: W, then b, then the PReLU slopes), and
updates that array with ``optimizer_update(..., grad_scale=1 if norm <= c else c / norm)``
(so a NaN norm gives a NaN factor).  ``hyper[H_GLOBAL_CLIPNORM]`` = c > 0: one norm over
all gradients, one such factor; no clipping: 1.0.  ``optimizer_update`` multiplies
the gradient by ``grad_scale`` (1.0 leaves it unchanged), then clips it elementwise to
``[-hyper[H_CLIPVALUE], hyper[H_CLIPVALUE]]`` (when not 0), then applies the
optimizer's rule.  Norms are summed in float64 in an order fixed by the array's
length (never by the thread count).
``grads`` keeps the unclipped gradients.

Diagnostics
-----------
``train_batches(..., diag=buf)`` (keyword, float64, ``defs.diag_size(layers)``
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
``layers[l]["l1"]``, ``layers[l]["l2"]``: penalty l1 * sum|W| + l2 * sum W^2 over the
kernel W, gradient l1 * sign(W) + 2 l2 W, added to ``grads`` after backprop;
``layers[l]["bias_l1"]``, ``layers[l]["bias_l2"]``: the same over the bias b (Keras's
bias_regularizer; nothing without a bias).  ``train_batches`` adds the penalty of
the pre-update weights to each reported batch loss.
"""

import collections
import operator

import numpy as np

from .._kernels import defs
from ._geometry import geometry

# kind of each argument: "in", "out", "inout" (arrays), "int", "float" (Python
# scalars), "key" (the dropout key, an integer taken modulo 2**64), "threads".
# Shapes are descriptive.  fastnet/backends/_adapter.py builds the compiled
# backends' public functions from this table.
KERNELS = {
    "matmul": [("A", "in", "(n, k)"), ("B", "in", "(k, m)"), ("C", "out", "(n, m)"),
               ("n_threads", "threads", "")],
    "matmul_tn": [("A", "in", "(k, n)"), ("B", "in", "(k, m)"), ("C", "out", "(n, m)"),
                  ("n_threads", "threads", "")],
    "matmul_nt": [("A", "in", "(n, k)"), ("B", "in", "(m, k)"), ("C", "out", "(n, m)"),
                  ("n_threads", "threads", "")],
    "bias_act_forward": [("b", "in", "(m,) or (0,)"), ("act", "int", ""), ("act_param", "float", ""),
                         ("Z", "inout", "(n, m)"), ("A", "out", "(n, m)"),
                         ("n_threads", "threads", "")],
    "act_backward": [("Z", "in", "(n, m)"), ("A", "in", "(n, m)"), ("dA", "in", "(n, m)"),
                     ("act", "int", ""), ("act_param", "float", ""), ("dZ", "out", "(n, m)"),
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
    "regularize": [("layers", "in", "(L,) defs.LAYER_DTYPE"),
                   ("params", "in", "(P,)"), ("grads", "inout", "(P,)"),
                   ("penalty", "out", "(1,) float64"), ("n_threads", "threads", "")],
    "optimizer_update": [("opt", "int", ""), ("hyper", "in", "(NH,) float64"),
                         ("grad_scale", "float", "the gradient's factor (1.0: none)"), ("t", "int", ""),
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
    "forward": [("X", "in", "(n, n_in)"), ("layers", "in", "(L,) defs.LAYER_DTYPE"),
                ("params", "in", "(P,)"), ("work", "out", "(>= forward_workspace_size,)"),
                ("out", "out", "(n, n_out)"), ("n_threads", "threads", "")],
    "train_batches": [
        ("batches", "record", "Batches: the epoch's data and which of its batches run"),
        ("network", "record", "Network: the description, the loss head, the parameters"),
        ("train_state", "record", "TrainState: the optimizer, its state, the step, the dropout key"),
        ("buffers", "record", "Buffers: the gradients, the workspace, the losses and scores written"),
        ("n_threads", "threads", ""),
        ("diag", "inout", "optional keyword: (defs.diag_size(layers),) float64 or None/(0,) = off")],
}

# the records a kernel of kind "record" takes: each a namedtuple whose fields are
# contract arguments (name, kind, shape); train_batches takes four of them
RECORDS = {
    "Batches": [
        ("X", "in", "(N, n_in)"), ("Y", "in", "(N, n_out) or (0, n_out)"),
        ("labels", "in", "(N,) int64 or (0,)"), ("sw", "in", "(N,) or (0,)"),
        ("perm", "in", "(M,) int64 row indices into X, the epoch's order"),
        ("batch_size", "int", ""), ("first_batch", "int", ""), ("n_batches", "int", "")],
    "Network": [
        ("layers", "in", "(L,) defs.LAYER_DTYPE"), ("head", "int", "defs.HEAD_*"),
        ("params", "inout", "(P,)")],
    "TrainState": [
        ("opt", "int", "defs.OPT_*"), ("hyper", "in", "(NH,) float64"),
        ("t0", "int", "the updates done before this call"),
        ("rng_key", "key", "any integer, taken modulo 2**64 (uint64)"),
        ("state", "inout", "(N_STATE, P)")],
    "Buffers": [
        ("grads", "out", "(P,)"), ("work", "out", "(>= workspace_size,)"),
        ("batch_loss", "out", "(n_batches,) float64"),
        ("scores", "out", "(M, n_out) or (0, n_out)")],
}

# the order in which the compiled twins' kernels take a record kernel's fields
# (flat, as their nogil code wants them); the adapters unpack the records into it
FLAT_ORDER = {
    "train_batches": ("X", "Y", "labels", "sw", "perm", "batch_size", "first_batch", "n_batches",
                      "layers", "head", "opt", "hyper", "t0", "rng_key", "params", "grads", "state",
                      "work", "batch_loss", "scores", "n_threads", "diag"),
}


def record_fields(name):
    """[(field, kind, shape)] of every argument of kernel ``name`` with its records
    expanded, in the contract's order (the flat arguments of the records)."""
    out = []
    for arg, kind, shape in KERNELS[name]:
        if kind == "record":
            out += RECORDS[shape.split(":")[0]]
        else:
            out.append((arg, kind, shape))
    return out


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
    "optimizer_update": "One optimizer step over the flat buffer (PyTorch rules) on the "
                        "gradient times grad_scale (Keras's clip by norm; 1.0 = none).",
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


# the geometry of a description, decoded once (fastnet/backends/_geometry.py); these
# are the contract's names for it
def z_width(layers, l):
    """Columns of layer l's z: out * pieces for Maxout, out otherwise."""
    return geometry(layers).z_widths[l]


def topk_of(layers, l):
    """meProp k of layer l if it sparsifies (0 < k < z width, Dense), else 0."""
    return geometry(layers).topk[l]


def workspace_layout(layers, batch_size):
    """Offsets (in elements) into the training workspace for a batch size.

    Returns a dict: ``"X"`` (gathered batch, bs x n_in), for each layer l
    ``("Z", l)`` (bs x z_width(l)), ``("A", l)`` (bs x out_l), ``("M", l)`` (the
    dropped-out copy of A, only when layers[l]["dropout"] > 0), ``"D0"``, ``"D1"``
    (two bs x max width delta buffers, z widths included) and ``"size"`` (the
    total).  (meProp's (bs, k) int64 index buffer is allocated by the kernel.)
    """
    return geometry(layers).workspace_layout(batch_size)


def workspace_size(layers, batch_size):
    """Elements of ``work`` that ``train_batches`` needs for this batch size."""
    return geometry(layers).workspace_size(batch_size)


def forward_workspace_size(layers, n_rows):
    """Elements of ``work`` that ``forward`` needs for ``n_rows`` rows: two
    ping-pong buffers of n_rows x (max layer width, z widths included)."""
    return geometry(layers).forward_workspace_size(n_rows)


def n_batches(n_rows, batch_size):
    """Number of batches in an epoch of ``n_rows`` (the last partial batch counts)."""
    return (int(n_rows) + int(batch_size) - 1) // int(batch_size)


# ---------------------------------------------------------------------------
# the contract as code: optional arguments, docstrings, the shared validator
# ---------------------------------------------------------------------------
# keyword arguments after n_threads, with the dtype of the empty array that
# stands for None (absent)
OPTIONAL = {"train_batches": {"diag": np.float64}}

_KIND_WORDS = {"in": "IN", "out": "OUT", "inout": "INOUT", "int": "int", "float": "float",
               "key": "int", "threads": "int >= 1",
               "record": "record"}


def _record_class(name, fields):
    cls = collections.namedtuple(name, [f for f, _, _ in fields])
    cls.__module__ = __name__
    cls.__doc__ = ("%s record of the kernel contract (fastnet/backends/_api.py RECORDS); fields:\n\n"
                   % name + "\n".join("    %-11s %-6s %s" % (f, _KIND_WORDS[k], shape)
                                      for f, k, shape in fields))
    return cls


Batches = _record_class("Batches", RECORDS["Batches"])
Network = _record_class("Network", RECORDS["Network"])
TrainState = _record_class("TrainState", RECORDS["TrainState"])
Buffers = _record_class("Buffers", RECORDS["Buffers"])
RECORD_CLASSES = {"Batches": Batches, "Network": Network, "TrainState": TrainState, "Buffers": Buffers}



def kernel_doc(name):
    """The docstring of kernel ``name`` in every backend: ``KERNEL_DOCS[name]``
    and the argument list of ``KERNELS[name]``."""
    lines = [KERNEL_DOCS[name], "", "Arguments (the contract: fastnet/backends/_api.py)::", ""]
    for arg, kind, shape in KERNELS[name]:
        lines.append("    %-11s %-6s %s" % (arg, _KIND_WORDS[kind], shape))
        if kind == "record":
            for f, k, sh in RECORDS[shape.split(":")[0]]:
                lines.append("      .%-10s %-6s %s" % (f, _KIND_WORDS[k], sh))
    return "\n".join(line.rstrip() for line in lines) + "\n"


_F32, _F64, _I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)
_ACT_CODES = frozenset([d["code"] for d in defs.ACTIVATIONS] + [defs.ACT_PRELU])
_HEAD_CODES = (defs.HEAD_MSE, defs.HEAD_MAE, defs.HEAD_SOFTMAX_XENT, defs.HEAD_SIGMOID_BCE)
_OPT_CODES = frozenset(d["code"] for d in defs.OPTIMIZERS)


def _integer(who, name, value):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError("%s: %s must be an integer; got %r" % (who, name, value)) from None


def _array(who, name, a, dtype, ndim, written=False):
    """a is a C-contiguous ndarray of this dtype and rank (writable when the
    kernel writes it)."""
    # the common case in as few steps as possible (this runs per kernel call)
    if a.__class__ is np.ndarray and a.dtype is dtype and a.ndim == ndim:
        flags = a.flags
        if flags.c_contiguous and (flags.writeable or not written):
            return
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: %s must be a numpy array; got %s" % (who, name, type(a).__name__))
    if a.dtype != dtype:
        raise TypeError("%s: %s has dtype %s; expected %s%s"
                        % (who, name, a.dtype, dtype,
                           "" if dtype not in (_F32, _F64) else " (one float dtype for every float "
                           "array of a call)"))
    if a.ndim != ndim:
        raise ValueError("%s: %s must be %d-dimensional; got shape %s" % (who, name, ndim, a.shape))
    flags = a.flags
    if not flags.c_contiguous:
        raise ValueError("%s: %s must be C-contiguous" % (who, name))
    if written and not flags.writeable:
        raise ValueError("%s: %s is read-only, but the kernel writes it" % (who, name))


def _float_dtype(who, name, a):
    """The call's float dtype, from its first float array."""
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: %s must be a numpy array; got %s" % (who, name, type(a).__name__))
    if a.dtype != _F32 and a.dtype != _F64:
        raise TypeError("%s: %s has dtype %s; expected float32 or float64" % (who, name, a.dtype))
    return a.dtype


class _Decoded:
    """What the validator decoded from (layers, P): widths, the words per batch
    row of both workspaces, the diag size, and why the network cannot be trained
    or run (``last_problem``, None when it can)."""
    __slots__ = ("n_layers", "n_in", "n_out", "train_words", "forward_words", "diag_size",
                 "last_problem")


_FIELD_NAMES = tuple(name for name, _, _ in defs.LAYER_FIELDS)


def _decode(who, layers, n_params):
    """The O(L) checks of a network description against a parameter buffer of
    n_params elements: every code known, widths chained, every parameter block
    (W, b, PReLU slopes) inside the buffer, dropout rates in [0, 1)."""
    recs = [dict(zip(_FIELD_NAMES, t)) for t in layers.tolist()]
    n_in = recs[0]["n_in"]
    width = n_in
    for l, r in enumerate(recs):
        i, o, kind, act = r["n_in"], r["n_out"], r["kind"], r["act"]
        at = "%s: layer %d" % (who, l)
        if i < 1 or o < 1:
            raise ValueError("%s: widths must be >= 1; got %d -> %d (layers[%d] n_in, n_out)"
                             % (at, i, o, l))
        if l and i != width:
            raise ValueError("%s: input width %d != the output width %d of layer %d" % (at, i, width, l - 1))
        if kind not in (defs.LAYER_DENSE, defs.LAYER_MAXOUT):
            raise ValueError("%s: unknown layer kind %d (layers[%d] kind; expected LAYER_DENSE = %d "
                             "or LAYER_MAXOUT = %d)" % (at, kind, l, defs.LAYER_DENSE, defs.LAYER_MAXOUT))
        if act not in _ACT_CODES:
            raise ValueError("%s: unknown activation code %d (layers[%d] act; expected one of %s)"
                             % (at, act, l, sorted(_ACT_CODES)))
        zw = o
        if kind == defs.LAYER_MAXOUT:
            if act != defs.ACT_LINEAR:
                raise ValueError("%s: a Maxout layer's activation code must be ACT_LINEAR = %d; got %d"
                                 % (at, defs.ACT_LINEAR, act))
            if r["pieces"] < 1:
                raise ValueError("%s: Maxout needs pieces >= 1; got %d (layers[%d] pieces)"
                                 % (at, r["pieces"], l))
            zw = o * r["pieces"]
        w, b = r["w_offset"], r["b_offset"]
        if w < 0 or w + i * zw > n_params:
            raise ValueError("%s: kernel [%d, %d) outside the %d parameters (layers[%d] w_offset)"
                             % (at, w, w + i * zw, n_params, l))
        if b < -1 or (b >= 0 and b + zw > n_params):
            raise ValueError("%s: bias offset %d invalid for %d parameters (layers[%d] b_offset; -1 = no bias)"
                             % (at, b, n_params, l))
        if act == defs.ACT_PRELU:
            ap = r["slopes_offset"]
            if ap < 0 or ap + o > n_params:
                raise ValueError("%s: PReLU slopes [%d, %d) outside the %d parameters (layers[%d] slopes_offset)"
                                 % (at, ap, ap + o, n_params, l))
        if r["topk"] < 0:
            raise ValueError("%s: meProp k must be >= 0 (0 = off); got %d (layers[%d] topk)"
                             % (at, r["topk"], l))
        drop = r["dropout"]
        if not 0.0 <= drop < 1.0:
            raise ValueError("%s: dropout rate %r not in [0, 1) (layers[%d] dropout)" % (at, drop, l))
        width = o
    geo = geometry(layers)
    net = _Decoded()
    net.n_layers, net.n_in, net.n_out = geo.n_layers, geo.n_in, geo.n_out
    # both workspaces grow linearly with the rows (tests/test_contract.py checks it)
    net.train_words = geo.workspace_size(1)
    net.forward_words = geo.forward_workspace_size(1)
    net.diag_size = geo.diag_size
    last = recs[-1]
    # the model never builds these (a loss reads the last layer's z or act(z))
    net.last_problem = (
        "the last layer cannot be Maxout" if last["kind"] == defs.LAYER_MAXOUT else
        "the last layer cannot be PReLU (layers[-1] act = ACT_PRELU)" if last["act"] == defs.ACT_PRELU else
        "the last layer cannot have dropout (layers[-1] dropout = %r)" % last["dropout"]
        if last["dropout"] > 0 else None)
    return net


_NETWORKS = {}


def network(who, layers, n_params):
    """The checked :class:`_Decoded` of ``layers`` over n_params parameters
    (ValueError / TypeError naming ``who`` and the field otherwise); memoised
    per description, so a repeated call costs one ``tobytes``."""
    if not isinstance(layers, np.ndarray):
        raise TypeError("%s: layers must be a numpy array of defs.LAYER_DTYPE records; got %s"
                        % (who, type(layers).__name__))
    if layers.dtype != defs.LAYER_DTYPE:
        raise TypeError("%s: layers has dtype %s; expected defs.LAYER_DTYPE (fields %s)"
                        % (who, layers.dtype, ", ".join(_FIELD_NAMES)))
    if layers.ndim != 1 or layers.shape[0] < 1:
        raise ValueError("%s: layers must have shape (L,) with L >= 1; got %s" % (who, layers.shape))
    if not layers.flags.c_contiguous:
        raise ValueError("%s: layers must be C-contiguous" % who)
    key = (layers.tobytes(), n_params)
    net = _NETWORKS.get(key)
    if net is None:
        net = _decode(who, layers, n_params)
        if len(_NETWORKS) >= 256:
            _NETWORKS.clear()
        _NETWORKS[key] = net
    return net


def _trainable(who, net):
    if net.last_problem is not None:
        raise ValueError("%s: %s" % (who, net.last_problem))


def _threads_at_least_one(who, n_threads):
    if _integer(who, "n_threads", n_threads) < 1:
        raise ValueError("%s: n_threads must be >= 1; got %d" % (who, n_threads))


def _outside(values, hi):
    """Whether an entry of the int64 array ``values`` lies outside [0, hi): a
    batch-sized slice in Python (a NumPy reduction right after a kernel costs
    several times its idle overhead), a longer one by one max over the entries
    viewed as uint64 (a negative one is then >= hi)."""
    if values.shape[0] <= 256:
        t = values.tolist()
        return min(t) < 0 or max(t) >= hi
    return np.maximum.reduce(values.view(np.uint64)) >= hi


def _out_of_range(who, name, values, src, hi, exc):
    """Raise exc for the first entry of ``values`` (the entries ``src`` of
    ``name``) outside [0, hi)."""
    j = int(np.flatnonzero((values < 0) | (values >= hi))[0])
    raise exc("%s: %s[%d] = %d is out of range [0, %d)" % (who, name, int(src[j]), int(values[j]), hi))


def pack(name, args):
    """{argument: value} of kernel ``name`` from ``args``, a mapping that holds its
    records' fields by name (the flat arguments): every record built from its
    fields, the other arguments passed through (absent optional ones stay absent)."""
    out = {}
    for arg, kind, shape in KERNELS[name]:
        if kind == "record":
            cls = RECORD_CLASSES[shape.split(":")[0]]
            out[arg] = cls(*[args[f] for f in cls._fields])
        elif arg in args:
            out[arg] = args[arg]
    return out


def _record(who, arg, value, cls):
    if not isinstance(value, cls):
        raise TypeError("%s: %s must be a fastnet.backends._api.%s record (fields %s); got %s"
                        % (who, arg, cls.__name__, ", ".join(cls._fields), type(value).__name__))


def check_train_batches(batches, network, train_state, buffers, n_threads, diag=None):
    """Raise ValueError / TypeError (IndexError for a perm entry outside X)
    naming the argument unless the call is well formed; reads nothing but the
    arguments' shapes, the description and the slice of perm (and the labels
    of those rows) the batches use, so it costs microseconds."""
    if not (type(batches) is Batches and type(network) is Network and type(train_state) is TrainState
            and type(buffers) is Buffers):
        _record("train_batches", "batches", batches, Batches)
        _record("train_batches", "network", network, Network)
        _record("train_batches", "train_state", train_state, TrainState)
        _record("train_batches", "buffers", buffers, Buffers)
    X, Y, labels, sw, perm, batch_size, first_batch, n_batches = batches
    layers, head, params = network
    opt, hyper, t0, rng_key, state = train_state
    grads, work, batch_loss, scores = buffers
    _check_train_fields(X, Y, labels, sw, perm, batch_size, first_batch, n_batches, layers, head, opt,
                        hyper, t0, rng_key, params, grads, state, work, batch_loss, scores, n_threads,
                        diag)


def _check_train_fields(X, Y, labels, sw, perm, batch_size, first_batch, n_batches, layers,
                        head, opt, hyper, t0, rng_key, params, grads, state, work, batch_loss,
                        scores, n_threads, diag):
    who = "train_batches"
    bs, first, nb = batch_size, first_batch, n_batches
    if not (int is type(bs) is type(first) is type(nb) is type(head) is type(opt) is type(t0)
            is type(n_threads)):
        bs = _integer(who, "batch_size", batch_size)
        first = _integer(who, "first_batch", first_batch)
        nb = _integer(who, "n_batches", n_batches)
        head = _integer(who, "head", head)
        opt = _integer(who, "opt", opt)
        _integer(who, "t0", t0)
        _integer(who, "n_threads", n_threads)
    _integer(who, "rng_key", rng_key)
    if t0 < 0:
        raise ValueError("%s: t0 must be >= 0; got %d" % (who, t0))
    if n_threads < 1:
        raise ValueError("%s: n_threads must be >= 1; got %d" % (who, n_threads))
    dt = _float_dtype(who, "X", X)
    _array(who, "X", X, dt, 2)
    _array(who, "Y", Y, dt, 2)
    _array(who, "labels", labels, _I64, 1)
    _array(who, "sw", sw, dt, 1)
    _array(who, "perm", perm, _I64, 1)
    _array(who, "hyper", hyper, _F64, 1)
    _array(who, "params", params, dt, 1, True)
    _array(who, "grads", grads, dt, 1, True)
    _array(who, "state", state, dt, 2, True)
    _array(who, "work", work, dt, 1, True)
    _array(who, "batch_loss", batch_loss, _F64, 1, True)
    _array(who, "scores", scores, dt, 2, True)
    if diag is not None:
        _array(who, "diag", diag, _F64, 1, True)
    P = params.shape[0]
    net = network(who, layers, P)
    _trainable(who, net)
    if head not in _HEAD_CODES:
        raise ValueError("%s: unknown head code %d (expected defs.HEAD_MSE %d, HEAD_MAE %d, "
                         "HEAD_SOFTMAX_XENT %d or HEAD_SIGMOID_BCE %d)" % ((who, head) + _HEAD_CODES))
    if opt not in _OPT_CODES:
        raise ValueError("%s: unknown optimizer code %d (expected one of defs.OPT_*: %s)"
                         % (who, opt, sorted(_OPT_CODES)))
    if hyper.shape[0] != defs.NH:
        raise ValueError("%s: hyper must have defs.NH = %d entries; got %d" % (who, defs.NH, hyper.shape[0]))
    N, k, M = X.shape[0], net.n_out, perm.shape[0]
    if X.shape[1] != net.n_in:
        raise ValueError("%s: X has %d columns, the network takes %d" % (who, X.shape[1], net.n_in))
    sparse = labels.shape[0] != 0
    if sparse and head != defs.HEAD_SOFTMAX_XENT:
        raise ValueError("%s: labels are read by the softmax cross-entropy head only; pass an empty "
                         "labels array with this head" % who)
    if sparse and labels.shape[0] != N:
        raise ValueError("%s: labels has %d entries, expected %d (one per row of X) or 0"
                         % (who, labels.shape[0], N))
    if (Y.shape[0] or not sparse) and Y.shape != (N, k):
        raise ValueError("%s: Y has shape %s, expected (%d, %d)%s"
                         % (who, Y.shape, N, k, " or (0, %d) with labels" % k
                            if head == defs.HEAD_SOFTMAX_XENT else ""))
    if sw.shape[0] not in (0, N):
        raise ValueError("%s: sw has %d entries, expected %d (one per row of X) or 0" % (who, sw.shape[0], N))
    if grads.shape[0] != P or state.shape != (defs.N_STATE, P):
        raise ValueError("%s: grads has shape %s and state %s; expected (%d,) and (defs.N_STATE = %d, %d) "
                         "for %d parameters" % (who, grads.shape, state.shape, P, defs.N_STATE, P, P))
    if bs < 1 or first < 0 or nb < 0:
        raise ValueError("%s: need batch_size >= 1, first_batch >= 0 and n_batches >= 0; got %d, %d, %d"
                         % (who, bs, first, nb))
    if nb and (first + nb - 1) * bs >= M:
        raise ValueError("%s: batches %d..%d of %d rows start past the end of perm (%d entries)"
                         % (who, first, first + nb - 1, bs, M))
    if batch_loss.shape[0] != nb:
        raise ValueError("%s: batch_loss has %d entries, expected n_batches = %d"
                         % (who, batch_loss.shape[0], nb))
    if scores.shape[0] not in (0, M) or (scores.shape[0] and scores.shape[1] != k):
        raise ValueError("%s: scores has shape %s, expected (%d, %d) (one row per entry of perm) or (0, %d)"
                         % (who, scores.shape, M, k, k))
    if work.shape[0] < bs * net.train_words:
        raise ValueError("%s: work has %d elements, workspace_size gives %d for batch_size %d"
                         % (who, work.shape[0], bs * net.train_words, bs))
    if diag is not None and diag.shape[0] and diag.shape[0] != net.diag_size:
        raise ValueError("%s: diag has %d entries, expected defs.diag_size(layers) = %d (or 0: off)"
                         % (who, diag.shape[0], net.diag_size))
    if not nb:
        return
    # every row (and label) the batches read: one pass over the slice of perm they use
    lo = first * bs
    rows = perm[lo:min((first + nb) * bs, M)]
    if _outside(rows, N):
        _out_of_range(who, "perm", rows, np.arange(lo, lo + rows.shape[0]), N, IndexError)
    if sparse:
        lab = labels[rows]
        if _outside(lab, k):
            _out_of_range(who, "labels", lab, rows, k, ValueError)


def check_forward(X, layers, params, work, out, n_threads):
    """Raise ValueError / TypeError naming the argument unless the forward call
    is well formed (O(L) after the first call with a description)."""
    who = "forward"
    _threads_at_least_one(who, n_threads)
    dt = _float_dtype(who, "X", X)
    _array(who, "X", X, dt, 2)
    _array(who, "params", params, dt, 1)
    _array(who, "work", work, dt, 1, True)
    _array(who, "out", out, dt, 2, True)
    net = network(who, layers, params.shape[0])
    _trainable(who, net)
    n = X.shape[0]
    if X.shape[1] != net.n_in:
        raise ValueError("%s: X has %d columns, the network takes %d" % (who, X.shape[1], net.n_in))
    if out.shape != (n, net.n_out):
        raise ValueError("%s: out has shape %s, expected (%d, %d)" % (who, out.shape, n, net.n_out))
    if work.shape[0] < n * net.forward_words:
        raise ValueError("%s: work has %d elements, forward_workspace_size gives %d for %d rows"
                         % (who, work.shape[0], n * net.forward_words, n))


def check_regularize(layers, params, grads, penalty, n_threads):
    """Raise ValueError / TypeError naming the argument unless the regularize
    call is well formed."""
    who = "regularize"
    _threads_at_least_one(who, n_threads)
    dt = _float_dtype(who, "params", params)
    _array(who, "params", params, dt, 1)
    _array(who, "grads", grads, dt, 1, True)
    _array(who, "penalty", penalty, _F64, 1, True)
    network(who, layers, params.shape[0])
    if grads.shape != params.shape or penalty.shape[0] < 1:
        raise ValueError("%s: grads must have %d entries (one per parameter) and penalty at least 1; "
                         "got %d and %d" % (who, params.shape[0], grads.shape[0], penalty.shape[0]))


# run by every backend before the kernel (the compiled ones through _adapter)
VALIDATORS = {"train_batches": check_train_batches, "forward": check_forward,
              "regularize": check_regularize}
