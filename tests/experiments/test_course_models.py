"""The course models: compact weights, the command that writes them, loading, and fetching over HTTP.

The set written here is a smoke set (one epoch on 32 samples per split): what is checked is that
what is written is what is loaded, byte for byte and metric for metric, and that anything that does
not match is refused. GitHub cannot be reached from the test machines, so fetching is tested against
a local HTTP server on 127.0.0.1 serving the set (and a wrong one, and none).
"""
import functools
import io
import lzma
import http.server
import json
import shutil
import threading

import pytest
import torch

from dynlab import course
from dynlab.cli import main
from dynlab.engine.compact import LEVELS, STORAGES, compact_bytes, compact_state, restore_state, stacked_kernel_names
from dynlab.errors import CheckpointError
from dynlab.experiments import course_models
from dynlab.models import resnet18

VARIANTS = ("base", "dyconv")


@pytest.mark.parametrize("storage", ["int5", "int6", "int8"])
def test_integer_storage_restores_each_weight_within_half_a_step_of_its_channel_scale(storage):
    torch.manual_seed(0)
    model = resnet18("dyconv", 10, width=8)
    state = model.state_dict()
    stacked = stacked_kernel_names(model)
    assert "layer1.0.conv1.weight" in stacked and "conv1.weight" not in stacked  # the stem is a plain convolution
    compact = compact_state(state, storage, stacked)
    restored = restore_state(compact)
    assert restored.keys() == state.keys()
    for name, value in state.items():
        entry = compact[name]
        if "int8" in entry:
            rows = value.shape[0] * value.shape[1] if name in stacked else value.shape[0]
            step = entry["scale"].reshape(rows, *[1] * (value.dim() - 1 if name not in stacked else value.dim() - 2))
            error = (restored[name] - value).abs().reshape(rows, -1)
            assert (error <= step.reshape(rows, 1) / 2 + 1e-7).all(), name
            assert entry["int8"].dtype == torch.int8
            assert entry["int8"].abs().max() == LEVELS[storage]  # each channel's largest weight uses the top level
        else:  # BatchNorm, biases, counters: kept exactly
            assert torch.equal(restored[name], value), name
    assert compact_bytes(compact) < 0.3 * sum(v.numel() * v.element_size() for v in state.values())


def test_fewer_levels_compress_to_fewer_bytes():
    torch.manual_seed(0)
    state = resnet18("base", 10, width=16).state_dict()
    sizes = {}
    for storage in ("int5", "int6", "int8"):
        buffer = io.BytesIO()
        torch.save(compact_state(state, storage), buffer)
        sizes[storage] = len(lzma.compress(buffer.getvalue()))
    assert sizes["int5"] < 0.85 * sizes["int6"] < 0.85 ** 2 * sizes["int8"]


def test_half_storage_and_unknown_storage():
    state = {"w": torch.randn(4, 3, 3, 3), "b": torch.randn(4)}
    restored = restore_state(compact_state(state, "half"))
    assert restored["w"].dtype == torch.float32 and torch.allclose(restored["w"], state["w"], rtol=1e-3, atol=1e-3)
    assert torch.equal(restored["b"], state["b"])
    with pytest.raises(ValueError, match="storage must be one of int5, int6, int8, half"):
        compact_state(state, "int4")


def test_each_storage_is_made_from_the_float_weights_and_the_model_is_left_as_it_was(monkeypatch):
    torch.manual_seed(0)
    model = resnet18("dyconv", 10, width=8)
    original = {name: value.clone() for name, value in model.state_dict().items()}
    seen = []

    def metric(model, data, task, name):  # never within the tolerance: every storage is tried
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return 0.0

    monkeypatch.setattr(course_models, "_metric", metric)
    cell = course_models.course_cell("dyconv", "classification")
    compact, storage, _ = course_models._stored(model, None, cell, "accuracy", 1.0)
    assert len(seen) == len(STORAGES)
    for state, storage in zip(seen, STORAGES):
        name = "layer1.0.conv1.weight"
        step = original[name].abs().amax(dim=tuple(range(2, original[name].dim())), keepdim=True)
        if storage in LEVELS:  # within half a step of the float weight, not of the previous storage's
            assert ((state[name] - original[name]).abs() <= step / LEVELS[storage] / 2 + 1e-7).all(), storage
    assert all(torch.equal(model.state_dict()[k], v) for k, v in original.items())


