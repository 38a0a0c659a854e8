"""The one table: activations, loss heads and optimizers, listed once.

This module is installed as ``fastnet._kernels.defs`` and is pure Python (no
compiled code), so it can always be imported.  It is the single source of:

* the integer codes that cross the backend contract (activation, head,
  optimizer, hyper-parameter slots) and the layer record's fields, and
* the per-element formulas of the activations and optimizers, from which
  ``setup.py`` renders the elementwise kernels of the two compiled twins
  (``kernels/templates/*.tp`` -> ``kernels/cython/_generated_elementwise.pyx`` and
  ``kernels/numba/_generated_elementwise.py``).

The NumPy reference backend (``fastnet/backends/numpy_ref.py``) does NOT use the
formula strings: it is written by hand, independently, so that a wrong formula
here cannot pass the parity tests everywhere at once.

Formula syntax
--------------
Every expression is valid both as Python (numba) and as Cython, using only
``exp``, ``expm1``, ``log``, ``log1p``, ``tanh``, ``erfc``, ``sqrt``, ``fabs``,
``fmin``, ``fmax`` (the template imports them from ``math`` for numba and ``libc.math`` for
Cython) and the conditional expression ``x if cond else y``.

Activation entries:
  ``forward``   expression of ``z`` (pre-activation, bias included) and ``act_param``
  ``backward``  g'(z) as an expression of ``a`` (the stored output), ``z`` and
                ``act_param``; written from the output wherever the activation allows
                (sigmoid: a*(1-a), tanh: 1-a*a, relu: a > 0)
  ``rowwise``   True for softmax: not elementwise; both twins special-case it.

Optimizer entries (PyTorch ``torch.optim`` single-tensor rules):
  ``slots``     names of the state slots (rows of the ``state`` array)
  ``scalars``   ordered ``name = expression`` lines computed once per step from the
                hyper-parameters (names in ``HYPER``) and ``t`` (1-based step)
  ``element``   statement lines run per element; ``p`` is the parameter, ``g`` the
                gradient, slot names are the state values; the template loads them
                before and stores them after.  Only ``if``/``else`` blocks and
                assignments are used.
"""

# --------------------------------------------------------------------------
# The network: one record per weight layer (Dense or Maxout; a PReLU layer is folded
# into the Dense before it, a Dropout into the rate of the layer before it), in order.
# LAYER_FIELDS is the one definition: ``LAYER_DTYPE`` (numpy, below) is the array the
# kernels take as ``layers``; kernels/render.py writes the same fields as the Cython
# twin's ``cdef packed struct layer_t``; numba reads the array as records.  Offsets
# are element offsets into the flat parameter buffer (-1: absent).
# --------------------------------------------------------------------------
LAYER_FIELDS = (
    ("n_in", "int64", "input width of the layer"),
    ("n_out", "int64", "output width (units)"),
    ("act", "int64", "activation code (ACT_*); ACT_LINEAR for Maxout"),
    ("kind", "int64", "LAYER_DENSE or LAYER_MAXOUT"),
    ("pieces", "int64", "Maxout pieces per unit (read only for LAYER_MAXOUT)"),
    ("topk", "int64", "meProp k: keep the k largest |dz| per example in backward (0 = off)"),
    ("w_offset", "int64", "offset of W (n_in, n_out * pieces), row-major"),
    ("b_offset", "int64", "offset of b (n_out * pieces,), -1 when use_bias=False"),
    ("slopes_offset", "int64", "offset of the PReLU slopes (n_out,), -1 unless act is ACT_PRELU"),
    ("act_param", "float64", "the activation's parameter (leaky_relu's slope, elu's alpha)"),
    ("dropout", "float64", "dropout rate on the layer's output in training"),
    ("l1", "float64", "L1 coefficient on W (Keras: l1 * sum|W|)"),
    ("l2", "float64", "L2 coefficient on W (Keras: l2 * sum W^2)"),
    ("bias_l1", "float64", "L1 coefficient on b (Keras's bias_regularizer)"),
    ("bias_l2", "float64", "L2 coefficient on b"),
)
REGULARIZER_FIELDS = ("l1", "l2", "bias_l1", "bias_l2")


def _layer_dtype():
    import numpy as np
    return np.dtype([(name, "<" + ("i8" if kind == "int64" else "f8")) for name, kind, _ in LAYER_FIELDS])


LAYER_DTYPE = _layer_dtype()


