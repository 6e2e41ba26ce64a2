"""Where the course explorer's models and samples come from, each loaded the first time it is shown.

``CourseSamples`` is a mapping task -> test split (``dynlab.experiments.load_data`` in the profile, or
a notebook's own run's data); ``CourseModels`` is the explorer's ``models`` callable: a notebook's own
runs where it has them, else the shipped course model, loaded without re-evaluating it.
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from ..data import TaskData
from ..experiments import course_models, load_data


class CourseSamples(Mapping):
    """task -> the test split of its data in ``profile``; ``data(task)`` gives the whole ``TaskData``."""

    def __init__(self, tasks, profile=None, given: Mapping[str, TaskData] | None = None) -> None:
        self.tasks = list(tasks)
        self.profile = profile
        self._data: dict[str, TaskData] = dict(given or {})

    def data(self, task: str) -> TaskData:
        if task not in self._data:
            if task not in self.tasks:
                raise KeyError(task)
            self._data[task] = load_data(task, "synthetic", self.profile)
        return self._data[task]

    def class_names(self, task: str) -> list[str] | None:
        return self.data(task).class_names

    def __getitem__(self, task: str):
        return self.data(task).test

    def __iter__(self):
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


class CourseModels:
    """(variant, task) -> a model: ``own[(variant, task)]`` where given (a notebook's runs), else the course
    model (``course_models.load_course_network``: weights checked against the manifest, no re-evaluation)."""

    def __init__(self, samples: CourseSamples, own: Mapping[tuple[str, str], nn.Module] | None = None) -> None:
        self.samples = samples
        self.own = dict(own or {})

    def __call__(self, variant: str, task: str) -> nn.Module:
        if (variant, task) in self.own:
            return self.own[variant, task]
        return course_models.load_course_network(variant, task, data=self.samples.data(task))
