"""The one report writer of every grid: a line per (model, variant) with mean, spread, cost and the paired
differences to its baselines, and a markdown table of such lines with the columns a report chooses."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .. import layers
from ..metrics import PairedDifference, mean_std, paired_difference
from .cell import MODELS

Group = tuple[str, str]  # (model, variant)


@dataclass
class Line:
    """One (model, variant) of a table: its runs' metric by (seed, fold), their mean and population std."""

    model: str
    variant: str
    runs: dict[tuple[int, str], float]
    rows: list[dict]
    mean: float
    std: float
    #: (baseline, paired difference) for each baseline with at least two runs in common
    differences: list[tuple[Group, PairedDifference]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def params(self) -> int:
        return int(self.rows[0]["params"])

    @property
    def macs(self) -> int:
        return int(self.rows[0]["macs"])

    @property
    def metric_name(self) -> str:
        return self.rows[0]["metric_name"]

    @property
    def train_seconds(self) -> float:
        return sum(float(r["train_seconds"]) for r in self.rows) / len(self.rows)

    def difference_to(self, group: Group) -> PairedDifference | None:
        return next((d for g, d in self.differences if g == group), None)


def runs_by_group(rows: Sequence[dict]) -> dict[Group, dict[tuple[int, str], float]]:
    """{(model, variant): {(seed, fold): metric}}: the runs that pair up across models and protocols."""
    groups: dict[Group, dict] = {}
    for r in rows:
        groups.setdefault((r.get("model", "tsresnet"), r["variant"]), {})[int(r["seed"]), str(r["fold"])] = \
            float(r["metric"])
    return groups


def against_base(model: str, variant: str) -> list[Group]:
    """The usual baseline: ``base`` of the same network."""
    return [] if variant == "base" else [(model, "base")]


def summarise(rows: Sequence[dict], baselines: Callable[[str, str], list[Group]] = against_base) -> list[Line]:
    """One line per (model, variant), in the order of the models and of the registry's variants; each
    with the paired difference (95% Student-t interval) to every group ``baselines`` names."""
    groups = runs_by_group(rows)
    variant_order = {name: i for i, name in enumerate(layers.names())}

    def order(group: Group):
        model, variant = group
        return (MODELS.index(model) if model in MODELS else len(MODELS), variant_order.get(variant, len(variant_order)))

    lines = []
    for model, variant in sorted(groups, key=order):
        runs = groups[(model, variant)]
        mean, std = mean_std(list(runs.values()))
        mine = [r for r in rows if r.get("model", "tsresnet") == model and r["variant"] == variant]
        line = Line(model, variant, runs, mine, mean, std)
        for reference in baselines(model, variant):
            other = groups.get(reference, {})
            shared = sorted(set(runs) & set(other))
            if len(shared) >= 2:
                line.differences.append(
                    (reference, paired_difference([runs[k] for k in shared], [other[k] for k in shared])))
        lines.append(line)
    return lines


#: a table column: (header, alignment rule, the cell's text for a line)
Column = tuple[str, str, Callable[[Line], str]]


def markdown_table(lines: Sequence[Line], columns: Sequence[Column]) -> list[str]:
    """The table's markdown lines: a header, its rule, and a row per line."""
    out = ["| " + " | ".join(header for header, _, _ in columns) + " |",
           "| " + " | ".join(rule for _, rule, _ in columns) + " |"]
    out += ["| " + " | ".join(text(line) for _, _, text in columns) + " |" for line in lines]
    return out


def plot_to(figure, path: str | os.PathLike) -> None:
    """Save a figure for a report and free it."""
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
