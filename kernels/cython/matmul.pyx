# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Matrix products of the dense layers (Cython twin of kernels/numba/matmul.py).

    matmul     C = A @ B      forward        z = x W
    matmul_tn  C = A.T @ B    weight grad    dW = x^T delta
    matmul_nt  C = A @ B.T    backprop       delta_prev = delta W^T

Our own loops, no BLAS.  One driver serves the three forms: A's element (i, p)
is read at ``A[i*sa_i + p*sa_p]`` and B's element (p, j) at ``B[p*sb_p + j*sb_j]``,
so a transpose is only a change of strides.

Register-blocked micro-kernel
-----------------------------
Every output tile is MR rows x NR columns, accumulated in vector registers:
``acc[r] += a[r, p] * b[p, 0:NR]`` for p = 0, 1, ..., kc-1 (each B vector load
feeds MR multiply-adds, each broadcast A value NR of them), written with gcc
vector extensions in ``matmul_kernels.h`` (``FN_UKR``).  Three builds of it
sit in every binary and one is picked once per process at import, from the CPU
(``__builtin_cpu_supports``): AVX-512 (8 x 32 float32 / 8 x 16 float64), AVX2+FMA
(6 x 16 / 6 x 8) or the x86-64 baseline SSE2 (4 x 8 / 4 x 4).  The AVX variants
are compiled with function ``target`` attributes, so the module itself is
still built for the portable baseline (no -march=native needed);
``FASTNET_MM_ISA=baseline|avx2|avx512`` (or :func:`select_isa`) caps the choice,
e.g. to measure the portable kernel.  With FMA a multiply-add is rounded once,
so results differ from the SSE2 kernel's in the last bits (and between
machines), never between thread counts.  The reduction over p runs in order,
accumulated in the array dtype, as BLAS does.

Four ways to feed it, chosen from the shape only:

