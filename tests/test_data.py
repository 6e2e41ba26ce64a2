"""dynlab.data: tiny archives laid out exactly like the real ones, built in tmp_path; no network."""
from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import time
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from dynlab.data import download as dl
from dynlab.data import tiny_imagenet, tasks, ucr, voc
from dynlab.data import (DataUnavailableError, SyntheticScenes, SyntheticShapes, TinyImageNet,
                         VOCSegmentation, load_task, load_timeseries_fold, load_ucr, md5sum,
                         stratified_kfold, stratified_split)
from dynlab.experiments.attention import sample_labels

# ---------------------------------------------------------------- builders of fake archives

WNIDS = ["n02000002", "n01000001"]           # deliberately unsorted: label 0 must be n01000001
COLOURS = {"n01000001": (220, 30, 30), "n02000002": (30, 30, 220)}
TRAIN_PER_CLASS, VAL_PER_CLASS = 5, 3


def _jpeg(path: Path, colour, size=(64, 64), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    (image.convert("L") if mode == "L" else image).save(path, "JPEG", quality=95)


def make_tiny_imagenet_zip(where: Path) -> Path:
    """A two-class ``tiny-imagenet-200.zip`` with the real archive's layout."""
    top = where / "src" / "tiny-imagenet-200"
    (top / "test" / "images").mkdir(parents=True)
    (top / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (top / "words.txt").write_text("n01000001\tgoldfish, Carassius auratus\nn02000002\tblue thing\n")
    rows = []
    for wnid in WNIDS:
        for i in range(TRAIN_PER_CLASS):
            # One greyscale image, as in the real set: it must come out as 3 channels.
            _jpeg(top / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", COLOURS[wnid],
                  mode="L" if i == 0 and wnid == WNIDS[0] else "RGB")
        (top / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    for k in range(VAL_PER_CLASS * len(WNIDS)):
        wnid = WNIDS[k % 2]
        _jpeg(top / "val" / "images" / f"val_{k}.JPEG", COLOURS[wnid])
        rows.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (top / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    _jpeg(top / "test" / "images" / "test_0.JPEG", (0, 0, 0))
    archive = where / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(top.parent.rglob("*")):
            zf.write(path, path.relative_to(top.parent).as_posix())
    return archive


VOC_TRAIN = [f"2007_{i:06d}" for i in range(10)]
VOC_VAL = [f"2008_{i:06d}" for i in range(4)]


def make_voc_tar(where: Path) -> Path:
    """A small ``VOCtrainval_11-May-2012.tar``: JPEGs, palette PNG masks and the split lists."""
    voc_dir = where / "src" / "VOCdevkit" / "VOC2012"
    lists = voc_dir / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n".join(VOC_TRAIN) + "\n")
    (lists / "val.txt").write_text("\n".join(VOC_VAL) + "\n")
    palette = [0, 0, 0, 128, 0, 0] + [0] * (3 * 254)
    palette[255 * 3: 255 * 3 + 3] = [224, 224, 192]
    for i, name in enumerate(VOC_TRAIN + VOC_VAL):
        _jpeg(voc_dir / "JPEGImages" / f"{name}.jpg", (100, 120, 140), size=(40, 30))
        mask = np.zeros((30, 40), dtype=np.uint8)
        mask[5:25, 10:30] = 255                # object border
        mask[7:23, 12:28] = 1 + i % 20         # the object
        png = Image.fromarray(mask, mode="P")
        png.putpalette(palette)
        (voc_dir / "SegmentationClass").mkdir(exist_ok=True)
        png.save(voc_dir / "SegmentationClass" / f"{name}.png")
    archive = where / voc.VOC2012["filename"]
    with tarfile.open(archive, "w") as tf:
        tf.add(where / "src" / "VOCdevkit", arcname="VOCdevkit")
    return archive


def write_ucr(folder: Path, name: str, train: list[list[float]], test: list[list[float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("TRAIN", train), ("TEST", test)):
        text = "\n".join("\t".join(repr(float(v)) for v in row) for row in rows) + "\n"
        (folder / f"{name}_{split}.tsv").write_text(text.replace("nan", "NaN"))


_real_urlopen = dl.urlopen


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An empty DYNLAB_DATA, and a URL opener that fails: nothing here may touch the network."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("DYNLAB_DATA", str(root))

    def offline(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            raise URLError("network disabled in tests")
        return _real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(dl, "urlopen", offline)
    return root


@pytest.fixture
def tiny_archive(tmp_path, monkeypatch) -> Path:
    archive = make_tiny_imagenet_zip(tmp_path / "server")
    monkeypatch.setattr(tiny_imagenet, "URL", archive.as_uri())
    monkeypatch.setattr(tiny_imagenet, "MD5", md5sum(archive))
    return archive


@pytest.fixture
def voc_archive(tmp_path, monkeypatch) -> Path:
    archive = make_voc_tar(tmp_path / "server")
    monkeypatch.setattr(voc, "VOC2012", {**voc.VOC2012, "url": archive.as_uri(), "md5": md5sum(archive)})
    return archive


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".part")


# ---------------------------------------------------------------- download and extract

def test_data_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DYNLAB_DATA", str(tmp_path))
    assert dl.data_root() == tmp_path
    monkeypatch.delenv("DYNLAB_DATA")
    assert dl.data_root() == Path.home() / ".cache" / "dynlab"


def test_download_checks_md5_and_renames_atomically(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"dynlab" * 1000)
    dest = tmp_path / "out" / "file.bin"
    assert dl.download(source.as_uri(), dest, md5sum(source), quiet=True) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert leftovers(dest.parent) == []


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"corrupted")
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(ValueError, match="checksum mismatch for file.bin"):
        dl.download(source.as_uri(), dest, "0" * 32, quiet=True)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_existing_file_with_wrong_checksum_is_left_alone(tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"the user's own file")
    with pytest.raises(ValueError, match="left untouched"):
        dl.download("file:///nonexistent", dest, "0" * 32, quiet=True)
    assert dest.read_bytes() == b"the user's own file"


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "ok/../../evil.txt"])
def test_extract_refuses_path_traversal_in_zip(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "fine")
        zf.writestr(member, "evil")
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="member '" + member.replace(".", r"\.") + "'"):
        dl.extract(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_extract_refuses_traversal_and_outward_links_in_tar(tmp_path):
    def tar_with(member: tarfile.TarInfo) -> Path:
        archive = tmp_path / f"bad{len(list(tmp_path.glob('*.tar')))}.tar"
        with tarfile.open(archive, "w") as tf:
            tf.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)
        return archive

    evil = tarfile.TarInfo("../evil.txt")
    evil.size = 4
    with pytest.raises(ValueError, match=r"member '\.\./evil\.txt' has a '\.\.' component"):
        dl.extract(tar_with(evil), tmp_path / "dest")
    link = tarfile.TarInfo("data/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    with pytest.raises(ValueError, match="member 'data/link' has a link pointing outside"):
        dl.extract(tar_with(link), tmp_path / "dest")


def test_extract_merges_without_overwriting(tmp_path):
    archive = tmp_path / "a.tar.gz"
    src = tmp_path / "src" / "top"
    src.mkdir(parents=True)
    (src / "a.txt").write_text("from archive")
    (src / "b.txt").write_text("from archive")
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname="top")
    dest = tmp_path / "dest"
    (dest / "top").mkdir(parents=True)
    (dest / "top" / "a.txt").write_text("user's")
    dl.extract(archive, dest)
    assert (dest / "top" / "a.txt").read_text() == "user's"
    assert (dest / "top" / "b.txt").read_text() == "from archive"
    assert leftovers(dest) == []


def test_offline_error_names_file_url_and_folder(data_dir):
    with pytest.raises(DataUnavailableError) as err:
        TinyImageNet("train")
    message = str(err.value)
    assert "tiny-imagenet-200.zip" in message
    assert tiny_imagenet.URL in message
    assert str(data_dir.resolve()) in message
    assert leftovers(data_dir) == [] and not (data_dir / "tiny-imagenet-200.zip").exists()


# ---------------------------------------------------------------- Tiny ImageNet

def test_tiny_imagenet_download_extract_and_load(data_dir, tiny_archive):
    train = TinyImageNet("train", val_fraction=0.2, seed=0)
    val = TinyImageNet("val", val_fraction=0.2, seed=0)
    test = TinyImageNet("test")
    assert (len(train), len(val), len(test)) == (8, 2, 6)
    assert sorted(np.bincount(val.targets)) == [1, 1]           # stratified hold-out
    assert not set(train.indices) & set(val.indices)
    assert train.class_names == ["goldfish", "blue thing"]      # sorted wnids, names from words.txt
    folder = data_dir / "tiny-imagenet-200"
    assert (folder / "dynlab-train-images.npy").is_file()
    cached = np.load(folder / "dynlab-train-images.npy")
    assert cached.dtype == np.uint8 and cached.shape == (10, 64, 64, 3)
    for dataset in (train, test):
        for i in range(len(dataset)):
            x, y = dataset[i]
            assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
            # n01000001 (label 0) is red, n02000002 (label 1) is blue: the labels follow the files.
            red, blue = x[0].mean().item(), x[2].mean().item()
            assert (red > blue) == (y.item() == 0)


def test_tiny_imagenet_resize_subset_and_existing_data(data_dir, tiny_archive, monkeypatch):
    dl.extract(tiny_archive, data_dir)          # the user already has the data: nothing is fetched
    monkeypatch.setattr(dl, "urlopen", lambda *a, **k: pytest.fail("must not download"))
    big = TinyImageNet("test", image_size=96, max_per_class=2)
    assert len(big) == 4 and big[0][0].shape == (3, 96, 96)
    augmented = TinyImageNet("train", augment=True, val_fraction=0.2)
    assert augmented[0][0].shape == (3, 64, 64)


def test_load_task_real_classification(data_dir, tiny_archive):
    task = load_task("classification", "real", limit=3)
    assert task.name == "tiny-imagenet" and task.num_classes == 2
    assert task.sample_shape == (3, 64, 64) and task.metric == "accuracy" and task.ignore_index is None
    assert [len(d) for d in (task.train, task.val, task.test)] == [3, 1, 3]


# ---------------------------------------------------------------- Pascal VOC

def test_voc_download_splits_and_transforms(data_dir, voc_archive):
    train = VOCSegmentation("train", crop_size=32, val_fraction=0.2, seed=0, scale_range=(0.5, 0.5))
    val = VOCSegmentation("val", crop_size=32, val_fraction=0.2, seed=0)
    test = VOCSegmentation("test", crop_size=32)
    assert (len(train), len(val), len(test)) == (8, 2, 4)
    assert (data_dir / "VOCdevkit" / "VOC2012" / "JPEGImages").is_dir()
    torch.manual_seed(0)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (32, 32) and y.dtype == torch.int64
    assert 255 in y.unique().tolist()            # half-scale images are padded with the ignore label
    x1, y1 = test[1]
    x2, y2 = test[1]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)   # evaluation is deterministic
    assert set(y1.unique().tolist()) == {0, 1 + (len(VOC_TRAIN) + 1) % 20, 255}


def test_load_task_real_segmentation(data_dir, voc_archive):
    task = load_task("segmentation", "real", image_size=32)
    assert task.name == "voc2012" and task.num_classes == 21 and task.ignore_index == 255
    assert task.metric == "miou" and task.sample_shape == (3, 32, 32)
    assert [len(d) for d in (task.train, task.val, task.test)] == [9, 1, 4]


# ---------------------------------------------------------------- UCR

def test_ucr_reads_tsv_maps_labels_and_normalises(data_dir):
    rng = np.random.default_rng(0)
    rows = lambda labels: [[lab, *rng.normal(5, 3, 12)] for lab in labels]  # noqa: E731
    write_ucr(data_dir / "UCRArchive_2018" / "Toy", "Toy", rows([2, -1, 7, 2]), rows([7, -1, -1]))
    data = load_ucr("Toy")
    assert data.classes.tolist() == [-1, 2, 7]
    assert data.y_train.tolist() == [1, 0, 2, 1] and data.y_test.tolist() == [2, 0, 0]
    assert data.x_train.shape == (4, 12) and data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_test.std(1), 1, atol=1e-5)
    x, y = ucr.UCRDataset(data.x_train, data.y_train)[0]
    assert x.shape == (1, 12) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_ucr_own_copy_comes_before_packaged_one(data_dir):
    write_ucr(data_dir / "UCRArchive_2018" / "Adiac", "Adiac", [[1, 0.0, 1.0, 2.0]] * 2, [[2, 3.0, 1.0, 0.0]])
    data = load_ucr("Adiac")
    assert data.x_train.shape == (2, 3) and data.source == str(data_dir / "UCRArchive_2018" / "Adiac")


