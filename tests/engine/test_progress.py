"""The epoch bar redraws at a bounded pace, whatever the number of batches (see progress.REDRAW_SECONDS)."""
import io

from dynlab.engine import progress


class RunningMeter:
    def results(self):
        return {"loss": 0.5, "accuracy": 0.25}


def test_epoch_bar_redraws_at_most_about_once_a_second(monkeypatch):
    out = io.StringIO()
    real_tqdm = progress.tqdm
    monkeypatch.setattr(progress, "tqdm", lambda **kw: real_tqdm(file=out, **kw))
    steps = 2000
    bar = progress.EpochBar(1, 1, steps, "accuracy", disable=False)
    for _ in range(steps):
        bar.step(RunningMeter())
    bar.close(0.5, {"loss": 0.4, "accuracy": 0.9})
    redraws = out.getvalue().count("\r")
    # a redraw per 10 batches (the postfix) would be 200; the loop takes a few seconds at most
    assert 2 <= redraws <= 20, redraws
    assert "val_accuracy=0.9000" in out.getvalue()
