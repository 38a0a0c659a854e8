"""Borrowed arrays: views that carry no reference count.

Every numba array value holds a pointer to its buffer's reference count (its
``meminfo``); each view made from it (a slice, a row, ``reshape``) and most
calls that pass one add to and take from that count, and NRT's add is an atomic
read-modify-write: a locked instruction, a full barrier that waits for the
store buffer to drain.  The training step makes hundreds of such views per
batch (each layer's workspace views, each register block's rows of C), and in
the split step both threads counted the same buffers, one cache line passed
between the cores (bench/REPORT.md, seed epoch: numba vs cython).

``borrow(a)`` is ``a`` without its meminfo (NRT's increment and decrement of a
null meminfo return at once, no atomic), and so is every view made from it.
It is safe where the buffer outlives every use of the borrowed array:

* a function's arguments: the caller holds them for the whole call;
* an array the function allocates: ``keep(owner)`` after the last use of its
  borrowed views, so numba releases the owner no earlier (numba frees a
  variable after its last use in the function).

A borrowed array must not escape: not returned, not stored in another array
or structure that outlives the call.

``view2d(buf, off, n, m)`` is ``buf[off:off + n * m].reshape((n, m))`` built in
place: numba's reshape calls a C function of its runtime for every view, and
the step makes dozens per batch.
"""
from numba import types
from numba.core import cgutils, config
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic


@intrinsic
def borrow(typingctx, a):
    """``a`` without its reference count (same type, data, shape and strides)."""
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, value=args[0])
        dst = context.make_array(sig.return_type)(context, builder)
        context.populate_array(dst, data=src.data, shape=src.shape, strides=src.strides,
                               itemsize=src.itemsize, meminfo=None, parent=None)
        return dst._getvalue()
    return a(a), codegen


@intrinsic
def view2d(typingctx, buf, off, n, m):
    """The (n, m) C-contiguous view of the 1-d C-contiguous ``buf`` from element
    ``off`` (the caller keeps off + n * m within buf: no check here)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"
            and all(isinstance(x, types.Integer) for x in (off, n, m))):
        return None
    ret = buf.copy(ndim=2, layout="C")

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, value=args[0])
        o, rows, cols = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
        dst = context.make_array(ret)(context, builder)
        item = src.itemsize
        context.populate_array(dst, data=builder.gep(src.data, [o]),
                               shape=cgutils.pack_array(builder, [rows, cols]),
                               strides=cgutils.pack_array(builder, [builder.mul(cols, item), item]),
                               itemsize=item, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, ret, dst._getvalue())
    return ret(buf, off, n, m), codegen


@intrinsic
def keep(typingctx, a):
    """A use of ``a`` that emits nothing: ``a`` is released no earlier than here."""
    def codegen(context, builder, sig, args):
        return context.get_dummy_value()
    return types.none(a), codegen


if config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT: Python's own reference counts
    def borrow(a):  # noqa: F811
        return a

    def keep(a):  # noqa: F811
        pass

    def view2d(buf, off, n, m):  # noqa: F811
        return buf[off:off + n * m].reshape((n, m))
