"""Explicit SIMD vectors for the numba kernels.

LLVM's loop vectoriser serves long loops well and short ones badly: the
matmul family's inner loop runs over the columns of C, and at the widths of
small-batch training (30, 10) the vectorised body (16 lanes x an interleave of
2-4) is longer than the loop, so most of the work falls to its scalar remainder
and to the runtime alias checks numba's arrays need (numba cannot say that C
and B do not overlap): ``matmul_tn`` at 784x10x30 was then far slower than
OpenBLAS (bench/REPORT.md's kernel table has the row).

This module gives numba code a vector type and the handful of operations a
register-blocked micro-kernel needs, each lowered to one LLVM instruction or
intrinsic, so the kernel says what lives in registers:

    vlanes(arr)              lanes of a vector of arr's dtype (a compile-time constant)
    vzero(arr)               a vector of zeros of arr's dtype
    vbcast(x, arr)           x in every lane
    vload(row, j)            row[j:j + lanes]                 (row: 1-d, unit stride)
    vload_n(row, j, n)       row[j:j + n], zeros above n     (masked: reads nothing past n)
    vstore(row, j, v)        row[j:j + lanes] = v
    vstore_n(row, j, v, n)   row[j:j + n] = v[:n]             (masked: writes nothing past n)
    vfma(a, b, c)            a * b + c, one rounding (llvm.fma)

and ``stack_empty_2d(rows, cols, like)``, a small scratch array on the stack
(alloca: matmul_nt's B^T at the seed shapes without an allocator call; LLVM
brackets an inlined dynamic alloca with stacksave / stackrestore, so a caller's
loop does not grow the stack: 100,000 batch-1 steps ran).

A vector is ``VECTOR_BYTES`` wide: 64 bytes (16 float32 / 8 float64) where the
CPU features numba compiles for (``NUMBA_CPU_FEATURES``, else the host's: numba
adds them to any ``NUMBA_CPU_NAME``; with ``NUMBA_CPU_FEATURES=""`` those of the
named CPU) have AVX-512F, 32 where they have AVX, 16 otherwise, so the
micro-kernels' accumulators fit the register file (32 zmm / 16 ymm); LLVM
splits wider vectors itself, so the choice only matters for speed.  numba's
cache is keyed by the CPU name and features, so a cache never crosses to a
machine with another width.

The operations do no bounds checks: the callers guarantee ``j + lanes`` (or
``j + n``) lies inside the row and that the row's stride is the item size (the
backend contract's arrays are C-contiguous; the matmul drivers check the
strides and keep their plain loops otherwise).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, models, register_model


#: vector bytes of the CPUs ``NUMBA_CPU_NAME`` may name with ``NUMBA_CPU_FEATURES=""``
#: (numba then compiles for that CPU alone, e.g. ``haswell`` for the AVX2 code on an
#: AVX-512 machine); a name not listed gets 16 (SSE2 width: correct everywhere)
_NAMED_CPU_BYTES = dict(
    [(n, 64) for n in ("skylake-avx512", "cascadelake", "cooperlake", "cannonlake",
                       "icelake-client", "icelake-server", "tigerlake", "rocketlake",
                       "sapphirerapids", "emeraldrapids", "graniterapids", "znver4", "znver5",
                       "knl", "knm", "x86-64-v4")]
    + [(n, 32) for n in ("haswell", "broadwell", "skylake", "alderlake", "raptorlake",
                         "meteorlake", "arrowlake", "lunarlake", "znver1", "znver2", "znver3",
                         "bdver4", "x86-64-v3")])


def _vector_bytes():
    feats = config.CPU_FEATURES
    name = (config.CPU_NAME or "host").strip().lower()
    if feats == "" and name != "host":
        # NUMBA_CPU_FEATURES="" with a CPU name: that CPU's own features (without
        # it, numba adds the HOST's features to any NUMBA_CPU_NAME)
        return _NAMED_CPU_BYTES.get(name, 16)
    if feats is None:
        try:
            import llvmlite.binding as llvm
            feats = llvm.get_host_cpu_features().flatten()
        except Exception:   # pragma: no cover - llvmlite without host queries
            return 16
    have = {f[1:] for f in feats.split(",") if f.startswith("+")}
    if "avx512f" in have:
        return 64
    if "avx" in have:
        return 32
    return 16


#: width of one vector in bytes (see the module docstring)
VECTOR_BYTES = _vector_bytes()


def lanes_of(dtype):
    """Lanes of a vector of ``dtype`` (a numba float type)."""
    return VECTOR_BYTES // (dtype.bitwidth // 8)


class Vec(types.Type):
    """An LLVM vector of ``lanes_of(dtype)`` elements of a float ``dtype``."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = lanes_of(dtype)
        super().__init__(name="Vec(%s x %d)" % (dtype, self.lanes))


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        be = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.lanes)
        super().__init__(dmm, fe_type, be)


