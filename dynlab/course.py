"""What a variant notebook trains and shows: its runs on the three tasks, and its cost beside ``base``."""
from __future__ import annotations

from typing import Sequence

from . import flops
from .data.tasks import TASKS
from .experiments import Cell, Run, build_model, load_data, train_cell
from .experiments.baselines import near_baseline
from .experiments.pipeline import get_profile
from .experiments import course_models, study
from .experiments.study import default_runs_dir


def course_runs(variant: str, tasks: Sequence[str] = TASKS, *, profile=None, seed: int = 0, data: str = "synthetic",
                quiet: bool = False, retrain: bool = False) -> dict[str, Run]:
    """``variant`` on each task: the shipped course model (``dynlab.experiments.course_models``), re-evaluated
    here, or with ``retrain`` (or another profile, seed or data) trained live and kept under
    ``$DYNLAB_RUNS/course/``, so that running the notebook again reloads the finished runs.

    Where a course model cannot be had (offline, not published), one line says so and it is trained.
    The models come back on the CPU, wherever they trained: the notebooks' cells hand them a few CPU samples.
    """
    profile = get_profile(profile)
    shipped = not retrain and (profile.name, seed, data) == (course_models.PROFILE, course_models.SEED, "synthetic")
    runs = {}
    for task in tasks:
        if shipped:
            try:
                runs[task] = course_models.load_course_model(variant, task, quiet=quiet)
                continue
            except course_models.CourseModelsUnavailable as error:
                print(f"{variant} on {task}: no course model ({error}); training it here instead")
        runs[task] = train_cell(Cell(task, variant, seed, profile=profile.name, data=data),
                                default_runs_dir() / "course" / f"{profile.name}-{data}-{variant}-{task}-seed{seed}",
                                quiet=quiet)
    for run in runs.values():
        run.model.cpu()
    return runs


def run_table(runs: dict[str, Run], macs: str = "MACs per sample") -> str:
    """Markdown: each run's test metric beside the trivial answer on the same test split (flagged when
    the model is near it), with its epochs, training time and cost. ``macs`` names the MACs column."""
    lines = [f"| task | data | test metric | value | trivial answer | epochs | training (s) | parameters | {macs} |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for task, run in runs.items():
        value = f"{run.metric:.3f}"
        trivial = "n/a"
        if run.baseline:
            trivial = f"{run.baseline['value']:.3f} ({run.baseline['name']})"
            if near_baseline(run.metric, run.baseline["value"]):
                value += " (near trivial)"
        lines.append(f"| {task} | {run.data.name} | {run.metric_name} | {value} | {trivial} | "
                     f"{len(run.history.records)} | {run.train_seconds:.0f} | {run.params / 1e3:.1f} k | "
                     f"{run.macs / 1e6:.2f} M |")
    return "\n".join(lines)


def per_class_table(runs: Sequence[Run]) -> str:
    """Markdown: each class's test accuracy (IoU for segmentation) in %, one column per run's variant."""
    return "\n".join(study.per_class_table([run.row() for run in runs]))


def seed_claims(variant: str) -> str:
    """Markdown: what the seed study reports for ``base`` and ``variant`` on each task (not measured here)."""
    claims = [f"- {c['caption']}: " + ", ".join(f"{v} {c['values'][v]}" for v in dict.fromkeys(["base", variant]))
              for c in study.PAPER_CLAIMS.values() if variant in c["values"]]
    if not claims:
        return f"The seed reports no numbers for `{variant}`."
    return "For comparison only, **the seed reports** (real data, full size, not measured here):\n" + "\n".join(claims)


def cost_table(variants: Sequence[str], profile=None) -> str:
    """Markdown: parameters and MACs per sample of each variant beside ``base``, for the profile's models
    on each task and for the full-size ResNet-18 (64x64 small stem and the paper's 224x224)."""
    profile = get_profile(profile)
    variants = list(dict.fromkeys(["base", *variants]))
    settings = []
    for task in TASKS:
        data = load_data(task, "synthetic", profile, limit=1)
        shape = (1, *data.sample_shape)
        settings.append((f"{task}, {profile.name} profile model, input {shape[1:]}",
                         lambda v, t=task, d=data: build_model(v, t, d, profile), shape))
    settings += flops.table_settings()[:2]
    return flops.format_table(flops.table(variants, settings))
