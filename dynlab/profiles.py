"""Profiles: the recipe of a run (optimiser, schedule, epochs) and how big its model and data are.

- ``quick``: the course profile. Narrow networks (ResNet width 16), small images and data, and a
  recipe of its own for short runs (AdamW, one-cycle schedule, gradient clipping; see ``_QUICK``), so
  that a notebook trains one variant on all three tasks in a few minutes on a 2-core CPU. Its numbers
  show the method working, not what the method can reach at full size.
- ``full``: the paper's Table 1 for the image tasks (Adam, lr 1e-3, batch 32, 30 epochs, dropout 0.2,
  cross-entropy, ReduceLROnPlateau factor 0.1 / patience 5 / min 1e-6, early stopping patience 10,
  ResNet-18 at width 64), meant for a GPU; for Adiac, the kit's own recipe (below).
- ``paper``: ``full`` with Tiny ImageNet upsampled to 224x224 behind the ImageNet stem, as the seed study
  (the paper, in dynlab's names) did, and its Table 1 recipe for Adiac as well (what the Adiac
  experiments train the paper's Net1/Net2 with). ``seed``, its name before, still works.
- ``full+RECIPE``: ``full`` with candidate RECIPE of ``TIMESERIES_RECIPES`` for the time series
  (the Adiac recipe search compares them).

``default_profile()`` is ``$DYNLAB_PROFILE`` or ``quick``, whatever the hardware; ``choose()`` is a
notebook's switch.
How many samples each profile uses is the data module's business: ``dynlab.data.tasks.SYNTHETIC_SIZES``
and ``REAL_SIZES``.

>>> from dynlab.profiles import get_profile
>>> p = get_profile("quick")
>>> p.task("classification").epochs, p.model_kwargs("classification")
(5, {'stem': 'imagenet', 'width': 16, 'dropout': 0.2})
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field, replace

from .data.tasks import TASKS


@dataclass(frozen=True)
class TaskProfile:
    """Settings for one task: training (the ``fit`` arguments), model and data size."""

    epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    plateau_factor: float = 0.1
    plateau_patience: int | None = 5
    plateau_min_lr: float = 1e-6
    early_stopping_patience: int | None = 10
    #: "plateau" (ReduceLROnPlateau with the settings above) or "cosine" (decay to 0 over the run)
    lr_schedule: str = "plateau"
    label_smoothing: float = 0.0
    #: gradients rescaled to at most this total norm before each step (None: never)
    clip_grad_norm: float | None = None
    #: the attention temperature (DyConv, ODConv, local): annealed from the first value to the second
    temperature: tuple[float, float] = (30.0, 1.0)
    #: a training-set augmentation from ``dynlab.data.augment.AUGMENTATIONS``, or None
    augment: str | None = None
    #: ResNet-18 stage-1 channels (64 is ResNet-18); time series: first block (blocks are w, 2w, 2w)
    width: int = 64
    stem: str = "imagenet"
    dropout: float = 0.2
    #: image side in pixels, or series length; None keeps the data set's own (Adiac: 176)
    size: int | None = None
    #: the task's network beyond width and stem (segmentation: output_stride, head_channels, atrous_rates)
    model_options: dict = field(default_factory=dict)
    #: unit options the recipe sets, per variant (``{"hard": {"gate_bias": 0.0}}``); a cell's own win
    unit_options: dict = field(default_factory=dict)
    #: recipe fields a variant trains with instead of the task's (``{"orient": {"clip_grad_norm": 5.0}}``)
    variant_recipe: dict = field(default_factory=dict)

    #: the fields ``dynlab.engine.fit`` takes (and a variant's own recipe may set)
    FIT_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "plateau_factor", "plateau_patience",
                  "plateau_min_lr", "early_stopping_patience", "lr_schedule", "label_smoothing", "clip_grad_norm",
                  "temperature")

    def for_variant(self, variant: str | None) -> "TaskProfile":
        """This recipe as ``variant`` trains with it: its own fields (``variant_recipe``) in place of the task's."""
        own = self.variant_recipe.get(variant, {})
        unknown = sorted(set(own) - set(self.FIT_FIELDS))
        if unknown:
            raise ValueError(f"variant_recipe for {variant!r} sets {', '.join(unknown)}, which are not training "
                             f"settings; valid: {', '.join(self.FIT_FIELDS)}")
        return replace(self, **own, variant_recipe={}) if own else self

    def fit_kwargs(self, variant: str | None = None) -> dict:
        """The keyword arguments of ``dynlab.engine.fit`` this profile sets (for ``variant``, if given)."""
        recipe = self.for_variant(variant)
        return {name: getattr(recipe, name) for name in self.FIT_FIELDS}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    classification: TaskProfile
    segmentation: TaskProfile
    timeseries: TaskProfile

    def task(self, task: str) -> TaskProfile:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        return getattr(self, task)

    def fit_kwargs(self, task: str, variant: str | None = None) -> dict:
        """``dynlab.engine.fit``'s keyword arguments for ``task`` (with ``variant``'s own recipe fields, if given)."""
        return {"task": task, **self.task(task).fit_kwargs(variant)}

    def model_kwargs(self, task: str) -> dict:
        """Keyword arguments for the task's model builder.

        classification: ``dynlab.models.resnet18``; segmentation: ``segmentation_model`` (it has no
        dropout); time series: ``tsresnet`` with ``channels = (w, 2w, 2w)``.
        """
        t = self.task(task)
        if task == "classification":
            return {"stem": t.stem, "width": t.width, "dropout": t.dropout, **t.model_options}
        if task == "segmentation":
            return {"stem": t.stem, "width": t.width, **t.model_options}
        return {"channels": (t.width, 2 * t.width, 2 * t.width), "dropout": t.dropout, **t.model_options}

    def unit_options(self, task: str, variant: str) -> dict:
        """The unit options this profile's recipe sets for ``variant`` on ``task``."""
        return dict(self.task(task).unit_options.get(variant, {}))

    def to_dict(self) -> dict:
        return asdict(self)