def _float_array(arr, ndim=None):
    return (isinstance(arr, types.Array) and isinstance(arr.dtype, types.Float)
            and (ndim is None or arr.ndim == ndim))


def _suffix(vty):
    return "v%d%s" % (vty.count, "f32" if isinstance(vty.element, ir.FloatType) else "f64")


def _pointer(context, builder, aty, arr, idx, vty):
    """Pointer to ``arr[idx]`` (1-d), cast to a pointer to vectors."""
    a = context.make_array(aty)(context, builder, arr)
    p = cgutils.get_item_pointer2(context, builder, a.data, cgutils.unpack_tuple(builder, a.shape),
                                  cgutils.unpack_tuple(builder, a.strides), aty.layout, [idx],
                                  wraparound=False)
    return builder.bitcast(p, vty.as_pointer())


def _mask(builder, count, lanes, width):
    """<lanes x i1>: lane < count, compared in integers of the element's width
    (float32: one 32-bit compare per vector, the form AVX2's vmaskmovps takes; a
    64-bit compare needs two and a pack, which LLVM redid in every loop step)."""
    i64 = ir.IntType(64)
    if count.type.width < 64:
        count = builder.sext(count, i64)
    big = ir.Constant(i64, lanes)
    count = builder.select(builder.icmp_signed(">", count, big), big, count)
    it = ir.IntType(width)
    if width < 64:
        count = builder.trunc(count, it)
    vt = ir.VectorType(it, lanes)
    cv = builder.insert_element(ir.Constant(vt, ir.Undefined), count, ir.Constant(ir.IntType(32), 0))
    cv = builder.shuffle_vector(cv, cv, ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
    return builder.icmp_signed("<", ir.Constant(vt, list(range(lanes))), cv)


def _align(aty):
    return aty.dtype.bitwidth // 8


@intrinsic
def vlanes(typingctx, arr):
    if not _float_array(arr):
        raise TypingError("vlanes: expected a float array, got %s" % arr)
    n = lanes_of(arr.dtype)

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n)
    return types.intp(arr), codegen


@intrinsic
def vzero(typingctx, arr):
    if not _float_array(arr):
        raise TypingError("vzero: expected a float array, got %s" % arr)
    vt = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)
    return vt(arr), codegen


@intrinsic
def vbcast(typingctx, x, arr):
    if not (_float_array(arr) and isinstance(x, (types.Float, types.Integer))):
        raise TypingError("vbcast: expected a number and a float array, got %s, %s" % (x, arr))
    vt = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[0], sig.args[0], arr.dtype)
        ty = context.get_value_type(vt)
        v = builder.insert_element(ir.Constant(ty, ir.Undefined), v, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), vt.lanes),
                                                        [0] * vt.lanes))
    return vt(x, arr), codegen


@intrinsic
def vload(typingctx, row, j):
    if not (_float_array(row, 1) and isinstance(j, types.Integer)):
        raise TypingError("vload: expected a 1-d float array and an index, got %s, %s" % (row, j))
    vt = Vec(row.dtype)

    def codegen(context, builder, sig, args):
        ty = context.get_value_type(vt)
        return builder.load(_pointer(context, builder, sig.args[0], args[0], args[1], ty),
                            align=_align(row))
    return vt(row, j), codegen


@intrinsic
def vload_n(typingctx, row, j, n):
    if not (_float_array(row, 1) and isinstance(j, types.Integer) and isinstance(n, types.Integer)):
        raise TypingError("vload_n: expected a 1-d float array and two integers, got %s, %s, %s"
                          % (row, j, n))
    vt = Vec(row.dtype)

    def codegen(context, builder, sig, args):
        ty = context.get_value_type(vt)
        vp = _pointer(context, builder, sig.args[0], args[0], args[1], ty)

        def masked():
            m = _mask(builder, args[2], vt.lanes, row.dtype.bitwidth)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ty, [ty.as_pointer(), ir.IntType(32), m.type, ty]),
                "llvm.masked.load.%s.p0%s" % (_suffix(ty), _suffix(ty)))
            return builder.call(fn, [vp, ir.Constant(ir.IntType(32), _align(row)), m, ir.Constant(ty, None)])
        if VECTOR_BYTES > 32:
            return masked()
        # (AVX2: a whole vector as a plain load, see _store_pieces)
        n = args[2]
        if n.type.width < 64:
            n = builder.sext(n, ir.IntType(64))
        slot = cgutils.alloca_once(builder, ty)
        with builder.if_else(builder.icmp_signed(">=", n, ir.Constant(n.type, vt.lanes))) as (whole, part):
            with whole:
                builder.store(builder.load(vp, align=_align(row)), slot)
            with part:
                builder.store(masked(), slot)
        return builder.load(slot)
    return vt(row, j, n), codegen


