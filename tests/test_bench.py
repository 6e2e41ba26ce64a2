"""``dynlab.bench`` end to end on a tiny setting: every row, its ratios and the report that prints them.

No timing is judged here (CI's machine is shared); speed is what ``python -m benchmarks`` reports.
"""
import sys
from pathlib import Path

import pytest
import torch

from dynlab import profiles
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


def test_one_entry_point_runs_every_benchmark_mode(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks.__main__ import MODES, main

    assert main([]) == 0
    listed = capsys.readouterr().out
    assert all(mode in listed for mode in MODES)
    for mode in MODES:
        with pytest.raises(SystemExit) as exit_:
            main([mode, "--help"])  # each mode's module imports and parses its options
        assert exit_.value.code == 0, mode
    assert main(["nonsense"]) == 2


def test_a_forced_path_that_cannot_run_a_unit_says_so():
    with pytest.raises(ValueError, match="'dense' cannot run this unit"):
        run_benchmark(variants=["odconv"], size=16, batch=2, width=8, repeats=1, warmup=1, memory=False,
                      hard_batch1_check=False, path="dense")


def test_the_course_benchmark_times_the_course_models_beside_base(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import course

    rows = course.measure("timeseries", ["base", "hard"], repeats=1, warmup=0)
    assert [r["variant"] for r in rows] == ["base", "hard"]
    base, hard = rows
    assert base["train_per_mac"] == base["infer_per_mac"] == base["mac_ratio"] == 1.0
    assert hard["macs"] >= base["macs"] and hard["train_ms"] > 0 and hard["infer_ms"] > 0
    assert base["batch"] == profiles.get_profile("quick").timeseries.batch_size
    assert "| hard |" in course.table(rows)


@pytest.mark.parametrize("tile_bytes", [1, 3 * 72 * 5 * 4, 10 ** 9], ids=["one-channel", "five-channels", "one-tile"])
@pytest.mark.parametrize("stride", [1, 2])
def test_the_tiled_experiment_gives_the_per_sample_outputs_and_gradients(monkeypatch, tile_bytes, stride):
    """``python -m benchmarks tiled`` times what it computes: the per-sample formula, in float64 here."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks.tiled import tiled_per_sample

    from dynlab.kernels import per_sample
    from dynlab.layers.unit import ConvUnit

    g = torch.Generator().manual_seed(stride)
    unit = ConvUnit(8, 12, 3, stride=stride, padding=1)
    x = torch.randn(3, 8, 7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(4, 12, 8, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    attention = torch.rand(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    want = per_sample.mix_kernels_per_sample(unit, x, kernels, attention, None, "grouped")
    cotangent = torch.randn(want.shape, generator=g, dtype=torch.float64)
    got = tiled_per_sample(unit, x, kernels, attention, tile_bytes)
    torch.testing.assert_close(got, want)
    for have, expected in zip(torch.autograd.grad(got, (x, kernels, attention), cotangent),
                              torch.autograd.grad(want, (x, kernels, attention), cotangent)):
        torch.testing.assert_close(have, expected)


def test_the_course_benchmark_times_each_unit_on_every_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import course

    text = course.unit_paths("timeseries", "odconv4x", repeats=1)
    rows = [line for line in text.splitlines() if line.startswith("| (")]
    assert rows and f"\n{len(rows)} units:" in text  # every unit of the 1D ResNet, one row each
    assert all(row.split(" | ")[3] in ("grouped", "unfold", "unfold_dense") for row in rows)  # no dense: spatial
    assert "odconv4x's step per MAC is at least" in text


def test_the_hard_benchmark_times_the_shipped_course_models_against_the_plain_layer(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import hard

    lines = hard.course_models(repeats=1, batches=1)
    rows = [line.split(" | ") for line in lines[2:]]
    assert [row[0] for row in rows] == ["| classification", "| segmentation", "| timeseries"]
    for row in rows:
        assert float(row[6].rstrip(" |")) < 1e-5  # the library's unit gives the masked formula's output


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
def test_the_course_parts_replay_each_attention_and_undo_every_change(monkeypatch, training):
    """``course --parts`` times a model whose attention returns what it computed before: the same outputs,
    without calling the attention; afterwards every unit is its own again."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import course, course_parts

    data, batch = course.task_batch("timeseries")
    for variant in course_parts.VARIANTS:
        model = course.CourseStep(variant, "timeseries", data, batch).model.train(training)
        x = batch[0]
        units = course_parts.units_of(model)
        assert units, variant
        calls = []

        def count_attention_calls():
            for unit in units:
                owner, name = course_parts.attention_call(unit)
                monkeypatch.setattr(type(owner), name, lambda *args: calls.append(args))

        with torch.no_grad():
            expected = model(x)
            with course_parts.setting(model, "attention replayed", x):
                count_attention_calls()
                replayed = model(x)
                monkeypatch.undo()
            with course_parts.setting(model, "static units", x):
                count_attention_calls()
                static = model(x)
                monkeypatch.undo()
            again = model(x)
        assert not calls, variant  # neither setting computes an attention
        torch.testing.assert_close(replayed, expected, rtol=0, atol=0)  # its recorded values, returned
        torch.testing.assert_close(again, expected, rtol=0, atol=0)
        assert static.shape == expected.shape
        assert all(not {"forward", "kernel_attention", "gates", "_open_gates"} & set(vars(u)) for u in units)
        assert all("forward" not in vars(u.attention) for u in units if variant.startswith("odconv"))


def test_the_course_parts_table_splits_each_variants_extra_time(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import course

    text = course.parts_table("timeseries", ["hard", "odconv"], repeats=1, warmup=0)
    rows = [line.split(" | ") for line in text.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("| hard", "train"), ("| hard", "infer"),
                                           ("| odconv", "train"), ("| odconv", "infer")]
    assert all(len(r) == 9 and all(cell.endswith(("%)", "%) |")) for cell in r[6:]) for r in rows)
