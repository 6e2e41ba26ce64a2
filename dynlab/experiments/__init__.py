"""One experiment grid: cells, a resumable parallel runner, one report writer, and its configurations.

``cell.py`` (what a training run is and its name), ``pipeline.py`` (the one way a cell is trained),
``runner.py`` (a folder of cells: resume, parallel jobs, failures, interruption), ``report.py`` (the
table-and-paired-CI writer). The configurations: ``study.py`` (the comparison study, ``dynlab
study``), ``adiac.py`` (the Adiac protocols, ``dynlab adiac``) and ``searches.py`` (the recipe
search and the ODConv-norm comparison, ``dynlab search``); the course notebooks' runs are in
``dynlab.course``.
"""
from . import adiac, searches, study
from .cell import COLUMNS, MODELS, PAPER_MODELS, PROTOCOLS, TASK_MODELS, Cell, cell_from_row
from .pipeline import Run, build_cell_model, build_model, cell_data, load_data, train_cell
from .runner import read_rows, run_cells, write_csv

__all__ = [
    "COLUMNS", "Cell", "MODELS", "PAPER_MODELS", "PROTOCOLS", "Run", "TASK_MODELS", "adiac", "build_cell_model",
    "build_model", "cell_data", "cell_from_row", "load_data", "read_rows", "run_cells", "searches", "study",
    "train_cell", "write_csv",
]