@intrinsic
def vstore(typingctx, row, j, v):
    if not (_float_array(row, 1) and isinstance(j, types.Integer) and v == Vec(row.dtype)):
        raise TypingError("vstore: expected a 1-d float array, an index and a vector of its dtype")

    def codegen(context, builder, sig, args):
        builder.store(args[2], _pointer(context, builder, sig.args[0], args[0], args[1], args[2].type),
                      align=_align(row))
        return context.get_dummy_value()
    return types.none(row, j, v), codegen


def _store_pieces(builder, v, vp, n, align):
    """v[:n] -> vp[0:n] without a masked store, for vectors of at most 32 bytes
    (no mask registers: AVX2's masked store, vmaskmovps, is microcoded on AMD's
    cores, and the matmul blocks store a row's last vector with one; AVX2's
    matmul_tn 784x10x30 in bench/REPORT-avx2.md's GEMM table).  A whole vector
    is one plain store; fewer lanes go through a stack copy of v as plain stores
    of the binary pieces of n (8 lanes: 4, 2, 1 at offsets n & ~7, n & ~3, n & ~1)."""
    ty = v.type
    lanes = ty.count
    i64 = ir.IntType(64)
    if n.type.width < 64:
        n = builder.sext(n, i64)
    with builder.if_else(builder.icmp_signed(">=", n, ir.Constant(i64, lanes))) as (whole, part):
        with whole:
            builder.store(v, vp, align=align)
        with part:
            slot = cgutils.alloca_once(builder, ty)
            builder.store(v, slot)
            src0 = builder.bitcast(slot, ty.element.as_pointer())
            dst0 = builder.bitcast(vp, ty.element.as_pointer())
            w = lanes // 2
            while w >= 1:
                off = builder.and_(n, ir.Constant(i64, ~(2 * w - 1)))
                with builder.if_then(builder.icmp_unsigned("!=", builder.and_(n, ir.Constant(i64, w)),
                                                           ir.Constant(i64, 0))):
                    pt = (ir.VectorType(ty.element, w) if w > 1 else ty.element).as_pointer()
                    x = builder.load(builder.bitcast(builder.gep(src0, [off]), pt), align=align)
                    builder.store(x, builder.bitcast(builder.gep(dst0, [off]), pt), align=align)
                w //= 2


@intrinsic
def vstore_n(typingctx, row, j, v, n):
    if not (_float_array(row, 1) and isinstance(j, types.Integer) and v == Vec(row.dtype)
            and isinstance(n, types.Integer)):
        raise TypingError("vstore_n: expected a 1-d float array, an index, a vector of its dtype "
                          "and a count")

    def codegen(context, builder, sig, args):
        ty = args[2].type
        vp = _pointer(context, builder, sig.args[0], args[0], args[1], ty)
        if VECTOR_BYTES <= 32:
            _store_pieces(builder, args[2], vp, args[3], _align(row))
            return context.get_dummy_value()
        m = _mask(builder, args[3], ty.count, row.dtype.bitwidth)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ty, ty.as_pointer(), ir.IntType(32), m.type]),
            "llvm.masked.store.%s.p0%s" % (_suffix(ty), _suffix(ty)))
        builder.call(fn, [args[2], vp, ir.Constant(ir.IntType(32), _align(row)), m])
        return context.get_dummy_value()
    return types.none(row, j, v, n), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    if not (isinstance(a, Vec) and a == b == c):
        raise TypingError("vfma: expected three vectors of one dtype, got %s, %s, %s" % (a, b, c))

    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]),
                                            "llvm.fma.%s" % _suffix(ty))
        return builder.call(fn, list(args))
    return a(a, b, c), codegen