def new_layers(n):
    """A zeroed table of ``n`` layer records, every offset -1 (absent)."""
    import numpy as np
    layers = np.zeros(n, dtype=LAYER_DTYPE)
    layers["b_offset"] = -1
    layers["slopes_offset"] = -1
    return layers


LAYER_DENSE = 0     # z = x W + b, a = act(z)
LAYER_MAXOUT = 1     # z = x W + b with out * pieces columns; unit j's output is
                    # a_j = max_p z[j * pieces + p] (its pieces are adjacent columns)

# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------
ACTIVATIONS = [
    dict(name="linear", code=0, forward="z",
         backward="1.0"),
    dict(name="sigmoid", code=1,
         # stable for both signs of z
         forward="1.0 / (1.0 + exp(-z)) if z >= 0 else exp(z) / (1.0 + exp(z))",
         backward="a * (1.0 - a)"),
    dict(name="tanh", code=2, forward="tanh(z)",
         backward="1.0 - a * a"),
    dict(name="relu", code=3, forward="0.0 if z <= 0 else z",          # NaN propagates (as in the reference)
         backward="1.0 if a > 0 else 0.0"),
    dict(name="leaky_relu", code=4, forward="z if z > 0 else act_param * z",
         backward="1.0 if z > 0 else act_param"),
    dict(name="relu6", code=5, forward="z if z != z else fmin(fmax(z, 0.0), 6.0)",   # NaN propagates
         backward="1.0 if (z > 0 and z < 6.0) else 0.0"),
    dict(name="elu", code=6, forward="z if z > 0 else act_param * (exp(z) - 1.0)",
         backward="1.0 if z > 0 else a + act_param"),
    dict(name="swish", code=7,
         # z * sigmoid(z); derivative s (1 + z (1 - s)), s = sigmoid(z), with s and
         # 1 - s from the one exponential e^-|z| (not from the output: a + s (1 - a)
         # cancels to 0 once a = z >= 1e16 swallows the 1)
         forward="z / (1.0 + exp(-z)) if z >= 0 else z * exp(z) / (1.0 + exp(z))",
         backward="(1.0 + z * exp(-z) / (1.0 + exp(-z))) / (1.0 + exp(-z)) if z >= 0 "
                  "else exp(z) / (1.0 + exp(z)) * (1.0 + z / (1.0 + exp(z)))"),
    # row-wise: p = exp(z - max) / sum(exp(z - max)); dz = a * (da - sum(da * a))
    dict(name="softmax", code=8, rowwise=True, forward=None,
         backward=None),
    dict(name="step", code=9, forward="1.0 if z >= 0 else 0.0",
         backward="0.0"),
    # (code 10 is ACT_PRELU, below: not in this table)
    # Keras's gelu (approximate=False): z Phi(z), Phi(z) = erfc(-z / sqrt 2) / 2 (erfc
    # keeps Phi's relative accuracy in the left tail, where 1 + erf(.) cancels);
    # derivative Phi(z) + z phi(z) from z.  Below -40 (Phi(z) underflows) the
    # limits are taken, so -inf gives 0 rather than -inf * 0 = NaN.
    dict(name="gelu", code=11, forward="-0.0 if z < -40.0 else 0.5 * z * erfc(-0.7071067811865476 * z)",
         backward="0.0 if z < -40.0 else (1.0 if z > 40.0 else "
                  "0.5 * erfc(-0.7071067811865476 * z) "
                  "+ 0.3989422804014327 * z * exp(-0.5 * z * z))"),
    # log(1 + e^z) computed stably; its derivative is the stable sigmoid of z
    dict(name="softplus", code=12, forward="z + log1p(exp(-z)) if z > 0 else log1p(exp(z))",
         backward="1.0 / (1.0 + exp(-z)) if z >= 0 else exp(z) / (1.0 + exp(z))"),
    # z / (1 + |z|) (+-1 at +-inf, not inf / inf); the derivative 1 / (1 + |z|)^2
    # from z: from the output, (1 - |a|)^2 cancels as |a| nears 1
    dict(name="softsign", code=13, forward="(1.0 if z > 0 else -1.0) if fabs(z) > 1.7976931348623157e308 "
                 "else z / (1.0 + fabs(z))",
         backward="1.0 / ((1.0 + fabs(z)) * (1.0 + fabs(z)))"),
    # Keras's selu: scale * elu(z, alpha) with the paper's constants (expm1: no
    # cancellation near 0); derivative scale alpha e^z from z: from the output,
    # a + scale alpha, a float32 a leaves 2e-8 where e^z underflows
    dict(name="selu", code=14, forward="1.0507009873554805 * (z if z > 0 else 1.6732632423543772 * expm1(z))",
         backward="1.0507009873554805 if z > 0 else 1.7580993408473766 * exp(z)"),
    # Keras 3's hard_sigmoid: z / 6 + 1/2 clipped to [0, 1], written relu6(z + 3) * (1/6)
    # so that it is exactly 0 and 1 at the kinks (z / 6 + 0.5 contracted into an FMA
    # with 1/6, as numba's fast-math flags once did, leaves 3e-17 at z = -3)
    dict(name="hard_sigmoid", code=15, forward="z if z != z else fmin(fmax(z + 3.0, 0.0), 6.0) * 0.16666666666666666",
         backward="0.16666666666666666 if (z > -3.0 and z < 3.0) else 0.0"),
    # Keras's gelu(approximate=True) (PyTorch's approximate="tanh"):
    # z (1 + tanh(u)) / 2, u = sqrt(2 / pi) (z + 0.044715 z^3), computed as
    # z s(2u) with the logistic s (1 + tanh(u) = 2 s(2u) cancels for z < 0); the
    # derivative s(2u) (1 + 2 z s(-2u) u'), u' = sqrt(2 / pi) (1 + 3 * 0.044715 z^2),
    # with 1 - s(2u) written s(-2u) (no cancellation for z > 0, no inf / inf);
    # limits taken beyond 40
    dict(name="gelu_tanh", code=16, forward="-0.0 if z < -40.0 else "
                 "z / (1.0 + exp(-1.5957691216057308 * (z + 0.044715 * z * z * z)))",
         backward="0.0 if z < -40.0 else (1.0 if z > 40.0 else "
                  "(1.0 + 1.5957691216057308 * z * (1.0 + 0.134145 * z * z) "
                  "/ (1.0 + exp(1.5957691216057308 * (z + 0.044715 * z * z * z)))) "
                  "/ (1.0 + exp(-1.5957691216057308 * (z + 0.044715 * z * z * z))))"),
]
ACT = {d["name"]: d["code"] for d in ACTIVATIONS}
ACT_LINEAR, ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_LEAKY_RELU = 0, 1, 2, 3, 4
ACT_RELU6, ACT_ELU, ACT_SWISH, ACT_SOFTMAX, ACT_STEP = 5, 6, 7, 8, 9
ACT_GELU, ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_SELU, ACT_HARD_SIGMOID = 11, 12, 13, 14, 15
ACT_GELU_TANH = 16

