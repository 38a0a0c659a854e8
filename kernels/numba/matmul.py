"""Matrix products of the dense layers (numba twin of kernels/cython/matmul.pyx).

    matmul     C = A @ B      forward        z = x W
    matmul_tn  C = A.T @ B    weight grad    dW = x^T delta
    matmul_nt  C = A @ B.T    backprop       delta_prev = delta W^T

Our own loops, no BLAS.  One register-blocked micro-kernel serves the three
forms: a block of ROW_BLOCK rows of C (8 on AVX-512, 5 on AVX2) by one panel of
2 vectors of columns (32 float32 / 16 float64 on AVX-512, see
kernels/numba/simd.py) lives in vector registers while p runs over the shared
dimension; each step loads the panel's row of B once (2 vectors) and broadcasts
ROW_BLOCK values of A (``_blkR``, rendered from kernels/templates/microkernel.py.tp).
A panel of two whole vectors runs ``_fblkR`` instead, plain loads and stores
in blocks of ``FULL_ROWS`` rows (6 on AVX2, whose masks would take the registers
of the sixth row).  The last panel's columns are masked loads and stores, so any
width runs at vector speed (LLVM's own vectoriser left most of a 30-wide row to
its scalar remainder; bench/REPORT.md's kernel table has ``matmul_tn:784x10x30``).
A panel's rows run in blocks of equal size.  p runs in blocks of ``P_BLOCK`` so a
block's panel of B stays in L1 while every row block passes over it; a block
after the first starts from the C values the previous block stored.

A product of one row wider than a panel (batch-1 inference) runs in axpy form
instead (``_row``, the Cython twin's ``FN_ROW``), B streamed once row by row;
a few rows (2 .. ROW_BLOCK - 1) take the register blocks, one pass over B.

``matmul_tn`` runs the kernel on the transposed view ``A.T`` (the A values are
scalar broadcasts, so their stride costs nothing), or, when C's columns leave
most of their last vector empty while its rows fill whole vectors (the weight
gradient of an output layer of 10 units: 10 of 16 lanes), as C^T = B^T A into
a scratch then transposed (``_swap_pays``; the Cython twin's
``_narrow_swapped``; matmul_tn 256x128x10 in bench/REPORT.md's GEMM table);
``matmul_nt`` first writes
B^T into a scratch array (m * k moves, against n * m * k multiply-adds;
``nt_ws`` takes the caller's scratch).

No packing as in the Cython twin, but when an operand's rows (B's, or the
columns of matmul_tn's transposed A) lie a multiple of ALIAS_BYTES apart, the
P_BLOCK rows of a panel would fall into a few cache sets and leave L1 (1024^3,
a wide layer's 512 or 256 columns): a large enough product runs on a copy with
rows PAD_BYTES further apart, made in one parallel pass (``_ldpad`` gives the
padded row length, which matmul_nt's scratch takes from the start).

Reduction order: every element of C is ``fma(a_p, b_p, ...)`` for p = 0, 1,
..., k-1 in order, starting from 0, whatever the blocking, so the result is a
function of the shape alone.  Work is split over OUTPUT rows (chunks of whole
row blocks), so each thread owns the rows it writes and the result is
bit-identical for any thread count.

The contract kernels are serial drivers around one parallel function
(``_product``, the only ``prange``).

Arrays with a non-unit stride in their last dimension (outside the backend
contract, which passes C-contiguous arrays) go through contiguous copies.
"""
import numpy as np
from numba.core import config, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from ._jit import kernel_helper, helper, serial, inlined, prange, MATMUL_PAR_MIN, ROW_PAR_MIN, SERIAL_TWIN
from .simd import vlanes, vzero, vbcast, vload, vload_n, vstore, vstore_n, vfma, stack_empty_2d, STACK_MAX_BYTES, VECTOR_BYTES
from ._generated_microkernel import _blk, _blk8, _blk5, _vblk8, _vblk5, _fblk8, _fblk6

