"""Downloads and archives done safely: checksum, atomic rename, no path traversal, several mirrors.

The rules the loaders rely on:

* a download streams into a temporary file in the destination folder and is renamed into
  place only once its MD5 matches, so an interrupted or corrupt download never looks finished;
  a body shorter than the Content-Length the server announced counts as interrupted;
* a file may have several mirrors (:class:`Mirror`), tried in order by :func:`fetch_mirrors`: a
  mirror that cannot be reached, answers with an HTTP error, sends a truncated body or a file with
  the wrong checksum costs one line on stderr and the next one is tried; when all fail, one
  :class:`MirrorsFailedError` lists every URL with its reason and says where to put the file by hand;
* extraction refuses any member with an absolute path or a ``..`` component, and unpacks into a
  temporary folder first, so a half-extracted data set never looks finished either;
* extraction also refuses an archive that would unpack to more than ``MAX_RATIO`` times its own
  size (a zip bomb), and drops setuid/setgid bits where the tar data filter is not there to do it;
* a download without a published checksum records its sha256 beside the file (``NAME.sha256``) at
  the first download, and every later use checks it (a new download too, if the file was removed);
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
from dataclasses import dataclass
from http.client import HTTPException, IncompleteRead
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, Sequence, TypeVar
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from ..errors import DataError, DynlabError

CHUNK = 1 << 20
#: how many times its own size an archive may unpack to
MAX_RATIO = 4
#: the last way out that every "could not download" message offers
OTHERWISE = "set DYNLAB_DATA to a folder that already holds the extracted data"

T = TypeVar("T")


class DataUnavailableError(DynlabError, RuntimeError):
    """Raised when a data set is neither on disk nor downloadable; the message says what to put where."""


class MirrorsFailedError(DataUnavailableError):
    """Every mirror failed. ``failures`` holds ``(url, reason)`` in the order tried; ``by_hand`` the ways
    to install the data by hand; the message lists both."""

    def __init__(self, what: str, failures: Sequence[tuple[str, str]], by_hand: Sequence[str],
                 otherwise: str = OTHERWISE) -> None:
        self.what, self.failures, self.by_hand, self.otherwise = what, tuple(failures), tuple(by_hand), otherwise
        lines = [f"Could not download {what}: every mirror failed."]
        lines += [f"  {url}: {reason}" for url, reason in self.failures]
        lines.append("To install it by hand, " + ";\nor ".join((*self.by_hand, otherwise)) + ".")
        super().__init__("\n".join(lines))

    def __reduce__(self):
        return type(self), (self.what, self.failures, self.by_hand, self.otherwise)


@dataclass(frozen=True)
class Mirror:
    """One URL a file can be downloaded from, and how the download is checked.

    ``md5``: the published checksum, checked before the file appears. ``None`` where none is published:
    the sha256 of the first download is then recorded beside the file (``NAME.sha256``) and checked at
    every later use.
    """
    url: str
    md5: str | None = None
    #: a sha256 known in advance (e.g. from a manifest), checked like ``md5``; nothing is recorded then
    sha256: str | None = None


class _BadDownload(ValueError):
    """A download that arrived but cannot be kept (cut short, wrong checksum); ``reason`` is the short form."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


#: what makes a mirror fail and the next one be tried
_MIRROR_FAILURES = (OSError, HTTPException, _BadDownload)


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


def _read_record(record: Path) -> str | None:
    return record.read_text().split()[0] if record.is_file() else None


def _check_recorded(dest: Path) -> None:
    """A file downloaded without a published checksum must still match the sha256 recorded then."""
    record = _recorded_sha256(dest)
    expected = _read_record(record)
    if expected is not None and sha256sum(dest) != expected:
        raise DataError(f"{dest} no longer matches the sha256 recorded when it was downloaded ({record}): it "
                        "was changed or damaged; move it away (and its .sha256) and download it again")


