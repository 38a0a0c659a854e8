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

