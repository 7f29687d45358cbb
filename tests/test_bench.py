"""`python benchmarks/bench.py --quick`: the smoke version runs and writes every section.

Not a timed test: it checks that numbers come out, not how large they are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def _positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


def test_quick_bench_writes_every_section(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training" in proc.stdout and "DataLoader" in proc.stdout  # the printed table

    results = json.loads(out.read_text())
    assert {"machine", "training", "loader", "loader_vs_model", "memory", "lookback_growth",
            "targets", "load_start", "load_end"} <= set(results)
    assert set(results["training"]) == {"lstm", "bilstm_2layer", "segrnn"}
    for r in results["training"].values():
        for key in ("full_steps_per_s", "bare_steps_per_s", "ratio", "full_median_step_ms",
                    "bare_median_step_ms", "timed_steps", "ratio_paired"):
            assert _positive(r[key]), (key, r[key])
        assert len(r["paired_ratios"]) == len(r["runs"]["full"]) == len(r["runs"]["bare"])
    assert _positive(results["loader"]["windows_per_s"])
    assert all(_positive(r["ratio"]) for r in results["loader_vs_model"].values())
    assert [(c["data"], c.get("memmap")) for c in results["memory"]] == [
        ("synthetic", None), ("synthetic", None), ("parquet", "build"), ("parquet", "reuse")]
    for case in results["memory"]:
        for key in ("raw_mb", "panel_mb", "index_mb", "peak_rss_mb", "rss_after_imports_mb"):
            assert _positive(case[key]), (key, case[key])
        assert case["peak_rss_mb"] >= case["rss_after_imports_mb"]
        assert case["panel_vs_raw"] <= 2.0 and case["mapped"] == bool(case.get("memmap"))
    # the same panel and windows whichever way it is read
    assert len({(c["windows"], tuple(c["shape"])) for c in results["memory"]
                if c["lookback"] == 48}) == 1
    # the window index never grows with the lookback (windows are indexes, not copies)
    assert all(g["index_mb_change"] <= 0 for g in results["lookback_growth"].values())
    assert all(isinstance(v["holds"], bool) for v in results["targets"].values())


def test_benchmark_scale_run_reports_peak_memory_and_stages(tmp_path):
    """Measurement 6 on a small file: the shape asked for, a peak RSS and the run's stages."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench
    finally:
        sys.path.remove(str(BENCH.parent))
    frame = pd.read_csv(bench.write_scale_csv(tmp_path / "f.csv", 1000, 3))
    assert list(frame.columns) == ["date", "v0", "v1", "v2"] and len(frame) == 1000
    assert frame["date"].iloc[1] == "2020-01-01 00:10:00"
    result = bench.scale_run(1000, 3, tmp_path)
    assert result["shape"] == [1000, 3]
    assert 100 < result["peak_rss_mb"] < 4000  # a real process's peak, in MB
    assert {"prepare", "fit", "evaluate"} <= set(result["seconds"])
    assert result["evaluate_vs_epoch"] == result["seconds"]["evaluate"] / result["seconds"]["fit"]
    # 7:1:2 of 1000 rows: test targets in the last 200, H=96 -> 200 - 96 + 1 stride-1 windows
    assert result["windows"]["test"] == 105
