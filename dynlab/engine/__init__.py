"""The training engine: ``fit`` (a short loop over epochs), ``evaluate``, checkpoints and history.

``fit.py`` holds the loop; ``callbacks.py`` what a model or a user adds to it (temperature annealing,
the auxiliary loss, precise BatchNorm, epoch-end hooks); ``options.py`` its settings in one object;
``checkpoint.py`` fingerprints, safe loading, atomic saving and random state; ``distributed.py``
torchrun; ``meters.py`` exact sums of losses and counts; ``progress.py`` the progress bar;
``smoke.py`` a tiny run to try it.
"""
from .callbacks import (AuxiliaryLoss, Callback, EpochEnd, PreciseBatchNorm, TemperatureAnnealing, model_callbacks,
                        recalibrate_batchnorm)
from .checkpoint import (CHECKPOINT_FORMAT, CheckpointMismatchError, check_fingerprint, load_checkpoint,
                         model_fingerprint)
from .evaluate import evaluate
from .fit import Trainer, fit
from .history import RECORD_FIELDS, History
from .optim import make_optimizer
from .options import KEEP, LR_SCHEDULES, OPTIMIZERS, TASK_METRICS, FitOptions

__all__ = [
    "AuxiliaryLoss", "CHECKPOINT_FORMAT", "Callback", "CheckpointMismatchError", "EpochEnd", "FitOptions", "History",
    "KEEP", "LR_SCHEDULES", "OPTIMIZERS", "PreciseBatchNorm", "RECORD_FIELDS", "TASK_METRICS",
    "TemperatureAnnealing", "Trainer", "check_fingerprint", "evaluate", "fit", "load_checkpoint",
    "make_optimizer", "model_callbacks", "model_fingerprint", "recalibrate_batchnorm",
]