# The course recipe, chosen on the validation split of the synthetic tasks and Adiac (issue 18's runs):
# short runs from scratch learn far more with a one-cycle schedule (warm-up, then cosine decay) and
# AdamW than with the paper's constant Adam and plateau schedule; gradients clipped to norm 1 keep
# local, hard and odconv4x from diverging at the peak rate (they did, without). hard gates the output
# of its own BatchNorm (gate_after_norm): gating before the block's BatchNorm, a channel closed for a
# whole batch got a gradient hundreds of times the others' and hard stayed at chance or at the
# background-only answer. Its gates start nearer undecided (gate_bias 1: sigmoid(1) = 0.73 open) so
# that the budget closes some within the run. The budget term weighs 1 on classification and Adiac
# (lighter, the gates stayed more open than the budget 0.5 allows by 0.1: 0.86 at 0.1 on classification;
# 0.60-0.65 at 0.3 and 0.57-0.59 at 0.5 on Adiac, two seeds) and 0.3 on segmentation (of the weights
# that met the budget there, the best on validation; 0.49 open). ODConv's attention BatchNorm is
# dropped on Adiac, whose batches of 16 pooled vectors it normalises badly (results/adiac_odconv_norm.md).
# On the image tasks the attention temperature anneals 30 -> 5, not to 1: in these runs of a few
# hundred steps local and odconv4x learned while the temperature was high and fell apart as it reached
# 1 (with T at 1 from the start they stayed at chance); ending at 5 they learned as base does. Some
# variants train with recipe fields of their own (variant_recipe), each for a reason the trials showed: on
# classification dyconv keeps T at 1 throughout (it learns as well, and its kernel attention, nearly
# uniform at T 5, then varies from image to image); on segmentation the ODConvs end at T 2 (better on
# validation, and their attention varies more than at 5); on segmentation dyconv normalises its
# attention's hidden layer (attention_norm "batch") and anneals 5 -> 1, and global's SE squeezes by 4, not
# 16: the scenes are mostly background, and without these their attention hardly differed from one scene
# to the next (spread 0.014-0.019 and 0.022-0.062 over three seeds) and validation was as good with them
# (mean of three seeds 0.713 against 0.715 for dyconv, 0.713 against 0.711 for global); orient clips
# gradients at norm 5, not 1 (clipped at 1 it learned the slowest: validation 0.81 against 0.89 at 5, seed
# 1). The trials, on the validation split, are in results/course_recipe.md. The time series keep 30 -> 1,
# and train 45 epochs: at 30, base underfit Adiac (training accuracy 0.66; validation 0.67, against 0.75
# at 45 and 0.78 at 60, three seeds each); 45 takes most of that gain at three quarters of 60's time.
_COURSE = TaskProfile(epochs=5, lr=3e-3, weight_decay=0.05, optimizer="adamw", lr_schedule="onecycle",
                      plateau_patience=None, early_stopping_patience=None, label_smoothing=0.1, clip_grad_norm=1.0,
                      temperature=(30.0, 5.0), width=16,
                      unit_options={"hard": {"gate_bias": 1.0, "budget_weight": 1.0, "gate_after_norm": True}})