@pytest.fixture(scope="module")
def smoke_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    out = root / "course"
    code = main(["course-models", "--variants", *VARIANTS, "--tasks", "classification", "--epochs", "1",
                 "--limit", "32", "--quiet", "--out", str(out), "--runs", str(root / "runs")])
    assert code == 0
    return out


@pytest.fixture
def no_checkout_models(monkeypatch, tmp_path):
    """As outside a checkout: no committed course models, an empty cache."""
    monkeypatch.setattr(course_models, "checkout_folder", lambda *args: None)
    monkeypatch.delenv("DYNLAB_COURSE_MODELS", raising=False)
    monkeypatch.setenv("DYNLAB_DATA", str(tmp_path / "cache"))


def test_the_manifest_names_every_file_with_its_sha256_and_the_report_says_it_is_a_smoke_set(smoke_set):
    manifest = json.loads((smoke_set / "manifest.json").read_text())
    assert manifest["epochs"] == 1 and manifest["limit"] == 32 and manifest["torch"] == torch.__version__
    assert [(e["variant"], e["task"]) for e in manifest["models"]] == [(v, "classification") for v in VARIANTS]
    for entry in manifest["models"]:
        assert course_models.sha256sum(smoke_set / entry["file"]) == entry["sha256"]
        assert entry["storage"] in STORAGES
        assert abs(entry["metric"] - entry["float_metric"]) <= course_models.TOLERANCE
    assert "Smoke set" in (smoke_set / "report.md").read_text()


def test_a_loaded_course_model_scores_what_the_manifest_says(smoke_set, monkeypatch, capsys):
    monkeypatch.setenv("DYNLAB_COURSE_MODELS", str(smoke_set))
    manifest = json.loads((smoke_set / "manifest.json").read_text())
    for entry in manifest["models"]:
        run = course_models.load_course_model(entry["variant"], "classification")
        assert run.metric == pytest.approx(entry["metric"], abs=1e-6)
        assert len(run.history.records) == 1 and run.per_class and run.baseline["value"] > 0
        stored = course_models.read_stored(smoke_set / entry["file"])
        expected = restore_state(stored["weights"])
        assert all(torch.equal(run.model.state_dict()[k], v) for k, v in expected.items())
    assert capsys.readouterr().out == ""  # no difference from the manifest to report


def test_a_changed_file_is_refused_naming_it(smoke_set, tmp_path, monkeypatch):
    copy = tmp_path / "course"
    shutil.copytree(smoke_set, copy)
    monkeypatch.setenv("DYNLAB_COURSE_MODELS", str(copy))
    path = copy / course_models.file_name("base", "classification")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="classification-base.pt.xz does not match the sha256"):
        course_models.load_course_model("base", "classification")
    with pytest.raises(course_models.CourseModelsUnavailable, match="no course model for hard on classification"):
        course_models.load_course_model("hard", "classification")


def _rewrite_dyconv(out, runs):
    return main(["course-models", "--variants", "dyconv", "--tasks", "classification", "--epochs", "1",
                 "--limit", "32", "--quiet", "--out", str(out), "--runs", str(runs)])


def test_writing_one_model_again_keeps_the_others_as_they_were(smoke_set, tmp_path):
    copy = tmp_path / "course"
    shutil.copytree(smoke_set, copy)
    before = json.loads((copy / "manifest.json").read_text())
    base = course_models.file_name("base", "classification")
    base_bytes = (copy / base).read_bytes()
    assert _rewrite_dyconv(copy, smoke_set.parent / "runs") == 0
    after = json.loads((copy / "manifest.json").read_text())
    assert [(e["variant"], e["task"]) for e in after["models"]] == [(v, "classification") for v in VARIANTS]
    kept, rewritten = after["models"]
    assert (copy / base).read_bytes() == base_bytes
    assert {k: kept[k] for k in before["models"][0]} == before["models"][0]  # the same entry, plus who wrote it
    assert kept["written"] == before["written"] and rewritten["written"] == after["written"]
    assert course_models.sha256sum(copy / rewritten["file"]) == rewritten["sha256"]


def test_a_kept_model_that_no_longer_matches_the_manifest_stops_the_write_naming_it(smoke_set, tmp_path):
    copy = tmp_path / "course"
    shutil.copytree(smoke_set, copy)
    (copy / course_models.file_name("base", "classification")).write_bytes(b"changed")
    with pytest.raises(CheckpointError, match="classification-base.pt.xz does not match"):
        course_models.write_course_models(copy, runs=smoke_set.parent / "runs", variants=["dyconv"],
                                          tasks=["classification"], epochs=1, limit=32, quiet=True)


