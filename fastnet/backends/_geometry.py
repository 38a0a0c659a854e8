"""The network's geometry, decoded from its layer records once.

Every Python consumer of a network description (``defs.LAYER_DTYPE`` records:
the model, the NumPy reference, the contract's validator and workspace sizes,
diagnostics, gradient checking, the tests) asks :func:`geometry` for it instead
of reading offsets and widths from the records itself:

* per layer: the z width (``n_out * pieces`` for Maxout), meProp's effective k,
  and the parameter blocks (W, b, PReLU slopes) as (offset, shape) spans of the
  flat buffer, in buffer order;
* the training workspace's layout (``workspace_layout``) and both workspaces'
  sizes per row;
* the diagnostics buffer's per-layer offsets and size (``defs.diag_offset``:
  the layout's definition).

The compiled twins decode the same records in their own nogil code
(``_zw`` / ``_layout`` in kernels/cython/network.pyx and kernels/numba/network.py);
tests/test_contract.py and tests/test_cython_backend.py check them against this
module.  A :class:`Geometry` is memoised per description (the records' bytes).
"""
import numpy as np

from .._kernels import defs

__all__ = ["Geometry", "geometry"]


class Geometry:
    """The decoded description of one network (read-only by convention)."""

    __slots__ = ("n_layers", "n_in", "n_out", "widths", "z_widths", "topk", "acts", "kinds",
                 "pieces", "blocks", "n_params", "macs", "diag_offsets", "diag_size",
                 "_train_words", "_layout_one")

    def __init__(self, layers):
        recs = [dict(zip(defs.LAYER_DTYPE.names, t)) for t in layers.tolist()]
        self.n_layers = len(recs)
        self.n_in = int(recs[0]["n_in"])
        self.n_out = int(recs[-1]["n_out"])
        self.widths = tuple(int(r["n_out"]) for r in recs)
        self.acts = tuple(int(r["act"]) for r in recs)
        self.kinds = tuple(int(r["kind"]) for r in recs)
        self.pieces = tuple(max(1, int(r["pieces"])) if r["kind"] == defs.LAYER_MAXOUT else 1
                            for r in recs)
        self.z_widths = tuple(w * q for w, q in zip(self.widths, self.pieces))
        self.topk = tuple(int(r["topk"]) if (r["kind"] == defs.LAYER_DENSE and 0 < r["topk"] < zw)
                          else 0 for r, zw in zip(recs, self.z_widths))
        # per layer: {"W": (offset, (n_in, zw)), "b": (offset, (zw,)), "slopes": (offset, (n_out,))}
        blocks, end, macs = [], 0, 0
        for r, zw in zip(recs, self.z_widths):
            n_in = int(r["n_in"])
            blk = {"W": (int(r["w_offset"]), (n_in, zw))}
            if r["b_offset"] >= 0:
                blk["b"] = (int(r["b_offset"]), (zw,))
            if r["act"] == defs.ACT_PRELU:
                blk["slopes"] = (int(r["slopes_offset"]), (int(r["n_out"]),))
            for off, shape in blk.values():
                end = max(end, off + int(np.prod(shape)))
            blocks.append(blk)
            macs += n_in * zw
        self.blocks = tuple(blocks)
        self.n_params = end
        self.macs = macs
        self.diag_offsets = tuple(defs.diag_offset(recs, l) for l in range(self.n_layers))
        self.diag_size = defs.diag_size(recs)
        self._layout_one = self._layout(1, tuple(float(r["dropout"]) > 0 for r in recs))
        self._train_words = self._layout_one["size"]

    # ---------------------------------------------------------------- parameters
    def views(self, buf, l):
        """(W (n_in, zw), b (zw,) or None, slopes (n_out,) or None) of layer l in
        ``buf`` (a flat buffer with the parameters' layout: params, grads, a row of
        the optimizer state), as views."""
        blk = self.blocks[l]
        out = []
        for name in ("W", "b", "slopes"):
            if name in blk:
                off, shape = blk[name]
                out.append(buf[off:off + int(np.prod(shape))].reshape(shape))
            else:
                out.append(None)
        return tuple(out)

    def spans(self, l=None):
        """(offset, size) of the parameter blocks of layer l (every layer's when l
        is None) in buffer order per layer: W, b, slopes."""
        layers = range(self.n_layers) if l is None else (l,)
        return [(off, int(np.prod(shape))) for i in layers
                for off, shape in (self.blocks[i][k] for k in ("W", "b", "slopes") if k in self.blocks[i])]

    def arrays(self, buf):
        """[(l, flat view)] of every parameter block of ``buf`` (the last axis of a
        2-D buffer, such as the optimizer state), per layer W, b, slopes."""
        return [(l, buf[..., off:off + size]) for l in range(self.n_layers)
                for off, size in self.spans(l)]

    # ---------------------------------------------------------------- workspaces
    def _layout(self, batch_size, dropped):
        bs = int(batch_size)
        off = {"X": 0}
        pos = bs * self.n_in
        for l, (w, zw) in enumerate(zip(self.widths, self.z_widths)):
            off[("Z", l)] = pos
            pos += bs * zw
            off[("A", l)] = pos
            pos += bs * w
            if dropped[l]:
                off[("M", l)] = pos
                pos += bs * w
        maxw = max((self.n_in,) + self.widths + self.z_widths)
        off["D0"] = pos
        pos += bs * maxw
        off["D1"] = pos
        pos += bs * maxw
        off["size"] = pos
        return off

    def workspace_layout(self, batch_size):
        """Offsets (in elements) into train_batches' workspace for a batch size:
        ``"X"`` (the gathered batch, bs x n_in), per layer l ``("Z", l)`` (bs x z
        width), ``("A", l)`` (bs x n_out) and, with dropout, ``("M", l)`` (the
        dropped-out copy of A), then ``"D0"``, ``"D1"`` (two bs x widest delta
        buffers) and ``"size"``.  Every entry is bs times the one-row layout."""
        bs = int(batch_size)
        return {k: bs * v for k, v in self._layout_one.items()}

    def workspace_size(self, batch_size):
        """Elements of ``work`` that ``train_batches`` needs for this batch size."""
        return int(batch_size) * self._train_words

    def forward_workspace_size(self, n_rows):
        """Elements of ``work`` that ``forward`` needs: two ping-pong buffers of
        n_rows x the widest z."""
        return 2 * int(n_rows) * max(self.z_widths)


_CACHE = {}


def geometry(layers):
    """The :class:`Geometry` of ``layers`` (a 1-D array of ``defs.LAYER_DTYPE``
    records, already checked: ``_api.network`` validates), memoised per description."""
    key = layers.tobytes()
    geo = _CACHE.get(key)
    if geo is None:
        geo = Geometry(layers)
        if len(_CACHE) >= 256:
            _CACHE.clear()
        _CACHE[key] = geo
    return geo
