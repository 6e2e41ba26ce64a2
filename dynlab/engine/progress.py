"""The progress bar of one epoch (tqdm.auto: a widget in notebooks, text in a terminal)."""
from __future__ import annotations

from tqdm.auto import tqdm

from .meters import Meter


class EpochBar:
    """Shows the running loss and metric every 10 batches, and the validation result at the end."""

    def __init__(self, epoch: int, epochs: int, steps: int, metric: str, disable: bool) -> None:
        self.metric = metric
        self.steps = steps
        self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=disable, leave=True,
                        dynamic_ncols=True)

    def step(self, meter: Meter) -> None:
        self.bar.update()
        if self.bar.n % 10 == 0 or self.bar.n == self.steps:
            running = meter.results()
            self.bar.set_postfix(loss=f"{running['loss'] + running.get('aux_loss', 0.0):.4f}",
                                 **({self.metric: f"{running[self.metric]:.4f}"} if self.metric != "loss" else {}))

    def close(self, train_loss: float, val: dict) -> None:
        self.bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val['loss']:.4f}",
                             **{f"val_{self.metric}": f"{val[self.metric]:.4f}"})
        self.bar.close()
