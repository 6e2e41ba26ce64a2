"""The Adiac study: the seed's 10-fold protocol and the UCR standard split, as one resumable grid.

UCR Adiac: 781 diatom outlines, 37 classes, length 176. Three protocols:

- ``standard``: every variant in ``tsresnet`` on the archive's split (390 train / 391 test), 5 seeds,
  one recipe for all (the ``full`` profile's time-series recipe). The validation split (20% of the
  390 training series, stratified, drawn per seed) picks the best epoch; the 391 test series are
  scored once per run.
- ``refit``: each standard cell's final run: the same network, seed and recipe trained on all 390
  training series (the validation series too) for the recipe's whole schedule, keeping the last
  epoch. The recipe and its length were chosen on validation beforehand; the test series are scored
  once. More training series is what the published baselines had (they trained on all 390).
- ``10fold``: the seed's protocol. All 781 series dealt into 10 stratified folds; fold i is the test
  set, 10% of the rest is the validation split. The seed's Net1 and Net2 with the seed's Table 1
  recipe (``seed`` profile), each as a static CNN (``base``) and a D-CNN (``dyconv``), trained from
  scratch and, as the seed did, started from the trained static twin with its kernels frozen
  (model ``net1-from-static``). ``base`` started that way is the control the seed did not run: the
  same extra training without attention. Then ``tsresnet`` ``base`` and ``dyconv`` with the kit's
  recipe, for the best this protocol can give.

Each finished cell is saved at once (``cells/<name>.json``); a re-run skips finished cells and
resumes an interrupted one from its checkpoint, so an interrupted grid loses nothing. ``jobs > 1``
trains cells in parallel processes (a many-core machine, or one GPU shared by several small runs).

>>> [c.name for c in grid(["standard"], variants=["base"], seeds=[0, 1])]
['standard__tsresnet__base__seed0', 'standard__tsresnet__base__seed1']
"""
from .cells import (DEFAULT_RECIPE, FOLD_VARIANTS, FOLDS, LABELS, PROTOCOLS, RECIPES, SEED_MODELS, SEEDS, Cell,
                    build_cell_model, cell_from_row, grid, load_cell_data, recipe_profile, short_label, train_cell)
from .report import (CELLS_FOLDER, PUBLISHED_STANDARD, RESULT_FILES, SEED_TABLE_4B, adopt_published,
                     committed_results, protocol_table, publish, refit_gain_lines,
                     read_results, read_rows, report_markdown, summarise, write_report, write_results)
from .run import environment, recipes, run_grid

from ..study import COLUMNS

__all__ = [
    "CELLS_FOLDER", "COLUMNS", "DEFAULT_RECIPE", "FOLDS", "FOLD_VARIANTS", "LABELS", "PROTOCOLS", "PUBLISHED_STANDARD", "RECIPES",
    "RESULT_FILES", "SEEDS", "SEED_MODELS", "SEED_TABLE_4B", "Cell", "adopt_published", "build_cell_model",
    "cell_from_row",
    "committed_results", "environment", "grid", "load_cell_data", "protocol_table", "publish", "read_results",
    "read_rows", "recipe_profile", "recipes", "refit_gain_lines", "report_markdown", "run_grid", "short_label",
    "summarise", "train_cell", "write_report", "write_results",
]
