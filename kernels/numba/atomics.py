"""Atomic int64 words for the numba kernels: the split step's hand-off between
its two threads (kernels/numba/split.py).

numba has no atomics and no barrier inside a ``prange`` body; each operation
here is one LLVM atomic instruction on an element of an int64 array:

    atomic_add(a, i, v)        a[i] += v, returns the old value       (seq_cst)
    atomic_cas(a, i, old, new) a[i] = new if a[i] == old, returns the value seen (seq_cst)
    atomic_load(a, i)          a[i], ordered before the loads after it  (acquire)
    atomic_store(a, i, v)      a[i] = v, ordered after the stores before it (release)
    spin_pause()               a spin-wait hint (x86 ``pause``; nothing elsewhere)

A plain load in a wait loop could be hoisted out of it by LLVM, and plain stores
of the data a thread hands over could be moved past its flag: the acquire load
and the release store are what order them.  The callers pass C-contiguous int64
arrays and indices inside them (no bounds checks, as simd.py).
"""
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.errors import TypingError
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _int64_array(a):
    return isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.int64


def _ptr(context, builder, aty, arr, idx):
    a = context.make_array(aty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, aty, a, [idx], wraparound=False)


def _check(name, a, i, *vals):
    if not (_int64_array(a) and isinstance(i, types.Integer)
            and all(isinstance(v, types.Integer) for v in vals)):
        raise TypingError("%s: expected a 1-d int64 array and integers, got %s" % (name, (a, i) + vals))


@intrinsic
def atomic_add(typingctx, a, i, v):
    _check("atomic_add", a, i, v)

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", _ptr(context, builder, sig.args[0], args[0], args[1]), val,
                                  "seq_cst")
    return types.int64(a, i, v), codegen


@intrinsic
def atomic_cas(typingctx, a, i, old, new):
    _check("atomic_cas", a, i, old, new)

    def codegen(context, builder, sig, args):
        cmp = context.cast(builder, args[2], sig.args[2], types.int64)
        val = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(_ptr(context, builder, sig.args[0], args[0], args[1]), cmp, val,
                               "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)
    return types.int64(a, i, old, new), codegen


@intrinsic
def atomic_load(typingctx, a, i):
    _check("atomic_load", a, i)

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_ptr(context, builder, sig.args[0], args[0], args[1]), "acquire", 8)
    return types.int64(a, i), codegen


@intrinsic
def atomic_store(typingctx, a, i, v):
    _check("atomic_store", a, i, v)

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, _ptr(context, builder, sig.args[0], args[0], args[1]), "release", 8)
        return context.get_dummy_value()
    return types.none(a, i, v), codegen


@intrinsic
def spin_pause(typingctx):
    def codegen(context, builder, sig, args):
        if _X86:   # (numba's JIT has no inline-asm parser: the intrinsic)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


if config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT: prange is a range, so the two workers run one after the
    # other on one thread and these never race
    def atomic_add(a, i, v):  # noqa: F811
        old = int(a[i])
        a[i] = old + v
        return old

    def atomic_cas(a, i, old, new):  # noqa: F811
        seen = int(a[i])
        if seen == old:
            a[i] = new
        return seen

    def atomic_load(a, i):  # noqa: F811
        return int(a[i])

    def atomic_store(a, i, v):  # noqa: F811
        a[i] = v

    def spin_pause():  # noqa: F811
        pass