_QUICK = Profile(
    "quick",
    "the course: narrow models, small data, a short one-cycle recipe; a few minutes per variant for the three "
    "tasks on a 2-core CPU",
    classification=replace(_COURSE, size=64, stem="imagenet",
                           variant_recipe={"dyconv": {"temperature": (1.0, 1.0)}, "orient": {"clip_grad_norm": 5.0}}),
    # output stride 8: the head sees an 8x8 map, with rates that fall inside it and 64 channels
    # the ODConvs' attention BatchNorm dropped here too (batches of 16): on validation odconv 0.566
    # against 0.533, odconv4x 0.577 against 0.536
    segmentation=replace(_COURSE, epochs=8, batch_size=16, size=64, stem="imagenet", dropout=0.0, label_smoothing=0.0,
                         model_options={"output_stride": 8, "head_channels": 64, "atrous_rates": (1, 2, 4)},
                         unit_options={"hard": {"gate_bias": 1.0, "budget_weight": 0.3, "gate_after_norm": True},
                                       "odconv": {"attention_norm": "none"},
                                       "odconv4x": {"attention_norm": "none"},
                                       "dyconv": {"attention_norm": "batch"},
                                       "global": {"reduction": 4}},
                         variant_recipe={"dyconv": {"temperature": (5.0, 1.0)}, "odconv": {"temperature": (30.0, 2.0)},
                                         "odconv4x": {"temperature": (30.0, 2.0)}}),
    timeseries=replace(_COURSE, epochs=45, batch_size=16, width=32, dropout=0.0, augment="mirror",
                       temperature=(30.0, 1.0),
                       unit_options={"hard": {"gate_bias": 1.0, "budget_weight": 1.0, "gate_after_norm": True},
                                     "odconv": {"attention_norm": "none"},
                                     "odconv4x": {"attention_norm": "none"}}),
)

_FULL = Profile(
    "full",
    "the paper's Table 1 for the image tasks (GPU); the kit's recipe for Adiac",
    classification=TaskProfile(epochs=30, size=64, stem="small", width=64),
    segmentation=TaskProfile(epochs=30, size=320, stem="imagenet", width=64, dropout=0.0),
    # Adiac: 390 training series, so epochs are cheap; the light 1D ResNet needs far more than 30.
    # 'cosine-mirror-smooth', chosen among TIMESERIES_RECIPES on validation accuracy by
    # `dynlab search recipes` (results/adiac_recipes.md).
    timeseries=TaskProfile(epochs=200, batch_size=16, lr_schedule="cosine", plateau_patience=None,
                           plateau_min_lr=1e-5, early_stopping_patience=None, label_smoothing=0.1,
                           augment="mirror", width=64, dropout=0.0),
)

_PAPER = replace(
    _FULL,
    name="paper",
    description="the paper's own settings: Tiny ImageNet upsampled to 224x224 behind the ImageNet stem; "
                "its Table 1 recipe for Adiac too",
    classification=replace(_FULL.classification, size=224, stem="imagenet"),
    timeseries=TaskProfile(epochs=30, width=64),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_QUICK, _FULL, _PAPER)}
#: raised whenever a recipe's meaning changes without its fields changing (a new data generator, a
#: new loss): finished cells record it, and a grid does not reuse cells of another version
RECIPE_VERSION = 2  # 2: the course recipe and the redesigned synthetic tasks (issue 18)
#: names used before: old name -> current name
RENAMED = {"seed": "paper"}

_PLATEAU = TaskProfile(epochs=200, batch_size=16, plateau_patience=20, plateau_min_lr=1e-5, early_stopping_patience=50,
                       width=64, dropout=0.0)
