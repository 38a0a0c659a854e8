"""Gradient checking as a user tool: backprop against naive numerical gradients."""
import numpy as np

from ._kernels import defs
from ._threads import get_num_threads
from .backends import _api
from .backends._geometry import geometry


def gradcheck(model, X, y, eps=1e-6, sample_weight=None, dropout_key=12345, max_entries=None, seed=0):
    """Compare the model's backprop gradients with central finite differences.

    Returns a list with one value per array of ``model.get_weights()`` (same
    order): the largest relative error ``|g - n| / max(|g| + |n|, 1e-6)`` over
    the array's entries, where ``g`` is the backprop gradient and ``n`` the
    numerical one.  Everything runs in float64 on the model's own backend (a
    float32 model is copied to float64), including the regularization penalty
    and a fixed dropout mask (``dropout_key``), so values of ~1e-7 or less mean
    the gradients are right.  The naive check costs two forward passes per
    parameter (O(N x P)); ``max_entries`` checks a random subset of that many
    entries per array (``seed``) for large models.  The model is not changed.
    """
    model._require_compiled("gradcheck")
    if not (isinstance(eps, float) and 0 < eps < 1):
        raise ValueError("gradcheck: eps must be a float in (0, 1); got %r" % (eps,))
    Xc = model._check_X(X)
    labels, Y = model._check_y(y, Xc.shape[0])
    sw = model._check_sample_weight(sample_weight, Xc.shape[0])
    if not model.built:
        model.build(Xc.shape[1])
    f64 = np.float64
    X64 = np.ascontiguousarray(Xc, dtype=f64)
    Y64 = np.ascontiguousarray(Y, dtype=f64)
    sw64 = np.ascontiguousarray(sw, dtype=f64)
    params = model._params.astype(f64)
    n = X64.shape[0]
    layers = model._layer_table
    be = model._backend
    work = np.zeros(_api.workspace_size(layers, n), dtype=f64)
    grads = np.zeros_like(params)
    state = np.zeros((defs.N_STATE, params.shape[0]), dtype=f64)  # contract shape; unused by OPT_NONE
    perm = np.arange(n, dtype=np.int64)
    key = np.uint64(dropout_key)
    no_scores = np.empty((0, model.output_dim), dtype=f64)
    loss = np.zeros(1)

    def run(p, g):
        be.train_batches(_api.Batches(X64, Y64, labels, sw64, perm, n, 0, 1),
                         _api.Network(layers, model._head, p),
                         _api.TrainState(defs.OPT_NONE, np.zeros(defs.NH), 0, key, state),
                         _api.Buffers(g, work, loss, no_scores), get_num_threads())
        return float(loss[0])

    run(params, grads)
    backprop = grads.copy()
    scratch = np.zeros_like(params)
    rng = np.random.default_rng(seed)
    errors = []
    geo = geometry(layers)
    for l in range(geo.n_layers):
        for start, size in geo.spans(l):
            idx = np.arange(start, start + size)
            if max_entries is not None and size > max_entries:
                idx = np.sort(rng.choice(idx, size=max_entries, replace=False))
            worst = 0.0
            for i in idx:
                old = params[i]
                params[i] = old + eps
                fp = run(params, scratch)
                params[i] = old - eps
                fm = run(params, scratch)
                params[i] = old
                num = (fp - fm) / (2 * eps)
                g = backprop[i]
                worst = max(worst, abs(g - num) / max(abs(g) + abs(num), 1e-6))
            errors.append(worst)
    return errors
