"""One trial of a course-recipe change: a course cell trained with some recipe fields or unit options changed.

This is how the course recipe in ``dynlab/profiles.py`` is tuned (``results/course_recipe.md``): the quick
profile's recipe for TASK with each ``--set FIELD=VALUE`` (a field of ``profiles.TaskProfile``; the value
is read as Python, e.g. ``temperature=(30,5)``) and each ``--unit OPTION=VALUE`` (a unit option of the
variant), trained with the same data, seed and code as ``dynlab study`` would. It prints one JSON line:
the best validation metric (what a choice is made on), the test metric (for the record), the
validation curve, the last epoch's training metric, and the attention figures on the test split.

    .venv/bin/python tools/course_trial.py classification odconv4x --set "temperature=(30,5)"
    .venv/bin/python tools/course_trial.py segmentation odconv --unit attention_norm='"none"'
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import time

from dynlab import profiles
from dynlab.experiments import Cell, train_cell


def assignment(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    if not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value  # a bare word, e.g. none


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("classification", "segmentation", "timeseries"))
    parser.add_argument("variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", type=assignment, action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--unit", type=assignment, action="append", default=[], metavar="OPTION=VALUE")
    args = parser.parse_args(argv)
    quick = profiles.PROFILES["quick"]
    recipe = dataclasses.replace(quick.task(args.task), **dict(args.set))
    own = recipe.variant_recipe.get(args.variant, {})
    if own:  # a field set here wins over the variant's own setting of it as well
        changed = {**own, **{k: v for k, v in args.set if k in own}}
        recipe = dataclasses.replace(recipe, variant_recipe={**recipe.variant_recipe, args.variant: changed})
    profiles.PROFILES["quick"] = dataclasses.replace(quick, **{args.task: recipe})  # this process only
    started = time.perf_counter()
    run = train_cell(Cell(args.task, args.variant, args.seed, options=dict(args.unit)), quiet=True)
    records = run.history.records
    print(json.dumps({"task": args.task, "variant": args.variant, "seed": args.seed, "set": dict(args.set),
                      "unit": dict(args.unit), "val": round(run.history.best_metric, 4), "test": round(run.metric, 4),
                      "curve": [round(r["val_metric"], 3) for r in records],
                      "train": round(records[-1]["train_metric"], 3), "seconds": round(time.perf_counter() - started),
                      "attention": run.attention}, default=str))


if __name__ == "__main__":
    main()