def test_ucr_varying_length_is_a_clear_error(data_dir):
    nan = float("nan")
    write_ucr(data_dir / "UCRArchive_2018" / "Ragged", "Ragged", [[1, 1.0, 2.0, 3.0], [2, 1.0, 2.0, nan]],
              [[1, 1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="different lengths"):
        load_ucr("Ragged")


def test_ucr_missing_offline_says_what_to_put_where(data_dir):
    with pytest.raises(DataUnavailableError) as err:
        load_ucr("NotADataSet")
    message = str(err.value)
    assert "UCRArchive_2018.zip" in message and ucr.UCR_URL in message
    assert str(data_dir.resolve()) in message
    with pytest.raises(DataUnavailableError, match="NotADataSet_TRAIN.tsv"):
        load_ucr("NotADataSet", download=False)


def test_real_adiac_counts(data_dir):
    data = load_ucr("Adiac")                     # DYNLAB_DATA is empty: the shipped TSV files
    x, y = data.all_series()
    assert (len(data.y_train), len(data.y_test)) == (390, 391)
    assert x.shape == (781, 176) and data.num_classes == 37
    assert y.min() == 0 and y.max() == 36 and set(data.y_train) == set(range(37))


def test_timeseries_task_is_real_adiac_for_both_data_choices(data_dir):
    for data in ("synthetic", "real"):
        task = load_task("timeseries", data)
        assert task.name == "adiac" and task.sample_shape == (1, 176) and task.dim == 1
        assert (len(task.train), len(task.val), len(task.test)) == (312, 78, 391)
        assert task.num_classes == 37 and task.in_channels == 1
        train_labels = {int(task.train[i][1]) for i in range(len(task.train))}
        assert train_labels == set(range(37))    # tiny classes keep members in train


def test_stratified_kfold_partitions_and_is_seeded(data_dir):
    y = load_ucr("Adiac").all_series()[1]
    folds = list(stratified_kfold(y, k=10, seed=0))
    tests = np.concatenate([t for _, t in folds])
    assert sorted(tests.tolist()) == list(range(781))
    for train, test in folds:
        assert len(test) in (78, 79) and not set(train) & set(test) and len(train) + len(test) == 781
    counts = np.stack([np.bincount(y[t], minlength=37) for _, t in folds])
    assert (counts.max(0) - counts.min(0)).max() <= 1      # every class spread evenly
    again = list(stratified_kfold(y, k=10, seed=0))
    other = list(stratified_kfold(y, k=10, seed=1))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other))


