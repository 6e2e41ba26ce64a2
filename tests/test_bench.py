"""``dynlab.bench`` end to end on a tiny setting: every row, its ratios and the report that prints them.

No timing is judged here (CI's machine is shared); speed is what ``benchmarks/step_time.py`` reports.
"""
import sys

import pytest

from dynlab.bench import format_report, run_benchmark


def test_bench_reports_every_variant_against_base():
    result = run_benchmark(variants=["global", "dyconv"], size=16, batch=2, width=8, repeats=1, warmup=1,
                           memory=False, hard_batch1_check=False)
    rows = {row["variant"]: row for row in result["rows"]}
    assert list(rows) == ["base", "global", "dyconv"]
    assert rows["base"]["mac_ratio"] == 1.0 and rows["base"]["train_ratio"] == 1.0
    assert rows["dyconv"]["mac_ratio"] > 1.0  # four kernels aggregated per sample
    for row in rows.values():
        assert row["train_ms"] > 0 and row["infer_ms"] > 0
        assert row["train_per_mac"] == pytest.approx(row["train_ratio"] / row["mac_ratio"])
    report = format_report(result)
    assert "| dyconv | " in report and "| global | " in report
    if sys.platform.startswith("linux"):
        assert result["settings"]["kept_freed_memory"]
        assert "freed memory kept for reuse" in report
