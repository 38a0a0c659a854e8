"""Training diagnostics: the course's dying-ReLU and vanishing-gradient warnings
made visible, and the place where a NaN first appeared.

``model.fit(..., diagnostics=True)`` hands the compiled training step a small
float64 buffer (layout in ``kernels/defs.py``) in which it counts, per unit,
the samples on which a ReLU was active and a sigmoid / tanh unit was saturated,
sums each layer's gradient norm over the batches, and records the first batch,
layer and stage (forward, loss, backward, update) where a NaN or inf appeared.
With ``diagnostics=False`` (the default) the buffer is empty and none of this
runs.

Per layer and epoch ``history.diagnostics[layer_name]`` holds lists of::

    ``dead_relu``            share of units (relu, relu6) never active (a > 0) on any
                             sample of the epoch (None for other activations)
    ``saturated_units``      share of sigmoid / tanh units saturated on at least
                             ``SATURATED_SHARE`` of the epoch's samples (None otherwise)
    ``saturated_fraction``   share of (sample, unit) pairs saturated (None otherwise)
    ``weight_norm``          L2 norm of the layer's kernel at the end of the epoch
    ``grad_norm``            mean over the epoch's batches of the L2 norm of the
                             layer's data-loss gradient (kernel, bias and PReLU slopes)

A unit is saturated on a sample when its derivative is below ``defs.SATURATION``
(5%) of its maximum: sigmoid a (1 - a) < 0.0125 (a < 0.0127 or a > 0.987), tanh
1 - a^2 < 0.05 (``|a|`` > 0.975).  Counts are taken in the training forward pass,
before dropout, while the weights change over the epoch: "never active over the
epoch" means exactly that.
"""
import warnings

import numpy as np

from ._kernels import defs
from .backends._geometry import geometry

__all__ = ["NonFiniteError", "DiagnosticsWarning", "SATURATED_SHARE", "format_table"]

#: a unit counts as saturated over an epoch when saturated on this share of its samples
SATURATED_SHARE = 0.9
#: warn when at least this share of a layer's units is dead / saturated
WARN_SHARE = 0.5