@intrinsic
def stack_empty_2d(typingctx, rows, cols, like):
    """An uninitialised C-contiguous (rows, cols) array of ``like``'s dtype on
    the stack of the calling function (alloca): no allocator call, freed when
    the function returns.  Callers bound rows * cols (``STACK_MAX_BYTES``)."""
    if not (isinstance(rows, types.Integer) and isinstance(cols, types.Integer) and _float_array(like)):
        raise TypingError("stack_empty_2d: expected two integers and a float array")
    aty = types.Array(like.dtype, 2, "C")

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        r = context.cast(builder, args[0], sig.args[0], types.intp)
        c = context.cast(builder, args[1], sig.args[1], types.intp)
        ety = context.get_data_type(like.dtype)
        data = builder.alloca(ety, size=builder.mul(r, c))
        data.align = VECTOR_BYTES
        item = context.get_constant(types.intp, context.get_abi_sizeof(ety))
        arr = context.make_array(aty)(context, builder)
        context.populate_array(arr, data=data, shape=cgutils.pack_array(builder, [r, c], ty=i64),
                               strides=cgutils.pack_array(builder, [builder.mul(c, item), item], ty=i64),
                               itemsize=item, meminfo=None)
        return arr._getvalue()
    return aty(rows, cols, like), codegen


@intrinsic
def prefetch(typingctx, row, j):
    """Ask the CPU to bring the cache line of ``row[j]`` (1-d) into L2
    (``llvm.prefetch``, read, locality 2: prefetcht1 on x86); no effect on any
    value, and no fault for any address."""
    if not (_float_array(row, 1) and isinstance(j, types.Integer)):
        raise TypingError("prefetch: expected a 1-d float array and an index, got %s, %s" % (row, j))

    def codegen(context, builder, sig, args):
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        p = builder.bitcast(_pointer(context, builder, sig.args[0], args[0], args[1],
                                     context.get_value_type(sig.args[0].dtype)), i8p)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        builder.call(fn, [p, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.none(row, j), codegen


@intrinsic
def flat_rows(typingctx, arr):
    """The (n, m) array ``arr`` as its flat (n * m,) view (the same data; the
    caller checks that its rows are contiguous and follow each other: the
    elementwise kernels' _rows_flat)."""
    if not _float_array(arr, 2):
        raise TypingError("flat_rows: expected a 2-d float array, got %s" % arr)
    ret = types.Array(arr.dtype, 1, "C", readonly=not arr.mutable)

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        n, m = cgutils.unpack_tuple(builder, a.shape)
        out = context.make_array(ret)(context, builder)
        context.populate_array(out, data=a.data, shape=cgutils.pack_array(builder, [builder.mul(n, m)]),
                               strides=cgutils.pack_array(builder, [a.itemsize]), itemsize=a.itemsize,
                               meminfo=a.meminfo, parent=a.parent)
        return impl_ret_borrowed(context, builder, ret, out._getvalue())
    return ret(arr), codegen


#: largest scratch ``stack_empty_2d`` is used for (bytes)
STACK_MAX_BYTES = 16384


if config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT (debugging: the kernels run as Python): the same
    # operations on numpy arrays of one vector's lanes.  vfma rounds a * b + c
    # twice for float64 (numpy has no fused multiply-add); float32 goes through
    # float64, where a * b is exact.
    import numpy as _np

    def _lanes(arr):
        return VECTOR_BYTES // arr.itemsize

    def vlanes(arr):  # noqa: F811
        return _lanes(arr)

    def vzero(arr):  # noqa: F811
        return _np.zeros(_lanes(arr), arr.dtype)

    def vbcast(x, arr):  # noqa: F811
        return _np.full(_lanes(arr), x, arr.dtype)

    def vload(row, j):  # noqa: F811
        return row[j:j + _lanes(row)].copy()

    def vload_n(row, j, n):  # noqa: F811
        v = _np.zeros(_lanes(row), row.dtype)
        n = max(0, min(n, v.shape[0]))
        v[:n] = row[j:j + n]
        return v

    def vstore(row, j, v):  # noqa: F811
        row[j:j + v.shape[0]] = v

    def vstore_n(row, j, v, n):  # noqa: F811
        n = max(0, min(n, v.shape[0]))
        row[j:j + n] = v[:n]

    def vfma(a, b, c):  # noqa: F811
        return (a.astype(_np.float64) * b + c).astype(c.dtype)

    def prefetch(row, j):  # noqa: F811
        pass

    def flat_rows(arr):  # noqa: F811
        return arr.reshape(-1)

    def stack_empty_2d(rows, cols, like):  # noqa: F811
        return _np.empty((rows, cols), like.dtype)