def test_a_smoke_set_never_keeps_the_models_of_other_settings(smoke_set, tmp_path):
    copy = tmp_path / "course"
    shutil.copytree(smoke_set, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["epochs"] = None
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert _rewrite_dyconv(copy, smoke_set.parent / "runs") == 0
    after = json.loads((copy / "manifest.json").read_text())
    assert [e["variant"] for e in after["models"]] == ["dyconv"]


def test_a_file_that_is_not_compressed_is_refused_naming_it(tmp_path):
    path = tmp_path / course_models.file_name("base", "classification")
    torch.save({"format": course_models.FORMAT}, path)  # a plain torch file, as the first format was
    with pytest.raises(CheckpointError, match="classification-base.pt.xz is not an xz-compressed course model"):
        course_models.read_stored(path)


class _Server:
    """A local HTTP server for ``folder`` on 127.0.0.1 (a free port), quiet."""

    def __init__(self, folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_outside_a_checkout_the_models_are_fetched_checked_and_cached(smoke_set, no_checkout_models, monkeypatch,
                                                                       tmp_path):
    with _Server(smoke_set) as server:
        monkeypatch.setenv("DYNLAB_COURSE_MODELS_URL", server.url)
        run = course_models.load_course_model("dyconv", "classification")
    cache = tmp_path / "cache" / "course-models" / "main"
    fetched = cache / course_models.file_name("dyconv", "classification")
    assert fetched.read_bytes() == (smoke_set / fetched.name).read_bytes()
    assert not list(cache.glob("*.part")) and not (cache / course_models.file_name("base", "classification")).exists()  # only what was asked
    # the server is gone: the cached copy is used
    again = course_models.load_course_model("dyconv", "classification")
    assert again.metric == run.metric


def test_a_wrong_file_from_the_server_is_refused_and_not_kept(smoke_set, no_checkout_models, monkeypatch, tmp_path):
    wrong = tmp_path / "wrong"
    shutil.copytree(smoke_set, wrong)
    (wrong / course_models.file_name("base", "classification")).write_bytes(b"not the model")
    with _Server(wrong) as server:
        monkeypatch.setenv("DYNLAB_COURSE_MODELS_URL", server.url)
        with pytest.raises(course_models.CourseModelsUnavailable, match="wrong checksum: sha256"):
            course_models.load_course_model("base", "classification")
    cache = tmp_path / "cache" / "course-models" / "main"
    assert not (cache / course_models.file_name("base", "classification")).exists() and not list(cache.glob(".*part"))


def test_no_server_or_a_checkout_without_models_is_unavailable_in_one_line(no_checkout_models, monkeypatch):
    with _Server(".") as server:
        url = server.url  # a port that was free and is closed again
    monkeypatch.setenv("DYNLAB_COURSE_MODELS_URL", url)
    with pytest.raises(course_models.CourseModelsUnavailable, match="could not be fetched") as error:
        course_models.load_course_model("base", "classification")
    assert "\n" not in str(error.value)
    monkeypatch.delenv("DYNLAB_COURSE_MODELS_URL")
    assert course_models.in_checkout()  # the suite runs from the checkout: nothing is fetched from the network
    with pytest.raises(course_models.CourseModelsUnavailable, match="dynlab course-models. writes them"):
        course_models.load_course_model("base", "classification")


def test_course_runs_trains_in_one_line_when_no_course_model_is_there(monkeypatch, capsys):
    def unavailable(variant, task, quiet=False):
        raise course_models.CourseModelsUnavailable("offline")

    trained = []

    class FakeRun:
        model = torch.nn.Linear(1, 1)

    monkeypatch.setattr(course_models, "load_course_model", unavailable)
    monkeypatch.setattr(course, "train_cell", lambda cell, out, quiet=False: trained.append(cell) or FakeRun())
    runs = course.course_runs("base", ["timeseries"])
    assert [c.task for c in trained] == ["timeseries"] and list(runs) == ["timeseries"]
    assert capsys.readouterr().out == "base on timeseries: no course model (offline); training it here instead\n"
    course.course_runs("base", ["timeseries"], retrain=True)  # on purpose: no attempt to load, no line
    assert len(trained) == 2 and capsys.readouterr().out == ""
