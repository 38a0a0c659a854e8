"""Smoke run of bench/sklearn_vs_fastnet.py (``--quick``: tiny sizes, nothing
timed or compared), so that it cannot rot; bench/dask_gridsearch.py's runs on
the cluster of tests/test_sklearn_dask.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
BENCH = Path(__file__).resolve().parents[1] / "bench"
pytestmark = pytest.mark.skipif(not (BENCH / "sklearn_vs_fastnet.py").exists(), reason="bench/ is not here")


def _run(script, out, timeout=300):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=str(out.parent))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out.read_text(), json.loads(out.with_suffix(".json").read_text())


def test_sklearn_vs_fastnet_quick(tmp_path):
    text, rows = _run("sklearn_vs_fastnet.py", tmp_path / "sk.md")
    assert "| digits, batch 200 |" in text and "| diabetes, lbfgs |" in text
    done = [r for r in rows if "skipped" not in r]
    assert len(done) >= 6 and all(r["fn_time"] > 0 and r["sk_time"] > 0 for r in done)
    lbfgs = [r for r in done if "lbfgs" in r["row"]]
    assert all(abs(r["fn_score"] - r["sk_score"]) < 1e-3 for r in lbfgs)  # same weights as scikit-learn's
    # the limit: GEMM FLOPs per sample and step of 64-100-10 are 2 (3 (6400 + 1000) - 6400) = 31600
    digits = next(r for r in done if r["row"] == "digits, batch 200")
    assert digits["units"] == [64, 100, 10] and digits["dtype"] == "float32"
    assert digits["gemm_flops"] == 31600 * digits["n_train"] * digits["sk"][0][2]
    assert digits["bound_time"] == pytest.approx(digits["gemm_flops"] / digits["gemm_rate"])
    if digits["peak_bound"] is not None:
        assert digits["peak_bound"] == pytest.approx(digits["gemm_flops"] / digits["fma_rate"])
    # the machine's rate: the faster of numpy's BLAS and fastnet's own matmul, both measured
    assert digits["gemm_rate"] == max(digits["numpy_gemm_rate"], digits["fastnet_gemm_rate"])
    assert min(digits["numpy_gemm_rate"], digits["fastnet_gemm_rate"]) > 1e8
    for r in lbfgs:  # per evaluation (scikit-learn's, counted), plus its fit with them replayed
        assert r["evaluations"][0] >= r["sk"][0][2] and 0 < r["replay"][0] < r["bound_time"]
        # scikit-learn on float64 input: 5 iterations stay on the float32 input's path
        assert abs(r["sk64_score"] - r["sk_score"]) < 1e-3
        assert "%s %.4f (" % (r["row"], r["sk64_score"]) in text
    for r in done:
        assert r["max_speedup"] == pytest.approx(r["sk_time"] / r["bound_time"])
        # the same products timed at OpenBLAS's speed on the row's shapes: at most numpy's 1024^3-class
        # rate (the FLOP bound is the smaller time, up to timing noise), and what the table prints
        assert r["openblas_bound"] > 0.5 * r["bound_time"]
        assert r["openblas_max_speedup"] == pytest.approx(r["sk_time"] / r["openblas_bound"])
        assert ("%.1fx" % r["openblas_max_speedup"]) in text
        if r["peak_bound"] is not None:
            # the FMA ceiling: at least any GEMM's rate, so the smaller time, up to the timing noise of two
            # short probes on a shared machine (a unit slip would be off by 1e9); "unattainable" is judged at it
            assert r["fma_rate"] > 1e9 and r["peak_bound"] < 3 * r["bound_time"]
            assert r["peak_max_speedup"] == pytest.approx(r["sk_time"] / r["peak_bound"])
            assert ("%.1fx" % r["peak_max_speedup"]) in text
            assert r["attainable"] == (r["peak_max_speedup"] >= 5.0)
        else:
            assert r["attainable"] == (r["max_speedup"] >= 5.0)
        assert 0.0 < r["kernel_share"] < 1.0
        assert ("| %s |" % r["row"]) in text
    unattainable = [line for line in text.splitlines() if line.startswith("Unattainable")]
    assert [r["row"] for r in done if not r["attainable"]] == [
        r["row"] for r in done if unattainable and r["row"] + " (max" in unattainable[0]]