def _progress(name: str, done: int, total: int | None) -> None:
    if total:
        sys.stderr.write(f"\r{name}: {done / 2**20:.0f} / {total / 2**20:.0f} MiB")
    else:
        sys.stderr.write(f"\r{name}: {done / 2**20:.0f} MiB")
    sys.stderr.flush()


def _keep_existing(dest: Path, md5s: set[str], sha256s: set[str] = frozenset()) -> Path:
    """An existing file is kept if it matches one of ``sha256s`` or ``md5s`` (or, without any, its recorded
    sha256); otherwise it is reported and left alone: it may be the user's."""
    if sha256s:
        actual = sha256sum(dest)
        if actual in sha256s:
            return dest
        raise DataError(f"{dest} exists but its sha256 is {actual}, expected {' or '.join(sorted(sha256s))}. "
                        f"It was left untouched: move it away (or replace it with a good copy) and retry.")
    if not md5s:
        _check_recorded(dest)
        return dest
    actual = md5sum(dest)
    if actual in md5s:
        return dest
    raise DataError(f"{dest} exists but its MD5 is {actual}, expected {' or '.join(sorted(md5s))}. "
                    f"It was left untouched: move it away (or replace it with a good copy) and retry.")


def download(url: str, dest_path: str | Path, md5: str | None = None, *,
             timeout: float = 60.0, quiet: bool = False) -> Path:
    """Fetch ``url`` to ``dest_path``; with ``md5`` given the file is checked before it appears.

    An existing file with the right checksum is kept and nothing is fetched. An existing file
    with the wrong checksum is left alone and reported: it may be the user's.
    """
    dest = Path(dest_path)
    if dest.exists():
        return _keep_existing(dest, {md5} if md5 else set())
    return _fetch_new(url, dest, md5, timeout=timeout, quiet=quiet)


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    return int(value) if value and value.isdigit() else None