* **narrow** (AVX-512 or AVX2, at most 4 vectors of columns: m <= 64 / 32
  float32, 32 / 16 float64; the small layers, every product of the batch-10 seed
  step): blocks of up to 8 / 12 / 8 / 6 rows (AVX-512; AVX2: 12 / 5 / 3 / 2) for
  1 / 2 / 3 / 4 vectors per row keep a whole block of C in registers for the
  whole k loop, reading A and B in place, the last vector of a row under a mask
  (AVX-512) or stored as plain 4 / 2 / 1-lane pieces (AVX2: its masked store is
  microcode on AMD's cores) (``FN_NARROW``); ``matmul_nt`` first copies B^T (k x
  m, on the stack up to ``NRW_STACK`` elements).  No packing, no padded edge tile, no allocation
  (the batch-10 rows of bench/REPORT.md's kernel table show what that buys).
  The same kernels also take up to ``NRW_MAX_COLS`` columns (the 100-unit
  layers) in column chunks of 4 vectors on AVX-512, 2 on AVX2 (5-row blocks
  fill AVX2's 16 registers better than 2 x 4), the last chunk the rest: each
  (chunk, row block) is a task of its own.  ``matmul_tn`` whose C has a fraction
  of a vector of columns and rows that fill whole vectors (an output layer's
  weight gradient, 100 x 10: 10 of 16 lanes) runs as C^T = B^T A^T over C's rows
  into a scratch, then transposed (``_narrow_swapped``; the same fused
  multiply-add chain per element).

* **rows** (one row and B rows contiguous, e.g. batch-1 inference): the row of C
  in axpy form (``FN_ROW``), B streamed once; from ``ROW_PAR_MIN`` multiply-adds
  its columns split between the threads (blocks of 16 columns, the same axpy form).
* **direct** (small products, ``n*k*m < PACK_MIN`` or few rows, e.g. batch-10
  products wider than 64 columns): the micro-kernel reads A and B where they are (the
  k-loop runs over the whole inner dimension); the last < NR columns of B are
  copied into a zero-padded panel, the last < MR rows run as whole rows in axpy
  form, up to 4 at a time (``FN_ROWS``: B streamed once per group; ``matmul_nt``:
  packed into one zero-padded tile per panel), and
  ``matmul_nt`` first packs B^T into NR-wide panels.
* **packed** (GotoBLAS blocking for large products): for each block of ``KC``
  values of p and ``NC`` columns, B is packed into contiguous kc x NR panels and A
  into kc x MR panels (``MC`` rows per pass), so the micro-kernel streams
  cache-resident panels; C tiles after the first block start from C (so every
  element is still summed p = 0, 1, ..., k-1 in order).  A panel whose rows, or a
  B^T panel (matmul_nt) whose columns, lie along p in memory is packed through
  8 x 8 (float32) / 4 x 4 (float64) register transposes on AVX2 and AVX-512
  (``fn_pack_t``), not element by element.  ``KC`` = 1024: every
  layer of our workloads is one p block (each extra block is another pair of
  parallel regions and another pass over C; the A panel, 8 x 1024, stays in L1
  and the B panel streams from L2 at a rate the FMAs never wait for; see
  bench/REPORT.md's GEMM table).  The p blocks are of equal size and so are the row blocks
  (128 rows = 2 x 64, not 96 + 32: the two threads got 3:1 of the work).  When
  the packed A block fits in L2 (``A_L2``; every batch-128 layer) the threads
  split the column panels instead, each packing its own B panels just before
  using them (no shared B pass, half of B per thread).  Packing and tiles of a
  block share one parallel region (the packing loop's implicit barrier between
  them), not a fork / join each: one team wake-up per block instead of two (the
  wide epoch in bench/REPORT.md).

Work is split over OUTPUT tiles only (each thread owns the tiles it writes; the
tiling is fixed by the shape), so the result is bit-identical for any thread
count.  ``MATMUL_PAR_MIN`` (multiply-adds) decides, from the shape only, whether
a parallel region is worth waking; below it everything runs on the calling
thread outside any OpenMP region (libgomp charges for a region even when it
is disabled with ``if(0)``, a large share of the smallest products' time).  Every path sums p = 0, 1, ..., k-1 in order with one fused
multiply-add per step, so a tile's bits do not depend on the path either.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset

from ._types cimport ELEM_PAR_MIN

cdef extern from "matmul_kernels.h":
    ctypedef void (*fn_ukr_f32_t)(Py_ssize_t, const float*, Py_ssize_t, Py_ssize_t, const float*,
                                  Py_ssize_t, float*, Py_ssize_t, int) noexcept nogil
    ctypedef void (*fn_ukr_f64_t)(Py_ssize_t, const double*, Py_ssize_t, Py_ssize_t, const double*,
                                  Py_ssize_t, double*, Py_ssize_t, int) noexcept nogil
    fn_ukr_f32_t fn_ukr_f32
    fn_ukr_f64_t fn_ukr_f64
    fn_ukr_f32_t fn_ukr1_f32
    fn_ukr_f64_t fn_ukr1_f64
    ctypedef void (*fn_row_f32_t)(Py_ssize_t, const float*, Py_ssize_t, const float*, Py_ssize_t,
                                  float*, Py_ssize_t) noexcept nogil
    ctypedef void (*fn_row_f64_t)(Py_ssize_t, const double*, Py_ssize_t, const double*, Py_ssize_t,
                                  double*, Py_ssize_t) noexcept nogil
    fn_row_f32_t fn_row_f32
    fn_row_f64_t fn_row_f64
    ctypedef void (*fn_rows_f32_t)(Py_ssize_t, const float*, Py_ssize_t, Py_ssize_t, const float*,
                                   Py_ssize_t, float*, Py_ssize_t, Py_ssize_t) noexcept nogil
    ctypedef void (*fn_rows_f64_t)(Py_ssize_t, const double*, Py_ssize_t, Py_ssize_t,
                                   const double*, Py_ssize_t, double*, Py_ssize_t,
                                   Py_ssize_t) noexcept nogil
    const fn_rows_f32_t* fn_rows_f32
    const fn_rows_f64_t* fn_rows_f64
    int fn_mm_mr, fn_mm_nr32, fn_mm_nr64, fn_mm_isa
    ctypedef void (*fn_pack_t_f32_t)(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                     float*) noexcept nogil
    ctypedef void (*fn_pack_t_f64_t)(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                     double*) noexcept nogil
    fn_pack_t_f32_t fn_pack_t_f32
    fn_pack_t_f64_t fn_pack_t_f64
    int fastnet_mm_select(int want) noexcept nogil
    void* fn_scratch(int slot, size_t nbytes) noexcept nogil
    ctypedef void (*fn_nrw_f32_t)(Py_ssize_t, const float*, Py_ssize_t, Py_ssize_t, const float*,
                                  Py_ssize_t, float*, Py_ssize_t, unsigned int) noexcept nogil
    ctypedef void (*fn_nrw_f64_t)(Py_ssize_t, const double*, Py_ssize_t, Py_ssize_t,
                                  const double*, Py_ssize_t, double*, Py_ssize_t,
                                  unsigned int) noexcept nogil
    const int* fn_nrw_rmax
    int fn_nrw_on, fn_nrw_vbytes
    int fn_ukr_pk
    fn_nrw_f32_t fn_nrw_f32(int nv, int r) noexcept nogil
    fn_nrw_f64_t fn_nrw_f64(int nv, int r) noexcept nogil
    ctypedef void (*fn_nrwx_f32_t)(Py_ssize_t, const float* const*, Py_ssize_t, const float*,
                                   Py_ssize_t, float*, Py_ssize_t, unsigned int) noexcept nogil
    ctypedef void (*fn_nrwx_f64_t)(Py_ssize_t, const double* const*, Py_ssize_t,
                                   const double*, Py_ssize_t, double*, Py_ssize_t,
                                   unsigned int) noexcept nogil
    fn_nrwx_f32_t fn_nrwx_f32(int variant, int nv, int r) noexcept nogil
    fn_nrwx_f64_t fn_nrwx_f64(int variant, int nv, int r) noexcept nogil

cdef enum:
    # largest micro-tile (AVX-512 float32: 8 x 32)
    MR_MAX = 8
    NR_MAX = 32
    # packed path: p values per block (see the module docstring), rows of A per
    # packed block, columns of B per packed block
    KC = 1024
    MC = 96
    IC = 1536
    NC = 1024
    # packed (GotoBLAS) path from this many multiply-adds and at least PACK_MIN_ROWS rows
    PACK_MIN = 1 << 20
    PACK_MIN_ROWS = 32
    # parallel when n * k * m (multiply-adds) reaches this (shape only; same value as
    # kernels/numba/_jit.py's): below ~1M multiply-adds a parallel region does not pay
    MATMUL_PAR_MIN = 1 << 20
    # one row (batch-1 inference) splits its columns between the threads from this many
    # multiply-adds (shape only; same value as kernels/numba/_jit.py's): the row streams
    # B from L2 / L3, which two cores read nearly twice as fast as one
    ROW_PAR_MIN = 1 << 18
    # packed path: a packed A block up to this many bytes is kept in L2 and the tiles run
    # column panel by column panel (each thread packing its own B panels)
    A_L2 = 1 << 19


cdef inline Py_ssize_t _cdiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline Py_ssize_t _nr(floating* dummy) noexcept nogil:
    if floating is float:
        return fn_mm_nr32
    else:
        return fn_mm_nr64


cdef inline void _ukr(Py_ssize_t kc, const floating* a, Py_ssize_t a_r, Py_ssize_t a_p,
                      const floating* b, Py_ssize_t b_p,
                      floating* c, Py_ssize_t ldc, bint accumulate) noexcept nogil:
    if floating is float:
        fn_ukr_f32(kc, a, a_r, a_p, b, b_p, c, ldc, accumulate)
    else:
        fn_ukr_f64(kc, a, a_r, a_p, b, b_p, c, ldc, accumulate)


cdef inline void _ukr1(Py_ssize_t kc, const floating* a, Py_ssize_t a_p,
                       const floating* b, Py_ssize_t b_p, floating* c) noexcept nogil:
    if floating is float:
        fn_ukr1_f32(kc, a, 0, a_p, b, b_p, c, 0, False)
    else:
        fn_ukr1_f64(kc, a, 0, a_p, b, b_p, c, 0, False)


cdef void _rows1(Py_ssize_t k, const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                 const floating* b, Py_ssize_t b_p, floating* c, Py_ssize_t ldc,
                 Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t nr) noexcept nogil:
    """The last < MR rows of C, one row at a time (1 x nr kernel, A in place)."""
    cdef floating tmp[NR_MAX]
    cdef Py_ssize_t r, j
    for r in range(rows):
        if cols == nr:
            _ukr1(k, A + r * sa_i, sa_p, b, b_p, c + r * ldc)
        else:
            _ukr1(k, A + r * sa_i, sa_p, b, b_p, tmp)
            for j in range(cols):
                c[r * ldc + j] = tmp[j]


cdef inline void _tile(Py_ssize_t kc, const floating* a, Py_ssize_t a_r, Py_ssize_t a_p,
                       const floating* b, Py_ssize_t b_p,
                       floating* c, Py_ssize_t ldc, Py_ssize_t rows, Py_ssize_t cols,
                       Py_ssize_t mr, Py_ssize_t nr, bint accumulate) noexcept nogil:
    """One mr x nr tile of which rows x cols lie inside C (a and b must be
    readable for the full mr rows / nr columns: zero-padded at the edges)."""
    cdef floating tmp[MR_MAX * NR_MAX]
    cdef Py_ssize_t r, j
    if rows == mr and cols == nr:
        _ukr(kc, a, a_r, a_p, b, b_p, c, ldc, accumulate)
        return
    if accumulate:
        for r in range(rows):
            for j in range(cols):
                tmp[r * nr + j] = c[r * ldc + j]
    _ukr(kc, a, a_r, a_p, b, b_p, tmp, nr, accumulate)
    for r in range(rows):
        for j in range(cols):
            c[r * ldc + j] = tmp[r * nr + j]


# ---------------------------------------------------------------------------
# packing
# ---------------------------------------------------------------------------
cdef inline void _pack_t(const floating* src, Py_ssize_t ld, Py_ssize_t rows, Py_ssize_t kc,
                         Py_ssize_t w, floating* dst) noexcept nogil:
    """dst[p*w + r] = src[r*ld + p] for r < rows, p < kc (fn_pack_t: register transposes)."""
    if floating is float:
        fn_pack_t_f32(src, ld, rows, kc, w, dst)
    else:
        fn_pack_t_f64(src, ld, rows, kc, w, dst)


cdef void _pack_a(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                  Py_ssize_t rows, Py_ssize_t kc, floating* Ap) noexcept nogil:
    """Ap[p*MR + r] = A[r, p] for r < rows (zero for rows <= r < MR)."""
    cdef Py_ssize_t MR = fn_mm_mr
    cdef Py_ssize_t r, p
    if sa_p == 1:
        _pack_t(A, sa_i, rows, kc, MR, Ap)
    else:
        for p in range(kc):
            for r in range(rows):
                Ap[p * MR + r] = A[r * sa_i + p * sa_p]
    if rows < MR:
        for p in range(kc):
            for r in range(rows, MR):
                Ap[p * MR + r] = 0


cdef void _pack_b(const floating* B, Py_ssize_t sb_p, Py_ssize_t sb_j,
                  Py_ssize_t kc, Py_ssize_t cols, floating* Bp) noexcept nogil:
    """Bp[p*nr + j] = B[p, j] for j < cols (zero for cols <= j < nr)."""
    cdef Py_ssize_t nr = _nr(Bp)
    cdef Py_ssize_t p, j
    if sb_j == 1:
        for p in range(kc):
            for j in range(cols):
                Bp[p * nr + j] = B[p * sb_p + j]
            for j in range(cols, nr):
                Bp[p * nr + j] = 0
    else:
        if sb_p == 1:
            _pack_t(B, sb_j, cols, kc, nr, Bp)
        else:
            for j in range(cols):
                for p in range(kc):
                    Bp[p * nr + j] = B[p * sb_p + j * sb_j]
        for p in range(kc):
            for j in range(cols, nr):
                Bp[p * nr + j] = 0


# ---------------------------------------------------------------------------
# drivers
# ---------------------------------------------------------------------------
cdef inline void _direct_tile(Py_ssize_t t, Py_ssize_t nrb, Py_ssize_t nfull_r, Py_ssize_t cb0,
                              bint pack_all, const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                              const floating* B, Py_ssize_t sb_p, const floating* Bp,
                              const floating* Ap, floating* C, Py_ssize_t n, Py_ssize_t k,
                              Py_ssize_t m) noexcept nogil:
    """Tile t of _direct (row block fastest).  Ap: the last < MR rows packed into a
    zero-padded MR-row panel (NULL: one row left, or no memory for it)."""
    cdef Py_ssize_t nr = _nr(C), MR = fn_mm_mr
    cdef Py_ssize_t cb = t // nrb
    cdef Py_ssize_t rb = t - cb * nrb
    cdef Py_ssize_t i0 = rb * MR, j0 = cb * nr
    cdef Py_ssize_t rows = min(MR, n - i0), cols = min(nr, m - j0), r, q
    cdef const floating* b
    cdef Py_ssize_t b_p
    if cb < cb0:
        b = B + j0
        b_p = sb_p
    else:
        b = Bp + (cb - cb0) * k * nr
        b_p = nr
    if rb < nfull_r:
        _tile(k, A + i0 * sa_i, sa_i, sa_p, b, b_p, C + i0 * m + j0, m, rows, cols, MR, nr, False)
    elif Ap != NULL:
        # B^T packed: the last rows packed too, as one zero-padded tile per panel
        _tile(k, Ap, 1, MR, b, b_p, C + i0 * m + j0, m, rows, cols, MR, nr, False)
    elif not pack_all:
        # the last < MR rows: whole rows in axpy form, up to 4 at a time, B streamed
        # once per group (one tile does it; a few-sample predict read B once per row)
        if cb == 0:
            r = 0
            while rows - r >= 2:
                q = min(4, rows - r)
                if floating is float:
                    fn_rows_f32[q](k, A + (i0 + r) * sa_i, sa_i, sa_p, B, sb_p, C + (i0 + r) * m, m, m)
                else:
                    fn_rows_f64[q](k, A + (i0 + r) * sa_i, sa_i, sa_p, B, sb_p, C + (i0 + r) * m, m, m)
                r += q
            if r < rows:
                if floating is float:
                    fn_row_f32(k, A + (i0 + r) * sa_i, sa_p, B, sb_p, C + (i0 + r) * m, m)
                else:
                    fn_row_f64(k, A + (i0 + r) * sa_i, sa_p, B, sb_p, C + (i0 + r) * m, m)
    else:
        _rows1(k, A + i0 * sa_i, sa_i, sa_p, b, b_p, C + i0 * m + j0, m, rows, cols, nr)


cdef int _direct(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                 const floating* B, Py_ssize_t sb_p, Py_ssize_t sb_j, floating* C,
                 Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    """Small products: the micro-kernel reads A and B in place (B must have
    sb_j == 1 unless it is packed here); only ragged edges are padded."""
    cdef Py_ssize_t nr = _nr(C), MR = fn_mm_mr
    cdef Py_ssize_t nrb = _cdiv(n, MR), ncb = _cdiv(m, nr)
    cdef Py_ssize_t nfull_r = n // MR, nfull_c = m // nr
    cdef Py_ssize_t ntiles = nrb * ncb
    cdef bint par = ntiles > 1 and n * k * m >= MATMUL_PAR_MIN
    cdef bint pack_all = sb_j != 1
    cdef floating* Bp = NULL
    cdef floating* Ap = NULL
    cdef Py_ssize_t t, cb, j0, cb0, left = n - nfull_r * MR
    # B: every panel packed (B^T given), or only the ragged last panel
    if pack_all:
        Bp = <floating*> malloc(ncb * k * nr * sizeof(floating) + 64)
        cb0 = 0
    else:
        Bp = <floating*> malloc(k * nr * sizeof(floating) + 64)
        cb0 = nfull_c
    if Bp == NULL:
        return -1
    for cb in range(cb0, ncb):
        j0 = cb * nr
        _pack_b(B + j0 * sb_j, sb_p, sb_j, k, min(nr, m - j0), Bp + (cb - cb0) * k * nr)
    if pack_all and left > 1:   # (NULL when out of memory: one row at a time)
        Ap = <floating*> malloc(k * MR * sizeof(floating) + 64)
        if Ap != NULL:
            _pack_a(A + nfull_r * MR * sa_i, sa_i, sa_p, left, k, Ap)
    # tiles numbered row block fastest: consecutive tiles reuse one B panel
    if par:
        for t in prange(ntiles, schedule='static', num_threads=n_threads):
            _direct_tile(t, nrb, nfull_r, cb0, pack_all, A, sa_i, sa_p, B, sb_p, Bp, Ap, C, n, k, m)
    else:
        for t in range(ntiles):
            _direct_tile(t, nrb, nfull_r, cb0, pack_all, A, sa_i, sa_p, B, sb_p, Bp, Ap, C, n, k, m)
    free(Ap)
    free(Bp)
    return 0


cdef inline void _pack_task(Py_ssize_t t, Py_ssize_t nb, const floating* A, Py_ssize_t sa_i,
                            Py_ssize_t sa_p, const floating* B, Py_ssize_t sb_p,
                            Py_ssize_t sb_j, floating* Ap, floating* Bp, Py_ssize_t ic,
                            Py_ssize_t pc, Py_ssize_t jc, Py_ssize_t nic, Py_ssize_t kc,
                            Py_ssize_t nc, Py_ssize_t nr, Py_ssize_t MR) noexcept nogil:
    """Task t of a packing pass: B panel t (t < nb), else A panel t - nb."""
    cdef Py_ssize_t j0, i0
    if t < nb:
        j0 = t * nr
        _pack_b(B + pc * sb_p + (jc + j0) * sb_j, sb_p, sb_j, kc, min(nr, nc - j0),
                Bp + t * kc * nr)
    else:
        i0 = (t - nb) * MR
        _pack_a(A + (ic + i0) * sa_i + pc * sa_p, sa_i, sa_p, min(MR, nic - i0), kc,
                Ap + (t - nb) * kc * MR)


cdef inline void _colwise_panel(Py_ssize_t cb, bint pack, const floating* B, Py_ssize_t sb_p,
                                Py_ssize_t sb_j, const floating* Ap, floating* Bp, floating* C,
                                Py_ssize_t ic, Py_ssize_t pc, Py_ssize_t jc, Py_ssize_t nrb,
                                Py_ssize_t nic, Py_ssize_t kc, Py_ssize_t nc, Py_ssize_t m,
                                Py_ssize_t nr, Py_ssize_t MR) noexcept nogil:
    """Column panel cb against every row panel (packing it first when asked)."""
    cdef Py_ssize_t j0 = cb * nr, cols = min(nr, nc - cb * nr), rb, i0
    if pack:
        _pack_b(B + pc * sb_p + (jc + j0) * sb_j, sb_p, sb_j, kc, cols, Bp + cb * kc * nr)
    for rb in range(nrb):
        i0 = rb * MR
        _tile(kc, Ap + rb * kc * MR, 1, MR, Bp + cb * kc * nr, nr,
              C + (ic + i0) * m + jc + j0, m, min(MR, nic - i0), cols, MR, nr, pc > 0)


cdef inline void _rowblock_panel(Py_ssize_t t, Py_ssize_t ncb, Py_ssize_t nrb_blk,
                                 const floating* Ap, const floating* Bp, floating* C,
                                 Py_ssize_t ic, Py_ssize_t pc, Py_ssize_t jc, Py_ssize_t nrb,
                                 Py_ssize_t nic, Py_ssize_t kc, Py_ssize_t nc, Py_ssize_t m,
                                 Py_ssize_t nr, Py_ssize_t MR) noexcept nogil:
    """Tile t: a block of MC rows (row panels innermost) x one column panel."""
    cdef Py_ssize_t ib = t // ncb, cb = t - (t // ncb) * ncb
    cdef Py_ssize_t j0 = cb * nr, cols = min(nr, nc - cb * nr), rb, i0
    for rb in range(ib * nrb_blk, min((ib + 1) * nrb_blk, nrb)):
        i0 = rb * MR
        _tile(kc, Ap + rb * kc * MR, 1, MR, Bp + cb * kc * nr, nr,
              C + (ic + i0) * m + jc + j0, m, min(MR, nic - i0), cols, MR, nr, pc > 0)


cdef Py_ssize_t mm_kc = KC


cdef int _packed(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                 const floating* B, Py_ssize_t sb_p, Py_ssize_t sb_j, floating* C,
                 Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    """Large products: GotoBLAS blocking.  For each block of NC columns and KC
    values of p, B is packed once into kc x nr panels (shared by the threads),
    then A, IC rows at a time, into kc x MR panels; the tiles (MC rows x one
    column panel) are split between the threads.  A packed A block of at most
    A_L2 bytes: the threads split the column panels (each packs its B panels
    and runs every row panel against them)."""
    cdef Py_ssize_t nr = _nr(C), MR = fn_mm_mr
    cdef Py_ssize_t ncmax = min(<Py_ssize_t> NC, _cdiv(m, nr) * nr)
    # blocks of p of equal size (at most KC): no short last block re-reading C for a few p
    cdef Py_ssize_t kcmax = _cdiv(k, _cdiv(k, mm_kc))
    cdef Py_ssize_t icmax = min(<Py_ssize_t> IC, _cdiv(n, MR) * MR)
    cdef bint par = n * k * m >= MATMUL_PAR_MIN
    # this thread's reused panel buffers (matmul_kernels.h: fn_scratch)
    cdef floating* Bp = <floating*> fn_scratch(1, ncmax * kcmax * sizeof(floating))
    cdef floating* Ap = <floating*> fn_scratch(0, icmax * kcmax * sizeof(floating))
    cdef Py_ssize_t jc, pc, ic, nc, kc, nic, ncb, nrb, nmc, cb, t, t2, nb
    cdef bint colwise
    cdef Py_ssize_t nrb_blk = MC // MR
    if Bp == NULL or Ap == NULL:
        return -1
    jc = 0
    while jc < m:
        nc = min(<Py_ssize_t> NC, m - jc)
        ncb = _cdiv(nc, nr)
        pc = 0
        while pc < k:
            kc = min(kcmax, k - pc)
            ic = 0
            while ic < n:
                nic = min(<Py_ssize_t> IC, n - ic)
                nrb = _cdiv(nic, MR)
                # row blocks of (at most) MC rows, equal-sized so the tiles balance
                nmc = _cdiv(nrb, MC // MR)
                nrb_blk = _cdiv(nrb, nmc)
                nmc = _cdiv(nrb, nrb_blk)
                # column-panel order (A_L2 below): the packed A block stays in L2 and
                # each thread packs its own B panels right before using them
                colwise = nic * kc * <Py_ssize_t> sizeof(floating) <= A_L2
                # pack A (nic x kc) and, unless colwise, B (kc x nc; once per (jc, pc)),
                # then the tiles: one parallel region, the implicit barrier of the
                # first loop between the two (not a second fork / join per product)
                nb = ncb if (ic == 0 and not colwise) else 0
                with parallel(num_threads=n_threads, use_threads_if=par):
                    for t in prange(nb + nrb, schedule='static', chunksize=1):
                        _pack_task(t, nb, A, sa_i, sa_p, B, sb_p, sb_j, Ap, Bp, ic, pc, jc,
                                   nic, kc, nc, nr, MR)
                    if colwise:
                        # one column panel per iteration: pack it (first row chunk), all rows
                        for cb in prange(ncb, schedule='static'):
                            _colwise_panel(cb, ic == 0, B, sb_p, sb_j, Ap, Bp, C, ic, pc, jc,
                                           nrb, nic, kc, nc, m, nr, MR)
                    else:
                        # tiles: blocks of MC rows x one column panel, row panels innermost
                        for t2 in prange(nmc * ncb, schedule='static'):
                            _rowblock_panel(t2, ncb, nrb_blk, Ap, Bp, C, ic, pc, jc, nrb,
                                            nic, kc, nc, m, nr, MR)
                ic = ic + nic
            pc = pc + kc
        jc = jc + nc
    return 0


cdef enum:
    # narrow path: B^T of matmul_nt transposed into a stack buffer up to this many elements
    NRW_STACK = 2048
    # narrow path over column chunks up to this many columns (wider: the
    # packed path; bench/REPORT.md's GEMM table)
    NRW_MAX_COLS = 128
    # matmul_tn with a C of less than one vector of columns runs as C^T = B^T A^T
    # (_narrow_swapped) up to this many rows of C
    SWAP_MAX_COLS = 1024


cdef Py_ssize_t nrw_max_cols = NRW_MAX_COLS
cdef Py_ssize_t swap_max_cols = SWAP_MAX_COLS
# vectors per column chunk (select_isa)
cdef Py_ssize_t nrw_chunk = 4


cdef inline bint _chunked_ok(Py_ssize_t m, Py_ssize_t esize) noexcept nogil:
    """The narrow kernels (over column chunks of nrw_chunk vectors) apply: AVX2 or
    AVX-512 and m at most 4 vectors or nrw_max_cols columns."""
    return fn_nrw_on and (m * esize <= 4 * fn_nrw_vbytes or m <= nrw_max_cols)


cdef inline void _narrow_task(Py_ssize_t t, Py_ssize_t cw, Py_ssize_t nblk4, Py_ssize_t R4,
                              Py_ssize_t nvl, Py_ssize_t Rl, Py_ssize_t nblk_full,
                              unsigned int full, unsigned int tail,
                              const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                              const floating* B, Py_ssize_t sb_p, floating* C,
                              Py_ssize_t n, Py_ssize_t k, Py_ssize_t m) noexcept nogil:
    """Task t: a block of rows of one column chunk (cw vectors; the last chunk nvl,
    its last vector under the tail mask), C's rows m apart."""
    cdef Py_ssize_t c, b, i0, rows, R, nv, j0
    cdef unsigned int mk
    if t < nblk_full:
        c = t // nblk4
        b = t - c * nblk4
        R = R4
        nv = cw
        mk = full
    else:
        c = nblk_full // nblk4 if nblk4 > 0 else 0
        b = t - nblk_full
        R = Rl
        nv = nvl
        mk = tail
    j0 = c * cw * (fn_nrw_vbytes // <Py_ssize_t> sizeof(floating))
    i0 = b * R
    rows = min(R, n - i0)
    if floating is float:
        fn_nrw_f32(nv, rows)(k, A + i0 * sa_i, sa_i, sa_p, B + j0, sb_p, C + i0 * m + j0, m, mk)
    else:
        fn_nrw_f64(nv, rows)(k, A + i0 * sa_i, sa_i, sa_p, B + j0, sb_p, C + i0 * m + j0, m, mk)


cdef void _narrow(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                  const floating* B, Py_ssize_t sb_p, floating* C,
                  Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    """B rows contiguous, m within _chunked_ok: the columns in chunks of
    nrw_chunk vectors (the last one the rest), each chunk in blocks of rows of equal size
    (at most fn_nrw_rmax), every column of a block in registers for the whole k
    loop; A and B read in place.  The (chunk, block) tasks split between the
    threads (shape only)."""
    cdef Py_ssize_t vl = fn_nrw_vbytes // <Py_ssize_t> sizeof(floating)
    cdef Py_ssize_t nvec = (m + vl - 1) // vl
    cdef Py_ssize_t cw = nrw_chunk
    cdef Py_ssize_t nchunk = (nvec + cw - 1) // cw
    cdef Py_ssize_t nvl = nvec - cw * (nchunk - 1)
    cdef Py_ssize_t R4 = 0, nblk4 = 0, Rl, nblkl, ntask, t
    cdef unsigned int full = <unsigned int> ((1 << vl) - 1)
    cdef unsigned int tail = <unsigned int> ((1 << (m - (nvec - 1) * vl)) - 1)
    if nchunk > 1:
        R4 = _cdiv(n, _cdiv(n, fn_nrw_rmax[cw - 1]))
        nblk4 = _cdiv(n, R4)
    Rl = _cdiv(n, _cdiv(n, fn_nrw_rmax[nvl - 1]))
    nblkl = _cdiv(n, Rl)
    ntask = (nchunk - 1) * nblk4 + nblkl
    # (a serial loop outside any OpenMP region below the threshold: even a disabled
    # region costs libgomp a noticeable share of a batch-10 product)
    if ntask > 1 and n * k * m >= MATMUL_PAR_MIN:
        for t in prange(ntask, schedule='static', num_threads=n_threads):
            _narrow_task(t, cw, nblk4, R4, nvl, Rl, (nchunk - 1) * nblk4, full, tail,
                         A, sa_i, sa_p, B, sb_p, C, n, k, m)
    else:
        for t in range(ntask):
            _narrow_task(t, cw, nblk4, R4, nvl, Rl, (nchunk - 1) * nblk4, full, tail,
                         A, sa_i, sa_p, B, sb_p, C, n, k, m)


cdef void _rows(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                const floating* B, Py_ssize_t sb_p, floating* C,
                Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    """One row (B rows contiguous), e.g. batch-1 inference: the row of C in axpy
    form (FN_ROW), B streamed once.  From ROW_PAR_MIN multiply-adds the columns
    split between the threads in blocks of 16 (whole vectors in every ISA), each
    part in the same axpy form: the same operations per element, so the same
    bits; the part's B rows stream from L2 / L3 on two cores at once
    (bench/REPORT.md's predict latency)."""
    cdef Py_ssize_t r, t, nb, nt, j0, j1
    if n == 1 and n_threads > 1 and k * m >= ROW_PAR_MIN and m >= 32:
        nb = _cdiv(m, 16)
        nt = min(<Py_ssize_t> n_threads, nb)
        for t in prange(nt, schedule='static', num_threads=nt):
            j0 = nb * t // nt * 16
            j1 = min(nb * (t + 1) // nt * 16, m)
            if floating is float:
                fn_row_f32(k, A, sa_p, B + j0, sb_p, C + j0, j1 - j0)
            else:
                fn_row_f64(k, A, sa_p, B + j0, sb_p, C + j0, j1 - j0)
        return
    for r in range(n):
        if floating is float:
            fn_row_f32(k, A + r * sa_i, sa_p, B, sb_p, C + r * m, m)
        else:
            fn_row_f64(k, A + r * sa_i, sa_p, B, sb_p, C + r * m, m)


cdef int _narrow_bt(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                    const floating* B, Py_ssize_t sb_p, Py_ssize_t sb_j, floating* C,
                    Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    """_narrow for a B given transposed (matmul_nt): B^T (k x m) copied first, on
    the stack up to NRW_STACK elements."""
    cdef floating bt[NRW_STACK]
    cdef floating* buf = &bt[0]
    cdef Py_ssize_t p, j
    if k * m > NRW_STACK:
        buf = <floating*> malloc(k * m * sizeof(floating))
        if buf == NULL:
            return -1
    for p in range(k):
        for j in range(m):
            buf[p * m + j] = B[p * sb_p + j * sb_j]
    _narrow(A, sa_i, sa_p, buf, m, C, n, k, m, n_threads)
    if buf != &bt[0]:
        free(buf)
    return 0


cdef inline bint _swap_pays(Py_ssize_t n, Py_ssize_t m, Py_ssize_t esize) noexcept nogil:
    """C^T = B^T A^T through the narrow kernels computes a fifth fewer vector lanes
    than C = A B or better: C's rows fill whole vectors (n >= 4 vectors) while m
    leaves most of its last vector empty (matmul_tn of an output layer of 10
    units: 10 of 16 lanes)."""
    cdef Py_ssize_t vl = fn_nrw_vbytes // esize
    if n < 4 * vl or n > swap_max_cols:
        return False
    return m * _cdiv(n, vl) * 5 < n * _cdiv(m, vl) * 4


cdef int _narrow_swapped(const floating* A, Py_ssize_t sa_p,
                         const floating* B, Py_ssize_t sb_p, Py_ssize_t sb_j, floating* C,
                         Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    """C = A B with A's rows contiguous in p (sa_i == 1: matmul_tn) as C^T = B^T A^T:
    the narrow kernels over the n columns of C^T (A's rows read in place, B's
    elements broadcast), then C^T transposed into C.  Every element is the same
    fused multiply-add chain over p = 0, 1, ..., k-1 (the product of each step
    commutes), so the bits are those of the direct form."""
    cdef floating ct[NRW_STACK]
    cdef floating* buf = &ct[0]
    cdef Py_ssize_t i, j
    if n * m > NRW_STACK:
        buf = <floating*> malloc(n * m * sizeof(floating))
        if buf == NULL:
            return -1
    _narrow(B, sb_j, sb_p, A, sa_p, buf, m, k, n, n_threads)
    for i in range(n):
        for j in range(m):
            C[i * m + j] = buf[j * n + i]
    if buf != &ct[0]:
        free(buf)
    return 0


cdef void _gemm(const floating* A, Py_ssize_t sa_i, Py_ssize_t sa_p,
                const floating* B, Py_ssize_t sb_p, Py_ssize_t sb_j, floating* C,
                Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    cdef Py_ssize_t i, j, p
    if n <= 0 or m <= 0:
        return
    if k <= 0:
        memset(C, 0, n * m * sizeof(floating))
        return
    if _chunked_ok(m, sizeof(floating)):
        if sa_i == 1 and _swap_pays(n, m, sizeof(floating)):
            if _narrow_swapped(A, sa_p, B, sb_p, sb_j, C, n, k, m, n_threads) == 0:
                return
        if sb_j == 1:
            _narrow(A, sa_i, sa_p, B, sb_p, C, n, k, m, n_threads)
            return
        if _narrow_bt(A, sa_i, sa_p, B, sb_p, sb_j, C, n, k, m, n_threads) == 0:
            return
    if n == 1 and sb_j == 1:
        _rows(A, sa_i, sa_p, B, sb_p, C, n, k, m, n_threads)
        return
    if n >= PACK_MIN_ROWS and n * k * m >= PACK_MIN:
        if _packed(A, sa_i, sa_p, B, sb_p, sb_j, C, n, k, m, n_threads) == 0:
            return
    if _direct(A, sa_i, sa_p, B, sb_p, sb_j, C, n, k, m, n_threads) == 0:
        return
    # out of memory for the scratch panels: plain loops
    for i in range(n):
        for j in range(m):
            C[i * m + j] = 0
        for p in range(k):
            for j in range(m):
                C[i * m + j] = C[i * m + j] + A[i * sa_i + p * sa_p] * B[p * sb_p + j * sb_j]


# ---------------------------------------------------------------------------
# cdef entry points (declared in matmul.pxd; used by network.pyx without the GIL)
# ---------------------------------------------------------------------------
cdef void matmul_c(const floating* A, const floating* B, floating* C,
                   Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    _gemm(A, k, 1, B, m, 1, C, n, k, m, n_threads)


cdef void matmul_tn_c(const floating* A, const floating* B, floating* C,
                      Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    _gemm(A, 1, n, B, m, 1, C, n, k, m, n_threads)


cdef void matmul_nt_c(const floating* A, const floating* B, floating* C,
                      Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, floating* Bt,
                      int n_threads) noexcept nogil:
    # B (m, k) read as B^T through its strides; Bt (the caller's scratch) is unused
    _gemm(A, k, 1, B, 1, k, C, n, k, m, n_threads)


cdef void matmul_lda_c(const floating* A, Py_ssize_t lda, const floating* B, floating* C,
                       Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil:
    _gemm(A, lda, 1, B, m, 1, C, n, k, m, n_threads)


cdef int matmul_ptr_c(int variant, const floating* const* arow, Py_ssize_t a_off,
                      const floating* B, floating* C, Py_ssize_t n, Py_ssize_t k,
                      Py_ssize_t m) noexcept nogil:
    """The narrow path (one thread) with A given by pointers, variant 0: A (n, k),
    row i at arow[i] + a_off; variant 1: C = A.T @ B with A (k, n), row p at
    arow[p] + a_off; the columns in chunks of nrw_chunk vectors as in _narrow.
    -1 (nothing done) where the narrow kernels do not apply (m over
    _chunked_ok's limit, no AVX2): the caller gathers A and calls matmul_c /
    matmul_tn_c, which give the same bits."""
    cdef Py_ssize_t vl = fn_nrw_vbytes // <Py_ssize_t> sizeof(floating)
    cdef Py_ssize_t cw = nrw_chunk, nvec, nchunk, c, j0, nv, nblk, R, t, i0, rows
    cdef unsigned int mk, tail
    if not _chunked_ok(m, sizeof(floating)):
        return -1
    if n <= 0 or m <= 0:
        return 0
    if k <= 0:
        memset(C, 0, n * m * sizeof(floating))
        return 0
    nvec = (m + vl - 1) // vl
    nchunk = (nvec + cw - 1) // cw
    tail = <unsigned int> ((1 << (m - (nvec - 1) * vl)) - 1)
    for c in range(nchunk):
        nv = min(cw, nvec - c * cw)
        j0 = c * cw * vl
        mk = tail if c == nchunk - 1 else <unsigned int> ((1 << vl) - 1)
        R = _cdiv(n, _cdiv(n, fn_nrw_rmax[nv - 1]))
        nblk = _cdiv(n, R)
        for t in range(nblk):
            i0 = t * R
            rows = min(R, n - i0)
            if floating is float:
                if variant == 0:
                    fn_nrwx_f32(0, nv, rows)(k, arow + i0, a_off, B + j0, m, C + i0 * m + j0, m, mk)
                else:
                    fn_nrwx_f32(1, nv, rows)(k, arow, a_off + i0, B + j0, m, C + i0 * m + j0, m, mk)
            else:
                if variant == 0:
                    fn_nrwx_f64(0, nv, rows)(k, arow + i0, a_off, B + j0, m, C + i0 * m + j0, m, mk)
                else:
                    fn_nrwx_f64(1, nv, rows)(k, arow, a_off + i0, B + j0, m, C + i0 * m + j0, m, mk)
    return 0


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
def _shape_error(name, A, B, C):
    return ValueError("%s: shapes A %s, B %s, C %s do not match"
                      % (name, tuple(A.shape[:2]), tuple(B.shape[:2]), tuple(C.shape[:2])))


def matmul(const floating[:, ::1] A,  # IN (n, k)
           const floating[:, ::1] B,  # IN (k, m)
           floating[:, ::1] C,        # OUT (n, m)
           int n_threads):
    """C = A @ B.  A (n, k), B (k, m), C (n, m) OUT."""
    cdef Py_ssize_t n = A.shape[0], k = A.shape[1], m = B.shape[1]
    if not (B.shape[0] == k and C.shape[0] == n and C.shape[1] == m):
        raise _shape_error("matmul", A, B, C)
    if n == 0 or m == 0:
        return
    with nogil:
        matmul_c(&A[0, 0] if k else <floating*> NULL, &B[0, 0] if k else <floating*> NULL,
                 &C[0, 0], n, k, m, max(n_threads, 1))


def matmul_tn(const floating[:, ::1] A,  # IN (k, n)
              const floating[:, ::1] B,  # IN (k, m)
              floating[:, ::1] C,        # OUT (n, m)
              int n_threads):
    """C = A.T @ B.  A (k, n), B (k, m), C (n, m) OUT; rows of A/B summed in order."""
    cdef Py_ssize_t k = A.shape[0], n = A.shape[1], m = B.shape[1]
    if not (B.shape[0] == k and C.shape[0] == n and C.shape[1] == m):
        raise _shape_error("matmul_tn", A, B, C)
    if n == 0 or m == 0:
        return
    with nogil:
        matmul_tn_c(&A[0, 0] if k else <floating*> NULL, &B[0, 0] if k else <floating*> NULL,
                    &C[0, 0], n, k, m, max(n_threads, 1))


def matmul_nt(const floating[:, ::1] A,  # IN (n, k)
              const floating[:, ::1] B,  # IN (m, k)
              floating[:, ::1] C,        # OUT (n, m)
              int n_threads):
    """C = A @ B.T.  A (n, k), B (m, k), C (n, m) OUT."""
    cdef Py_ssize_t n = A.shape[0], k = A.shape[1], m = B.shape[0]
    if not (B.shape[1] == k and C.shape[0] == n and C.shape[1] == m):
        raise _shape_error("matmul_nt", A, B, C)
    if n == 0 or m == 0:
        return
    with nogil:
        matmul_nt_c(&A[0, 0] if k else <floating*> NULL, &B[0, 0] if k else <floating*> NULL,
                    &C[0, 0], n, k, m, <floating*> NULL, max(n_threads, 1))


# ---------------------------------------------------------------------------
# instruction-set selection (import time; FASTNET_MM_ISA=baseline|avx2|avx512 caps it)
# ---------------------------------------------------------------------------
def select_isa(want="auto"):
    """Pick the micro-kernel: "auto" (the best the CPU supports), "avx512",
    "avx2" or "baseline" (SSE2); returns the one in use.  Shape-only tiling
    still holds: the choice is per process, never per call."""
    levels = {"baseline": 0, "sse2": 0, "avx2": 1, "avx512": 2, "auto": 2}
    if want not in levels:
        raise ValueError("select_isa: unknown instruction set %r" % (want,))
    global nrw_max_cols, nrw_chunk
    got = fastnet_mm_select(levels[want])
    # column chunks of 4 vectors on AVX-512 (6 rows in flight), 2 on AVX2 (5 rows:
    # AVX2's 16 registers); both beat the packed / direct tiles up to NRW_MAX_COLS
    # (`bench/report.py` and `--isa avx2`, GEMM tables)
    nrw_chunk = 4 if got == 2 else 2
    nrw_max_cols = NRW_MAX_COLS if got >= 1 else 0
    return ("baseline", "avx2", "avx512")[got]


def _set_swap_max_cols(Py_ssize_t cols):
    """Test hook: the most rows of C for which matmul_tn runs as C^T = B^T A^T
    (0: never); returns the previous limit.  The bits do not depend on it."""
    global swap_max_cols
    old = swap_max_cols
    swap_max_cols = max(cols, 0)
    return old


def _set_narrow_max_cols(Py_ssize_t cols):
    """Benchmark hook: the narrow path's column limit (0: one chunk of at most 4
    vectors); returns the previous one.  The bits do not depend on it."""
    global nrw_max_cols
    old = nrw_max_cols
    nrw_max_cols = max(cols, 0)
    return old


def _set_ukr_packed(int on):
    """Benchmark hook: the micro-kernel's constant-stride loop for packed panels
    (1) or its generic loop (0); returns the previous setting.  Same bits."""
    global fn_ukr_pk
    old = fn_ukr_pk
    fn_ukr_pk = 1 if on else 0
    return old


def _set_kc(Py_ssize_t kc):
    """Benchmark hook: the packed path's largest block of p; returns the previous
    one.  The bits do not depend on it."""
    global mm_kc
    if kc < 1:
        raise ValueError("_set_kc: kc must be at least 1, got %d" % kc)
    old = mm_kc
    mm_kc = kc
    return old


def _set_narrow_chunk(Py_ssize_t vectors):
    """Benchmark hook: vectors per column chunk of the narrow path (1 to 4);
    returns the previous one.  The bits do not depend on it."""
    global nrw_chunk
    if not 1 <= vectors <= 4:
        raise ValueError("_set_narrow_chunk: vectors must be 1 to 4, got %d" % vectors)
    old = nrw_chunk
    nrw_chunk = vectors
    return old


def isa():
    """The micro-kernel in use and its float32 / float64 tiles (MR x NR)."""
    return {"isa": ("baseline", "avx2", "avx512")[fn_mm_isa], "mr": fn_mm_mr,
            "nr_float32": fn_mm_nr32, "nr_float64": fn_mm_nr64}


def _init():
    import os
    select_isa(os.environ.get("FASTNET_MM_ISA", "auto").strip().lower() or "auto")


_init()
