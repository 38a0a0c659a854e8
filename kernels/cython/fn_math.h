/* fastnet: branch-free elementary functions for the Cython kernels' element loops.
 *
 * glibc's exp is a call per element, which keeps gcc from vectorising the loops
 * of the exp-based activations (sigmoid, elu, swish).  fn_exp is inline, has no branches and no table, and uses only
 * operations every x86-64 vector unit has (double add / multiply, 64-bit integer
 * add / subtract / shift left), so the activation loops of
 * _generated_elementwise (compiled for SSE2, AVX2 and AVX-512, picked at import)
 * vectorise (the bias_act_forward rows of bench/REPORT.md's kernel table and its
 * step breakdown time them).
 *
 * float32 arrays: the sigmoid forward and the exponentials of softmax (one
 * vector loop over a block of rows) use fn_expf / fn_sigmoidf below, in float
 * lanes (twice as many per vector, a degree-7 polynomial): within 1 ulp of exp
 * rounded to float (2 ulp for the sigmoid) over their whole range.  The softmax
 * cross-entropy head (losses.pyx) takes its exponentials from the same vector
 * loop in the array dtype (fn_expf or fn_exp), its numba twin from fn_math.py's
 * ports: the two give the same bits.
 *
 * Method: x = n ln2 + r with n = round(x / ln2) (the 1.5 * 2^52 shift trick) and
 * |r| <= ln2 / 2 (Cody-Waite: ln2 split into a high part with trailing zero bits
 * and a low part), e^r by its Taylor series to degree 13 (truncation < 5e-18
 * relative), then e^r * 2^n1 * 2^n2 with n1 = floor(n / 2), n2 = n - n1 built in
 * the exponent bits (two factors: 2^n itself leaves the exponent range for
 * |n| >= 1023, the product overflows to inf or rounds into the subnormals as
 * exp does).  Inputs are clamped to [-746, 710] first (e^x is 0 / inf beyond);
 * NaN passes through (every comparison with it is false).
 *
 * Accuracy: within 1 ulp of glibc's exp over [-745, 710] (every 3.7e-4, and 2M
 * random points in [-1, 1]), the same inf / 0 / NaN at the edges; the
 * activations through it are checked against the NumPy reference, edges
 * included, by tests/test_cython_backend.py
 * (test_activation_loops_same_bits_for_every_instruction_set_and_accurate).
 */
#ifndef FASTNET_FN_MATH_H
#define FASTNET_FN_MATH_H
#include <stdint.h>
#include <string.h>

static inline double fn_bits_to_double(int64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static inline int64_t fn_double_to_bits(double d) {
    int64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static inline double fn_exp(double x) {
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01;  /* fdlibm's split of ln 2 */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shift = 6755399441055744.0;           /* 1.5 * 2^52 */
    double xc = x < -746.0 ? -746.0 : (x > 710.0 ? 710.0 : x);
    double t = xc * log2e + shift;                     /* shift + round(x / ln2) */
    double n = t - shift;
    double r = (xc - n * ln2_hi) - n * ln2_lo;
    double t1 = (n * 0.5 - 0.25) + shift;              /* shift + floor(n / 2) */
    int64_t ni = fn_double_to_bits(t) - fn_double_to_bits(shift);
    int64_t n1 = fn_double_to_bits(t1) - fn_double_to_bits(shift);
    int64_t n2 = ni - n1;
    double p = 1.0 / 6227020800.0;                     /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    return (p * fn_bits_to_double((n1 + 1023) << 52)) * fn_bits_to_double((n2 + 1023) << 52);
}

/* 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below (kernels/defs.py's stable
   sigmoid) with the one exponential e^-|z| both branches need. */
static inline double fn_sigmoid(double z) {
    double e = fn_exp(z >= 0 ? -z : z);
    return z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

static inline float fn_bits_to_float(int32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline int32_t fn_float_to_bits(float f) {
    int32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* fn_exp's method in float: clamp to [-104, 89] (e^x is 0 / inf beyond, in
   float), ln 2 in cephes' split (its high part has 9 bits, so n * ln2_hi is
   exact), e^r to degree 7 (truncation < 6e-9 relative), the same two-factor
   scaling.  Checked against (float) exp((double) x) at every float in
   [-1e-3, 1e-3] and every 256th elsewhere in [-120, 120]: at most 1 ulp. */
static inline float fn_expf(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;
    const float ln2_lo = -2.12194440e-4f;
    const float shift = 12582912.0f;                    /* 1.5 * 2^23 */
    float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
    float t = xc * log2e + shift;
    float n = t - shift;
    float r = (xc - n * ln2_hi) - n * ln2_lo;
    float t1 = (n * 0.5f - 0.25f) + shift;
    int32_t ni = fn_float_to_bits(t) - fn_float_to_bits(shift);
    int32_t n1 = fn_float_to_bits(t1) - fn_float_to_bits(shift);
    int32_t n2 = ni - n1;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return (p * fn_bits_to_float((n1 + 127) << 23)) * fn_bits_to_float((n2 + 127) << 23);
}

static inline float fn_sigmoidf(float z) {
    float e = fn_expf(z >= 0 ? -z : z);
    return z >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

#endif
