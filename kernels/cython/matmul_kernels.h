/* fastnet: the C half of kernels/cython/matmul.pyx (included there with
 * cdef extern from "matmul_kernels.h"): the register-blocked micro-kernels per
 * instruction set, the narrow-m kernels, and fastnet_mm_select, which picks
 * them at import time.  Static definitions: one translation unit (matmul.c)
 * includes this header. */
#ifndef FASTNET_MATMUL_KERNELS_H
#define FASTNET_MATMUL_KERNELS_H

#include <stddef.h>
/* Register-blocked micro-kernels, one per instruction set, selected at import
   time (fastnet_mm_select): C[0:MR, 0:NR] (ldc) (+)= sum_{p<kc} a[r*a_r + p*a_p] * b[p*b_p + j].
   Plain C loops with compile-time trip counts: gcc -O3 unrolls them, keeps
   acc in vector registers and broadcasts a[r, p] times an NR-wide row of b.
   The AVX2 / AVX-512 variants are compiled with function target attributes,
   so the module itself stays portable (baseline x86-64 = SSE2). */
static int fn_ukr_pk = 1;  /* benchmark hook: the packed-panel loop on / off */
#define FN_UKR(NAME, T, MRV, VL, NV, ATTR)                                            \
ATTR static void NAME(ptrdiff_t kc, const T* a, ptrdiff_t a_r, ptrdiff_t a_p,        \
                      const T* b, ptrdiff_t b_p, T* c, ptrdiff_t ldc, int accumulate) \
{                                                                                    \
    typedef T vt __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));   \
    vt acc[MRV][NV];                                                                 \
    vt bv[NV];                                                                       \
    ptrdiff_t p, r, v;                                                               \
    for (r = 0; r < MRV; r++)                                                        \
        for (v = 0; v < NV; v++)                                                     \
            acc[r][v] = accumulate ? *(const vt*)(c + r * ldc + v * VL) : (vt){0};   \
    if (fn_ukr_pk && a_r == 1 && a_p == MRV && b_p == NV * VL) {                     \
        /* packed panels: constant strides, so gcc addresses A and B by     \
           immediate offsets and keeps one broadcast register (the generic  \
           loop below spilled strides and copied accumulators every step) */ \
        for (p = 0; p < kc; p++) {                                                   \
            const T* bp = b + p * (NV * VL);                                         \
            const T* ap = a + p * MRV;                                               \
            for (v = 0; v < NV; v++) bv[v] = *(const vt*)(bp + v * VL);              \
            for (r = 0; r < MRV; r++) {                                              \
                const vt av = ap[r] - (vt){0};  /* a broadcast (x - 0 is x) */         \
                for (v = 0; v < NV; v++) acc[r][v] += av * bv[v];                    \
            }                                                                        \
        }                                                                            \
    } else {                                                                         \
    for (p = 0; p < kc; p++) {                                                       \
        const T* bp = b + p * b_p;                                                   \
        const T* ap = a + p * a_p;                                                   \
        for (v = 0; v < NV; v++) bv[v] = *(const vt*)(bp + v * VL);                  \
        for (r = 0; r < MRV; r++) {                                                  \
            T av = ap[r * a_r];                                                      \
            for (v = 0; v < NV; v++) acc[r][v] += av * bv[v];                        \
        }                                                                            \
    }                                                                                \
    }                                                                                \
    for (r = 0; r < MRV; r++)                                                        \
        for (v = 0; v < NV; v++) *(vt*)(c + r * ldc + v * VL) = acc[r][v];           \
}
/* One row of C over all m columns, axpy form (c[0:m] += a[p] * b[p, 0:m], four
   values of p per pass over c, in order): B streams contiguously row by row,
   for the rows left over by the MR x NR tiles (batch-1 inference). */
#define FN_ROW(NAME, T, ATTR)                                                        \
ATTR static void NAME(ptrdiff_t k, const T* a, ptrdiff_t a_p, const T* b,            \
                      ptrdiff_t b_p, T* __restrict c, ptrdiff_t m)                   \
{                                                                                    \
    ptrdiff_t p = 0, j;                                                              \
    for (j = 0; j < m; j++) c[j] = 0;                                                \
    for (; p + 4 <= k; p += 4) {                                                     \
        const T a0 = a[p * a_p], a1 = a[(p + 1) * a_p];                              \
        const T a2 = a[(p + 2) * a_p], a3 = a[(p + 3) * a_p];                        \
        const T* __restrict b0 = b + p * b_p;                                        \
        const T* __restrict b1 = b0 + b_p;                                           \
        const T* __restrict b2 = b1 + b_p;                                           \
        const T* __restrict b3 = b2 + b_p;                                           \
        for (j = 0; j < m; j++)                                                      \
            c[j] = (((c[j] + a0 * b0[j]) + a1 * b1[j]) + a2 * b2[j]) + a3 * b3[j];   \
    }                                                                                \
    for (; p < k; p++) {                                                             \
        const T a0 = a[p * a_p];                                                     \
        const T* __restrict b0 = b + p * b_p;                                        \
        for (j = 0; j < m; j++) c[j] = c[j] + a0 * b0[j];                            \
    }                                                                                \
}
/* R (2..4) rows of C at once in FN_ROW's axpy form: each vector of B, loaded once,
   serves every row (the rows left over by the MR-row tiles: a predict of a few
   samples); the same operations per element as FN_ROW, so a row's bits do not
   depend on how many rows go with it. */
