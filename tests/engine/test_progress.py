"""A run's progress bar costs a bounded number of redraws and one bar, whatever its batches and epochs
(see progress.REDRAW_SECONDS and progress.RunBar)."""
import io

import torch
from torch.utils.data import TensorDataset

from dynlab.engine import fit, progress


class RunningMeter:
    def results(self):
        return {"loss": 0.5, "accuracy": 0.25}


def test_the_bar_redraws_at_most_about_once_a_second(monkeypatch):
    out = io.StringIO()
    real_tqdm = progress.tqdm
    monkeypatch.setattr(progress, "tqdm", lambda **kw: real_tqdm(file=out, **kw))
    steps, epochs = 500, 4
    bar = progress.RunBar(1, epochs, steps, "accuracy", disable=False)
    for epoch in range(1, epochs + 1):
        bar.start_epoch(epoch)
        for _ in range(steps):
            bar.step(RunningMeter())
        bar.end_epoch(0.5, {"loss": 0.4, "accuracy": 0.9})
    bar.close()
    redraws = out.getvalue().count("\r")
    # a redraw per 10 batches (the postfix) would be 200; the loop takes a few seconds at most
    assert 2 <= redraws <= 20, redraws
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert "epoch 4/4" in last and "val_accuracy=0.9000" in last and "2000/2000" in last, last


def test_a_fit_draws_one_bar_for_all_its_epochs(monkeypatch, tmp_path):
    bars = []
    real_tqdm = progress.tqdm

    def counting_tqdm(**kw):
        bars.append(kw)
        return real_tqdm(file=io.StringIO(), **kw)

    monkeypatch.setattr(progress, "tqdm", counting_tqdm)
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    fit(torch.nn.Linear(4, 2), data, data, task="classification", epochs=5, batch_size=8, lr=0.01)
    assert len(bars) == 1 and bars[0]["total"] == 5 * 4, bars
