"""The seed study's own tables (the paper, in dynlab's names), as data.

Its numbers live in ``paper_tables.json`` next to this module, each under its table's name ("1", "3",
"4a", ...), with the seed's model names; they ship with the package, so a notebook reads the same
numbers inside a checkout and outside one. They are the seed's claims: notebooks and reports show them
beside dynlab's measurements, always labelled as the seed's.

>>> from dynlab import paper
>>> paper.table("4b")["mean_accuracy"]["D-CNN"]
0.653
>>> paper.by_variant("3", "accuracy")["base"]
65.2
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).with_name("paper_tables.json")


@lru_cache(maxsize=1)
def _tables() -> dict:
    return json.loads(DATA.read_text())


def names() -> list[str]:
    """The tables held, by the seed's names."""
    return list(_tables()["tables"])


def table(name: str) -> dict:
    """Table ``name`` of the seed (a copy: its caption and its columns, by the seed's model names)."""
    tables = _tables()["tables"]
    if name not in tables:
        raise KeyError(f"the seed has no table {name!r} here; tables: {', '.join(tables)}")
    return copy.deepcopy(tables[name])


def by_variant(name: str, column: str) -> dict:
    """Column ``column`` of table ``name`` keyed by dynlab's variant names (``base``, ``global``, ...)."""
    variants = _tables()["variants"]
    return {variants[model]: value for model, value in table(name)[column].items()}
