"""What a variant notebook trains and shows: its runs on the three tasks, and its cost beside ``base``."""
from __future__ import annotations

from typing import Sequence

from . import flops
from .data.tasks import TASKS
from .experiments import Cell, Run, build_model, load_data, train_cell
from .experiments.pipeline import get_profile
from .experiments.study import default_runs_dir


def course_runs(variant: str, tasks: Sequence[str] = TASKS, *, profile=None, seed: int = 0, data: str = "synthetic",
                quiet: bool = False) -> dict[str, Run]:
    """``variant`` trained on each task, kept under ``$DYNLAB_RUNS/course/``.

    Running the notebook again reloads the finished runs instead of training again.
    """
    profile = get_profile(profile)
    root = default_runs_dir() / "course"
    return {task: train_cell(Cell(task, variant, seed, profile=profile.name, data=data),
                             root / f"{profile.name}-{data}-{variant}-{task}-seed{seed}", quiet=quiet)
            for task in tasks}


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
