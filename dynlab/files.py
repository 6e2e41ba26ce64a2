"""Files written whole or not at all, and one process per output folder.

Every write goes to a per-process temporary name in the target folder, is flushed to disk (fsync),
then renamed into place; on any error the temporary file is removed. A crash or a kill can still
leave one behind: ``remove_stale_temporaries`` clears those whose process is gone, and every run
calls it on its folder when it starts. A full disk raises ``DiskFullError`` naming the file.

``folder_lock`` is an advisory lock (``fcntl.flock``) on a folder, held for as long as a command
writes there, so that a second process is refused instead of both writing the same files.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

from .errors import DiskFullError, FolderBusyError

LOCK_NAME = ".dynlab.lock"
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")
_warned_no_locks: set[str] = set()


def temporary_path(path: Path) -> Path:
    """``.NAME.PID.tmp`` beside ``path``: one process's own temporary name for it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is synced and replaces ``path``, on an error it is
    removed (and a full disk is reported as ``DiskFullError``)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"could not write {path}: no space left on device; free space and re-run with "
                                "--resume") from error
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_csv(path: str | os.PathLike, rows: Sequence[dict], fields: Sequence[str]) -> None:
    """A CSV of ``rows`` with the columns ``fields`` (missing values empty, extra keys left out)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: row.get(k, "") for k in fields} for row in rows)
    atomic_write_text(path, buffer.getvalue())


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files in ``folder`` left by processes that are gone; returns them."""
    folder = Path(folder)
    removed = []
    for path in folder.glob(".*.tmp") if folder.is_dir() else []:
        match = _TEMPORARY.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "dynlab") -> Iterator[None]:
    """Hold ``folder``'s lock while the block runs; refuse (``FolderBusyError``) if another process holds it.

    Where the file system refuses locks (some network and cloud-drive mounts) it says so once and goes on.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderBusyError(f"{folder} is in use by {holder}: wait for it to end, or choose another "
                                  "output folder") from None
        except OSError as error:
            if str(folder) not in _warned_no_locks:
                _warned_no_locks.add(str(folder))
                print(f"dynlab: cannot lock {folder} ({error.strerror}); going on without a lock: do not run a "
                      "second command into it at the same time", file=sys.stderr)
            yield
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} (pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