_COSINE = replace(_PLATEAU, lr_schedule="cosine", plateau_patience=None, early_stopping_patience=None)
#: candidate recipes for ``tsresnet`` on Adiac (width 64, 200 epochs, batch 16, Adam at 1e-3 unless
#: named); the ``full`` profile's time-series recipe is the one chosen on validation (``DEFAULT_RECIPE``)
TIMESERIES_RECIPES = {
    "plateau": _PLATEAU,
    "cosine": _COSINE,
    "cosine-smooth": replace(_COSINE, label_smoothing=0.1),
    "cosine-mirror": replace(_COSINE, augment="mirror"),
    "cosine-mirror-smooth": replace(_COSINE, augment="mirror", label_smoothing=0.1),
    "cosine-outline": replace(_COSINE, augment="outline"),
    "cosine-outline-smooth": replace(_COSINE, augment="outline", label_smoothing=0.1),
    "cosine-outline-adamw": replace(_COSINE, augment="outline", optimizer="adamw", weight_decay=0.05),
    "cosine-outline-lr3e-3": replace(_COSINE, augment="outline", lr=3e-3),
    "cosine-outline-dropout": replace(_COSINE, augment="outline", dropout=0.3),
}
DEFAULT_RECIPE = next(name for name, r in TIMESERIES_RECIPES.items() if r == _FULL.timeseries)


def names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """A profile by name: ``quick``, ``full``, ``paper`` or ``full+RECIPE`` (see the module doc)."""
    if name in RENAMED:
        warnings.warn(f"profile {name!r} is now called {RENAMED[name]!r}", FutureWarning, stacklevel=2)
        name = RENAMED[name]
    if isinstance(name, str) and name.startswith("full+"):
        return recipe_profile(name.removeprefix("full+"))
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}") from None


def recipe_profile(recipe: str | None = None) -> Profile:
    """The ``full`` profile with candidate ``recipe`` for the time series (None: the chosen one, ``full``)."""
    recipe = recipe or DEFAULT_RECIPE
    if recipe not in TIMESERIES_RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid recipes: {', '.join(TIMESERIES_RECIPES)}")
    if recipe == DEFAULT_RECIPE:
        return _FULL
    return replace(_FULL, name=f"full+{recipe}", timeseries=TIMESERIES_RECIPES[recipe])


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def default_profile() -> Profile:
    """``$DYNLAB_PROFILE`` if set, else ``quick``, on every device: the hardware does not choose (on a
    GPU the course profile simply runs faster). ``DYNLAB_QUICK=1`` always means ``quick``."""
    if _flag(os.environ.get("DYNLAB_QUICK")):
        return PROFILES["quick"]
    return get_profile(os.environ.get("DYNLAB_PROFILE") or "quick")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(1, round(seconds / 60))} min"


def choose(name: str | None = None) -> Profile:
    """The profile a notebook trains with: ``name``, else ``default_profile()``. Prints the choice and
    how to switch; for a profile other than ``quick``, each task's training work beside quick's
    before anything starts (MACs per sample x training samples x epochs), and the time that makes at
    the speed ``base`` trained with in the committed quick study (its CPU)."""
    from .experiments.pipeline import training_work  # the models and data live above this module
    from .experiments.study import committed_seconds

    profile = get_profile(name) if name else default_profile()
    print(f"profile '{profile.name}': {profile.description}")
    if profile.name == "quick":
        print('  the course profile, on every device; profiles.choose("full") or DYNLAB_PROFILE=full '
              "trains the full-size networks instead and prints what that costs")
        return profile
    for task in TASKS:
        ratio = training_work(task, profile) / training_work(task, "quick")
        seconds = committed_seconds(task)
        estimate = (f"; about {_hours(ratio * seconds)} a run at base's speed in the committed quick study "
                    "(a 2-core CPU; a GPU takes a small fraction of that)" if seconds else "")
        print(f"  {task}: {ratio:,.0f}x the quick profile's training work per run "
              f"(MACs per sample x training samples x epochs){estimate}")
    print("  data: the built-in synthetic sets at their full size and Adiac, as in quick; the real image data "
          "sets are downloaded only where a notebook asks for them")
    return profile
