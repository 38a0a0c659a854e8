"""Per kernel x shape x backend: the contract kernels at the workloads' shapes.

Groups are "kernel:shape" (gemm shapes are n x k x m: C (n, m), inner k), so
each group's table compares the backends; the gemm groups also have "blas"
(numpy.matmul on OpenBLAS), the reference point.  The cases are the kernel
calls of one seed step and one wide step plus the three gemm forms at 1024^3
(see fnbench.step_calls / fnbench.kernel_cases).
"""
import fnbench


def test_kernel(benchmark, bench_threads, kernel_case, kernel_impl):
    group, factory = kernel_case
    fnbench.skip_unless(kernel_impl)
    case = fnbench.get_case(group, factory)
    fn = case.build(kernel_impl, bench_threads)
    fn()  # first call outside the timing (numba loads / compiles here)
    benchmark.group = group
    benchmark.extra_info["kernel"] = case.kernel
    benchmark.extra_info["threads"] = bench_threads
    if case.flops:
        benchmark.extra_info["flops"] = case.flops
    benchmark(fn)
    stats = getattr(benchmark, "stats", None)
    if case.flops and stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["gflops_at_median"] = case.flops / stats.stats.median / 1e9
