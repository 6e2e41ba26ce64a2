"""The progress bar of one epoch (tqdm.auto: a widget in notebooks, text in a terminal)."""
from __future__ import annotations

from tqdm.auto import tqdm

from .meters import Meter


#: seconds between two redraws of a bar. In a notebook every redraw is a few widget messages, and
#: the kernel drops messages beyond its output queue's limit (1,000) when the client reads them only
#: after the cell, as nbval does: a bar redrawn ten times a second through a minute-long cell lost
#: the cell's final "idle" message, and nbval failed the cell after waiting for it.
REDRAW_SECONDS = 1.0


class EpochBar:
    """Shows the running loss and metric (at most once a second), and the validation result at the end."""

    def __init__(self, epoch: int, epochs: int, steps: int, metric: str, disable: bool) -> None:
        self.metric = metric
        self.steps = steps
        self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=disable, leave=True,
                        dynamic_ncols=True, mininterval=REDRAW_SECONDS)

    def step(self, meter: Meter) -> None:
        self.bar.update()
        if self.bar.n % 10 == 0 or self.bar.n == self.steps:
            running = meter.results()
            self.bar.set_postfix(loss=f"{running['loss'] + running.get('aux_loss', 0.0):.4f}",
                                 **({self.metric: f"{running[self.metric]:.4f}"} if self.metric != "loss" else {}),
                                 refresh=False)  # drawn with the next update, at the bar's pace

    def close(self, train_loss: float, val: dict) -> None:
        self.bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val['loss']:.4f}",
                             **{f"val_{self.metric}": f"{val[self.metric]:.4f}"})
        self.bar.close()