# Parametric ReLU: a_ij = z_ij if z_ij > 0 else s_j z_ij, with one learnable slope
# s_j per unit stored in the parameter buffer at layers[l]["slopes_offset"].  Not in the
# ACTIVATIONS table (not elementwise with a scalar parameter): the drivers call
# bias_act_forward with ACT_LINEAR, then the prelu_forward / prelu_backward
# contract kernels.
ACT_PRELU = 10

# --------------------------------------------------------------------------
# Loss heads (how the last layer meets the loss in training)
# --------------------------------------------------------------------------
HEAD_MSE = 0            # loss on a = act(z): mean_j (a - y)^2; delta through g'
HEAD_MAE = 1            # loss on a: mean_j |a - y|; delta sign(a - y) through g'
HEAD_SOFTMAX_XENT = 2   # fused softmax + cross-entropy on logits z; delta p - y
HEAD_SIGMOID_BCE = 3    # fused sigmoid + binary cross-entropy on logits z; delta sigmoid(z) - y
HEADS = {"mse": HEAD_MSE, "mae": HEAD_MAE,
         "softmax_xent": HEAD_SOFTMAX_XENT, "sigmoid_bce": HEAD_SIGMOID_BCE}

# --------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------
OPT_NONE, OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW = 0, 1, 2, 3, 4, 5

