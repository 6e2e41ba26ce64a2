"""The same ``fit`` under torchrun: two CPU processes (gloo) train the smoke model together."""
import json
import socket
import subprocess
import sys

import pytest

from dynlab.engine import evaluate, load_checkpoint
from dynlab.engine.smoke import TinyNet, smoke_datasets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_torchrun_two_processes_train_and_the_saved_model_loads(tmp_path):
    out = tmp_path / "run"
    samples = 196  # val and test get 49 samples: the two processes evaluate unequal shards (25 and 24)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={free_port()}", "-m", "dynlab.engine.smoke", "--smoke", str(out), "--device", "cpu",
        "--epochs", "3", "--samples", str(samples), "--quiet",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    history = json.loads((out / "history.json").read_text())
    assert history["finished"] and history["config"]["world_size"] == 2 and len(history["records"]) == 3
    losses = [r["train_loss"] for r in history["records"]]
    assert losses[-1] < losses[0]
    assert history["test"]["accuracy"] >= 0.8
    assert sorted(p.name for p in out.iterdir() if p.name != ".dynlab.lock") == ["best.pt", "history.csv", "history.json",
                                                                              "last.pt"]

    # the best weights load into a fresh model; evaluated in one process they give the test metrics
    # the two processes reported, which they summed (counts), not averaged (per-shard means)
    model = TinyNet("dyconv")
    checkpoint = load_checkpoint(out / "best.pt", model)
    assert checkpoint["epoch"] == history["best_epoch"]
    _, _, test_set = smoke_datasets(samples, seed=0)
    single = evaluate(model, test_set, batch_size=16, device="cpu")
    assert single["accuracy"] == pytest.approx(history["test"]["accuracy"], abs=1e-12)
    assert single["loss"] == pytest.approx(history["test"]["loss"], rel=1e-5)