#define FN_ROWS(NAME, T, R, VL, ATTR)                                                \
ATTR static void NAME(ptrdiff_t k, const T* a, ptrdiff_t a_r, ptrdiff_t a_p,         \
                      const T* b, ptrdiff_t b_p, T* c, ptrdiff_t ldc, ptrdiff_t m)   \
{                                                                                    \
    typedef T vt __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));   \
    const ptrdiff_t mv = m - m % VL;                                                 \
    ptrdiff_t p = 0, j, r, q;                                                        \
    T av[R][4];                                                                      \
    const T* bq[4];                                                                  \
    for (r = 0; r < R; r++)                                                          \
        for (j = 0; j < m; j++) c[r * ldc + j] = 0;                                  \
    for (; p + 4 <= k; p += 4) {                                                     \
        for (q = 0; q < 4; q++) {                                                    \
            bq[q] = b + (p + q) * b_p;                                               \
            for (r = 0; r < R; r++) av[r][q] = a[r * a_r + (p + q) * a_p];           \
        }                                                                            \
        for (j = 0; j < mv; j += VL) {                                               \
            const vt b0 = *(const vt*)(bq[0] + j), b1 = *(const vt*)(bq[1] + j);     \
            const vt b2 = *(const vt*)(bq[2] + j), b3 = *(const vt*)(bq[3] + j);     \
            for (r = 0; r < R; r++) {                                                \
                vt x = *(vt*)(c + r * ldc + j);                                      \
                x = (((x + av[r][0] * b0) + av[r][1] * b1) + av[r][2] * b2) + av[r][3] * b3; \
                *(vt*)(c + r * ldc + j) = x;                                         \
            }                                                                        \
        }                                                                            \
        for (j = mv; j < m; j++)                                                     \
            for (r = 0; r < R; r++)                                                  \
                c[r * ldc + j] = (((c[r * ldc + j] + av[r][0] * bq[0][j]) + av[r][1] * bq[1][j]) \
                                  + av[r][2] * bq[2][j]) + av[r][3] * bq[3][j];      \
    }                                                                                \
    for (; p < k; p++) {                                                             \
        const T* b0 = b + p * b_p;                                                   \
        for (r = 0; r < R; r++) {                                                    \
            const T a0 = a[r * a_r + p * a_p];                                       \
            for (j = 0; j < m; j++) c[r * ldc + j] = c[r * ldc + j] + a0 * b0[j];    \
        }                                                                            \
    }                                                                                \
}
typedef void (*fn_rows_f32_t)(ptrdiff_t, const float*, ptrdiff_t, ptrdiff_t, const float*,
                              ptrdiff_t, float*, ptrdiff_t, ptrdiff_t);
typedef void (*fn_rows_f64_t)(ptrdiff_t, const double*, ptrdiff_t, ptrdiff_t, const double*,
                              ptrdiff_t, double*, ptrdiff_t, ptrdiff_t);
