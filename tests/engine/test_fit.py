import csv
import dataclasses
import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from dynlab import layers
from dynlab.engine import (CheckpointMismatchError, History, evaluate, fit, load_checkpoint, make_optimizer,
                           recalibrate_batchnorm)
from dynlab.engine.smoke import TinyNet, smoke_datasets
from dynlab.metrics import ConfusionMatrix

#: tiny models train fastest on one thread (tests/conftest.py)
ONE_THREAD = True


class PlainNet(nn.Module):
    """No BatchNorm: with a zero learning rate nothing about it changes, so tests can be exact."""

    def __init__(self, variant="base", num_classes=2, width=8, dropout=0.0, **unit_options):
        super().__init__()
        self.variant = variant
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.unit = layers.build(variant, width, width, 3, padding=1, **unit_options)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)
        layers.bind(self)

    def forward(self, x):
        x = torch.relu(self.unit(torch.relu(self.stem(x))))
        return self.fc(self.dropout(x.mean(dim=(2, 3))))


class TinySegmenter(nn.Module):
    def __init__(self, num_classes=3, width=8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.unit = layers.build("dyconv", width, width, 3, padding=1)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        return self.head(torch.relu(self.unit(torch.relu(self.stem(x)))))


def made(model_class, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    return model_class(*args, **kwargs)


@pytest.fixture(scope="module")
def data():
    return smoke_datasets(samples=128, seed=0)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_learns_a_toy_problem_and_writes_history(tmp_path, data):
    train, val, test = data
    model = made(TinyNet, "base")
    history = fit(model, train, val, test, epochs=4, batch_size=16, lr=1e-2, out_dir=tmp_path, quiet=True)
    assert len(history) == 4 and [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert history.best_metric >= 0.9 and history.test["accuracy"] >= 0.85
    assert history[0]["temperature"] is None  # base units have no temperature
    assert all(r["lr"] == 1e-2 and r["seconds"] > 0 for r in history)

    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["finished"] and saved["test"] == history.test and saved["best_epoch"] == history.best_epoch
    assert History.read_json(tmp_path / "history.json").records == history.records
    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["val_metric"]) for r in rows] == pytest.approx(history.column("val_metric"))
    assert {"last.pt", "best.pt"} <= {p.name for p in tmp_path.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_same_seed_gives_the_same_run(data):
    train, val, _ = data
    runs = []
    for _ in range(2):
        model = made(PlainNet, "dyconv", dropout=0.3)
        history = fit(model, train, val, epochs=2, batch_size=16, seed=3, quiet=True)
        runs.append((weights(model), history.column("train_loss")))
    assert same_weights(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def test_temperature_anneals_per_iteration_to_one(data):
    train, val, _ = data
    model = made(PlainNet, "dyconv")
    seen = []
    model.unit.register_forward_pre_hook(lambda m, args: seen.append(m.temperature) if m.training else None)
    history = fit(model, train, val, epochs=6, batch_size=16, quiet=True)
    steps = len(seen) // 6
    assert seen[0] == 30.0
    assert all(a > b for a, b in zip(seen[:2 * steps], seen[1:2 * steps]))  # anneals over a third of the run
    assert seen[2 * steps:] == [1.0] * (4 * steps)
    assert history.column("temperature") == pytest.approx([15.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert model.unit.temperature == history[history.best_epoch - 1]["temperature"]  # the best epoch's


def test_the_temperature_schedule_is_a_setting(data):
    train, val, _ = data
    model = made(PlainNet, "dyconv")
    seen = []
    model.unit.register_forward_pre_hook(lambda m, args: seen.append(m.temperature) if m.training else None)
    history = fit(model, train, val, epochs=3, batch_size=16, quiet=True, temperature=(10, 4))
    assert seen[0] == 10.0 and seen[-1] == 4.0 and min(seen) == 4.0
    assert history.column("temperature")[-1] == 4.0 and history.config["temperature"] == (10.0, 4.0)
    with pytest.raises(ValueError, match="temperature must be two positive numbers"):
        fit(model, train, val, epochs=1, quiet=True, temperature=(30, 0))


def test_auxiliary_loss_is_added_to_the_task_loss(data):
    train, val, _ = data
    model = made(PlainNet, "hard")
    x, y = train.tensors
    model.train()
    task_loss = nn.functional.cross_entropy(model(x), y).item()
    aux = layers.auxiliary_loss(model).item()
    assert aux == pytest.approx(0.25)  # every gate open, budget 0.5: (1 - 0.5)^2

    # one full batch with a zero learning rate: the recorded loss is exactly that step's objective
    history = fit(model, train, val, epochs=1, batch_size=len(train), lr=0.0, quiet=True)
    assert history[0]["train_aux_loss"] == pytest.approx(aux)
    assert history[0]["train_loss"] == pytest.approx(task_loss + aux, rel=1e-5)


def test_auxiliary_loss_moves_the_gates_toward_the_budget(data):
    train, val, _ = data
    open_rates = {}
    for weight in (0.0, 1.0):
        model = made(PlainNet, "hard", budget_weight=weight)
        history = fit(model, train, val, epochs=4, batch_size=16, lr=5e-2, quiet=True)
        model.train()
        model(val.tensors[0])
        open_rates[weight] = model.unit.last_open_rate
    aux = history.column("train_aux_loss")
    assert aux[-1] < 0.25 * aux[0]
    assert open_rates[0.0] > 0.9 and open_rates[1.0] < 0.75  # the budget (0.5) closes gates; the task alone does not


def test_plateau_reduces_lr_and_early_stopping_stops(data):
    train, val, _ = data
    model = made(PlainNet, "base")
    # so small a learning rate that the validation accuracy cannot improve after epoch 1
    history = fit(model, train, val, epochs=20, batch_size=32, lr=1e-6, plateau_patience=1, plateau_min_lr=0.0,
                  early_stopping_patience=3, quiet=True)
    assert len(history) == 4 and history.stopped_early and history.best_epoch == 1
    assert history.column("lr") == pytest.approx([1e-6, 1e-6, 1e-6, 1e-7])


def sabotage_after(epoch):
    """A callback that, after ``epoch``, flips the classifier (accuracy becomes 1 - accuracy) and freezes all."""

    def sabotage(context):
        if context.epoch == epoch:
            with torch.no_grad():
                context.model.fc.weight.neg_()
                context.model.fc.bias.neg_()
            for group in context.optimizer.param_groups:
                group["lr"] = 0.0

    return sabotage


def test_best_checkpoint_is_restored_before_the_test(tmp_path, data):
    train, val, test = data
    model = made(PlainNet, "base")
    history = fit(model, train, val, test, epochs=4, batch_size=16, lr=1e-2, early_stopping_patience=None,
                  out_dir=tmp_path, callbacks=[sabotage_after(2)], quiet=True)
    assert len(history) == 4 and history.best_epoch <= 2
    assert history[-1]["val_metric"] < 0.5 < history.best_metric
    assert same_weights(weights(model), load_checkpoint(tmp_path / "best.pt")["model"])
    assert not same_weights(weights(model), load_checkpoint(tmp_path / "last.pt")["model"])
    assert evaluate(model, val, batch_size=50)["accuracy"] == pytest.approx(history.best_metric)
    assert history.test == pytest.approx(evaluate(model, test, batch_size=7))


def test_keep_last_hands_back_the_last_epoch_whatever_validation_says(tmp_path, data):
    train, val, test = data
    model = made(PlainNet, "base")
    history = fit(model, train, val, test, epochs=4, batch_size=16, lr=1e-2, early_stopping_patience=None,
                  out_dir=tmp_path, callbacks=[sabotage_after(2)], keep="last", quiet=True)
    assert len(history) == 4 and history.best_epoch == 4
    assert history[-1]["val_metric"] < 0.5 and history.best_metric == history[-1]["val_metric"]
    assert same_weights(weights(model), load_checkpoint(tmp_path / "last.pt")["model"])
    assert same_weights(weights(model), load_checkpoint(tmp_path / "best.pt")["model"])
    assert history.test == pytest.approx(evaluate(model, test, batch_size=7))
    with pytest.raises(ValueError, match="keep must be one of best, last"):
        fit(made(PlainNet, "base"), train, val, epochs=1, keep="first")


def test_the_best_epoch_is_tested_at_the_temperature_it_was_validated_at(tmp_path, data):
    """A best epoch from the annealing phase must not be tested at the final temperature of 1."""
    train, val, test = data
    model = made(PlainNet, "dyconv")  # ruined after epoch 1, so that epoch 1 stays the best one
    history = fit(model, train, val, test, epochs=4, batch_size=16, lr=1e-2, early_stopping_patience=None,
                  out_dir=tmp_path, callbacks=[sabotage_after(1)], quiet=True)
    first = history[0]["temperature"]
    assert history.best_epoch == 1 and first > 1.0 and history[-1]["temperature"] == 1.0
    assert model.unit.temperature == first
    assert load_checkpoint(tmp_path / "best.pt")["temperature"] == first
    reloaded = made(PlainNet, "dyconv", seed=5)
    load_checkpoint(tmp_path / "best.pt", reloaded)
    assert reloaded.unit.temperature == first
    assert evaluate(reloaded, val, batch_size=50)["accuracy"] == pytest.approx(history.best_metric)


class Interrupt(Exception):
    pass


def test_resume_ends_where_the_uninterrupted_run_ends(tmp_path, data):
    train, val, test = data
    settings = dict(epochs=4, batch_size=16, lr=5e-3, seed=7, quiet=True)

    whole = made(PlainNet, "dyconv", dropout=0.3)  # dropout: the random state must be restored too
    full = fit(whole, train, val, test, out_dir=tmp_path / "whole", **settings)

    def crash_after_epoch_2(context):
        if context.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(made(PlainNet, "dyconv", dropout=0.3), train, val, test, out_dir=tmp_path / "cut",
            callbacks=[crash_after_epoch_2], **settings)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 2

    resumed_model = made(PlainNet, "dyconv", dropout=0.3, seed=123)  # the checkpoint replaces these weights
    resumed = fit(resumed_model, train, val, test, out_dir=tmp_path / "cut", resume=True, **settings)

    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert strip(resumed.records) == strip(full.records)
    assert resumed.test == full.test and resumed.best_epoch == full.best_epoch
    assert same_weights(weights(resumed_model), weights(whole))
    assert same_weights(load_checkpoint(tmp_path / "cut" / "last.pt")["model"],
                        load_checkpoint(tmp_path / "whole" / "last.pt")["model"])


def test_checkpoint_of_another_variant_or_shape_is_refused(tmp_path, data):
    train, val, _ = data
    fit(made(TinyNet, "base"), train, val, epochs=1, batch_size=32, out_dir=tmp_path, quiet=True)
    with pytest.raises(CheckpointMismatchError, match=r"(?s)checkpoint: TinyNet \(variant 'base'\).*"
                                                      r"this model: TinyNet \(variant 'dyconv'\)"):
        fit(made(TinyNet, "dyconv"), train, val, epochs=1, batch_size=32, out_dir=tmp_path, resume=True, quiet=True)
    with pytest.raises(CheckpointMismatchError, match=r"parameter 'stem.weight' is \[8, 3, 3, 3\] in the checkpoint "
                                                      r"and \[16, 3, 3, 3\] here"):
        load_checkpoint(tmp_path / "best.pt", made(TinyNet, "base", width=16))


def test_existing_run_is_never_overwritten_silently(tmp_path, data):
    train, val, test = data
    model = made(TinyNet, "base")
    first = fit(model, train, val, test, epochs=2, batch_size=32, out_dir=tmp_path, quiet=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    with pytest.raises(FileExistsError, match="resume=True.*overwrite=True"):
        fit(made(TinyNet, "base"), train, val, epochs=2, batch_size=32, out_dir=tmp_path, quiet=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    # resuming a finished run reloads it as it is, best weights included, without training
    again = made(TinyNet, "base", seed=5)
    reloaded = fit(again, train, val, test, epochs=2, batch_size=32, out_dir=tmp_path, resume=True, quiet=True)
    assert reloaded.records == first.records and reloaded.test == first.test
    assert same_weights(weights(again), weights(model))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    with pytest.raises(ValueError, match="epochs: 2 -> 3"):
        fit(again, train, val, epochs=3, batch_size=32, out_dir=tmp_path, resume=True, quiet=True)

    replaced = fit(made(TinyNet, "base"), train, val, epochs=1, batch_size=32, out_dir=tmp_path, overwrite=True,
                   quiet=True)
    assert len(replaced) == 1 and len(History.read_json(tmp_path / "history.json")) == 1


def test_segmentation_reports_miou_from_the_confusion_matrix():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(24, 3, 12, 12, generator=generator)
    masks = (images[:, 0] > 0.5).long() + (images[:, 1] > 0.5).long()  # classes 0, 1, 2 from the pixel colour
    masks[:, :2] = 255  # top rows unlabelled
    train, val = TensorDataset(images[:16], masks[:16]), TensorDataset(images[16:], masks[16:])
    model = made(TinySegmenter)
    history = fit(model, train, val, val, task="segmentation", epochs=3, batch_size=8, lr=2e-2, quiet=True)
    assert history.metric == "miou" and history[-1]["train_loss"] < history[0]["train_loss"]

    result = evaluate(model, val, "segmentation", batch_size=3)
    model.eval()
    with torch.no_grad():
        expected = ConfusionMatrix(3).update(model(images[16:]), masks[16:])
    assert result["miou"] == pytest.approx(expected.miou())
    assert result["pixel_accuracy"] == pytest.approx(expected.pixel_accuracy())
    assert history.test == pytest.approx(result)
    logits = model(images[16:]).detach()
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, masks[16:], ignore_index=255).item(),
                                           rel=1e-5)


def test_evaluate_classification_reports_top5_from_five_classes():
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(30, 3, 6, 6, generator=generator), torch.randint(0, 6, (30,), generator=generator)
    model = made(PlainNet, "base", num_classes=6).eval()
    with torch.no_grad():
        logits = model(x)
    result = evaluate(model, TensorDataset(x, y), "timeseries", batch_size=8)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert result["top5"] == pytest.approx((logits.topk(5, 1).indices == y[:, None]).any(1).float().mean().item())
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert "top5" not in evaluate(made(PlainNet, "base"), TensorDataset(x, y % 2), batch_size=8)


def test_bad_arguments_name_the_valid_values(data):
    train, val, _ = data
    model = made(PlainNet)
    with pytest.raises(ValueError, match="valid tasks: classification, segmentation, timeseries"):
        fit(model, train, val, task="detection", epochs=1)
    with pytest.raises(ValueError, match="valid metrics: miou, pixel_accuracy, loss"):
        fit(model, train, val, task="segmentation", metric="accuracy", epochs=1)
    with pytest.raises(ValueError, match="valid optimizers: adam, adamw, sgd"):
        fit(model, train, val, optimizer="lbfgs", epochs=1)
    with pytest.raises(ValueError, match="resume=True needs"):
        fit(model, train, val, resume=True, epochs=1)
    with pytest.raises(ValueError, match="valid schedules: plateau, cosine"):
        fit(model, train, val, lr_schedule="step", epochs=1)
    with pytest.raises(ValueError, match="label_smoothing"):
        fit(model, train, val, label_smoothing=1.0, epochs=1)


def test_adam_is_fused_on_the_cpu_and_steps_like_the_plain_one(data):
    train, _, _ = data
    x, y = train.tensors[0][:16], train.tensors[1][:16]
    models = [made(PlainNet, "dyconv") for _ in range(2)]
    fused = make_optimizer("adamw", models[0].parameters(), lr=1e-2, weight_decay=0.1)
    plain = torch.optim.AdamW(models[1].parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    for _ in range(3):
        for model, optimizer in zip(models, (fused, plain)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not make_optimizer("sgd", models[0].parameters(), lr=0.1).defaults.get("fused")
    with pytest.raises(ValueError, match="valid optimizers: adam, adamw, sgd"):
        make_optimizer("lion", models[0].parameters(), lr=0.1)


def test_cosine_schedule_decays_per_step_to_zero_and_resumes_exactly(tmp_path, data):
    train, val, test = data
    settings = dict(epochs=4, batch_size=16, lr=5e-3, seed=3, quiet=True, lr_schedule="cosine", label_smoothing=0.1)
    whole = made(PlainNet, "dyconv")
    full = fit(whole, train, val, test, out_dir=tmp_path / "whole", **settings)
    lrs = full.column("lr")  # the rate at the end of each epoch: a cosine over all steps, down to 0
    assert lrs == pytest.approx([2.5e-3 * (1 + math.cos(math.pi * epoch / 4)) for epoch in (1, 2, 3, 4)], abs=1e-12)
    assert full.config["lr_schedule"] == "cosine" and full.config["label_smoothing"] == 0.1

    def crash_after_epoch_2(context):
        if context.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(made(PlainNet, "dyconv"), train, val, test, out_dir=tmp_path / "cut", callbacks=[crash_after_epoch_2],
            **settings)
    resumed = fit(made(PlainNet, "dyconv"), train, val, test, out_dir=tmp_path / "cut", resume=True, **settings)
    assert resumed.column("lr") == lrs and resumed.test == full.test
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(made(PlainNet, "dyconv"), train, val, test, out_dir=tmp_path / "cut", resume=True,
            **{**settings, "lr_schedule": "plateau"})


def test_label_smoothing_raises_the_training_loss_of_a_confident_model(data):
    train, val, _ = data
    plain = fit(made(PlainNet), train, val, epochs=1, lr=0.0, seed=0, quiet=True)
    smoothed = fit(made(PlainNet), train, val, epochs=1, lr=0.0, seed=0, quiet=True, label_smoothing=0.5)
    assert smoothed.records[0]["train_loss"] != pytest.approx(plain.records[0]["train_loss"])
    assert smoothed.records[0]["val_loss"] == pytest.approx(plain.records[0]["val_loss"])  # evaluation is unsmoothed


class NormedNet(nn.Module):
    def __init__(self, variant="base"):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.unit = layers.build(variant, 8, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.norm(self.unit(torch.relu(self.stem(x))))).mean(dim=(2, 3)))


def test_recalibrate_batchnorm_gives_the_population_statistics(data):
    train, _, _ = data
    model = made(NormedNet)
    model.norm.running_mean.fill_(5.0)
    model.norm.momentum = 0.3
    loader = torch.utils.data.DataLoader(train, batch_size=32)
    assert recalibrate_batchnorm(model, loader) == 1
    features = torch.cat([model.unit(torch.relu(model.stem(x))) for x, _ in loader]).detach()
    assert torch.allclose(model.norm.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    assert model.norm.momentum == 0.3 and model.norm.training  # settings and mode are restored
    model.eval()
    recalibrate_batchnorm(model, loader)
    assert not model.training and not model.norm.training


def test_precise_batchnorm_is_automatic_for_odconv_only(data):
    train, val, _ = data
    assert layers.needs_precise_batchnorm(made(NormedNet, "odconv"))
    assert not layers.needs_precise_batchnorm(made(NormedNet, "dyconv"))
    on = fit(made(NormedNet, "odconv"), train, val, epochs=1, seed=0, quiet=True)
    off = fit(made(NormedNet, "dyconv"), train, val, epochs=1, seed=0, quiet=True)
    assert on.config["precise_batchnorm"] is True and off.config["precise_batchnorm"] is False


def test_profiles():
    from dynlab.profiles import get_profile

    full = get_profile("full").task("classification")  # the seed's Table 1
    assert (full.optimizer, full.lr, full.batch_size, full.epochs, full.dropout, full.width) == (
        "adam", 1e-3, 32, 30, 0.2, 64)
    assert (full.plateau_factor, full.plateau_patience, full.plateau_min_lr, full.early_stopping_patience) == (
        0.1, 5, 1e-6, 10)
    quick = get_profile("quick")
    assert quick.model_kwargs("classification") == {"stem": "imagenet", "width": 16, "dropout": 0.2}
    assert quick.model_kwargs("segmentation") == {"stem": "imagenet", "width": 16, "output_stride": 8,
                                                  "head_channels": 64, "atrous_rates": (1, 2, 4)}
    assert quick.model_kwargs("timeseries")["channels"] == (32, 64, 64)
    # the course recipe: one-cycle AdamW with clipping; the full profile keeps the paper's
    course = quick.task("classification")
    assert (course.optimizer, course.lr_schedule, course.clip_grad_norm) == ("adamw", "onecycle", 1.0)
    assert quick.unit_options("timeseries", "odconv") == {"attention_norm": "none"}
    assert quick.unit_options("classification", "odconv") == {}
    assert get_profile("full").unit_options("classification", "hard") == {}
    assert quick.fit_kwargs("segmentation")["task"] == "segmentation"
    # a variant's own recipe fields replace the task's for that variant only
    assert quick.fit_kwargs("classification", "orient")["clip_grad_norm"] == 5.0
    assert quick.fit_kwargs("classification", "base")["clip_grad_norm"] == 1.0
    assert quick.fit_kwargs("classification")["temperature"] == quick.fit_kwargs("classification", "local")["temperature"]
    assert quick.fit_kwargs("classification", "dyconv")["temperature"] == (1.0, 1.0)
    odd = dataclasses.replace(course, variant_recipe={"base": {"stem": "small"}})
    with pytest.raises(ValueError, match="variant_recipe for 'base' sets stem, which are not training settings"):
        odd.fit_kwargs("base")
    with pytest.raises(ValueError, match="valid profiles: quick, full, paper"):
        get_profile("fast")
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.name = "other"


def test_the_profile_is_chosen_on_purpose_not_by_the_hardware(monkeypatch, capsys):
    from dynlab import profiles

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("DYNLAB_QUICK", raising=False)
    monkeypatch.delenv("DYNLAB_PROFILE", raising=False)
    assert profiles.default_profile().name == "quick"  # a GPU runs the course profile, faster
    monkeypatch.setenv("DYNLAB_PROFILE", "full")
    assert profiles.default_profile().name == "full"
    monkeypatch.setenv("DYNLAB_QUICK", "1")
    assert profiles.default_profile().name == "quick"
    monkeypatch.delenv("DYNLAB_QUICK")
    monkeypatch.setenv("DYNLAB_PROFILE", "fast")
    with pytest.raises(ValueError, match="valid profiles"):
        profiles.default_profile()
    monkeypatch.delenv("DYNLAB_PROFILE")
    assert profiles.choose().name == "quick"
    assert 'profiles.choose("full")' in capsys.readouterr().out


def test_choosing_another_profile_prints_its_training_work_beside_quick(monkeypatch, capsys):
    from dynlab import profiles
    from dynlab.experiments import pipeline

    from dynlab.experiments import study

    work = {"quick": 10, "full": 250}
    monkeypatch.setattr(pipeline, "training_work", lambda task, profile: work[getattr(profile, "name", profile)])
    monkeypatch.setattr(study, "committed_seconds", lambda task: {"timeseries": None}.get(task, 288.0))
    assert profiles.choose("full").name == "full"
    out = capsys.readouterr().out
    assert out.count("25x the quick profile's training work") == 3, out
    assert out.count("about 2.0 h a run at base's speed in the committed quick study") == 2, out  # 25 x 288 s


def test_the_committed_study_gives_base_its_seconds_per_run():
    from dynlab.experiments import study

    rows = [r for r in study.read_results(study.committed_results()) if r["task"] == "classification"
            and r["variant"] == "base"]
    assert study.committed_seconds("classification") == pytest.approx(sum(r["train_seconds"] for r in rows) / len(rows))


def test_training_work_is_macs_times_samples_times_epochs():
    from dynlab import flops, profiles
    from dynlab.experiments import build_model, load_data
    from dynlab.experiments.pipeline import training_work

    for name in ("quick", "full"):
        profile = profiles.get_profile(name)
        data = load_data("timeseries", "synthetic", profile)
        macs = flops.cost(build_model("base", "timeseries", data, profile), (1, *data.sample_shape)).macs
        assert training_work("timeseries", profile) == macs * len(data.train) * profile.task("timeseries").epochs


def test_device_choice_on_this_machine():
    from dynlab import device as dev

    assert dev.pick_device("cpu") == torch.device("cpu")
    assert dev.autocast_dtype(torch.device("cpu")) is None and not dev.use_channels_last(torch.device("cpu"))
    assert not dev.grad_scaler(torch.device("cpu")).is_enabled()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available.*available here: .*cpu"):
            dev.pick_device("cuda")
        assert dev.pick_device().type in ("mps", "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        dev.pick_device("tpu9")


@pytest.mark.parametrize("variant", ["dyconv", "odconv4x", "local"])
def test_channels_last_preparation_accepts_stacked_kernels(monkeypatch, variant):
    """On CUDA, prepare_model makes 4D weights channels-last; the 5D stacked kernels of the dynamic
    units once made it fail (``model.to(memory_format=...)`` refuses them)."""
    from dynlab import device as dev
    from dynlab.models import resnet18

    monkeypatch.setattr(dev, "use_channels_last", lambda device: True)
    model = dev.prepare_model(resnet18(variant, 10, stem="small", width=8), torch.device("cpu"))
    stem = model.conv1.weight
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()
    assert any(p.dim() == 5 for p in model.parameters())
    x = torch.randn(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    assert model(x).shape == (2, 10)


def test_the_loop_knows_no_variant_the_models_units_bring_their_callbacks():
    from dynlab.engine import AuxiliaryLoss, PreciseBatchNorm, TemperatureAnnealing, model_callbacks

    kinds = {name: {type(c) for c in model_callbacks(made(NormedNet, name), layers.needs_precise_batchnorm(
        made(NormedNet, name)))} for name in ("base", "hard", "dyconv", "odconv")}
    assert kinds["base"] == kinds["hard"] == {AuxiliaryLoss}  # hard's budget: an auxiliary loss term
    assert kinds["dyconv"] == {TemperatureAnnealing, AuxiliaryLoss}
    assert kinds["odconv"] == {TemperatureAnnealing, AuxiliaryLoss, PreciseBatchNorm}


def test_a_callback_adds_a_loss_term_and_fields_to_the_record(data):
    from dynlab.engine import Callback

    class Penalty(Callback):
        def __init__(self):
            self.steps = 0

        def on_step_start(self, trainer):
            self.steps += 1

        def extra_loss(self, trainer):
            return 0.5 * sum((p ** 2).sum() for p in trainer.model.fc.parameters())

        def before_validation(self, trainer):
            return {"steps_so_far": self.steps}

    train, val, _ = data
    penalty = Penalty()
    model = made(PlainNet, "base")
    expected = 0.5 * sum(float((p.detach() ** 2).sum()) for p in model.fc.parameters())
    history = fit(model, train, val, epochs=2, batch_size=len(train), lr=0.0, quiet=True, callbacks=[penalty])
    assert [r["steps_so_far"] for r in history] == [1, 2]
    assert history[0]["train_aux_loss"] == pytest.approx(expected, rel=1e-5)


def test_onecycle_warms_up_to_lr_then_decays(tmp_path):
    from dynlab.engine.optim import WARMUP_FRACTION, make_scheduler
    from dynlab.engine.options import FitOptions

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=0.01)
    scheduler, per_step = make_scheduler(FitOptions(epochs=2, lr=0.01, lr_schedule="onecycle"), optimizer, 50)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert per_step and rates[0] == pytest.approx(0.01 / 25)
    peak = max(range(100), key=rates.__getitem__)
    assert abs(peak - WARMUP_FRACTION * 100) <= 1 and rates[peak] == pytest.approx(0.01)
    assert rates[-1] < 1e-4


def test_clip_grad_norm_bounds_every_step(monkeypatch):
    from dynlab.engine import fit
    from dynlab.engine.smoke import TinyNet

    norms = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        total = original(parameters, max_norm, *args, **kwargs)
        norms.append((float(total), max_norm))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 3, 8, 8) * 100, torch.arange(32) % 4)
    model = TinyNet("base", 4)
    fit(model, data, data, epochs=1, batch_size=8, clip_grad_norm=0.5, quiet=True)
    assert len(norms) == 4 and all(m == 0.5 for _, m in norms)
    assert any(total > 0.5 for total, _ in norms)  # there was something to clip
    with pytest.raises(ValueError, match="clip_grad_norm must be positive"):
        fit(model, data, data, epochs=1, clip_grad_norm=0.0, quiet=True)
