"""The Cython matmul's micro-kernel variants (baseline SSE2, AVX2+FMA, AVX-512,
picked once per process from the CPU; ``select_isa`` caps the choice): every
variant the CPU supports matches float64 numpy on the direct (small, in-place),
narrow (AVX-512 / AVX2, at most 4 vectors of columns: m <= 64 / 32 float32, and
up to 128 columns in chunks of 4 / 2 vectors) and
packed (large) paths of the three forms, ragged edges included, and gives the
same bits for 1 and 2 threads (the narrow shapes include one above the parallel
threshold and a matmul_nt whose B^T does not fit the stack buffer; 40 x 2100 x 70 is
packed in three blocks of p, KC being 1024; 70 x 333 x 150 is packed with a p
count that is not a multiple of the transposing packs' 8 x 8 blocks, a last row
panel of fewer than MR rows and a last column panel of 6 columns)."""
import numpy as np
import pytest

mm = pytest.importorskip("fastnet._kernels.cython.matmul")

SHAPES = [(1, 1, 1), (1, 784, 512), (3, 5, 7), (10, 784, 30), (33, 300, 70), (64, 513, 65),
          (200, 40, 1030), (35, 1, 9), (2, 0, 3), (129, 700, 17), (300, 200, 129),
          (2048, 600, 10), (50, 300, 60), (17, 9, 16), (40, 33, 64), (1000, 10, 30), (13, 20, 48),
          (40, 2100, 70), (200, 64, 100), (17, 784, 128), (1100, 1000, 100), (6, 5, 113),
          (9, 40, 129), (70, 333, 150)]
TOL = {np.float32: 1e-4, np.float64: 1e-10}


@pytest.fixture(params=["baseline", "avx2", "avx512"])
def isa(request):
    before = mm.isa()["isa"]
    got = mm.select_isa(request.param)
    try:
        if got != request.param:
            pytest.skip("this CPU has no %s" % request.param)
        yield got
    finally:
        mm.select_isa(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", SHAPES)
def test_variant_matches_reference_and_threads(isa, dtype, n, k, m):
    rng = np.random.default_rng(n * 7919 + k * 31 + m)
    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    R = A.astype(np.float64) @ B.astype(np.float64)
    scale = max(np.abs(R).max(), 1.0) if R.size else 1.0
    for form, a, b in [("matmul", A, B), ("matmul_tn", np.ascontiguousarray(A.T), B),
                       ("matmul_nt", A, np.ascontiguousarray(B.T))]:
        outs = []
        for threads in (1, 2):
            C = np.full((n, m), np.nan, dtype)
            getattr(mm, form)(a, b, C, threads)
            outs.append(C)
        assert np.abs(outs[0] - R).max() <= TOL[dtype] * scale, (form, isa)
        assert np.array_equal(outs[0], outs[1]), (form, isa)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(200, 64, 100), (17, 784, 128), (1100, 1000, 100), (6, 5, 113),
                                   (64, 513, 65), (33, 300, 70), (10, 784, 30)])
def test_column_chunks_give_the_bits_of_the_other_paths(isa, dtype, n, k, m):
    """The narrow path over column chunks (m up to 128; 1 to 4 vectors per chunk)
    sums every element in the same order with the same fused multiply-adds as the
    tiles it replaces: the same bits with the chunks off (the direct / packed paths),
    at 1 and 2 threads."""
    if isa == "baseline":
        pytest.skip("no narrow kernels: both runs take the same path")
    rng = np.random.default_rng(n + k + m)
    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    for form, a, b in [("matmul", A, B), ("matmul_tn", np.ascontiguousarray(A.T), B),
                       ("matmul_nt", A, np.ascontiguousarray(B.T))]:
        outs = []
        for chunk, cols in ((1, 128), (2, 128), (3, 128), (4, 128), (4, 0)):
            before = mm._set_narrow_max_cols(cols), mm._set_narrow_chunk(chunk)
            try:
                for threads in (1, 2):
                    C = np.full((n, m), np.nan, dtype)
                    getattr(mm, form)(a, b, C, threads)
                    outs.append(C)
            finally:
                mm._set_narrow_max_cols(before[0])
                mm._set_narrow_chunk(before[1])
        for o in outs[1:]:
            assert o.tobytes() == outs[0].tobytes(), (form, isa)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(100, 200, 10), (256, 128, 10), (512, 128, 10), (64, 200, 10),
                                   (100, 200, 1), (1024, 50, 3), (129, 700, 17), (300, 7, 20)])
def test_tn_as_transposed_product_gives_the_same_bits(isa, dtype, n, k, m):
    """matmul_tn with C's columns a fraction of a vector (an output layer's weight
    gradient) runs as C^T = B^T A^T over C's rows: every element is the same chain of
    fused multiply-adds over p, so the bits equal the direct form's, at 1 and 2
    threads; the result matches float64 numpy."""
    if isa == "baseline":
        pytest.skip("no narrow kernels: both runs take the same path")
    rng = np.random.default_rng(n * 3 + k * 5 + m)
    A = rng.standard_normal((k, n)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    R = A.T.astype(np.float64) @ B.astype(np.float64)
    outs = []
    for cols in (4096, 0):
        before = mm._set_swap_max_cols(cols)
        try:
            for threads in (1, 2):
                C = np.full((n, m), np.nan, dtype)
                mm.matmul_tn(A, B, C, threads)
                outs.append(C)
        finally:
            mm._set_swap_max_cols(before)
    assert np.abs(outs[0] - R).max() <= TOL[dtype] * max(np.abs(R).max(), 1.0)
    for o in outs[1:]:
        assert o.tobytes() == outs[0].tobytes(), isa


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_last_vector_of_every_width_stays_inside_its_row(isa, dtype):
    """The narrow kernels' last vector of a row holds 1 to all lanes; AVX2 stores
    it as 4 + 2 + 1 plain lanes (not a masked store): every count writes its own
    columns and nothing after them (the next row's first columns, which another
    column chunk's task may have written already, or past the end of C)."""
    rng = np.random.default_rng(5)
    for m in range(1, 37):
        n, k = 7, 9
        A = rng.standard_normal((n, k)).astype(dtype)
        B = rng.standard_normal((k, m)).astype(dtype)
        R = A.astype(np.float64) @ B.astype(np.float64)
        for form, a, b in [("matmul", A, B), ("matmul_tn", np.ascontiguousarray(A.T), B),
                           ("matmul_nt", A, np.ascontiguousarray(B.T))]:
            buf = np.full(n * m + 16, -7.0, dtype)
            C = buf[:n * m].reshape(n, m)
            getattr(mm, form)(a, b, C, 1)
            assert np.abs(C - R).max() <= TOL[dtype] * max(np.abs(R).max(), 1.0), (form, isa, m)
            assert (buf[n * m:] == -7.0).all(), (form, isa, m)
