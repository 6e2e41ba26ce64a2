"""Deprecated: the comparison study is ``dynlab.experiments.study`` now (and the notebooks' runs ``dynlab.course``)."""
import warnings

from .course import cost_table, course_runs  # noqa: F401
from .data.tasks import TASKS  # noqa: F401
from .experiments.cell import COLUMNS, TASK_MODELS  # noqa: F401
from .experiments.pipeline import Run, build_model, load_data  # noqa: F401
from .experiments.runner import read_rows, write_csv  # noqa: F401
from .experiments.study import (PAPER_CLAIMS, default_runs_dir, load_model, read_results,  # noqa: F401
                                report_markdown, run_study, train_variant, write_report)

SEED_CLAIMS = PAPER_CLAIMS

warnings.warn("dynlab.study is now dynlab.experiments.study (the notebooks' runs: dynlab.course); "
              "dynlab.study will be removed", FutureWarning, stacklevel=2)