# hyper-parameter vector (float64), one layout for every optimizer
H_LR = 0
H_MOMENTUM = 1
H_DAMPENING = 2
H_NESTEROV = 3
H_WEIGHT_DECAY = 4
H_MAXIMIZE = 5
H_BETA1 = 6
H_BETA2 = 7
H_EPS = 8
H_AMSGRAD = 9
H_SMOOTHING = 10        # RMSprop smoothing constant (PyTorch: alpha, Keras: rho)
H_CENTERED = 11
H_LR_DECAY = 12         # Adagrad
H_INITIAL_ACC = 13      # Adagrad initial_accumulator_value (used only at state init)
H_CLIPNORM = 14         # Keras clipnorm: each array's gradient to norm <= clipnorm (0 = off)
H_CLIPVALUE = 15        # Keras clipvalue: each gradient element to [-v, v] (0 = off)
H_GLOBAL_CLIPNORM = 16  # Keras global_clipnorm: all gradients to global norm <= v (0 = off)
NH = 17
HYPER = {
    "lr": H_LR, "momentum": H_MOMENTUM, "dampening": H_DAMPENING,
    "nesterov": H_NESTEROV, "weight_decay": H_WEIGHT_DECAY, "maximize": H_MAXIMIZE,
    "beta1": H_BETA1, "beta2": H_BETA2, "eps": H_EPS, "amsgrad": H_AMSGRAD,
    "alpha": H_SMOOTHING, "centered": H_CENTERED, "lr_decay": H_LR_DECAY,
    "initial_accumulator_value": H_INITIAL_ACC, "clipnorm": H_CLIPNORM,
    "clipvalue": H_CLIPVALUE, "global_clipnorm": H_GLOBAL_CLIPNORM,
}
# optimizer_update's scalars that are arguments, not hyper slots: ``grad_scale``
# multiplies the gradient before everything else (train_batches passes the clip
# norms' factor, 1.0 otherwise)
STEP_INPUTS = ("grad_scale",)
N_STATE = 3             # rows of the state array (max slots over optimizers)

# Gradient clipping (Keras: clipnorm / global_clipnorm / clipvalue, at most one),
# the first lines of every update: the norms are taken by train_batches, which
# passes the resulting factor as ``grad_scale`` (per parameter array for
# clipnorm, once for global_clipnorm; 1.0 otherwise: g * 1.0 == g exactly);
# ``clipvalue`` clips each element, NaN passing through.
CLIP_ELEMENT = [
    "g = g * grad_scale",
    "if clipvalue != 0.0:",
    "    g = clipvalue if g > clipvalue else (-clipvalue if g < -clipvalue else g)",
]

# The update's shared lines: torch's maximize, its L2 weight decay (every rule but
# AdamW, which decays p itself), and Adam's moments and step (Adam and AdamW).
MAXIMIZE = ["if maximize != 0.0:", "    g = -g"]
L2_DECAY = ["if weight_decay != 0.0:", "    g = g + weight_decay * p"]
ADAM_SCALARS = ["bc1 = 1.0 - beta1 ** t", "bc2 = 1.0 - beta2 ** t", "step_size = lr / bc1",
                "inv_bc2_sqrt = 1.0 / sqrt(bc2)"]
ADAM_MOMENTS = [
    "m = m + (1.0 - beta1) * (g - m)",
    "v = beta2 * v + (1.0 - beta2) * g * g",
    "if amsgrad != 0.0:",
    "    vmax = fmax(vmax, v)",
    "    den = sqrt(vmax) * inv_bc2_sqrt + eps",
    "else:",
    "    den = sqrt(v) * inv_bc2_sqrt + eps",
    "p = p - step_size * m / den",
]

OPTIMIZERS = [
    dict(name="none", code=OPT_NONE, slots=[], scalars=[], element=[]),
    dict(name="sgd", code=OPT_SGD, slots=["buf"],
         scalars=["first = 1.0 if t == 1 else 0.0"],
         element=CLIP_ELEMENT + MAXIMIZE + L2_DECAY + [
             "if momentum != 0.0:",
             "    if first != 0.0:",
             "        buf = g",
             "    else:",
             "        buf = momentum * buf + (1.0 - dampening) * g",
             "    if nesterov != 0.0:",
             "        g = g + momentum * buf",
             "    else:",
             "        g = buf",
             "p = p - lr * g",
         ]),
    dict(name="adagrad", code=OPT_ADAGRAD, slots=["acc"],
         scalars=["clr = lr / (1.0 + (t - 1) * lr_decay)"],
         element=CLIP_ELEMENT + MAXIMIZE + L2_DECAY + [
             "acc = acc + g * g",
             "p = p - clr * g / (sqrt(acc) + eps)",
         ]),
    dict(name="rmsprop", code=OPT_RMSPROP, slots=["sq", "buf", "gavg"],
         scalars=[],
         element=CLIP_ELEMENT + MAXIMIZE + L2_DECAY + [
             "sq = alpha * sq + (1.0 - alpha) * g * g",
             "if centered != 0.0:",
             "    gavg = alpha * gavg + (1.0 - alpha) * g",
             "    den = sqrt(sq - gavg * gavg) + eps",
             "else:",
             "    den = sqrt(sq) + eps",
             "if momentum > 0.0:",
             "    buf = momentum * buf + g / den",
             "    p = p - lr * buf",
             "else:",
             "    p = p - lr * g / den",
         ]),
    # (torch divides sqrt(v) by sqrt(bc2); a multiply by its reciprocal, formed once
    # per step, saves a division per element: the optimizer_update:adam rows of bench/REPORT.md)
    dict(name="adam", code=OPT_ADAM, slots=["m", "v", "vmax"],
         scalars=ADAM_SCALARS,
         element=CLIP_ELEMENT + MAXIMIZE + L2_DECAY + ADAM_MOMENTS),
    dict(name="adamw", code=OPT_ADAMW, slots=["m", "v", "vmax"],
         scalars=ADAM_SCALARS + ["decay = 1.0 - lr * weight_decay"],
         element=CLIP_ELEMENT + MAXIMIZE + ["p = p * decay"] + ADAM_MOMENTS),
]
OPT = {d["name"]: d["code"] for d in OPTIMIZERS}

