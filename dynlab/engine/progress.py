"""The progress bar of one training run (tqdm.auto: a widget in notebooks, text in a terminal)."""
from __future__ import annotations

from tqdm.auto import tqdm

from .meters import Meter


#: seconds between two redraws of the bar. In a notebook every redraw is a few widget messages, and
#: the kernel drops messages beyond its output queue's limit (1,000) when the client reads them only
#: after the cell, as nbval does: a bar redrawn ten times a second through a minute-long cell lost
#: the cell's final "idle" message, and nbval failed the cell after waiting for it.
REDRAW_SECONDS = 1.0


class RunBar:
    """One bar for the whole run, so that a cell's widget messages do not grow with its epochs
    (a notebook bar is eleven widgets: one bar per epoch of a 30-epoch run sent about 700 messages).

    It shows the epoch, the running loss and metric (at most once a second) and the last validation
    result.
    """

    def __init__(self, first_epoch: int, epochs: int, steps: int, metric: str, disable: bool) -> None:
        self.metric, self.epochs = metric, epochs
        self.steps = steps
        self.last_val: dict[str, str] = {}
        self.bar = tqdm(total=epochs * steps, initial=(first_epoch - 1) * steps, desc=self._desc(first_epoch),
                        unit="batch", disable=disable, leave=True, dynamic_ncols=True, mininterval=REDRAW_SECONDS)

    def _desc(self, epoch: int) -> str:
        return f"epoch {epoch}/{self.epochs}"

    def start_epoch(self, epoch: int) -> None:
        self.bar.set_description(self._desc(epoch), refresh=False)

    def step(self, meter: Meter) -> None:
        self.bar.update()
        if self.bar.n % 10 == 0 or self.bar.n % self.steps == 0:
            running = meter.results()
            self.bar.set_postfix(loss=f"{running['loss'] + running.get('aux_loss', 0.0):.4f}",
                                 **({self.metric: f"{running[self.metric]:.4f}"} if self.metric != "loss" else {}),
                                 **self.last_val, refresh=False)  # drawn with the next update, at the bar's pace

    def end_epoch(self, train_loss: float, val: dict) -> None:
        self.last_val = {"val_loss": f"{val['loss']:.4f}", f"val_{self.metric}": f"{val[self.metric]:.4f}"}
        self.bar.set_postfix(loss=f"{train_loss:.4f}", **self.last_val, refresh=False)

    def close(self) -> None:
        self.bar.refresh()
        self.bar.close()