#: rows of C per micro-kernel block: 8 rows x 2 vectors = 16 accumulators of
#: AVX-512's 32 registers, 5 x 2 = 10 of AVX2's 16 (with the B row, the broadcast and
#: the two lane masks: 6 rows spilled; `bench/report.py --isa avx2`'s GEMM table)
ROW_BLOCK = 8 if VECTOR_BYTES == 64 else 5
#: rows per block of a panel of two whole vectors, with plain loads and stores
#: (``_fblkR``): without the masks AVX2's 16 registers hold 6 rows (12
#: accumulators); AVX-512 keeps 8 (the wide shapes of bench/REPORT-avx2.md's and
#: bench/REPORT.md's GEMM tables)
FULL_ROWS = 8 if VECTOR_BYTES == 64 else 6
#: values of p per block: a block's B panel (P_BLOCK x 2 vectors: 32 KB of
#: float32 on AVX-512) stays in L1 while the row blocks pass over it
P_BLOCK = 256
#: matmul_tn with C's columns a fraction of a vector runs as C^T = B^T A up to
#: this many rows of C (the Cython twin's SWAP_MAX_COLS)
SWAP_MAX_COLS = 1024
#: matmul_nt's transpose of B: tile edge
T_TILE = 16
#: rows per cache block (whole row blocks): I_BLOCK x P_BLOCK of A (128 KB
#: float32 on AVX-512) stays in L2
I_BLOCK = 16 * ROW_BLOCK
#: an operand whose rows lie a multiple of this many bytes apart puts the
#: P_BLOCK rows of a panel into a few cache sets (at 4 KB into one), so the panel
#: does not stay in L1; _product then runs on a copy whose rows are PAD_BYTES
#: further apart (numba 1024^3 and the wide step's products in
#: bench/REPORT-avx2.md's GEMM table)
ALIAS_BYTES = 256
PAD_BYTES = 64
#: ... when the product has at least this many rows of C to reuse the copy over
PAD_MIN_ROWS = 32
#: 0 in the split step's copies (kernels/numba/network.py: its products stay
#: below MATMUL_PAR_MIN, so the copy never pays there), which then do not
#: compile it (bench/numba_compile_time.py)
PAD_COPY = 1


@intrinsic
def _strided(typingctx, a):
    """``a`` typed as a writable array of any layout (the same array: numba's
    layout and read-only flags are types only, the data model is one).  The
    products' A operand goes through this, so a C-contiguous batch, the halves of
    layer 0's p (``Xb[:, :r]``), matmul_tn's transposed view and forward's
    read-only X reach ONE compiled specialisation of matmul's chain (_product,
    _rows, _panel, the register blocks) per dtype instead of one per layout.
    The micro-kernel only broadcasts A's values (scalar loads), so its stride
    being a variable costs nothing; the kernels never write A."""
    if not isinstance(a, types.Array):
        return None
    ret = a.copy(layout="A", readonly=False)

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, ret, args[0])
    return ret(a), codegen


@intrinsic
def _c_rows(typingctx, a):
    """``a`` (a 2-d array whose rows are contiguous and adjacent: the caller checks)
    typed as a writable C-contiguous array, the type of the products' B operand:
    matmul_tn's transposed form reaches the same compiled
    specialisation of matmul's chain as the direct one."""
    if not isinstance(a, types.Array):
        return None
    ret = a.copy(layout="C", readonly=False)

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, ret, args[0])
    return ret(a), codegen


if config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT (the kernels run as Python): types do not exist there
    def _strided(a):  # noqa: F811
        return a

    def _c_rows(a):  # noqa: F811
        return a