def _stream(url: str, fd: int, name: str, timeout: float, quiet: bool) -> tuple[str, str]:
    """Write the body of ``url`` to ``fd``; return its MD5 and sha256. A body shorter than announced is refused."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    shown = False
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=timeout) as response:
            total, done = _content_length(response), 0
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                md5.update(block)
                sha256.update(block)
                done += len(block)
                if not quiet:
                    _progress(name, done, total)
                    shown = True
            if total is not None and done != total:
                raise _BadDownload(f"cut short: {done:,} of {total:,} bytes",
                                   f"the download of {name} from {url} was cut short: {done:,} of {total:,} bytes")
            out.flush()
            os.fsync(out.fileno())
    finally:
        if shown:
            sys.stderr.write("\n")
    return md5.hexdigest(), sha256.hexdigest()


def _fetch_new(url: str, dest: Path, md5: str | None, *, sha256: str | None = None, timeout: float = 60.0,
               quiet: bool = False) -> Path:
    """Download into a temporary file beside ``dest``, check it, then rename it into place."""
    from ..files import atomic_write_text

    dest.parent.mkdir(parents=True, exist_ok=True)
    record = _recorded_sha256(dest)
    recorded = None if md5 is not None or sha256 is not None else _read_record(record)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        got_md5, got_sha256 = _stream(url, fd, dest.name, timeout, quiet)
        if md5 is not None and got_md5 != md5:
            raise _BadDownload(f"wrong checksum: MD5 {got_md5}, expected {md5}",
                               f"checksum mismatch for {dest.name} downloaded from {url}: MD5 {got_md5}, expected "
                               f"{md5}. The partial file was removed; retry, or fetch it by hand into {dest.parent}.")
        if sha256 is not None and got_sha256 != sha256:
            raise _BadDownload(f"wrong checksum: sha256 {got_sha256}, expected {sha256}",
                               f"checksum mismatch for {dest.name} downloaded from {url}: sha256 {got_sha256}, "
                               f"expected {sha256}. The partial file was removed; retry, or fetch it by hand into "
                               f"{dest.parent}.")
        if recorded is not None and got_sha256 != recorded:
            raise _BadDownload(f"wrong checksum: sha256 {got_sha256}, not the one recorded in {record}",
                               f"{dest.name} downloaded from {url} does not match the sha256 recorded at its first "
                               f"download ({record}); if the file changed on purpose, delete {record} and retry.")
        if md5 is None and sha256 is None and recorded is None:  # no published checksum: record this one for later uses
            atomic_write_text(record, f"{got_sha256}  {dest.name}\n")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _reason(error: BaseException) -> str:
    """A few words on why a download failed, for the one-line report and the final message."""
    if isinstance(error, _BadDownload):
        return error.reason
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, URLError):
        return getattr(error.reason, "strerror", None) or str(error.reason)
    if isinstance(error, IncompleteRead):
        return f"cut short: {len(error.partial):,} bytes read, {error.expected} more expected"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _say_failed(what: str, url: str, reason: str, trying: str) -> None:
    sys.stderr.write(f"{what}: {url} failed ({reason}); trying {trying}\n")
    sys.stderr.flush()


def fetch_mirrors(mirrors: Sequence[Mirror], filename: str, folder: str | Path, *, what: str = "",
                  quiet: bool = False) -> Path:
    """``folder/filename`` from the first of ``mirrors`` that works, or already there.

    A file already there is checked (against the mirrors' MD5, else its recorded sha256) and kept. Each
    failed mirror costs one line on stderr; its temporary file is removed, so nothing half-written is
    left in ``folder``. When every mirror fails a :class:`MirrorsFailedError` names each URL with its reason.
    """
    folder = Path(folder)
    dest = folder / filename
    if dest.exists():
        return _keep_existing(dest, {m.md5 for m in mirrors if m.md5}, {m.sha256 for m in mirrors if m.sha256})
    label = f"{filename} ({what})" if what else filename
    failures: list[tuple[str, str]] = []
    for i, mirror in enumerate(mirrors):
        try:
            return _fetch_new(mirror.url, dest, mirror.md5, sha256=mirror.sha256, quiet=quiet)
        except _MIRROR_FAILURES as error:
            failures.append((mirror.url, _reason(error)))
            if i + 1 < len(mirrors):
                _say_failed(label, mirror.url, failures[-1][1], f"the next mirror, {mirrors[i + 1].url}")
    where = "its URL" if len(mirrors) == 1 else "one of the URLs"
    raise MirrorsFailedError(label, failures, [f"fetch {filename} from {where} above and put it in "
                                               f"{folder.resolve()} (as {dest.resolve()})"])


def fetch(url: str, filename: str, folder: str | Path, md5: str | None = None, *,
          what: str = "", quiet: bool = False) -> Path:
    """:func:`fetch_mirrors` with one mirror: an error tells an offline user exactly what to fetch and where."""
    return fetch_mirrors((Mirror(url, md5),), filename, folder, what=what, quiet=quiet)


def first_available(sources: Sequence[tuple[str, Callable[[], T]]], what: str, *,
                    otherwise: str = OTHERWISE) -> T:
    """The result of the first of ``sources`` that works, for a data set that several different files provide.

    ``sources`` are ``(description, function)`` pairs tried in order; a function that raises
    :class:`MirrorsFailedError` costs one line on stderr (naming the next description) and the next is
    tried. When all fail, one :class:`MirrorsFailedError` gathers every URL, reason and way to install by hand.
    """
    failures: list[tuple[str, str]] = []
    by_hand: list[str] = []
    for i, (_, source) in enumerate(sources):
        try:
            return source()
        except MirrorsFailedError as error:
            failures += error.failures
            by_hand += error.by_hand
            if i + 1 < len(sources) and error.failures:
                _say_failed(what, *error.failures[-1], sources[i + 1][0])
    raise MirrorsFailedError(what, failures, by_hand, otherwise)


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
