"""fn_exp and friends for the numba kernels: the numba twin of kernels/cython/fn_math.h.

The Cython twin's element loops call the inline, branch-free ``fn_exp`` of
fn_math.h (so gcc vectorises them) instead of libm's ``exp``; the numba kernels
call these functions, written operation for operation as the C (same constants,
same order, IEEE arithmetic: kernels/numba/_jit.py sets no fast-math flag), so
both twins get the same bits.  See fn_math.h for the method and its accuracy.

    fn_exp(x)       e^x, float64
    fn_sigmoid(z)   the stable logistic from one fn_exp(-|z|), float64
    fn_expf(x)      e^x in float32 arithmetic
    fn_sigmoidf(z)  the logistic in float32 arithmetic
"""
import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from ._jit import helper


def _bitcast(src, dst):
    @intrinsic
    def cast(typingctx, x):
        if x != src:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(dst))
        return dst(src), codegen
    return cast


_f64_bits = _bitcast(types.float64, types.int64)
_bits_f64 = _bitcast(types.int64, types.float64)
_f32_bits = _bitcast(types.float32, types.int32)
_bits_f32 = _bitcast(types.int32, types.float32)

_SHIFT = 6755399441055744.0        # 1.5 * 2^52


@helper
def fn_exp(x):
    """e^x (fn_math.h's fn_exp, the same operations in the same order)."""
    x = np.float64(x)
    xc = -746.0 if x < -746.0 else (710.0 if x > 710.0 else x)
    t = xc * 1.4426950408889634074 + _SHIFT
    n = t - _SHIFT
    r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10
    t1 = (n * 0.5 - 0.25) + _SHIFT
    ni = _f64_bits(t) - _f64_bits(np.float64(_SHIFT))
    n1 = _f64_bits(t1) - _f64_bits(np.float64(_SHIFT))
    n2 = ni - n1
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return (p * _bits_f64((n1 + 1023) << 52)) * _bits_f64((n2 + 1023) << 52)


@helper
def fn_sigmoid(z):
    """1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below, from one fn_exp."""
    z = np.float64(z)
    e = fn_exp(-z if z >= 0 else z)
    return 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)


@helper
def fn_expf(x):
    """e^x in float32 arithmetic (fn_math.h's fn_expf)."""
    f = np.float32
    x = f(x)
    xc = f(-104.0) if x < f(-104.0) else (f(89.0) if x > f(89.0) else x)
    shift = f(12582912.0)
    t = xc * f(1.44269504088896341) + shift
    n = t - shift
    r = (xc - n * f(0.693359375)) - n * f(-2.12194440e-4)
    t1 = (n * f(0.5) - f(0.25)) + shift
    ni = _f32_bits(t) - _f32_bits(shift)
    n1 = _f32_bits(t1) - _f32_bits(shift)
    n2 = ni - n1
    p = f(1.0 / 5040.0)
    p = p * r + f(1.0 / 720.0)
    p = p * r + f(1.0 / 120.0)
    p = p * r + f(1.0 / 24.0)
    p = p * r + f(1.0 / 6.0)
    p = p * r + f(0.5)
    p = p * r + f(1.0)
    p = p * r + f(1.0)
    # (numba widens int32 arithmetic to int64; the values fit, the cast narrows back)
    return (p * _bits_f32(np.int32((n1 + 127) << 23))) * _bits_f32(np.int32((n2 + 127) << 23))


@helper
def fn_sigmoidf(z):
    """The logistic in float32 arithmetic (fn_math.h's fn_sigmoidf)."""
    f = np.float32
    z = f(z)
    e = fn_expf(-z if z >= f(0.0) else z)
    return f(1.0) / (f(1.0) + e) if z >= f(0.0) else e / (f(1.0) + e)


def fn_exp_t(x):
    """e^x in x's own precision: fn_expf for float32, fn_exp otherwise (as the
    Cython twin's exp_inplace_c picks fn_expv_f32 / fn_expv_f64)."""
    raise NotImplementedError("only for numba-compiled code")


def fn_sigmoid_t(z):
    """The logistic in z's own precision: fn_sigmoidf for float32, fn_sigmoid
    otherwise (the Cython twin's float32 sigmoid forward runs in float lanes)."""
    raise NotImplementedError("only for numba-compiled code")


@overload(fn_exp_t)
def _fn_exp_t(x):
    if x == types.float32:
        return lambda x: fn_expf(x)
    return lambda x: fn_exp(x)


@overload(fn_sigmoid_t)
def _fn_sigmoid_t(z):
    if z == types.float32:
        return lambda z: fn_sigmoidf(z)
    return lambda z: fn_sigmoid(z)
