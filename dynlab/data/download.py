"""Downloads and archives done safely: checksum, atomic rename, no path traversal.

The rules the loaders rely on:

* a download streams into a temporary file in the destination folder and is renamed into
  place only once its MD5 matches, so an interrupted or corrupt download never looks finished;
* extraction refuses any member with an absolute path or a ``..`` component, and unpacks into a
  temporary folder first, so a half-extracted data set never looks finished either;
* extraction also refuses an archive that would unpack to more than ``MAX_RATIO`` times its own
  size (a zip bomb), and drops setuid/setgid bits where the tar data filter is not there to do it;
* a download without a published checksum records its sha256 beside the file (``NAME.sha256``) at
  the first download, and every later use checks it;
* files that are already there are never overwritten or deleted.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.error import URLError
from urllib.request import urlopen

from ..errors import DynlabError

CHUNK = 1 << 20
#: how many times its own size an archive may unpack to
MAX_RATIO = 4


class DataUnavailableError(DynlabError, RuntimeError):
    """Raised when a data set is neither on disk nor downloadable; the message says what to put where."""


def data_root() -> Path:
    """The cache folder for data sets: ``$DYNLAB_DATA`` if set, else ``~/.cache/dynlab``."""
    root = os.environ.get("DYNLAB_DATA")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "dynlab"


def md5sum(path: str | Path) -> str:
    return _digest(path, hashlib.md5())


def sha256sum(path: str | Path) -> str:
    return _digest(path, hashlib.sha256())


def _digest(path, digest) -> str:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded_sha256(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _check_recorded(dest: Path) -> None:
    """A file downloaded without a published checksum must still match the sha256 recorded then."""
    record = _recorded_sha256(dest)
    if record.is_file():
        expected = record.read_text().split()[0]
        if sha256sum(dest) != expected:
            raise ValueError(f"{dest} no longer matches the sha256 recorded when it was downloaded ({record}): it "
                             "was changed or damaged; move it away (and its .sha256) and download it again")


def _progress(name: str, done: int, total: int | None) -> None:
    if total:
        sys.stderr.write(f"\r{name}: {done / 2**20:.0f} / {total / 2**20:.0f} MiB")
    else:
        sys.stderr.write(f"\r{name}: {done / 2**20:.0f} MiB")
    sys.stderr.flush()


def download(url: str, dest_path: str | Path, md5: str | None = None, *,
             timeout: float = 60.0, quiet: bool = False) -> Path:
    """Fetch ``url`` to ``dest_path``; with ``md5`` given the file is checked before it appears.

    An existing file with the right checksum is kept and nothing is fetched. An existing file
    with the wrong checksum is left alone and reported: it may be the user's.
    """
    dest = Path(dest_path)
    if dest.exists():
        if md5 is None:
            _check_recorded(dest)
            return dest
        if md5sum(dest) == md5:
            return dest
        raise ValueError(f"{dest} exists but its MD5 is {md5sum(dest)}, expected {md5}. "
                         f"It was left untouched: move it away (or replace it with a good copy) and retry.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            total = int(total) if total else None
            done = 0
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                digest.update(block)
                done += len(block)
                if not quiet:
                    _progress(dest.name, done, total)
            out.flush()
            os.fsync(out.fileno())
        if not quiet:
            sys.stderr.write("\n")
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch for {dest.name} downloaded from {url}: "
                             f"MD5 {digest.hexdigest()}, expected {md5}. The partial file was removed; "
                             f"retry, or fetch it by hand into {dest.parent}.")
        os.replace(tmp, dest)
        if md5 is None:  # no published checksum: record this one, so that later uses can check it
            from ..files import atomic_write_text

            atomic_write_text(_recorded_sha256(dest), f"{sha256sum(dest)}  {dest.name}\n")
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def fetch(url: str, filename: str, folder: str | Path, md5: str | None = None, *,
          what: str = "", quiet: bool = False) -> Path:
    """:func:`download` with an error that tells an offline user exactly what to fetch and where."""
    folder = Path(folder)
    try:
        return download(url, folder / filename, md5, quiet=quiet)
    except (URLError, OSError) as err:
        label = f" ({what})" if what else ""
        raise DataUnavailableError(
            f"Could not download {filename}{label}: {err}.\n"
            f"Fetch it by hand from {url}\n"
            f"and put it in {folder.resolve()} (as {folder.resolve() / filename}),\n"
            f"or set DYNLAB_DATA to a folder that already holds the extracted data."
        ) from err


def _unsafe_reason(name: str) -> str | None:
    if not name:
        return "an empty name"
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.drive or name.startswith(("/", "\\")):
            return "an absolute path"
        if ".." in pure.parts:
            return "a '..' component"
    return None


def _check_member(archive: Path, name: str, link_target: str | None = None) -> None:
    reason = _unsafe_reason(name)
    if reason is None and link_target is not None:
        target = str(PurePosixPath(name).parent / link_target)
        if _unsafe_reason(link_target) == "an absolute path" or _unsafe_reason(target):
            reason = f"a link pointing outside the archive ({link_target!r})"
    if reason:
        raise ValueError(f"refusing to extract {archive.name}: member {name!r} has {reason}")


def _merge(src: Path, dest: Path) -> None:
    """Move ``src`` into ``dest``; folders merge, files already in ``dest`` are kept as they are."""
    if not dest.exists() and not dest.is_symlink():
        os.replace(src, dest)
        return
    if src.is_dir() and dest.is_dir():
        for child in src.iterdir():
            _merge(child, dest / child.name)


def _check_size(archive: Path, unpacked: int, max_ratio: float) -> None:
    limit = max_ratio * archive.stat().st_size
    if unpacked > limit:
        raise ValueError(f"refusing to extract {archive.name}: it would unpack to {unpacked / 2**20:.0f} MiB, more "
                         f"than {max_ratio:g} times its own {archive.stat().st_size / 2**20:.0f} MiB; if it is "
                         f"genuine, unpack it by hand into {archive.parent}")


def extract(archive: str | Path, dest_dir: str | Path, *, password: bytes | None = None,
            max_ratio: float = MAX_RATIO) -> Path:
    """Unpack a ``.zip``, ``.tar``, ``.tar.gz`` or ``.tgz`` archive into ``dest_dir``.

    Every member is checked before anything is written, and the total size they unpack to (at most
    ``max_ratio`` times the archive's). The archive unpacks into a temporary folder inside
    ``dest_dir`` whose contents are then moved into place, so its top-level folders only appear complete.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", suffix=".extract", dir=dest_dir))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(archive, info.filename)
                _check_size(archive, sum(info.file_size for info in zf.infolist()), max_ratio)
                zf.extractall(staging, pwd=password)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for m in members:
                    _check_member(archive, m.name, m.linkname if (m.issym() or m.islnk()) else None)
                    if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                        raise ValueError(f"refusing to extract {archive.name}: member {m.name!r} "
                                         f"is a device or fifo")
                _check_size(archive, sum(m.size for m in members), max_ratio)
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(staging, members=members, filter="data")
                else:  # Python before 3.10.12: no filter, so drop setuid, setgid and sticky bits ourselves
                    for m in members:
                        m.mode &= 0o777
                    tf.extractall(staging, members=members)
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive")
        for child in staging.iterdir():
            _merge(child, dest_dir / child.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest_dir
