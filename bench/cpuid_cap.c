/* Benchmark helper, loaded two ways by bench/fnbench_isa.py:
 *
 * 1. LD_PRELOAD with FASTNET_CPUID_CAP=avx2|baseline: every library in the process
 *    sees a CPU without AVX-512 (avx2) or without AVX (baseline).  Libraries that
 *    dispatch on CPUID at run time and have no ISA knob (JAX's dot kernels ignore
 *    --xla_cpu_max_isa) otherwise run AVX-512 code in an "AVX2" report.  It uses the
 *    kernel's CPUID faulting (cpuinfo flag cpuid_fault): CPUID traps, and the SIGSEGV
 *    handler answers it with the capped bits.  Without that flag it does nothing.
 * 2. ctypes, for fma_peak_gflops(): the FMA throughput limit of one core at a width.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <immintrin.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction previous;
static long answered;                                  /* atomic: any thread may trap */
static int cap;                                         /* 0 none, 1 avx2, 2 baseline */

static void capped_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    if (leaf == 7 && sub == 0) {
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                  (1u << 30) | (1u << 31));             /* AVX512 F DQ IFMA PF ER CD BW VL */
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23));
        if (cap == 2) r[1] &= ~(1u << 5);               /* AVX2 */
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~(1u << 5);                             /* AVX512_BF16 */
        r[3] &= ~(1u << 19);                            /* AVX10 */
        if (cap == 2) r[0] &= ~((1u << 4) | (1u << 23)); /* AVX-VNNI, AVX-IFMA */
    } else if (leaf == 1 && cap == 2) {
        r[2] &= ~((1u << 12) | (1u << 28) | (1u << 29)); /* FMA, AVX, F16C */
    } else if (leaf == 0xd && sub == 0) {
        r[0] &= ~(7u << 5);                             /* opmask and ZMM state */
        if (cap == 2) r[0] &= ~(1u << 2);               /* YMM state */
    } else if (leaf == 0x24) {
        r[0] = r[1] = r[2] = r[3] = 0;                  /* AVX10 */
    }
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
    /* a CPUID trap is a general-protection fault (SI_KERNEL) at an instruction just fetched */
    if (si->si_code == SI_KERNEL) {
        const unsigned char *ip = (const unsigned char *)g[REG_RIP];
        if (ip[0] == 0x0f && ip[1] == 0xa2) {
            unsigned r[4];
            capped_cpuid((unsigned)g[REG_RAX], (unsigned)g[REG_RCX], r);
            g[REG_RAX] = r[0]; g[REG_RBX] = r[1]; g[REG_RCX] = r[2]; g[REG_RDX] = r[3];
            g[REG_RIP] += 2;
            __atomic_fetch_add(&answered, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    if (previous.sa_flags & SA_SIGINFO) { previous.sa_sigaction(sig, si, ctx); return; }
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) { previous.sa_handler(sig); return; }
    signal(sig, SIG_DFL);                               /* re-executed: the default action */
}

__attribute__((constructor)) static void cpuid_cap_init(void) {
    const char *want = getenv("FASTNET_CPUID_CAP");
    struct sigaction sa;
    if (!want) return;
    cap = !strcmp(want, "avx2") ? 1 : !strcmp(want, "baseline") ? 2 : 0;
    if (!cap) return;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous) != 0) { cap = 0; return; }
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {  /* no CPUID faulting here */
        sigaction(SIGSEGV, &previous, NULL);
        cap = 0;
    }
}

/* 1: CPUID is capped in this thread (faulting on and the handler installed) */
int cpuid_cap_active(void) { return cap && syscall(SYS_arch_prctl, ARCH_GET_CPUID, 0) == 0; }
long cpuid_cap_answered(void) { return __atomic_load_n(&answered, __ATOMIC_RELAXED); }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* 12 independent accumulators hide the FMA latency on every core we know of */
#define PEAK_BODY(T, FMA, SET, ADD, STORE)                                          \
    T a[12], x = SET(1.0000001f), y = SET(1e-7f);                                   \
    float out[16];                                                                  \
    double t0 = now();                                                              \
    _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = SET((float)i);     \
    for (long it = 0; it < iters; it++) {                                           \
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = FMA(a[i], x, y); \
    }                                                                               \
    double dt = now() - t0;                                                         \
    _Pragma("GCC unroll 12") for (int i = 1; i < 12; i++) a[0] = ADD(a[0], a[i]);   \
    STORE(out, a[0]);                                                               \
    sink = out[0];

static volatile float sink;

__attribute__((target("avx512f"))) static double peak512(long iters) {
    PEAK_BODY(__m512, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_storeu_ps)
    return 12.0 * 16 * 2 * iters / dt / 1e9;
}
__attribute__((target("avx2,fma"))) static double peak256(long iters) {
    PEAK_BODY(__m256, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps, _mm256_storeu_ps)
    return 12.0 * 8 * 2 * iters / dt / 1e9;
}
#define MULADD128(a, x, y) _mm_add_ps(_mm_mul_ps(a, x), y)
static double peak128(long iters) {                     /* SSE2 has no FMA: a mul and an add */
    PEAK_BODY(__m128, MULADD128, _mm_set1_ps, _mm_add_ps, _mm_storeu_ps)
    return 12.0 * 4 * 2 * iters / dt / 1e9;
}

/* GFLOP/s of one thread at vector width 512, 256 (FMA) or 128 (mul + add); 0 if unknown */
double fma_peak_gflops(int width, long iters) {
    return width == 512 ? peak512(iters) : width == 256 ? peak256(iters) : width == 128 ? peak128(iters) : 0.0;
}
