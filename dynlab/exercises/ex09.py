"""Self-checks for notebook 09 (the comparison study).

- ``check_1(pairs, out)``: which (variant, task) cells of a study folder differ from ``base`` with a 95%
  interval that excludes zero.
- ``check_2(best, per_mac, per_second)``: on the time series of the committed quick study, the variant with
  the best mean accuracy, the best accuracy per million MACs and the best accuracy per training second.
- ``check_3(classification, segmentation)``: the seed's largest gain over ``base`` on each image task, in points.
- ``check_4(seeds)``: how many seeds ``dyconv``'s difference to ``base`` on classification in the committed
  study would need before its interval excludes zero, if its mean and spread stayed as measured.

Answers are computed from the study folder handed in, from the committed study (``results/study-quick``)
or from the seed's tables (``dynlab.paper``), at call time.
"""
from __future__ import annotations

import math
from pathlib import Path

from . import close, is_number, number, verdict

#: exercise 2's task, exercise 4's cell
TIME_SERIES = "timeseries"
SEEDS_CELL = ("dyconv", "classification")
#: exercise 4 gives up beyond this many seeds
MOST_SEEDS = 100_000


def _rows(out=None) -> list[dict] | None:
    from ..experiments import study

    folder = study.committed_results() if out is None else Path(out)
    if folder is None or not (folder / "results.csv").is_file():
        return None
    return study.read_results(folder)


def differences(rows: list[dict]) -> dict[tuple[str, str], object]:
    """Per (variant, task) other than base: the paired difference to ``base`` over the seeds both have
    (``metrics.paired_difference``; only where there are at least 2)."""
    from ..metrics import paired_difference

    metric = {(r["variant"], r["task"], int(r["seed"])): float(r["metric"]) for r in rows}
    found = {}
    for variant, task in sorted({(v, t) for v, t, _ in metric if v != "base"}):
        seeds = sorted(s for v, t, s in metric if (v, t) == (variant, task) and ("base", task, s) in metric)
        if len(seeds) >= 2:
            found[(variant, task)] = paired_difference([metric[(variant, task, s)] for s in seeds],
                                                       [metric[("base", task, s)] for s in seeds])
    return found


def _as_pairs(answer) -> set[tuple[str, str]] | None:
    try:
        pairs = {tuple(pair) for pair in answer}
    except TypeError:
        return None
    if isinstance(answer, (str, bytes)) or any(len(p) != 2 or not all(isinstance(x, str) for x in p) for p in pairs):
        return None
    return pairs


def check_1(pairs, out, *, variants=None, tasks=None) -> bool:
    """Exercise 1: the (variant, task) pairs of study folder ``out`` whose interval against ``base`` excludes 0
    (a list of tuples such as ``[("dyconv", "timeseries")]``; an empty list if there are none). ``variants``,
    ``tasks``: look at these only (default: every cell in ``out``)."""
    rows = _rows(out)
    if rows is None:
        return verdict(False, "", f"{out} holds no results.csv: pass the folder run_study returned (`live`)")
    rows = [r for r in rows if (variants is None or r["variant"] in variants) and (tasks is None or r["task"] in tasks)]
    found = differences(rows)
    if not found:
        return verdict(False, "", "this study has fewer than 2 seeds per cell: run it with seeds=[0, 1, 2] first")
    answer = _as_pairs(pairs)
    if answer is None:
        return verdict(False, "", f"{pairs!r} is not a list of (variant, task) pairs, e.g. [('dyconv', 'timeseries')]")
    expected = {cell for cell, difference in found.items() if difference.significant}
    listed = "; ".join(f"{v} on {t}: {d}" for (v, t), d in found.items())
    if answer == expected:
        return verdict(True, (", ".join(f"{v} on {t}" for v, t in sorted(expected)) or "none") +
                       f" ({listed}). With {next(iter(found.values())).n} seeds an interval that excludes 0 says the "
                       "difference held over these seeds, on this stand-in task and recipe, and nothing more.", "")
    missing, extra = sorted(expected - answer), sorted(answer - expected)
    parts = []
    if missing:
        parts.append("missing: " + ", ".join(f"{v} on {t} ({found[(v, t)]})" for v, t in missing))
    if extra:
        parts.append("not significant: " + ", ".join(
            f"{v} on {t} ({found[(v, t)]})" if (v, t) in found else f"{v} on {t} (not in this study)"
            for v, t in extra))
    return verdict(False, "", "; ".join(parts))


def efficiency(rows: list[dict], task: str = TIME_SERIES) -> dict[str, tuple[float, float, float]]:
    """Per variant on ``task``: (mean metric, mean metric per million MACs, mean metric per training second)."""
    by_variant: dict[str, list[dict]] = {}
    for row in rows:
        if row["task"] == task:
            by_variant.setdefault(row["variant"], []).append(row)
    result = {}
    for variant, runs in by_variant.items():
        metric = sum(r["metric"] for r in runs) / len(runs)
        macs = sum(r["macs"] for r in runs) / len(runs)
        seconds = sum(r["train_seconds"] for r in runs) / len(runs)
        result[variant] = (metric, metric / (macs / 1e6), metric / seconds)
    return result