#define FN_ROWS_SET(SUF, VL32, VL64, ATTR)                                           \
FN_ROWS(fn_rows2_f32_##SUF, float, 2, VL32, ATTR)                                    \
FN_ROWS(fn_rows3_f32_##SUF, float, 3, VL32, ATTR)                                    \
FN_ROWS(fn_rows4_f32_##SUF, float, 4, VL32, ATTR)                                    \
FN_ROWS(fn_rows2_f64_##SUF, double, 2, VL64, ATTR)                                   \
FN_ROWS(fn_rows3_f64_##SUF, double, 3, VL64, ATTR)                                   \
FN_ROWS(fn_rows4_f64_##SUF, double, 4, VL64, ATTR)                                   \
static const fn_rows_f32_t fn_rows_f32_##SUF[5] = {0, 0, fn_rows2_f32_##SUF,          \
    fn_rows3_f32_##SUF, fn_rows4_f32_##SUF};                                         \
static const fn_rows_f64_t fn_rows_f64_##SUF[5] = {0, 0, fn_rows2_f64_##SUF,          \
    fn_rows3_f64_##SUF, fn_rows4_f64_##SUF};
FN_ROWS_SET(base, 4, 2, )
typedef void (*fn_row_f32_t)(ptrdiff_t, const float*, ptrdiff_t, const float*, ptrdiff_t,
                             float*, ptrdiff_t);
typedef void (*fn_row_f64_t)(ptrdiff_t, const double*, ptrdiff_t, const double*, ptrdiff_t,
                             double*, ptrdiff_t);
FN_ROW(fn_row_f32_base, float, )
FN_ROW(fn_row_f64_base, double, )
typedef void (*fn_ukr_f32_t)(ptrdiff_t, const float*, ptrdiff_t, ptrdiff_t, const float*,
                             ptrdiff_t, float*, ptrdiff_t, int);
typedef void (*fn_ukr_f64_t)(ptrdiff_t, const double*, ptrdiff_t, ptrdiff_t, const double*,
                             ptrdiff_t, double*, ptrdiff_t, int);
FN_UKR(fn_ukr_f32_base, float, 4, 4, 2, )
FN_UKR(fn_ukr_f64_base, double, 4, 2, 2, )
FN_UKR(fn_ukr1_f32_base, float, 1, 4, 2, )
FN_UKR(fn_ukr1_f64_base, double, 1, 2, 2, )
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
#define FN_MM_X86 1
FN_UKR(fn_ukr_f32_avx2, float, 6, 8, 2, __attribute__((target("avx2,fma"))))
FN_UKR(fn_ukr_f64_avx2, double, 6, 4, 2, __attribute__((target("avx2,fma"))))
FN_UKR(fn_ukr1_f32_avx2, float, 1, 8, 2, __attribute__((target("avx2,fma"))))
FN_UKR(fn_ukr1_f64_avx2, double, 1, 4, 2, __attribute__((target("avx2,fma"))))
FN_ROW(fn_row_f32_avx2, float, __attribute__((target("avx2,fma"))))
FN_ROW(fn_row_f64_avx2, double, __attribute__((target("avx2,fma"))))
FN_ROWS_SET(avx2, 8, 4, __attribute__((target("avx2,fma"))))
FN_UKR(fn_ukr_f32_avx512, float, 8, 16, 2, __attribute__((target("avx512f,avx512vl,avx2,fma"))))
FN_UKR(fn_ukr_f64_avx512, double, 8, 8, 2, __attribute__((target("avx512f,avx512vl,avx2,fma"))))
FN_UKR(fn_ukr1_f32_avx512, float, 1, 16, 2, __attribute__((target("avx512f,avx512vl,avx2,fma"))))
FN_UKR(fn_ukr1_f64_avx512, double, 1, 8, 2, __attribute__((target("avx512f,avx512vl,avx2,fma"))))
FN_ROW(fn_row_f32_avx512, float, __attribute__((target("avx512f,avx512vl,avx2,fma"))))
FN_ROW(fn_row_f64_avx512, double, __attribute__((target("avx512f,avx512vl,avx2,fma"))))
FN_ROWS_SET(avx512, 16, 8, __attribute__((target("avx512f,avx512vl,avx2,fma"))))
/* Narrow products (m <= 4 vectors: every column of C in registers), AVX-512 / AVX2:
   C[0:R, 0:m] (ldc) = sum_{p<k} a[r*a_r + p*a_p] * b[p*b_p + 0:m] for R rows,
   the last vector of each row loaded and stored under a mask (no padded copy of
   B, no edge tile through a buffer).  p runs in order from 0 with one fused
   multiply-add per step, exactly as FN_UKR / FN_ROW, so the bits are the same
   whichever path computes a tile.  One function per (R, NV), R * NV <= 24. */
#include <immintrin.h>
/* _narrow_bt's stack copy of B^T is filled by loops whose bound gcc cannot
   relate to its size: without this, gcc 12 warns that the const pointer passed
   on "may be used uninitialized" (every element read is written first). */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define FN_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
/* flavours: the vector type, mask type and operations of one (ISA, dtype) */
#define N512S_VT __m512
#define N512S_MT __mmask16
#define N512S_MASK(tail) ((__mmask16) (tail))
#define N512S_ZERO() _mm512_setzero_ps()
#define N512S_LOAD(p) _mm512_loadu_ps(p)
#define N512S_MLOAD(m, p) _mm512_maskz_loadu_ps((m), (p))
#define N512S_TLOAD(m, n, p) N512S_MLOAD((m), (p))
#define N512S_SET1(x) _mm512_set1_ps(x)
#define N512S_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define N512S_STORE(p, v) _mm512_storeu_ps((p), (v))
#define N512S_MSTORE(p, m, n, v) _mm512_mask_storeu_ps((p), (m), (v))
#define N512D_VT __m512d
#define N512D_MT __mmask8
#define N512D_MASK(tail) ((__mmask8) (tail))
#define N512D_ZERO() _mm512_setzero_pd()
#define N512D_LOAD(p) _mm512_loadu_pd(p)
#define N512D_MLOAD(m, p) _mm512_maskz_loadu_pd((m), (p))
#define N512D_TLOAD(m, n, p) N512D_MLOAD((m), (p))
#define N512D_SET1(x) _mm512_set1_pd(x)
#define N512D_FMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define N512D_STORE(p, v) _mm512_storeu_pd((p), (v))
#define N512D_MSTORE(p, m, n, v) _mm512_mask_storeu_pd((p), (m), (v))
/* AVX2's last vector of a row is stored as 4 + 2 + 1 lanes of plain stores, and
   loaded plainly when it is whole (_TLOAD): a masked store (vmaskmovps) is
   microcoded on AMD's cores, and the narrow kernel stores one per row (AVX2's
   matmul_tn 784x10x30, the seed step's weight gradient, in bench/REPORT-avx2.md's
   GEMM table).  n is a constant of the call: the branches predict. */
__attribute__((target("avx2"))) static inline void fn_store_n_ps(float* p, __m256 v, int n)
{
    __m128 h = _mm256_castps256_ps128(v);
    if (n == 8) { _mm256_storeu_ps(p, v); return; }
    if (n >= 4) { _mm_storeu_ps(p, h); h = _mm256_extractf128_ps(v, 1); p += 4; n -= 4; }
    if (n >= 2) { _mm_storel_pi((__m64*) p, h); h = _mm_movehl_ps(h, h); p += 2; n -= 2; }
    if (n) _mm_store_ss(p, h);
}
__attribute__((target("avx2"))) static inline void fn_store_n_pd(double* p, __m256d v, int n)
{
    __m128d h = _mm256_castpd256_pd128(v);
    if (n == 4) { _mm256_storeu_pd(p, v); return; }
    if (n >= 2) { _mm_storeu_pd(p, h); h = _mm256_extractf128_pd(v, 1); p += 2; n -= 2; }
    if (n) _mm_store_sd(p, h);
}
/* AVX2: masks are vectors of all-ones lanes (the first popcount(tail) lanes) */
#define N256S_VT __m256
#define N256S_MT __m256i
#define N256S_MASK(tail) _mm256_cmpgt_epi32(_mm256_set1_epi32(__builtin_popcount(tail)),                                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define N256S_ZERO() _mm256_setzero_ps()
#define N256S_LOAD(p) _mm256_loadu_ps(p)
#define N256S_MLOAD(m, p) _mm256_maskload_ps((p), (m))
#define N256S_TLOAD(m, n, p) ((n) == 8 ? N256S_LOAD(p) : N256S_MLOAD((m), (p)))
#define N256S_SET1(x) _mm256_set1_ps(x)
#define N256S_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define N256S_STORE(p, v) _mm256_storeu_ps((p), (v))
#define N256S_MSTORE(p, m, n, v) fn_store_n_ps((p), (v), (n))
#define N256D_VT __m256d
#define N256D_MT __m256i
#define N256D_MASK(tail) _mm256_cmpgt_epi64(_mm256_set1_epi64x(__builtin_popcount(tail)),                                                 _mm256_setr_epi64x(0, 1, 2, 3))
#define N256D_ZERO() _mm256_setzero_pd()
#define N256D_LOAD(p) _mm256_loadu_pd(p)
#define N256D_MLOAD(m, p) _mm256_maskload_pd((p), (m))
#define N256D_TLOAD(m, n, p) ((n) == 4 ? N256D_LOAD(p) : N256D_MLOAD((m), (p)))
#define N256D_SET1(x) _mm256_set1_pd(x)
#define N256D_FMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define N256D_STORE(p, v) _mm256_storeu_pd((p), (v))
#define N256D_MSTORE(p, m, n, v) fn_store_n_pd((p), (v), (n))
#define FN_AVX2 __attribute__((target("avx2,fma")))
/* FN_NARROW_G: the kernel with A's addressing left to three hooks, so one body
   serves A given by strides (FN_NARROW) and A given by row pointers (FN_NARROW_RP:
   element (r, p) at a[r][a_off + p], rows gathered in place; FN_NARROW_PP:
   element (r, p) at a[p][a_off + r], the transposed operand of matmul_tn). */
#define FN_NARROW_G(NAME, T, F, ATTR, VL, R, NV, APARAMS, ADECL, AELEM)                  ATTR static void NAME(ptrdiff_t k, APARAMS,                                                                    const T* b, ptrdiff_t b_p, T* c, ptrdiff_t ldc,                                           unsigned int tail)                                                 {                                                                                            F##_VT acc[R][NV];                                                                       F##_VT bv[NV];                                                                           const F##_MT mk = F##_MASK(tail);                                                        const int tail_n = __builtin_popcount(tail); (void) tail_n;                                                        ptrdiff_t p;                                                                             int r, v;                                                                                _Pragma("GCC unroll 32") for (r = 0; r < R; r++)                                             _Pragma("GCC unroll 4") for (v = 0; v < NV; v++)                                             acc[r][v] = F##_ZERO();                                                          for (p = 0; p < k; p++) {                                                                    const T* bp = b + p * b_p;                                                               ADECL                                                                                    _Pragma("GCC unroll 4") for (v = 0; v < NV - 1; v++)                                         bv[v] = F##_LOAD(bp + v * VL);                                                       bv[NV - 1] = F##_TLOAD(mk, tail_n, bp + (NV - 1) * VL);                                          _Pragma("GCC unroll 32") for (r = 0; r < R; r++) {                                           const F##_VT av = F##_SET1(AELEM(r));                                                    _Pragma("GCC unroll 4") for (v = 0; v < NV; v++)                                             acc[r][v] = F##_FMA(av, bv[v], acc[r][v]);                                       }                                                                                    }                                                                                        _Pragma("GCC unroll 32") for (r = 0; r < R; r++) {                                           _Pragma("GCC unroll 4") for (v = 0; v < NV - 1; v++)                                         F##_STORE(c + r * ldc + v * VL, acc[r][v]);                                          F##_MSTORE(c + r * ldc + (NV - 1) * VL, mk, tail_n, acc[r][NV - 1]);                         }                                                                                    }
#define FN_AP_STD(T) const T* a, ptrdiff_t a_r, ptrdiff_t a_p
#define FN_AP_PTR(T) const T* const* a, ptrdiff_t a_off
#define FN_AE_STD(r) ap[(r) * a_r]
#define FN_AE_RP(r) a[r][ao]
#define FN_AE_PP(r) ap[r]
#define FN_NARROW(NAME, T, F, ATTR, VL, R, NV) FN_NARROW_G(NAME, T, F, ATTR, VL, R, NV,         FN_AP_STD(T), const T* ap = a + p * a_p;, FN_AE_STD)
#define FN_NARROW_RP(NAME, T, F, ATTR, VL, R, NV) FN_NARROW_G(NAME, T, F, ATTR, VL, R, NV,         FN_AP_PTR(T), const ptrdiff_t ao = a_off + p;, FN_AE_RP)
#define FN_NARROW_PP(NAME, T, F, ATTR, VL, R, NV) FN_NARROW_G(NAME, T, F, ATTR, VL, R, NV,         FN_AP_PTR(T), const T* ap = a[p] + a_off;, FN_AE_PP)
/* (R, NV) pairs.  AVX-512 (32 registers): rows per block up to 8 / 12 / 8 / 6 for
   1 / 2 / 3 / 4 vectors (one vector: 8 rows ran faster than 4, 6, 12 or 16 on the
   output layers' products, bench/REPORT.md's GEMM table); AVX2 (16): 12 / 5 / 3 / 2 */
#define FN_NRW_LIST(X)                                                                       X(1,1) X(2,1) X(3,1) X(4,1) X(5,1) X(6,1) X(7,1) X(8,1)                                                            X(1,2) X(2,2) X(3,2) X(4,2) X(5,2) X(6,2) X(7,2) X(8,2) X(9,2) X(10,2) X(11,2)           X(12,2)                                                                                  X(1,3) X(2,3) X(3,3) X(4,3) X(5,3) X(6,3) X(7,3) X(8,3)                                  X(1,4) X(2,4) X(3,4) X(4,4) X(5,4) X(6,4)
#define FN_NRW_LIST2(X)                                                                      X(1,1) X(2,1) X(3,1) X(4,1) X(5,1) X(6,1) X(7,1) X(8,1) X(9,1) X(10,1) X(11,1)           X(12,1)                                                                                  X(1,2) X(2,2) X(3,2) X(4,2) X(5,2)                                                       X(1,3) X(2,3) X(3,3)                                                                     X(1,4) X(2,4)
/* the three addressings of A for one (ISA, dtype, R, NV): fn_nrw (strides),
   fn_nrwr (row pointers), fn_nrwp (per-p pointers) */
#define FN_NRW_ALL3(SFX, T, F, ATTR, VL, R, NV)                                              FN_NARROW(fn_nrw##SFX, T, F, ATTR, VL, R, NV)                                            FN_NARROW_RP(fn_nrwr##SFX, T, F, ATTR, VL, R, NV)                                        FN_NARROW_PP(fn_nrwp##SFX, T, F, ATTR, VL, R, NV)
#define FN_NRW_DEF32(R, NV) FN_NRW_ALL3(_f32_##R##_##NV, float, N512S, FN_AVX512, 16, R, NV)
#define FN_NRW_DEF64(R, NV) FN_NRW_ALL3(_f64_##R##_##NV, double, N512D, FN_AVX512, 8, R, NV)
#define FN_NRW2_DEF32(R, NV) FN_NRW_ALL3(2_f32_##R##_##NV, float, N256S, FN_AVX2, 8, R, NV)
#define FN_NRW2_DEF64(R, NV) FN_NRW_ALL3(2_f64_##R##_##NV, double, N256D, FN_AVX2, 4, R, NV)
FN_NRW_LIST(FN_NRW_DEF32)
FN_NRW_LIST(FN_NRW_DEF64)
FN_NRW_LIST2(FN_NRW2_DEF32)
FN_NRW_LIST2(FN_NRW2_DEF64)
/* table entries [NV - 1][R - 1] of each addressing */
#define FN_NRW_ENT32(R, NV) [NV - 1][R - 1] = fn_nrw_f32_##R##_##NV,
#define FN_NRW_ENT64(R, NV) [NV - 1][R - 1] = fn_nrw_f64_##R##_##NV,
#define FN_NRW2_ENT32(R, NV) [NV - 1][R - 1] = fn_nrw2_f32_##R##_##NV,
#define FN_NRW2_ENT64(R, NV) [NV - 1][R - 1] = fn_nrw2_f64_##R##_##NV,
#define FN_NRWr_ENT32(R, NV) [NV - 1][R - 1] = fn_nrwr_f32_##R##_##NV,
#define FN_NRWr_ENT64(R, NV) [NV - 1][R - 1] = fn_nrwr_f64_##R##_##NV,
#define FN_NRWr2_ENT32(R, NV) [NV - 1][R - 1] = fn_nrwr2_f32_##R##_##NV,
#define FN_NRWr2_ENT64(R, NV) [NV - 1][R - 1] = fn_nrwr2_f64_##R##_##NV,
#define FN_NRWp_ENT32(R, NV) [NV - 1][R - 1] = fn_nrwp_f32_##R##_##NV,
#define FN_NRWp_ENT64(R, NV) [NV - 1][R - 1] = fn_nrwp_f64_##R##_##NV,
#define FN_NRWp2_ENT32(R, NV) [NV - 1][R - 1] = fn_nrwp2_f32_##R##_##NV,
#define FN_NRWp2_ENT64(R, NV) [NV - 1][R - 1] = fn_nrwp2_f64_##R##_##NV,
/* Transposing pack (matmul_nt's B^T panels, matmul's A panels): dst[p*w + r] =
   src[r*ld + p] for r < rows, p < kc, in 8 x 8 (float32) / 4 x 4 (float64) blocks
   transposed in registers: each source row read 32 bytes at a time, each panel
   row written whole, where the scalar loop read one element per store a cache
   line apart (matmul_nt 128x256x512 on AVX2: 12% slower than matmul; see
   bench/REPORT-avx2.md's GEMM table).  The leftover rows and p go element by
   element; a plain copy, so the product's bits do not change. */
/* a[0:8] (8 rows of 8 floats) -> its transpose, in registers */
__attribute__((target("avx2"))) static inline void fn_tr8_f32(__m256* a)
{
    __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
    __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
    __m256 t4 = _mm256_unpacklo_ps(a[4], a[5]), t5 = _mm256_unpackhi_ps(a[4], a[5]);
    __m256 t6 = _mm256_unpacklo_ps(a[6], a[7]), t7 = _mm256_unpackhi_ps(a[6], a[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    a[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    a[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    a[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    a[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    a[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    a[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    a[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    a[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
__attribute__((target("avx2"))) static void fn_pack_t_f32_avx2(
        const float* src, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t kc, ptrdiff_t w, float* dst)
{
    const ptrdiff_t r8 = rows - rows % 8, k8 = kc - kc % 8;
    ptrdiff_t r0, p0, r, p, q;
    __m256 a[8];
    if (rows == 6) {
        /* AVX2's 6-row A panels: two zero rows make the 8 x 8 block; each panel row
           is stored 8 wide (its last 2 lanes overwritten by the next row's store), the
           block's last as 6 lanes (nothing written past the panel) */
        for (p0 = 0; p0 < k8; p0 += 8) {
            for (q = 0; q < 6; q++) a[q] = _mm256_loadu_ps(src + q * ld + p0);
            a[6] = a[7] = _mm256_setzero_ps();
            fn_tr8_f32(a);
            for (q = 0; q < 7; q++) _mm256_storeu_ps(dst + (p0 + q) * w, a[q]);
            fn_store_n_ps(dst + (p0 + 7) * w, a[7], 6);
        }
        for (r = 0; r < 6; r++)
            for (p = k8; p < kc; p++) dst[p * w + r] = src[r * ld + p];
        return;
    }
    for (r0 = 0; r0 < r8; r0 += 8) {
        for (p0 = 0; p0 < k8; p0 += 8) {
            for (q = 0; q < 8; q++) a[q] = _mm256_loadu_ps(src + (r0 + q) * ld + p0);
            fn_tr8_f32(a);
            for (q = 0; q < 8; q++) _mm256_storeu_ps(dst + (p0 + q) * w + r0, a[q]);
        }
        for (r = r0; r < r0 + 8; r++)
            for (p = k8; p < kc; p++) dst[p * w + r] = src[r * ld + p];
    }
    for (r = r8; r < rows; r++)
        for (p = 0; p < kc; p++) dst[p * w + r] = src[r * ld + p];
}
__attribute__((target("avx2"))) static void fn_pack_t_f64_avx2(
        const double* src, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t kc, ptrdiff_t w, double* dst)
{
    const ptrdiff_t r4 = rows - rows % 4, k4 = kc - kc % 4;
    ptrdiff_t r0, p0, r, p;
    for (r0 = 0; r0 < r4; r0 += 4) {
        const double* s = src + r0 * ld;
        for (p0 = 0; p0 < k4; p0 += 4) {
            __m256d a0 = _mm256_loadu_pd(s + p0), a1 = _mm256_loadu_pd(s + ld + p0);
            __m256d a2 = _mm256_loadu_pd(s + 2 * ld + p0), a3 = _mm256_loadu_pd(s + 3 * ld + p0);
            __m256d t0 = _mm256_unpacklo_pd(a0, a1), t1 = _mm256_unpackhi_pd(a0, a1);
            __m256d t2 = _mm256_unpacklo_pd(a2, a3), t3 = _mm256_unpackhi_pd(a2, a3);
            double* d = dst + p0 * w + r0;
            _mm256_storeu_pd(d, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(d + w, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(d + 2 * w, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(d + 3 * w, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
        for (r = r0; r < r0 + 4; r++)
            for (p = k4; p < kc; p++) dst[p * w + r] = src[r * ld + p];
    }
    for (r = r4; r < rows; r++)
        for (p = 0; p < kc; p++) dst[p * w + r] = src[r * ld + p];
}
#else
#define FN_MM_X86 0
#endif
typedef void (*fn_nrw_f32_t)(ptrdiff_t, const float*, ptrdiff_t, ptrdiff_t, const float*,
                             ptrdiff_t, float*, ptrdiff_t, unsigned int);
typedef void (*fn_nrw_f64_t)(ptrdiff_t, const double*, ptrdiff_t, ptrdiff_t, const double*,
                             ptrdiff_t, double*, ptrdiff_t, unsigned int);
typedef void (*fn_nrwx_f32_t)(ptrdiff_t, const float* const*, ptrdiff_t, const float*,
                              ptrdiff_t, float*, ptrdiff_t, unsigned int);
typedef void (*fn_nrwx_f64_t)(ptrdiff_t, const double* const*, ptrdiff_t, const double*,
                              ptrdiff_t, double*, ptrdiff_t, unsigned int);
#if FN_MM_X86
static const fn_nrw_f32_t fn_nrw_f32_all[2][4][16] = {{ FN_NRW_LIST2(FN_NRW2_ENT32) },
                                                      { FN_NRW_LIST(FN_NRW_ENT32) }};
static const fn_nrw_f64_t fn_nrw_f64_all[2][4][16] = {{ FN_NRW_LIST2(FN_NRW2_ENT64) },
                                                      { FN_NRW_LIST(FN_NRW_ENT64) }};
/* [variant: 0 row pointers, 1 per-p pointers][ISA][NV - 1][R - 1] */
static const fn_nrwx_f32_t fn_nrwx_f32_all[2][2][4][16] = {
    {{ FN_NRW_LIST2(FN_NRWr2_ENT32) }, { FN_NRW_LIST(FN_NRWr_ENT32) }},
    {{ FN_NRW_LIST2(FN_NRWp2_ENT32) }, { FN_NRW_LIST(FN_NRWp_ENT32) }}};
static const fn_nrwx_f64_t fn_nrwx_f64_all[2][2][4][16] = {
    {{ FN_NRW_LIST2(FN_NRWr2_ENT64) }, { FN_NRW_LIST(FN_NRWr_ENT64) }},
    {{ FN_NRW_LIST2(FN_NRWp2_ENT64) }, { FN_NRW_LIST(FN_NRWp_ENT64) }}};
#endif
/* fn_nrw_on: the narrow kernels in use (0 none, 1 AVX2, 2 AVX-512); rows per
   block for 1..4 vectors; bytes per vector */
static const int fn_nrw_rmax_all[2][4] = {{12, 5, 3, 2}, {8, 12, 8, 6}};
static const int* fn_nrw_rmax = fn_nrw_rmax_all[1];
static int fn_nrw_on = 0, fn_nrw_vbytes = 64;
static fn_nrw_f32_t fn_nrw_f32(int nv, int r) {
#if FN_MM_X86
    return fn_nrw_f32_all[fn_nrw_on - 1][nv - 1][r - 1];
#else
    return 0;
#endif
}
static fn_nrw_f64_t fn_nrw_f64(int nv, int r) {
#if FN_MM_X86
    return fn_nrw_f64_all[fn_nrw_on - 1][nv - 1][r - 1];
#else
    return 0;
#endif
}
static fn_nrwx_f32_t fn_nrwx_f32(int variant, int nv, int r) {
#if FN_MM_X86
    return fn_nrwx_f32_all[variant][fn_nrw_on - 1][nv - 1][r - 1];
#else
    return 0;
#endif
}
static fn_nrwx_f64_t fn_nrwx_f64(int variant, int nv, int r) {
#if FN_MM_X86
    return fn_nrwx_f64_all[variant][fn_nrw_on - 1][nv - 1][r - 1];
#else
    return 0;
#endif
}
static fn_ukr_f32_t fn_ukr_f32 = fn_ukr_f32_base;
static fn_ukr_f64_t fn_ukr_f64 = fn_ukr_f64_base;
static fn_ukr_f32_t fn_ukr1_f32 = fn_ukr1_f32_base;
static fn_ukr_f64_t fn_ukr1_f64 = fn_ukr1_f64_base;
static fn_row_f32_t fn_row_f32 = fn_row_f32_base;
static fn_row_f64_t fn_row_f64 = fn_row_f64_base;
static const fn_rows_f32_t* fn_rows_f32 = fn_rows_f32_base;
static const fn_rows_f64_t* fn_rows_f64 = fn_rows_f64_base;
static int fn_mm_mr = 4, fn_mm_nr32 = 8, fn_mm_nr64 = 4, fn_mm_isa = 0;
static void fn_pack_t_f32_base(const float* src, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t kc,
                               ptrdiff_t w, float* dst)
{
    ptrdiff_t r, p;
    for (r = 0; r < rows; r++)
        for (p = 0; p < kc; p++) dst[p * w + r] = src[r * ld + p];
}
static void fn_pack_t_f64_base(const double* src, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t kc,
                               ptrdiff_t w, double* dst)
{
    ptrdiff_t r, p;
    for (r = 0; r < rows; r++)
        for (p = 0; p < kc; p++) dst[p * w + r] = src[r * ld + p];
}
typedef void (*fn_pack_t_f32_t)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float*);
typedef void (*fn_pack_t_f64_t)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, double*);
static fn_pack_t_f32_t fn_pack_t_f32 = fn_pack_t_f32_base;
static fn_pack_t_f64_t fn_pack_t_f64 = fn_pack_t_f64_base;
/* want: 0 = baseline, 1 = up to AVX2+FMA, 2 = up to AVX-512 (what the CPU has) */
static int fastnet_mm_select(int want) {
    fn_ukr_f32 = fn_ukr_f32_base; fn_ukr_f64 = fn_ukr_f64_base;
    fn_ukr1_f32 = fn_ukr1_f32_base; fn_ukr1_f64 = fn_ukr1_f64_base;
    fn_row_f32 = fn_row_f32_base; fn_row_f64 = fn_row_f64_base;
    fn_rows_f32 = fn_rows_f32_base; fn_rows_f64 = fn_rows_f64_base;
    fn_pack_t_f32 = fn_pack_t_f32_base; fn_pack_t_f64 = fn_pack_t_f64_base;
    fn_mm_mr = 4; fn_mm_nr32 = 8; fn_mm_nr64 = 4; fn_mm_isa = 0; fn_nrw_on = 0;
#if FN_MM_X86
    __builtin_cpu_init();
    if (want >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        fn_ukr_f32 = fn_ukr_f32_avx512; fn_ukr_f64 = fn_ukr_f64_avx512;
        fn_ukr1_f32 = fn_ukr1_f32_avx512; fn_ukr1_f64 = fn_ukr1_f64_avx512;
        fn_row_f32 = fn_row_f32_avx512; fn_row_f64 = fn_row_f64_avx512;
        fn_rows_f32 = fn_rows_f32_avx512; fn_rows_f64 = fn_rows_f64_avx512;
        fn_mm_mr = 8; fn_mm_nr32 = 32; fn_mm_nr64 = 16; fn_mm_isa = 2;
        fn_pack_t_f32 = fn_pack_t_f32_avx2; fn_pack_t_f64 = fn_pack_t_f64_avx2;
        fn_nrw_on = 2; fn_nrw_vbytes = 64; fn_nrw_rmax = fn_nrw_rmax_all[1];
    } else if (want >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        fn_ukr_f32 = fn_ukr_f32_avx2; fn_ukr_f64 = fn_ukr_f64_avx2;
        fn_ukr1_f32 = fn_ukr1_f32_avx2; fn_ukr1_f64 = fn_ukr1_f64_avx2;
        fn_row_f32 = fn_row_f32_avx2; fn_row_f64 = fn_row_f64_avx2;
        fn_rows_f32 = fn_rows_f32_avx2; fn_rows_f64 = fn_rows_f64_avx2;
        fn_mm_mr = 6; fn_mm_nr32 = 16; fn_mm_nr64 = 8; fn_mm_isa = 1;
        fn_pack_t_f32 = fn_pack_t_f32_avx2; fn_pack_t_f64 = fn_pack_t_f64_avx2;
        fn_nrw_on = 1; fn_nrw_vbytes = 32; fn_nrw_rmax = fn_nrw_rmax_all[0];
    }
#endif
    return fn_mm_isa;
}

/* The packed path's panel buffers, kept per thread and reused from call to call
   (grown when a product needs more; freed when the thread exits).  A fresh malloc
   of megabytes is a fresh mmap whose pages fault in again on every call (glibc
   maps a request at least as large as the last one freed anew; bench/REPORT.md's
   GEMM table, 1024^3).  Slot 0: A's panels, slot 1: B's.  64-byte aligned: a panel's vector loads never
   straddle two cache lines.  NULL when out of memory. */
#include <pthread.h>
#include <stdlib.h>
typedef struct { void* raw[2]; size_t cap[2]; } fn_scratch_t;
static pthread_key_t fn_scratch_key;
static pthread_once_t fn_scratch_once = PTHREAD_ONCE_INIT;
static int fn_scratch_ok = 0;
static void fn_scratch_free(void* v)
{
    fn_scratch_t* s = (fn_scratch_t*) v;
    free(s->raw[0]);
    free(s->raw[1]);
    free(s);
}
static void fn_scratch_init(void)
{
    fn_scratch_ok = pthread_key_create(&fn_scratch_key, fn_scratch_free) == 0;
}
static void* fn_scratch(int slot, size_t bytes)
{
    fn_scratch_t* s;
    pthread_once(&fn_scratch_once, fn_scratch_init);
    if (!fn_scratch_ok) return NULL;
    s = (fn_scratch_t*) pthread_getspecific(fn_scratch_key);
    if (s == NULL) {
        s = (fn_scratch_t*) calloc(1, sizeof(fn_scratch_t));
        if (s == NULL) return NULL;
        if (pthread_setspecific(fn_scratch_key, s) != 0) { free(s); return NULL; }
    }
    if (s->cap[slot] < bytes) {
        free(s->raw[slot]);
        s->raw[slot] = malloc(bytes + 64);
        s->cap[slot] = s->raw[slot] == NULL ? 0 : bytes;
        if (s->raw[slot] == NULL) return NULL;
    }
    return (void*) (((size_t) s->raw[slot] + 63) & ~(size_t) 63);
}

#endif  /* FASTNET_MATMUL_KERNELS_H */
