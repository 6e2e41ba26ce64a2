"""Files written whole or not at all: a per-process temporary name in the target folder, then a rename.

A crash, a kill or a full disk can leave a temporary file behind, never a half-written result.
"""
from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path
from typing import Iterator, Sequence


def temporary_path(path: Path) -> Path:
    """``.NAME.PID.tmp`` beside ``path``: one process's own temporary name for it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on an error it is removed."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def atomic_write_csv(path: str | os.PathLike, rows: Sequence[dict], fields: Sequence[str]) -> None:
    """A CSV of ``rows`` with the columns ``fields`` (missing values empty, extra keys left out)."""
    with replacing(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: row.get(k, "") for k in fields} for row in rows)
