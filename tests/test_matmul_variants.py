"""The Cython matmul's micro-kernel variants (baseline SSE2, AVX2+FMA, AVX-512,
picked once per process from the CPU; ``select_isa`` caps the choice): every
variant the CPU supports matches float64 numpy on the direct (small, in-place),
narrow (AVX-512 / AVX2, at most 4 vectors of columns: m <= 64 / 32 float32) and
packed (large) paths of the three forms, ragged edges included, and gives the
same bits for 1 and 2 threads (the narrow shapes include one above the parallel
threshold and a matmul_nt whose B^T does not fit the stack buffer; 40 x 2100 x 70 is
packed in three blocks of p, KC being 1024)."""
import numpy as np
import pytest

mm = pytest.importorskip("fastnet._kernels.cython.matmul")

SHAPES = [(1, 1, 1), (1, 784, 512), (3, 5, 7), (10, 784, 30), (33, 300, 70), (64, 513, 65),
          (200, 40, 1030), (35, 1, 9), (2, 0, 3), (129, 700, 17), (300, 200, 129),
          (2048, 600, 10), (50, 300, 60), (17, 9, 16), (40, 33, 64), (1000, 10, 30), (13, 20, 48),
          (40, 2100, 70)]
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