@inlined
def _rows(A, B, C, i0, i1, c0, c1):
    """C[i0:i1, c0:c1] = A[i0:i1] @ B[:, c0:c1] (c0 a multiple of 2 vectors).  A (n, k)
    any strides, B (k, m) and C (n, m) with unit-stride rows.  Loops: blocks of p
    (the first starts from 0, the others from C), blocks of I_BLOCK rows (their A
    block stays in L2 while the panels of B pass), panels of 2 vectors of columns,
    then ``_panel``."""
    k = B.shape[0]
    L = vlanes(C)
    for p0 in range(0, k, P_BLOCK):
        p1 = min(p0 + P_BLOCK, k)
        # a short p block takes more rows per block, the same bytes of A
        rb = I_BLOCK * (P_BLOCK // (p1 - p0))
        for ib in range(i0, i1, rb):
            for j0 in range(c0, c1, 2 * L):
                _panel(A, B, C, ib, min(ib + rb, i1), j0, min(2 * L, c1 - j0), p0, p1)


@inlined
def _panel(A, B, C, i0, i1, j0, w, p0, p1):
    """C[i0:i1, j0:j0 + w] (+)= A[i0:i1, p0:p1] @ B[p0:p1, j0:j0 + w], w <= 2 vectors:
    blocks of ROW_BLOCK rows, the last 1 or 2 blocks of equal size (10 rows: 5 + 5,
    not 8 + 1 + 1).  A panel of two whole vectors runs blocks of FULL_ROWS rows
    without masks first, its last rows (fewer than FULL_ROWS) as above."""
    L = vlanes(C)
    w0 = min(L, w)
    w1 = w - w0
    j1 = j0 + L
    i = i0
    # one call runs every block of the panel (at k = 10 a call, which passes
    # three arrays, cost as much as a block's arithmetic: matmul_tn 784x10x30 in
    # bench/REPORT-avx2.md's GEMM table)
    if w == 2 * L:
        nb = (i1 - i) // FULL_ROWS
        if nb > 0:
            if FULL_ROWS == 8:          # (a constant: numba compiles one branch)
                _fblk8(A, B, C, i, nb, j0, p0, p1)
            else:
                _fblk6(A, B, C, i, nb, j0, p0, p1)
            i += nb * FULL_ROWS
    if w1 == 0:
        # a panel of one vector (a layer of 10 units): no second vector of zeros
        nb = (i1 - i) // ROW_BLOCK
        if nb > 0:
            if ROW_BLOCK == 8:
                _vblk8(A, B, C, i, nb, j0, w0, p0, p1)
            else:
                _vblk5(A, B, C, i, nb, j0, w0, p0, p1)
            i += nb * ROW_BLOCK
    nb = (i1 - i) // ROW_BLOCK - 1          # all but the last one or two blocks
    if nb > 0:
        if ROW_BLOCK == 8:
            _blk8(A, B, C, i, nb, j0, j1, w0, w1, p0, p1)
        else:
            _blk5(A, B, C, i, nb, j0, j1, w0, w1, p0, p1)
        i += nb * ROW_BLOCK
    if i1 - i > ROW_BLOCK:
        r = (i1 - i + 1) // 2
        _blk(r, A, B, C, i, j0, j1, w0, w1, p0, p1)
        i += r
    if i < i1:
        _blk(i1 - i, A, B, C, i, j0, j1, w0, w1, p0, p1)


@helper
def _row(A, i, B, c, k, j0, j1):
    """c[j0:j1] = A[i] @ B[:, j0:j1] for one row (batch-1 inference), in axpy form
    as the Cython twin's FN_ROW: four values of p per pass over c (L1), so B streams
    contiguously row by row; the 2-vector panel of ``_blk`` would give one row only
    2 FMA chains (bench/REPORT.md's predict latency).  Every element is still
    fma(a_p, b_p, ...) for p in order from 0: the same bits as the blocked path,
    whatever the column range."""
    L = vlanes(c)
    mv = j1 - (j1 - j0) % L
    w = j1 - mv
    z = vzero(c)
    for j in range(j0, mv, L):
        vstore(c, j, z)
    t = z           # the ragged last columns stay in a register (a masked store then
    p = 0           # a masked load of the same address stalls store forwarding)
    while p + 4 <= k:
        a0 = vbcast(A[i, p], c)
        a1 = vbcast(A[i, p + 1], c)
        a2 = vbcast(A[i, p + 2], c)
        a3 = vbcast(A[i, p + 3], c)
        b0 = B[p]
        b1 = B[p + 1]
        b2 = B[p + 2]
        b3 = B[p + 3]
        for j in range(j0, mv, L):
            x = vfma(a0, vload(b0, j), vload(c, j))
            x = vfma(a1, vload(b1, j), x)
            x = vfma(a2, vload(b2, j), x)
            vstore(c, j, vfma(a3, vload(b3, j), x))
        if w > 0:
            t = vfma(a0, vload_n(b0, mv, w), t)
            t = vfma(a1, vload_n(b1, mv, w), t)
            t = vfma(a2, vload_n(b2, mv, w), t)
            t = vfma(a3, vload_n(b3, mv, w), t)
        p += 4
    while p < k:
        a0 = vbcast(A[i, p], c)
        b0 = B[p]
        for j in range(j0, mv, L):
            vstore(c, j, vfma(a0, vload(b0, j), vload(c, j)))
        if w > 0:
            t = vfma(a0, vload_n(b0, mv, w), t)
        p += 1
    if w > 0:
        vstore_n(c, mv, t, w)


@helper
def _zero(C):
    for i in range(C.shape[0]):
        for j in range(C.shape[1]):
            C[i, j] = 0


@helper
def _chunks(n, k, m, n_threads):
    """Row chunks of the parallel loop: 1 below MATMUL_PAR_MIN multiply-adds,
    else up to n_threads chunks of whole row blocks (shape and n_threads only;
    the values do not depend on the split)."""
    if n * k * m < MATMUL_PAR_MIN or n_threads <= 1:
        return 1
    return max(1, min(n_threads, n // ROW_BLOCK))


@kernel_helper
def _product(A, B, C, n_threads):
    """C = A @ B for the three drivers (A any strides; B, C unit-stride rows)."""
    n = C.shape[0]
    k = B.shape[0]
    if k == 0:
        _zero(C)
        return
    m = C.shape[1]
    if n == 1 and m > 2 * vlanes(C):   # (up to one panel, _blk is one pass over B too)
        # from ROW_PAR_MIN the columns split between the threads in blocks of 16
        # (whole vectors in every ISA) as in the Cython twin's _rows: the same bits
        if n_threads > 1 and k * m >= ROW_PAR_MIN and m >= 32:
            nb = (m + 15) // 16
            nt = min(n_threads, nb)
            for t in prange(nt):
                _row(A, 0, B, C[0], k, nb * t // nt * 16, min(nb * (t + 1) // nt * 16, m))
            return
        _row(A, 0, B, C[0], k, np.int64(0), m)
        return
    nc = _chunks(n, k, C.shape[1], n_threads)
    if PAD_COPY and n >= PAD_MIN_ROWS and k >= 2 * FULL_ROWS and n * k * m >= MATMUL_PAR_MIN:
        pad_b = B.strides[0] % ALIAS_BYTES == 0
        # matmul_tn's A is a transposed view: its columns are the panel's rows
        pad_a = A.strides[0] == A.itemsize and A.strides[1] % ALIAS_BYTES == 0
        if pad_b or pad_a:
            At = A.T
            Bp = np.empty((k, _ldpad(m, B.itemsize) if pad_b else 0), B.dtype)
            Ap = np.empty((k, _ldpad(n, A.itemsize) if pad_a else 0), A.dtype)
            for t in prange(nc):         # (one parallel region for both copies)
                r0 = k * t // nc
                r1 = k * (t + 1) // nc
                if pad_b:
                    _pad_copy(B, Bp, r0, r1)
                if pad_a:
                    _pad_copy(At, Ap, r0, r1)
            if pad_b:
                B = Bp
            if pad_a:
                A = Ap[:, :n].T
    z = np.int64(0)                      # not a literal 0: one specialisation, not two
    if nc == 1:
        _rows(A, B, C, z, n, z, m)
        return
    blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    per = (blocks + nc - 1) // nc * ROW_BLOCK
    for t in prange(nc):
        _rows(A, B, C, min(t * per, n), min((t + 1) * per, n), z, m)


@helper
def _ldpad(m, itemsize):
    """The row length (elements) of a scratch copy of rows of m elements: m, or
    m + PAD_BYTES worth when rows of m would alias (ALIAS_BYTES)."""
    if (m * itemsize) % ALIAS_BYTES == 0:
        return m + PAD_BYTES // itemsize
    return m


@helper
def _pad_copy(src, dst, r0, r1):
    """dst[r0:r1, :m] = src[r0:r1] (src's rows unit-stride, m = src.shape[1])."""
    m = src.shape[1]
    for i in range(r0, r1):
        s = src[i]
        d = dst[i]
        for j in range(m):
            d[j] = s[j]


@helper
def _transpose(B, Bt, j0, j1):
    """Bt[j0:j1] = B[:, j0:j1].T in tiles of T_TILE x T_TILE (a plain double
    loop writes Bt's column with a stride of a whole row: 4k aliasing at
    power-of-two widths); one pass when B fits STACK_MAX_BYTES (all in L1).  Also
    meProp's matmul_nt_sparse (kernels/numba/layers.py), per column tile."""
    m = B.shape[0]
    if m * (j1 - j0) * Bt.itemsize <= STACK_MAX_BYTES:
        for p in range(j0, j1):
            for j in range(m):
                Bt[p, j] = B[j, p]
        return
    if j0 == 0 and j1 == B.shape[1]:
        _transpose8(B, Bt)
        return
    for i0 in range(0, m, T_TILE):
        i1 = min(i0 + T_TILE, m)
        for p0 in range(j0, j1, T_TILE):
            p1 = min(p0 + T_TILE, j1)
            for i in range(i0, i1):
                for p in range(p0, p1):
                    Bt[p, i] = B[i, p]


@helper
def _transpose8(B, Bt):
    """Bt = B.T in 8 x 8 blocks of constant trip counts, which LLVM turns into
    register shuffles: the whole of matmul_nt's B^T (the tiled loop held matmul_nt
    128x256x512 well below matmul's speed: bench/REPORT-avx2.md's GEMM table),
    the ragged edges element by element.  (A block loop starting at a run-time
    column ran slower: meProp's column tiles keep the tiled loop.)"""
    _transpose8_rows(B, Bt, 0, B.shape[0])


@inlined
def _transpose8_rows(B, Bt, r0, r1):
    """Bt[:, r0:r1] = B[r0:r1].T (r0 a multiple of 8) in _transpose8's blocks."""
    k = B.shape[1]
    e8 = r1 - (r1 - r0) % 8
    k8 = k - k % 8
    for i0 in range(r0, e8, 8):
        for p0 in range(0, k8, 8):
            for p in range(8):
                for i in range(8):
                    Bt[p0 + p, i0 + i] = B[i0 + i, p0 + p]
    for i in range(r0, e8):
        for p in range(k8, k):
            Bt[p, i] = B[i, p]
    for i in range(e8, r1):
        for p in range(k):
            Bt[p, i] = B[i, p]


@kernel_helper
def _nt_cols(A, B, C, Bt, n_threads):
    """C = A @ B.T in blocks of C's columns, one per thread: each thread forms its
    columns of Bt (its rows of B) and multiplies into its columns of C, so no
    thread waits for a serial B^T and each reads the Bt it wrote (matmul_nt
    128x256x512 in bench/REPORT.md's GEMM table).  Blocks of 32 columns: whole
    panels of 2 vectors in every ISA, the bits of the row split."""
    m = B.shape[0]
    nb = (m + 31) // 32
    nc = min(n_threads, nb)
    for t in prange(nc):
        c0 = nb * t // nc * 32
        c1 = min(nb * (t + 1) // nc * 32, m)
        _transpose8_rows(B, Bt, c0, c1)
        _rows(A, Bt, C, np.int64(0), C.shape[0], c0, c1)


@helper
def _copy2d(src, dst):
    """dst[...] = src element by element (dst[:] = src would also compile numba's
    shape-mismatch error message, a few seconds of the cold compile)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@helper
def _unit_rows(X):
    return X.shape[1] <= 1 or X.strides[1] == X.itemsize


@inlined
def matmul(A, B, C, n_threads):
    """C = A @ B.  A (n, k), B (k, m), C (n, m) OUT."""
    if B.shape[0] != A.shape[1] or C.shape[0] != A.shape[0] or C.shape[1] != B.shape[1]:
        raise ValueError("matmul: shapes A (n, k), B (k, m), C (n, m) do not match")
    if _unit_rows(B) and _unit_rows(C):
        _product(A, B, C, n_threads)
    else:
        T = np.empty(C.shape, C.dtype)
        _product(A, np.ascontiguousarray(B), T, n_threads)
        _copy2d(T, C)


@inlined
def matmul_tn(A, B, C, n_threads):
    """C = A.T @ B.  A (k, n), B (k, m), C (n, m) OUT; rows of A/B summed in order."""
    if B.shape[0] != A.shape[0] or C.shape[0] != A.shape[1] or C.shape[1] != B.shape[1]:
        raise ValueError("matmul_tn: shapes A (k, n), B (k, m), C (n, m) do not match")
    if _unit_rows(B) and _unit_rows(C):
        if _swap_pays(A, C):
            # C^T = B^T A over C's rows (A's rows read in place, B's values broadcast),
            # then transposed into C: every element is the same chain of fused
            # multiply-adds over p (each step's product commutes), the bits of the
            # direct form and of the Cython twin's _narrow_swapped.  (Written here,
            # not in a function of its own: each level that calls _product compiles
            # its chain again, bench/numba_compile_time.py.)
            n = C.shape[0]
            m = C.shape[1]
            if m * n * C.itemsize <= STACK_MAX_BYTES:
                Ct = stack_empty_2d(m, n, C)
            else:
                Ct = np.empty((m, n), C.dtype)
            _product(_strided(B.T), _c_rows(A), Ct, n_threads)
            _transpose(Ct, C, 0, n)
        else:
            _product(A.T, B, C, n_threads)
    else:
        T = np.empty(C.shape, C.dtype)
        _product(A.T, np.ascontiguousarray(B), T, n_threads)
        _copy2d(T, C)


@helper
def _swap_pays(A, C):
    """matmul_tn as C^T = B^T A computes a fifth fewer vector lanes or better (the
    Cython twin's _swap_pays): C's n rows fill whole vectors while its m columns
    leave most of their last vector empty (an output layer of 10 units); A's rows
    contiguous and adjacent (they become the B operand)."""
    n = C.shape[0]
    m = C.shape[1]
    L = vlanes(C)
    if n < 4 * L or n > SWAP_MAX_COLS:
        return False
    if A.shape[0] > 1 and (A.strides[1] != A.itemsize or A.strides[0] != n * A.itemsize):
        return False
    return m * ((n + L - 1) // L) * 5 < n * ((m + L - 1) // L) * 4


@serial
def matmul_nt(A, B, C, n_threads):
    """C = A @ B.T.  A (n, k), B (m, k), C (n, m) OUT; B^T is formed in a scratch
    array first."""
    m = B.shape[0]
    k = B.shape[1]
    if A.shape[1] != k or C.shape[0] != A.shape[0] or C.shape[1] != m:
        raise ValueError("matmul_nt: shapes A (n, k), B (m, k), C (n, m) do not match")
    if m * k * C.itemsize <= STACK_MAX_BYTES:
        Bt = stack_empty_2d(k, m, C)            # small: no allocator call (a large share of a tiny product)
    else:
        Bt = np.empty((k, _ldpad(m, C.itemsize)), C.dtype)     # (rows that do not alias)
    nt_ws(A, B, C, Bt, n_threads)


@inlined
def nt_ws(A, B, C, Bt, n_threads):
    """matmul_nt's work with the caller's scratch Bt for B^T: (k, m), or wider
    (``_ldpad``: its columns from m on are not read; train_batches passes one
    buffer for every batch and layer)."""
    if not SERIAL_TWIN:              # (a serial twin compiles only the path below)
        n = A.shape[0]
        m = B.shape[0]
        if (_unit_rows(C) and n_threads > 1 and m >= 64 and B.shape[1] > 0
                and _chunks(n, B.shape[1], m, n_threads) > 1):
            _nt_cols(A, B, C, Bt, n_threads)
            return
    _transpose(B, Bt, 0, B.shape[1])
    if _unit_rows(C):
        _product(A, Bt, C, n_threads)
    else:
        T = np.empty(C.shape, C.dtype)
        _product(A, Bt, T, n_threads)
        _copy2d(T, C)
