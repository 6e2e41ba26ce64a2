"""``fit``: train a model, pick its best epoch on validation, test it once.

The defaults are the paper's Table 1: Adam, lr 1e-3, batch 32, 30 epochs, cross-entropy,
ReduceLROnPlateau (factor 0.1, patience 5, min 1e-6) and early stopping (patience 10) on a validation
split held out of the training data; the best epoch (by the validation metric) is restored before the
test split is evaluated, once, at the end.

``fit`` reads top to bottom: set up, resume, then a loop over epochs calling ``train_epoch`` and
``validate``; ``Trainer`` holds the run's state and its steps. The loop knows no variant: what a
model's units need (temperature annealing, an auxiliary loss, precise BatchNorm) arrives as
callbacks (``callbacks.model_callbacks``). The same ``fit`` runs on one process or under
``torchrun`` (``distributed``).
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from .. import files, kernels, layers
from ..device import autocast, describe, grad_scaler, prepare_input, prepare_model
from . import checkpoint, distributed
from .callbacks import Callback, EpochEnd, as_callbacks, model_callbacks
from .evaluate import logits_of, run_evaluation
from .history import History
from .meters import Meter
from .optim import make_optimizer, make_scheduler
from .options import RESUME_KEYS, FitOptions
from .progress import RunBar


def fit(model: nn.Module, train_set: Dataset, val_set: Dataset, test_set: Dataset | None = None, *,
        callbacks: Sequence[Callback | Callable[[EpochEnd], Any]] | None = None, **options) -> History:
    """Train ``model`` on ``train_set``, select the best epoch on ``val_set``, test it once on ``test_set``.

    ``options`` are the fields of ``FitOptions`` (task, epochs, batch_size, lr, optimizer, ...):

    - ``metric``: the validation metric that picks the best epoch and drives ReduceLROnPlateau and
      early stopping (default: accuracy, or miou for segmentation; ``"loss"`` is minimised). Pass
      ``plateau_patience=None`` / ``early_stopping_patience=None`` to switch them off.
    - ``lr_schedule``: ``"plateau"`` (the paper's), ``"cosine"`` (decay from ``lr`` to 0 over all
      training steps) or ``"onecycle"`` (warm-up, then cosine decay; ``optim.make_scheduler``); the
      plateau settings are unused by the last two. ``clip_grad_norm``: rescale the gradients to at most
      this total norm before every step (None: never). ``label_smoothing`` goes to the training loss.
    - ``temperature``: ``(start, end)`` of the attention temperature of units that use one (DyConv,
      ODConv, local), annealed over the first third of the run (at most 10 epochs); default 30 -> 1.
    - ``precise_batchnorm``: recompute the BatchNorm statistics before every evaluation; None switches
      it on for models that need it (``dynlab.layers.needs_precise_batchnorm``: ODConv).
    - ``keep="last"``: hand back the last epoch instead of the best one, for a final run on all the
      training data with settings chosen beforehand (``best.pt`` then holds the last epoch).
    - ``out_dir``: ``last.pt`` (everything needed to resume), ``best.pt``, ``history.json`` and
      ``history.csv``, updated after every epoch. A folder that already holds a run is refused unless
      ``resume=True`` (continue it; a finished run is reloaded as it is) or ``overwrite=True``.
      Resuming needs the same model and settings and ends exactly where the uninterrupted run would
      on the CPU with the same thread count (it warns when the device or the threads differ); under
      torchrun ``out_dir`` must be on a shared file system. One process at a time writes a folder: a
      second is refused (``FolderBusyError``).

    ``callbacks``: ``Callback`` objects, or functions called with an ``EpochEnd`` after every epoch.
    At the end the model holds the kept epoch's weights (and stays on the training device).
    Reproducible on the CPU for a given ``seed`` (torch, numpy, random and the data order are seeded;
    the model's initial weights are the caller's).
    """
    options = FitOptions(**options)
    if val_set is None or len(val_set) == 0:
        raise ValueError("fit needs a non-empty validation set (hold one out of the training data)")
    if options.precise_batchnorm is None:
        options = options.replace(precise_batchnorm=layers.needs_precise_batchnorm(model))
    hooks = [*model_callbacks(model, options.precise_batchnorm, options.temperature), *as_callbacks(callbacks)]

    with distributed.session(options.device) as (dist, device), run_folder(options, dist):
        trainer = Trainer(model, train_set, val_set, options, hooks, dist, device)
        if trainer.resume_if_asked():
            return trainer.history  # a finished run, reloaded with its kept weights
        for callback in hooks:
            callback.on_fit_start(trainer)
        first = len(trainer.history) + 1
        trainer.bar = RunBar(first, options.epochs, trainer.steps_per_epoch, options.metric,
                             disable=options.quiet or not dist.is_main)
        try:
            for epoch in range(first, options.epochs + 1):
                started = time.perf_counter()
                train = trainer.train_epoch(epoch)
                val = trainer.validate()
                if trainer.end_epoch(epoch, train, val, time.perf_counter() - started):
                    break
        finally:
            trainer.bar.close()
        return trainer.finish(test_set)


@contextlib.contextmanager
def run_folder(options: FitOptions, dist: distributed.Dist):
    """While the run writes ``out_dir``: its lock (held by rank 0), the refusal of a folder that holds
    another run, and no temporary files of processes that are gone."""
    out = options.out_dir
    if out is None:
        yield
        return
    lock = files.folder_lock(out, "dynlab fit") if dist.is_main else contextlib.nullcontext()
    with lock:
        checkpoint.check_run_folder(out, options.resume, options.overwrite)
        if dist.is_main:
            files.remove_stale_temporaries(out)
        yield


class Trainer:
    """One run's state (model, optimizer, loaders, schedule, history, best epoch) and its steps."""

    def __init__(self, model: nn.Module, train_set: Dataset, val_set: Dataset, options: FitOptions,
                 callbacks: Sequence[Callback], dist: distributed.Dist, device: torch.device) -> None:
        self.options, self.callbacks, self.dist, self.device = options, callbacks, dist, device
        out = options.out_dir
        self.last_path = out / "last.pt" if out is not None else None
        self.best_path = out / "best.pt" if out is not None else None
        if out is not None and dist.is_main:
            out.mkdir(parents=True, exist_ok=True)

        checkpoint.seed_everything(options.seed + dist.rank)  # each process its own dropout masks
        kernels.prepare_process()
        self.model = prepare_model(model, device)
        self.fingerprint = checkpoint.model_fingerprint(self.model)
        self.net = distributed.wrap(self.model, dist, device)
        self.optimizer = make_optimizer(options.optimizer, self.model.parameters(), options.lr, options.weight_decay)
        self.scaler = grad_scaler(device)
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=options.ignore_index, label_smoothing=options.label_smoothing)
        self._make_loaders(train_set, val_set)
        self.scheduler, self.per_step_scheduler = make_scheduler(options, self.optimizer, self.steps_per_epoch)
        self.config = options.config(world_size=dist.world_size, device=describe(device),
                                     model=type(self.model).__name__, variant=getattr(self.model, "variant", None),
                                     parameters=sum(p.numel() for p in self.model.parameters()))
        self.history = History(options.task, options.metric, config=self.config)
        self.step, self.bad_epochs = 0, 0
        self.best_state: dict | None = None
        self.best_fields: dict = {}  # what best.pt keeps beside the weights (callbacks' best_fields)
        self.record_fields: dict = {}  # what the callbacks add to this epoch's record (validate)

    def _make_loaders(self, train_set: Dataset, val_set: Dataset) -> None:
        """The training order depends only on (seed, epoch), so a resumed run sees the same batches."""
        o, dist = self.options, self.dist
        self.generator = torch.Generator()
        if dist.active:
            self.sampler = DistributedSampler(train_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                              seed=o.seed)
        else:
            self.sampler = RandomSampler(train_set, generator=self.generator)
        # A last batch of one sample breaks BatchNorm after global pooling (ODConv, DeepLab's ASPP): drop only that.
        drop_last = len(self.sampler) % o.batch_size == 1 and len(self.sampler) > 1
        self.pin = self.device.type == "cuda"
        self.train_loader = DataLoader(train_set, batch_size=o.batch_size, sampler=self.sampler, drop_last=drop_last,
                                       num_workers=o.num_workers, pin_memory=self.pin, generator=self.generator,
                                       worker_init_fn=checkpoint.seed_worker)
        self.val_loader = self.eval_loader(val_set)
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise ValueError("the training set is empty")

    def eval_loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(distributed.shard(dataset, self.dist), batch_size=self.options.eval_batch_size,
                          num_workers=self.options.num_workers, pin_memory=self.pin)

    # -- the steps --------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        o = self.options
        if self.dist.active:
            self.sampler.set_epoch(epoch)
        else:
            self.generator.manual_seed(o.seed * 1_000_003 + epoch)
        self.net.train()
        meter = Meter(o.task, o.ignore_index, self.device)
        self.bar.start_epoch(epoch)
        for x, y in self.train_loader:
            for callback in self.callbacks:
                callback.on_step_start(self)
            x, y = prepare_input(x, self.device), y.to(self.device, non_blocking=self.pin)
            with autocast(self.device):
                logits = logits_of(self.net(x))
                task_loss = self.loss_fn(logits.float(), y)
                aux = sum(callback.extra_loss(self) for callback in self.callbacks)
                loss = task_loss + aux
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if o.clip_grad_norm is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.net.parameters(), o.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.per_step_scheduler:
                self.scheduler.step()
            self.step += 1
            count = (y != o.ignore_index).sum() if o.task == "segmentation" else y.shape[0]
            meter.update(logits, y, task_loss.detach() * count, count, aux)
            self.bar.step(meter)
        meter.reduce(self.dist)
        distributed.broadcast_buffers(self.model, self.dist)
        return meter.results()

    def validate(self) -> dict[str, float]:
        self.record_fields: dict = {"temperature": None}
        for callback in self.callbacks:
            self.record_fields.update(callback.before_validation(self))
        o = self.options
        val = run_evaluation(self.model, self.val_loader, o.task, o.ignore_index, self.device, self.dist)
        if o.metric not in val:
            raise ValueError(f"metric {o.metric!r} is not available for this task and model; got {sorted(val)}")
        return val

    def end_epoch(self, epoch: int, train: dict, val: dict, seconds: float) -> bool:
        """Record the epoch, keep it if it is the best, checkpoint, run the callbacks; True to stop."""
        o = self.options
        lr_used = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None and not self.per_step_scheduler and not math.isnan(val[o.metric]):
            self.scheduler.step(val[o.metric])
        record = {
            "epoch": epoch,
            "train_loss": train["loss"] + train.get("aux_loss", 0.0),
            "train_aux_loss": train.get("aux_loss", 0.0),
            "train_metric": train[o.metric] if o.metric != "loss" else train["loss"],
            "val_loss": val["loss"],
            "val_metric": val[o.metric],
            "lr": lr_used,
            "temperature": self.record_fields.pop("temperature"),
            "seconds": seconds,
            **self.record_fields,
        }
        self.history.records.append(record)
        self.bar.end_epoch(record["train_loss"], val)

        if o.keep == "last" or _better(val[o.metric], self.history.best_metric, o.mode):
            self.history.best_metric, self.history.best_epoch, self.bad_epochs = val[o.metric], epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best_fields = {k: v for c in self.callbacks for k, v in c.best_fields(self).items()}
            if self.best_path is not None and self.dist.is_main:
                checkpoint.save_checkpoint({"format": checkpoint.CHECKPOINT_FORMAT, "fingerprint": self.fingerprint,
                                            "model": self.best_state, "epoch": epoch, "metric": o.metric,
                                            "value": val[o.metric], **self.best_fields, "config": self.config},
                                           self.best_path)
        else:
            self.bad_epochs += 1
        stop = o.early_stopping_patience is not None and self.bad_epochs >= o.early_stopping_patience
        self.history.stopped_early = stop and epoch < o.epochs
        self.save_last(finished=False)

        context = EpochEnd(epoch, record, self.history, self.model, self.optimizer, o.out_dir, self.dist.rank)
        for callback in self.callbacks:
            callback.on_epoch_end(context)
        return distributed.any_rank(context.stop, self.dist, self.device) or stop

    def finish(self, test_set: Dataset | None) -> History:
        """Restore the kept epoch, test it once, and write the finished run."""
        last_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            for callback in self.callbacks:
                callback.restore_best(self, self.best_fields)
        if test_set is not None:
            o = self.options
            self.history.test = run_evaluation(self.model, self.eval_loader(test_set), o.task, o.ignore_index,
                                               self.device, self.dist)
        self.history.finished = True
        self.save_last(finished=True, model_state=last_state)  # last.pt keeps the last epoch's weights
        return self.history

    # -- checkpoints ------------------------------------------------------------------------------
    def save_last(self, finished: bool, model_state: dict | None = None) -> None:
        """Write last.pt and the history files (rank 0), with every process's random state."""
        if self.last_path is None:
            return
        states = distributed.gather(checkpoint.rng_state(), self.dist)
        if not self.dist.is_main:
            return
        checkpoint.save_checkpoint({
            "format": checkpoint.CHECKPOINT_FORMAT, "fingerprint": self.fingerprint,
            "model": model_state or self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(), "epoch": len(self.history), "step": self.step, "rng": states,
            "history": self.history.to_dict(), "bad_epochs": self.bad_epochs, "finished": finished,
            "config": self.config,
        }, self.last_path)
        self.history.to_json(self.options.out_dir / "history.json")
        self.history.to_csv(self.options.out_dir / "history.csv")

    def resume_if_asked(self) -> bool:
        """Continue from last.pt when resuming; True if that run had finished (then nothing is left to do)."""
        if not self.options.resume or not self.last_path.exists():
            return False
        saved = checkpoint.load_checkpoint(self.last_path)
        checkpoint.check_fingerprint(saved["fingerprint"], self.model, self.last_path)
        changed = [k for k in RESUME_KEYS if saved["config"].get(k) != self.config[k]]
        if changed:
            details = ", ".join(f"{k}: {saved['config'].get(k)!r} -> {self.config[k]!r}" for k in changed)
            raise ValueError(f"cannot resume {self.last_path} with different settings ({details}); "
                             "use the run's settings or another out_dir")
        if saved["config"].get("device") != self.config["device"] and not saved["finished"] and self.dist.is_main:
            warnings.warn(f"resuming {self.last_path} on {self.config['device']}, where it ran on "
                          f"{saved['config'].get('device')}: it will not end exactly where an uninterrupted run "
                          "would (results depend on the thread count and the device)", stacklevel=3)
        self.history = History.from_dict(saved["history"])
        if saved["finished"]:  # hand back the run with its kept weights
            if self.best_path.exists():
                checkpoint.load_checkpoint(self.best_path, self.model)
            else:
                self.model.load_state_dict(saved["model"])
            return True
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        self.step, self.bad_epochs = saved["step"], saved["bad_epochs"]
        rng = saved["rng"]
        checkpoint.set_rng_state(rng[self.dist.rank] if len(rng) == self.dist.world_size else rng[0])
        if self.best_path.exists():
            best = checkpoint.load_checkpoint(self.best_path)
            self.best_state = best["model"]
            self.best_fields = {k: v for k, v in best.items() if k not in _BEST_ENTRIES}
        return False


#: what every best.pt holds; anything else in it came from a callback's ``best_fields``
_BEST_ENTRIES = ("format", "fingerprint", "model", "epoch", "metric", "value", "config")


def _better(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best
