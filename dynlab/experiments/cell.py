"""A cell: one training run of an experiment grid, named by what it trains and on which split.

Every grid (the comparison study, the Adiac protocols, the recipe search, the ODConv-norm
comparison, the course models) is a list of cells, trained by ``runner.run_cells`` into a folder:
``cells/NAME.json`` holds a finished cell's row, ``runs/NAME/`` its checkpoints and history.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import layers
from ..data.tasks import DATA, TASKS

#: how the train / validation / test series of a cell are drawn
#: ``standard``: the data set's split, validation held out of train; ``refit``: the same, trained on
#: train and validation together for the recipe's whole schedule, last epoch kept; ``10fold``: the
#: paper's 10 stratified folds over all of Adiac, ``fold`` as the test set
PROTOCOLS = ("standard", "refit", "10fold")
#: the network each task trains by default
TASK_MODELS = {"classification": "resnet18", "segmentation": "deeplabv3-resnet18", "timeseries": "tsresnet"}
#: the paper's networks for Adiac; ``-from-static``: started from the trained static twin, kernels frozen
PAPER_MODELS = ("net1", "net1-from-static", "net2", "net2-from-static")
MODELS = (*TASK_MODELS.values(), *PAPER_MODELS)
#: the columns of a grid's CSV files
COLUMNS = ("task", "model", "variant", "data", "profile", "seed", "fold", "metric_name", "metric", "params", "macs",
           "train_seconds", "epochs", "device")


@dataclass(frozen=True)
class Cell:
    """One training run: ``variant``'s ``model`` on ``task``, with the recipe and sizes of ``profile``.

    ``options`` are unit options (e.g. ``{"attention_norm": "none"}``) beside the variant's own;
    ``seed`` draws the weights, the data order and the validation hold-out.
    """

    task: str
    variant: str
    seed: int = 0
    fold: int | None = None
    protocol: str = "standard"
    model: str = ""
    profile: str = "quick"
    data: str = "synthetic"
    options: dict = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; valid tasks: {', '.join(TASKS)}")
        layers.get(self.variant)
        if self.data not in DATA:
            raise ValueError(f"unknown data {self.data!r}; valid values: {', '.join(DATA)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
        if (self.protocol == "10fold") != (self.fold is not None):
            raise ValueError("a fold goes with the 10fold protocol, and the 10fold protocol with a fold")
        if self.fold is not None and (self.task != "timeseries" or not 0 <= self.fold < 10):
            raise ValueError("folds are the time-series protocol: 0..9; image tasks use their train/val/test splits")
        if not self.model:
            object.__setattr__(self, "model", TASK_MODELS[self.task])
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; valid models: {', '.join(MODELS)}")
        if self.model in PAPER_MODELS and self.variant not in ("base", "dyconv"):
            raise ValueError(f"the paper's Net1/Net2 come static ('base') or dynamic ('dyconv'), got {self.variant!r}")

    @property
    def name(self) -> str:
        """``protocol__model__variant__seedS[__foldF]``: unique in a folder (a model belongs to one task)."""
        parts = [self.protocol, self.model, self.variant, f"seed{self.seed}"]
        return "__".join(parts + ([f"fold{self.fold}"] if self.fold is not None else []))

    @property
    def static_twin(self) -> "Cell | None":
        """The trained static network a ``-from-static`` cell starts from."""
        if not self.model.endswith("-from-static"):
            return None
        return Cell(self.task, "base", self.seed, self.fold, self.protocol, self.model.removesuffix("-from-static"),
                    self.profile, self.data)

    @property
    def init_seed(self) -> int:
        """The seed of the initial weights: ``seed``, or ``1000 * seed + fold`` for a fold."""
        return self.seed if self.fold is None else 1000 * self.seed + self.fold


def cell_from_row(row: dict) -> Cell:
    """The cell a results row came from (rows written before cells named protocol and model included)."""
    fold = None if row.get("fold") in ("", None) else int(row["fold"])
    protocol = row.get("protocol") or ("standard" if fold is None else "10fold")
    profile = row.get("profile") or "quick"
    return Cell(row["task"], row["variant"], int(row["seed"]), fold, protocol, row.get("model") or "",
                "paper" if profile == "seed" else profile, row.get("data") or "synthetic",
                dict(row.get("unit_options") or {}))
