"""Deprecated: the Adiac experiments are ``dynlab.experiments.adiac`` now (cells: ``dynlab.experiments.Cell``)."""
import warnings

from .experiments.adiac import (CELLS_FOLDER, FOLD_VARIANTS, FOLDS, LABELS, PAPER_TABLE_4B,  # noqa: F401
                                PUBLISHED_STANDARD, RESULT_FILES, SEEDS, adopt_published, committed_results, grid,
                                protocol_table, publish, read_results, recipes, refit_gain_lines, report_markdown,
                                run_adiac, short_label, write_report, write_results)
from .experiments.cell import PAPER_MODELS, PROTOCOLS, Cell, cell_from_row  # noqa: F401
from .profiles import DEFAULT_RECIPE, TIMESERIES_RECIPES, recipe_profile  # noqa: F401

RECIPES, SEED_MODELS, SEED_TABLE_4B, run_grid = TIMESERIES_RECIPES, PAPER_MODELS, PAPER_TABLE_4B, run_adiac

warnings.warn("dynlab.adiac is now dynlab.experiments.adiac; dynlab.adiac will be removed", FutureWarning,
              stacklevel=2)