def test_timeseries_fold_task(data_dir):
    task = load_timeseries_fold(3, k=10, seed=0)
    n = len(task.train) + len(task.val) + len(task.test)
    assert n == 781 and len(task.test) in (78, 79) and task.num_classes == 37
    with pytest.raises(ValueError, match="fold must be in 0..9"):
        load_timeseries_fold(10)


def test_stratified_split_never_empties_a_class():
    labels = np.array([0] * 10 + [1] * 2 + [2])
    kept, held = stratified_split(labels, 0.5, seed=0)
    assert len(held) == 6                        # round(0.5 * 13), the single class-2 item kept
    assert set(labels[kept]) == {0, 1, 2}
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(len(labels)))


# ---------------------------------------------------------------- synthetic data

def test_synthetic_shapes_deterministic_fast_and_balanced():
    start = time.perf_counter()
    a = SyntheticShapes(2000, image_size=32, num_classes=10, seed=3)
    assert time.perf_counter() - start < 2.0
    b = SyntheticShapes(2000, image_size=32, num_classes=10, seed=3)
    c = SyntheticShapes(2000, image_size=32, num_classes=10, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert np.bincount(a.targets).tolist() == [200] * 10
    x, y = a[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64 and y.ndim == 0
    assert {"horizontal bar", "vertical bar", "arrow left", "arrow right"} <= set(a.class_names)
    big = SyntheticShapes(20, image_size=64, num_classes=16, seed=0)
    assert big[0][0].shape == (3, 64, 64) and int(big.labels.max()) < 16
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticShapes(10, num_classes=99)


def test_synthetic_scenes_masks():
    a = SyntheticScenes(50, image_size=64, num_classes=6, seed=0)
    b = SyntheticScenes(50, image_size=64, num_classes=6, seed=0)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    x, y = a[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert y.shape == (64, 64) and y.dtype == torch.int64
    assert set(a.masks.unique().tolist()) == set(range(6))
    per_image = [len(set(m.unique().tolist()) - {0}) for m in a.masks]
    assert max(per_image) >= 2                   # several shapes per scene
    small = SyntheticScenes(5, image_size=32, num_classes=8, seed=1)
    assert small[0][1].shape == (32, 32) and int(small.masks.max()) < 8


def test_synthetic_scenes_subject_is_balanced_and_largest():
    scenes = SyntheticScenes(500, image_size=64, num_classes=6, seed=3)
    largest = sample_labels(scenes.masks)
    counts = torch.bincount(largest, minlength=6)[1:]
    assert int(counts.min()) >= 80 and int(counts.max()) <= 120   # 100 scenes per subject class
    pixels = torch.nn.functional.one_hot(scenes.masks.flatten(1).long(), 6).sum(1)[:, 1:]
    second = pixels.sort(1, descending=True).values[:, 1]
    assert float((pixels.amax(1) > second).float().mean()) > 0.95   # the subject is clearly the largest


# ---------------------------------------------------------------- load_task

@pytest.mark.parametrize("task, shape, metric, ignore", [
    ("classification", (3, 64, 64), "accuracy", None),
    ("segmentation", (3, 64, 64), "miou", 255),
])
def test_load_task_synthetic_quick(task, shape, metric, ignore):
    data = load_task(task, "synthetic", profile="quick", seed=0)
    train_n, val_n, test_n = tasks.SYNTHETIC_SIZES[task]["quick"][2]
    assert (len(data.train), len(data.val), len(data.test)) == (train_n, val_n, test_n)
    assert data.sample_shape == shape and data.metric == metric and data.ignore_index == ignore
    assert data.in_channels == 3 and data.dim == 2 and data.name.startswith("synthetic-")
    x, _ = data.val[0]
    assert tuple(x.shape) == data.sample_shape
    assert not torch.equal(data.train.images[:5], data.test.images[:5])   # splits are separate draws


def test_load_task_options_and_validation():
    data = load_task("classification", image_size=64, limit=20, seed=1)
    assert data.sample_shape == (3, 64, 64) and data.sizes() == (20, 20, 20)
    assert data.train[0][0].shape == (3, 64, 64)
    for bad, match in ((("clasification",), "valid values: classification, segmentation, timeseries"),
                       (("classification", "imagenet"), "valid values: synthetic, real")):
        with pytest.raises(ValueError, match=match):
            load_task(*bad)
    with pytest.raises(ValueError, match="valid values: quick, full"):
        load_task("classification", profile="medium")


# ---------------------------------------------------------------- bad data is named, not trained on

@pytest.mark.parametrize("line, message", [
    ("1\t1.0\tinf\t3.0", r"Bad_TRAIN\.tsv: series 2 holds an infinite value"),
    ("1\t1.0\t2.0", r"Bad_TRAIN\.tsv, line 2: 2 values, where line 1 has 3"),
    ("1,1.0,2.0,3.0", r"Bad_TRAIN\.tsv, line 2: the values are separated by commas"),
    ("abc\t1.0\t2.0\t3.0", r"Bad_TRAIN\.tsv, line 2: the label 'abc' is not a number"),
    ("1\t1.0\tx\t3.0", r"Bad_TRAIN\.tsv, line 2: .*every value must be a number"),
])
def test_ucr_bad_lines_are_named_with_file_and_line(data_dir, line, message):
    write_ucr(data_dir / "UCRArchive_2018" / "Bad", "Bad", [[1, 1.0, 2.0, 3.0]], [[1, 1.0, 2.0, 3.0]])
    train = data_dir / "UCRArchive_2018" / "Bad" / "Bad_TRAIN.tsv"
    train.write_text(train.read_text() + line + "\n")
    with pytest.raises(ValueError, match=message):
        load_ucr("Bad")


def test_tiny_imagenet_copy_missing_a_class_or_val_is_named_not_downloaded(data_dir, tiny_archive, monkeypatch):
    tiny_imagenet.tiny_imagenet_folder()  # downloaded and unpacked once
    folder = data_dir / "tiny-imagenet-200"
    monkeypatch.setattr(dl, "urlopen", lambda *a, **k: pytest.fail("an incomplete copy must not be downloaded over"))
    shutil.rmtree(folder / "train" / WNIDS[0])
    with pytest.raises(ValueError, match=rf"incomplete: missing train/{WNIDS[0]}/images/\*\.JPEG"):
        TinyImageNet("train")
    shutil.rmtree(folder / "val")
    with pytest.raises(ValueError, match=r"incomplete: missing val/val_annotations\.txt, val/images"):
        TinyImageNet("train")


def test_a_truncated_jpeg_is_named(data_dir, tiny_archive):
    folder = tiny_imagenet.tiny_imagenet_folder()
    broken = sorted((folder / "train" / WNIDS[1] / "images").glob("*.JPEG"))[1]
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(ValueError, match=rf"cannot decode {broken}"):
        TinyImageNet("train")


def test_a_voc_image_without_its_mask_is_named(data_dir, voc_archive):
    root = voc.voc_root()
    (root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / f"{VOC_TRAIN[3]}.png").unlink()
    with pytest.raises(ValueError, match=rf"names 1 file\(s\) that are not there, e\.g\. .*{VOC_TRAIN[3]}\.png"):
        VOCSegmentation("train")


def test_extraction_refuses_an_archive_that_unpacks_too_large(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (4 << 20))  # 4 MiB of zeros compress to a few KB
    with pytest.raises(ValueError, match="refusing to extract bomb.zip: it would unpack to 4 MiB, more than 4 times"):
        dl.extract(archive, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())
    dl.extract(archive, tmp_path / "allowed", max_ratio=10_000)  # a caller that knows its archive may allow more


def test_extraction_drops_setuid_bits_without_the_tar_data_filter(tmp_path, monkeypatch):
    source = tmp_path / "tool"
    source.write_text("#!/bin/sh\n")
    archive = tmp_path / "tool.tar"
    with tarfile.open(archive, "w") as tf:
        info = tf.gettarinfo(source, arcname="tool")
        info.mode = 0o6755
        with open(source, "rb") as handle:
            tf.addfile(info, handle)
    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # as on Python 3.10.0-3.10.11
    dl.extract(archive, tmp_path / "out")
    mode = (tmp_path / "out" / "tool").stat().st_mode
    assert not mode & 0o6000 and mode & 0o755 == 0o755


def test_a_download_without_a_published_checksum_records_and_checks_its_own(tmp_path):
    source = tmp_path / "archive.zip"
    source.write_bytes(b"first copy")
    dest = tmp_path / "data" / "archive.zip"
    dl.download(source.as_uri(), dest, quiet=True)
    record = dest.with_name("archive.zip.sha256")
    assert record.read_text().split()[0] == hashlib.sha256(b"first copy").hexdigest()
    dl.download(source.as_uri(), dest, quiet=True)  # the same file: fine
    dest.write_bytes(b"changed since")
    with pytest.raises(ValueError, match="no longer matches the sha256 recorded"):
        dl.download(source.as_uri(), dest, quiet=True)


@pytest.mark.parametrize("make, reason", [
    (lambda m: (setattr(m, "type", tarfile.FIFOTYPE)), "is a device or fifo"),
    (lambda m: (setattr(m, "type", tarfile.CHRTYPE)), "is a device or fifo"),
    (lambda m: (setattr(m, "type", tarfile.LNKTYPE), setattr(m, "linkname", "../../outside")), "link pointing outside"),
    (lambda m: setattr(m, "name", "/etc/evil"), "an absolute path"),
    (lambda m: setattr(m, "name", "C:/evil"), "an absolute path"),
])
def test_extract_refuses_devices_fifos_hardlinks_out_and_absolute_names_before_writing(tmp_path, make, reason):
    member = tarfile.TarInfo("data/member")
    make(member)
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        tf.addfile(member)
    with pytest.raises(ValueError, match=reason):
        dl.extract(archive, tmp_path / "dest")
    assert not [p for p in (tmp_path / "dest").rglob("*") if not p.name.startswith(".")]


def test_the_noise_does_not_depend_on_how_many_images_are_worked_at_once():
    from dynlab.data.synthetic import _to_uint8

    images = np.random.default_rng(1).uniform(0, 1, (10, 3, 8, 8)).astype(np.float32)
    whole = _to_uint8(images, np.random.default_rng(2), 0.08, part=1000)
    assert np.array_equal(whole, _to_uint8(images, np.random.default_rng(2), 0.08, part=3))
    assert whole.dtype == np.uint8 and not np.array_equal(whole, np.round(images * 255).astype(np.uint8))