# --------------------------------------------------------------------------
# Dropout mask: a counter-based hash, identical in every backend and
# independent of the thread count.  For batch ``b`` (the ABSOLUTE batch index in
# the epoch, first_batch + i, so chunking does not change masks), key ``key``,
# layer ``l``, row ``i`` of the batch and column ``j`` (``width`` columns,
# ``bs`` = the batch_size argument, L layers):
#     c = ((b * L + l) * bs + i) * width + j            (uint64, wrapping)
#     u = mix64(key + (c + 1) * 0x9E3779B97F4A7C15)      (uint64, wrapping)
#     keep  <=>  (u >> 11) * 2**-53 >= rate
# kept values are scaled by 1 / (1 - rate) (inverted dropout).
# --------------------------------------------------------------------------
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def mix64(z):
    """splitmix64 finaliser on a Python int (reference; the kernels inline it)."""
    m = (1 << 64) - 1
    z &= m
    z = ((z ^ (z >> 30)) * MIX1) & m
    z = ((z ^ (z >> 27)) * MIX2) & m
    return z ^ (z >> 31)


# --------------------------------------------------------------------------
# Training diagnostics: the optional float64 ``diag`` buffer of train_batches
# (length diag_size(layers); empty = off, and then nothing is computed).
#   diag[DG_BATCH]   absolute index of the first batch where a NaN/inf appeared (-1: none)
#   diag[DG_LAYER]   its layer
#   diag[DG_STAGE]   its stage (STAGE_*)
#   diag[DG_ROWS]    rows (samples) counted since the buffer was zeroed
# then per layer l, from diag_offset(layers, l), with w = layers[l]["n_out"]:
#   [0, w)      per unit: rows with a > 0              (ACT_RELU, ACT_RELU6 only)
#   [w, 2w)     per unit: rows with g'(z) < SATURATION * max g'
#                                                       (ACT_SIGMOID, ACT_TANH only)
#   2w          sum over batches of the norm of the layer's data-loss gradient (W, b
#               and slopes together; before regularization and clipping)
#   2w + 1      number of batches summed
# Counts use the pre-dropout activations of the training forward pass; the last
# layer of a fused head (softmax / sigmoid cross-entropy on logits) is not counted.  When a
# non-finite value is found the call stops right after that stage.
# --------------------------------------------------------------------------
DG_BATCH, DG_LAYER, DG_STAGE, DG_ROWS = 0, 1, 2, 3
DG_HEAD = 4
STAGE_NONE, STAGE_FORWARD, STAGE_LOSS, STAGE_BACKWARD, STAGE_UPDATE = 0, 1, 2, 3, 4
STAGES = {STAGE_FORWARD: "forward", STAGE_LOSS: "loss", STAGE_BACKWARD: "backward",
          STAGE_UPDATE: "update"}
SATURATION = 0.05   # sigmoid: a (1 - a) < 0.05 * 0.25; tanh: 1 - a^2 < 0.05


def diag_offset(layers, l):
    """Start of layer l's block in the diag buffer."""
    pos = DG_HEAD
    for i in range(l):
        pos += 2 * int(layers[i]["n_out"]) + 2
    return pos


def diag_size(layers):
    """Length of the diag buffer for this network."""
    return diag_offset(layers, len(layers))


def table_digest():
    """Fingerprint of the tables the elementwise kernels are rendered from (the
    templates embed it; the adapters refuse a stale build)."""
    import hashlib
    return hashlib.sha256(repr((ACTIVATIONS, OPTIMIZERS, HYPER, STEP_INPUTS)).encode()).hexdigest()[:16]