def check_2(best, per_mac, per_second) -> bool:
    """Exercise 2: on the time series of the committed study, the variants with the best mean accuracy, the best
    accuracy per million MACs and the best accuracy per training second (three names)."""
    rows = _rows()
    if rows is None:
        return verdict(False, "", "no committed study found (results/study-quick): run this in a checkout of dynlab")
    scores = efficiency(rows)
    winners = [max(scores, key=lambda v, i=i: scores[v][i]) for i in range(3)]
    labels = ("best accuracy", "per million MACs", "per training second")
    answers = (best, per_mac, per_second)
    if list(answers) == winners:
        lesson = ("Here the most accurate variant is also the cheapest." if len(set(winners)) == 1 else
                  "The most accurate variant is not the cheapest: a table that shows the metric alone hides what "
                  "it costs.")
        return verdict(True, f"{winners[0]} is the most accurate ({scores[winners[0]][0]:.3f}); per million MACs "
                             f"{winners[1]} ({scores[winners[1]][1]:.4f}), per training second {winners[2]} "
                             f"({scores[winners[2]][2]:.4f}). {lesson}", "")
    wrong = []
    for label, answer, winner in zip(labels, answers, winners):
        if answer != winner:
            known = isinstance(answer, str) and answer in scores
            value = f" scores {scores[answer][labels.index(label)]:.4g}" if known else " is not a variant here"
            wrong.append(f"{label}: {answer!r}{value}, another variant scores higher")
    return verdict(False, "", "; ".join(wrong))


def seed_gains(task: str) -> dict[str, float]:
    """The seed's claimed gain over ``base`` of every other model it reports on ``task``, in points."""
    from ..experiments import study

    values = study.PAPER_CLAIMS[task]["values"]
    return {name: float(value) - float(values["base"]) for name, value in values.items() if name != "base"}


def check_3(classification, segmentation) -> bool:
    """Exercise 3: the seed's largest gain over its vanilla CNN in top-1 accuracy (Tiny ImageNet) and in mIoU
    (Pascal VOC), in points (within 0.01)."""
    if not (is_number(classification) and is_number(segmentation)):
        return verdict(False, "", f"give two numbers of points, e.g. 4.2 and 1.5; got {classification!r} and "
                                  f"{segmentation!r}")
    gains = {task: seed_gains(task) for task in ("classification", "segmentation")}
    largest = {task: max(g.values()) for task, g in gains.items()}
    smallest = {task: min(g.values()) for task, g in gains.items()}
    answers = {"classification": classification, "segmentation": segmentation}
    if all(close(answers[t], largest[t], rel=0, abs_tol=0.01) for t in gains):
        return verdict(True, f"{largest['classification']:.1f} and {largest['segmentation']:.2f} points (its gains "
                             f"run from {smallest['classification']:.1f} to {largest['classification']:.1f} on Tiny "
                             f"ImageNet and from {smallest['segmentation']:.2f} to {largest['segmentation']:.2f} on "
                             "VOC), given without a spread or an interval.", "")
    wrong = []
    for task, answer in answers.items():
        if close(answer, largest[task], rel=0, abs_tol=0.01):
            continue
        if close(answer, smallest[task], rel=0, abs_tol=0.01):
            wrong.append(f"{number(answer)} is the smallest gain on {task}; the exercise asks for the largest")
        elif close(answer, largest[task] / 100, rel=0, abs_tol=0.0001):
            wrong.append(f"{number(answer)} is a fraction; give points (the tables are in %)")
        else:
            wrong.append(f"{number(answer)} is off for {task}; subtract base's value from each model's in "
                         "study.PAPER_CLAIMS and take the largest")
    return verdict(False, "", "; ".join(wrong))


def seeds_needed(rows: list[dict], variant: str = SEEDS_CELL[0], task: str = SEEDS_CELL[1]) -> tuple[int, object]:
    """(smallest n with t_{0.975, n-1} s_d / sqrt(n) < |mean d|, the measured difference), for ``variant``
    against ``base`` on ``task``; ``MOST_SEEDS`` + 1 when none up to ``MOST_SEEDS`` is enough."""
    from ..metrics import student_t_quantile

    difference = differences(rows)[(variant, task)]
    n = 2
    while n <= MOST_SEEDS and student_t_quantile(0.975, n - 1) * difference.std / math.sqrt(n) >= abs(difference.mean):
        n += 1
    return n, difference


def check_4(seeds) -> bool:
    """Exercise 4: the fewest seeds for which dyconv's interval against base on classification would exclude 0,
    with the committed study's mean and sample standard deviation of the paired differences (exact)."""
    if not is_number(seeds):
        return verdict(False, "", f"{seeds!r} is not a number; give a number of seeds, e.g. 12")
    rows = _rows()
    if rows is None:
        return verdict(False, "", "no committed study found (results/study-quick): run this in a checkout of dynlab")
    expected, difference = seeds_needed(rows)
    normal = math.ceil((1.96 * difference.std / abs(difference.mean)) ** 2)
    if close(seeds, expected, rel=0):
        return verdict(True, f"{expected} seeds: a mean difference of {difference.mean:+.4f} with s_d = "
                             f"{difference.std:.4f} needs t * s_d / sqrt(n) < |mean|. The smaller a difference against "
                             "its spread, the more runs it takes to see it; and s_d itself is only estimated from "
                             f"{difference.n} seeds.", "")
    if close(seeds, normal, rel=0):
        why = f"{number(seeds)} uses 1.96 in place of t; with few seeds t(0.975, n - 1) is larger"
    elif float(seeds) < expected:
        why = f"at {number(seeds)} seeds t * s_d / sqrt(n) is still at least |mean d| = {abs(difference.mean):.4f}"
    else:
        why = f"{number(seeds)} seeds are enough, but fewer are too: find the smallest n"
    return verdict(False, "", why)