_HINTS = {
    defs.STAGE_FORWARD: "the layer's pre-activations or outputs overflowed: the weights (or inputs) are too "
                        "large; lower the learning rate, clip the gradients (clipnorm=...) or scale the inputs",
    defs.STAGE_LOSS: "the loss or its gradient is not finite",
    defs.STAGE_BACKWARD: "the back-propagated gradients overflowed (exploding gradients); lower the learning "
                         "rate or clip the gradients",
    defs.STAGE_UPDATE: "the optimizer step made the weights overflow: the learning rate is far too large "
                       "for these gradients; lower it or clip the gradients",
}


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or inf (raised by ``fit(..., diagnostics=True)``).

    Attributes: ``epoch`` (0-based), ``batch`` (0-based, within the epoch),
    ``layer`` (the layer's name), ``layer_index`` (among the weight layers) and
    ``stage`` ("forward", "loss", "backward" or "update")."""

    def __init__(self, epoch, batch, layer, layer_index, stage_code):
        self.epoch, self.batch, self.layer, self.layer_index = epoch, batch, layer, layer_index
        self.stage = defs.STAGES.get(stage_code, "unknown")
        super().__init__("NaN or inf first appeared in epoch %d, batch %d, layer %r, stage %r: %s"
                         % (epoch, batch, layer, self.stage, _HINTS.get(stage_code, "")))


class DiagnosticsWarning(UserWarning):
    """Many dead ReLUs or saturated units in a layer (see fastnet.diagnostics)."""


def reset(diag):
    """Zero the buffer for a new epoch (no non-finite value seen yet)."""
    diag[:] = 0.0
    diag[defs.DG_BATCH] = -1
    diag[defs.DG_LAYER] = -1


def check(diag, epoch, layer_names):
    """Raise NonFiniteError if the kernel recorded a non-finite value."""
    stage = int(diag[defs.DG_STAGE])
    if stage != defs.STAGE_NONE:
        l = int(diag[defs.DG_LAYER])
        raise NonFiniteError(epoch, int(diag[defs.DG_BATCH]), layer_names[l], l, stage)


def epoch_record(diag, layers, params, layer_names, fused_head=False):
    """{layer name: {metric: value}} of one epoch from the filled buffer.  With a
    fused head the last layer's outputs are logits (softmax / sigmoid applied in
    the loss): no dead / saturated counts for it."""
    rows = float(diag[defs.DG_ROWS])
    geo = geometry(layers)
    out = {}
    for l, name in enumerate(layer_names):
        w = geo.widths[l]
        off = geo.diag_offsets[l]
        act = geo.acts[l]
        if fused_head and l == len(layer_names) - 1:
            act = defs.ACT_LINEAR
        active = diag[off:off + w]
        sat = diag[off + w:off + 2 * w]
        rec = {"dead_relu": None, "saturated_units": None, "saturated_fraction": None}
        if act in (defs.ACT_RELU, defs.ACT_RELU6):
            rec["dead_relu"] = float(np.mean(active == 0))
        if act in (defs.ACT_SIGMOID, defs.ACT_TANH) and rows > 0:
            rec["saturated_units"] = float(np.mean(sat >= SATURATED_SHARE * rows))
            rec["saturated_fraction"] = float(sat.sum() / (rows * w))
        W = geo.views(params, l)[0]
        rec["weight_norm"] = float(np.sqrt(np.sum(W.astype(np.float64) ** 2)))
        nb = diag[off + 2 * w + 1]
        rec["grad_norm"] = float(diag[off + 2 * w] / nb) if nb > 0 else None
        out[name] = rec
    return out


def record(history, rec, warned, epoch):
    """Append one epoch's record to ``history.diagnostics`` and warn (once per
    layer and kind) about dying ReLUs and saturated units."""
    for name, vals in rec.items():
        dst = history.diagnostics.setdefault(name, {})
        for key, value in vals.items():
            dst.setdefault(key, []).append(value)
        dead, sat = vals["dead_relu"], vals["saturated_units"]
        if dead is not None and dead >= WARN_SHARE and (name, "dead") not in warned:
            warned.add((name, "dead"))
            warnings.warn("epoch %d: %.0f%% of layer %r's ReLU units are dead (never active over the epoch); "
                          "they no longer learn. A lower learning rate, leaky_relu/PReLU or a different "
                          "initialisation help." % (epoch, 100 * dead, name), DiagnosticsWarning, stacklevel=3)
        if sat is not None and sat >= WARN_SHARE and (name, "sat") not in warned:
            warned.add((name, "sat"))
            warnings.warn("epoch %d: %.0f%% of layer %r's units are saturated (derivative < 5%% of its maximum "
                          "on >= %d%% of the samples): their gradients vanish. Scaled initialisation, "
                          "cross-entropy loss or ReLU help." % (epoch, 100 * sat, name, 100 * SATURATED_SHARE),
                          DiagnosticsWarning, stacklevel=3)


def format_table(history):
    """The diagnostics of a History as a text table (one row per layer and epoch)."""
    diag = getattr(history, "diagnostics", None) or {}
    cols = ["dead_relu", "saturated_units", "saturated_fraction", "weight_norm", "grad_norm"]
    lines = ["%-14s %5s " % ("layer", "epoch") + " ".join("%18s" % c for c in cols)]
    for name, vals in diag.items():
        for e in range(len(vals["weight_norm"])):
            cells = []
            for c in cols:
                v = vals[c][e]
                cells.append("%18s" % ("-" if v is None else "%.4g" % v))
            lines.append("%-14s %5d " % (name, history.epoch[e] if e < len(history.epoch) else e)
                         + " ".join(cells))
    return "\n".join(lines)
