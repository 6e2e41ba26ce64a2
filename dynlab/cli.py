"""The ``dynlab`` command line: train, evaluate, study, adiac, search, flops, bench, data download."""
from __future__ import annotations

import argparse
import errno
import signal
import sys

from .errors import DynlabError

EXAMPLES = """examples:
  dynlab study --profile quick                      # every variant x task on the embedded data
  dynlab study --tasks timeseries --variants base dyconv --seeds 0 1 2 --out runs/study-timeseries
  dynlab train --variant odconv --task classification --epochs 5 --out runs/odconv-cls
  dynlab train --variant odconv --task classification --out runs/odconv-cls --resume
  dynlab evaluate --variant odconv --task classification --out runs/odconv-cls
  dynlab adiac --jobs 2 --publish results          # every Adiac protocol and variant (hours on a CPU)
  dynlab adiac --protocols standard --variants base dyconv --seeds 0 1
  dynlab adiac --protocols refit --variants base --start-from results   # final runs on all 390 series
  dynlab search recipes --jobs 2                     # how the Adiac recipe was chosen (on validation)
  dynlab course-models                               # the shipped course models (every variant x task)
  dynlab flops --variants base odconv odconv4x
  dynlab bench --stem small --size 32
  dynlab data download adiac
"""
DATASETS = ("tiny-imagenet", "voc2012", "adiac")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def seed(text: str) -> int:
    """argparse type: a random seed, 0 <= seed < 2**32 (what numpy accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**32 - 1, got {value}")
    return value


def folder(text: str) -> str:
    """argparse type: an output folder, named."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder (got an empty name)")
    return text


def _add_common(p, *, many: bool) -> None:
    from . import layers, profiles
    from .data.tasks import DATA, TASKS

    if many:
        p.add_argument("--variants", nargs="+", choices=layers.names(), default=None, metavar="VARIANT",
                       help=f"variants (default: all of {', '.join(layers.names())})")
        p.add_argument("--tasks", nargs="+", choices=TASKS, default=None, metavar="TASK",
                       help=f"tasks (default: all of {', '.join(TASKS)})")
    else:
        p.add_argument("--variant", required=True, choices=layers.names(), metavar="VARIANT",
                       help=f"one of {', '.join(layers.names())}")
        p.add_argument("--task", required=True, choices=TASKS, metavar="TASK",
                       help=f"one of {', '.join(TASKS)}")
    p.add_argument("--data", choices=DATA, default="synthetic",
                   help="synthetic stand-ins (default; time series is always the real Adiac) or the real data sets")
    p.add_argument("--profile", choices=[*profiles.names(), *profiles.RENAMED], default=None, metavar="PROFILE",
                   help=f"one of {', '.join(profiles.names())}: quick (narrow, short; the default on every device "
                        "unless DYNLAB_PROFILE names another), full, or paper (the paper's own settings)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the profile's number of epochs")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many samples per split (smoke runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _train(args) -> int:
    from .experiments import study

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out, the folder of the run to continue")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out, --overwrite replaces it: choose one")
    run = study.train_variant(args.variant, args.task, data=args.data, profile=args.profile, seed=args.seed,
                              fold=args.fold, epochs=args.epochs, device=args.device, out_dir=args.out,
                              resume=args.resume, overwrite=args.overwrite, quiet=args.quiet, limit=args.limit)
    print(f"{run.variant} on {run.task}: test {run.metric_name} {run.metric:.4f} "
          f"(best epoch {run.history.best_epoch}; {run.params / 1e6:.2f} M params, {run.macs / 1e6:.1f} M MACs/sample)")
    if args.out:
        print(f"checkpoints and history in {args.out}")
    return 0


def _evaluate(args) -> int:
    from pathlib import Path

    from .engine import evaluate, load_checkpoint
    from .experiments import build_model, load_data

    checkpoint = Path(args.out) / "best.pt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"no best.pt in {args.out}: train there first (dynlab train --out {args.out} ...)")
    data = load_data(args.task, args.data, args.profile, args.seed, args.fold, args.limit)
    model = build_model(args.variant, args.task, data, args.profile)
    load_checkpoint(checkpoint, model)
    split = {"test": data.test, "val": data.val, "train": data.train}[args.split]
    metrics = evaluate(model, split, args.task, device=args.device)
    print(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return 0


def _study(args) -> int:
    from .experiments import study

    out = study.run_study(args.variants, args.tasks, data=args.data, profile=args.profile, seeds=args.seeds,
                          folds=args.folds, out=args.out, epochs=args.epochs, device=args.device, quiet=args.quiet,
                          limit=args.limit, command=args.command_line, jobs=args.jobs,
                          retrain_mismatched=args.retrain_mismatched)
    print(f"report: {out / 'report.md'}\nresults: {out / 'results.csv'}")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _adiac(args) -> int:
    from .experiments import adiac
    from .experiments.runner import CellsFailedError

    try:
        out = adiac.run_adiac(args.protocols, args.out, variants=args.variants, seeds=args.seeds, folds=args.folds,
                             fold_variants=args.fold_variants, jobs=args.jobs, device=args.device,
                             epochs=args.epochs, limit=args.limit, quiet=args.quiet, command=args.command_line,
                             recipe=args.recipe, start_from=args.start_from,
                             retrain_mismatched=args.retrain_mismatched)
    except CellsFailedError as error:  # some cells failed; the finished ones are saved
        print(f"dynlab adiac: error: {error}\nnothing published; fix the cause and run the same command again",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.publish:  # what is finished is published, marked unfinished by the report's run counts
            for path in adiac.publish(args.out, args.publish):
                print(f"published: {path}")
        raise
    print(f"report: {out / 'adiac.md'}")
    if args.publish:
        for path in adiac.publish(out, args.publish):
            print(f"published: {path}")
    return 0


def _search(args) -> int:
    from .experiments import searches

    if args.search == "recipes":
        table = searches.recipe_search(args.recipes, args.seeds, out=args.out or "runs/adiac-recipes", jobs=args.jobs,
                                       device=args.device, epochs=args.epochs, quiet=args.quiet,
                                       command=args.command_line)
    else:
        table = searches.odconv_norm(args.variants, args.seeds, out=args.out or "runs/adiac-odconv-norm",
                                     results=args.results, jobs=args.jobs, device=args.device, epochs=args.epochs,
                                     quiet=args.quiet, command=args.command_line)
    print(table)
    return 0


def _course_models(args) -> int:
    from .experiments import course_models

    out = course_models.write_course_models(args.out, runs=args.runs, variants=args.variants, tasks=args.tasks,
                                            epochs=args.epochs, limit=args.limit, device=args.device,
                                            quiet=args.quiet, command=args.command_line)
    print(f"report: {out / 'report.md'}\nmanifest: {out / course_models.MANIFEST}")
    return 0


def _flops(args) -> int:
    from . import flops

    print("Parameters and MACs (multiply-accumulates; FLOPs = 2 x MACs), by the ODConv authors' convention "
          "(see dynlab.flops).")
    print(flops.format_table(flops.table(args.variants)))
    return 0


def _download(args) -> int:
    from .data import tiny_imagenet, ucr, voc

    if args.dataset == "tiny-imagenet":
        where = tiny_imagenet.tiny_imagenet_folder(download=True)
    elif args.dataset == "voc2012":
        where = voc.voc_root(download=True)
    else:
        where = ucr.find_ucr_files("Adiac", download=True)
    print(f"{args.dataset}: ready at {where}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with its errors in one line (the usage stays behind ``--help``)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_grid_resume(p) -> None:
    p.add_argument("--resume", action="store_true",
                   help="carry on an interrupted grid (what the command always does: finished cells are kept)")
    p.add_argument("--retrain-mismatched", action="store_true",
                   help="train again the finished cells whose settings differ from these (the old ones are kept, "
                        "renamed); without it such a folder is refused")


def build_parser() -> argparse.ArgumentParser:
    from . import bench, layers, profiles
    from .experiments import adiac
    from .data.tasks import TASKS

    parser = Parser(prog="dynlab", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Dynamic convolution course kit: train, compare and count dynamic CNNs.",
                                     epilog=EXAMPLES)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train one variant on one task", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p, many=False)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--fold", type=int, default=None, choices=range(10), metavar="0..9",
                   help="time series: train on the seed's 10-fold protocol, testing on this fold")
    p.add_argument("--out", type=folder, default=None, help="folder for checkpoints and history (kept; see --resume)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out (or reload it)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate the best checkpoint of a run", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p, many=False)
    p.add_argument("--seed", type=seed, default=0, help="the seed the run was trained with (data splits)")
    p.add_argument("--fold", type=int, default=None, choices=range(10), metavar="0..9")
    p.add_argument("--out", type=folder, required=True, help="the run's folder (holds best.pt)")
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("study", help="the variants x tasks grid and its report", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p, many=True)
    p.add_argument("--seeds", nargs="+", type=seed, default=[0], help="seeds (several give confidence intervals)")
    p.add_argument("--folds", nargs="+", type=int, default=None, choices=range(10), metavar="0..9",
                   help="time series: the seed's 10-fold protocol on these folds")
    p.add_argument("--out", type=folder, default=None, help="study folder (default: runs/study-PROFILE-DATA); "
                                                              "re-runs skip finished cells")
    p.add_argument("--jobs", type=positive_int, default=1, help="cells trained in parallel processes")
    _add_grid_resume(p)
    p.set_defaults(func=_study)

    p = sub.add_parser("adiac", help="the Adiac study: standard split (every variant, 5 seeds; selected, then "
                                     "refit on all 390 training series) and the seed's 10 folds",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocols", nargs="+", choices=adiac.PROTOCOLS, default=list(adiac.PROTOCOLS),
                   help="standard: best epoch on validation; refit: the same runs trained on all 390 training "
                        "series, last epoch; 10fold: the seed's protocol (default: all three)")
    p.add_argument("--variants", nargs="+", choices=layers.names(), default=None, metavar="VARIANT",
                   help="tsresnet variants on the standard split and its refit (default: all)")
    p.add_argument("--seeds", nargs="+", type=seed, default=list(adiac.SEEDS), help="standard split seeds")
    p.add_argument("--folds", nargs="+", type=int, default=list(adiac.FOLDS), choices=adiac.FOLDS, metavar="0..9")
    p.add_argument("--fold-variants", nargs="*", choices=layers.names(), default=list(adiac.FOLD_VARIANTS),
                   metavar="VARIANT", help="tsresnet variants in the 10-fold protocol, beside the seed's Net1/Net2 "
                                           "(none: the seed's networks only)")
    p.add_argument("--recipe", choices=list(profiles.TIMESERIES_RECIPES), default=None,
                   help=f"tsresnet's training recipe (default: the full profile's, {profiles.DEFAULT_RECIPE!r})")
    p.add_argument("--jobs", type=positive_int, default=1, help="cells trained in parallel processes")
    p.add_argument("--out", type=folder, default="runs/adiac", help="grid folder; a re-run skips finished cells")
    p.add_argument("--publish", default=None, metavar="FOLDER",
                   help="copy the CSVs, report, plot, meta.json and cells into FOLDER (e.g. results)")
    p.add_argument("--start-from", default=None, metavar="FOLDER",
                   help="count the cells published in FOLDER as finished (e.g. results: carry the committed "
                        "grid on)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override both recipes' epochs (smoke runs)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many series per split (smoke runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_grid_resume(p)
    p.set_defaults(func=_adiac)

    p = sub.add_parser("search", help="experiments beside the Adiac grid: the recipe search, ODConv without "
                                      "attention BatchNorm", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("search", choices=("recipes", "odconv-norm"),
                   help="recipes: tsresnet base with each candidate recipe, chosen on validation; odconv-norm: "
                        "odconv and odconv4x with attention_norm='none' beside the grid's cells")
    p.add_argument("--recipes", nargs="+", choices=list(profiles.TIMESERIES_RECIPES), default=None, metavar="RECIPE",
                   help="candidates for `recipes` (default: all)")
    p.add_argument("--variants", nargs="+", choices=("odconv", "odconv4x"), default=("odconv", "odconv4x"),
                   help="variants for `odconv-norm`")
    p.add_argument("--seeds", nargs="+", type=seed, default=[0, 1, 2])
    p.add_argument("--results", default=None, metavar="FOLDER",
                   help="the grid's results for `odconv-norm` (default: the committed ones)")
    p.add_argument("--jobs", type=positive_int, default=1, help="cells trained in parallel processes")
    p.add_argument("--out", type=folder, default=None,
                   help="folder (default: runs/adiac-recipes or runs/adiac-odconv-norm)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the recipes' epochs (smoke runs)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_search)

    p = sub.add_parser("course-models", help="train the notebooks' course models (quick profile, seed 0) and "
                       "write them compact, with a manifest and a report")
    p.add_argument("--variants", nargs="+", choices=layers.names(), default=None, metavar="VARIANT",
                   help="default: every variant")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=None, metavar="TASK", help="default: every task")
    p.add_argument("--out", type=folder, default="checkpoints/course", help="where the checkpoints, manifest.json "
                   "and report.md go (default: checkpoints/course, the committed ones)")
    p.add_argument("--runs", type=folder, default="runs/course-models",
                   help="grid folder of the training runs; a re-run skips finished cells")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the epochs (a smoke set)")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many samples per split (a smoke set)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_course_models)

    p = sub.add_parser("flops", help="parameter and MAC table for every variant and task")
    p.add_argument("--variants", nargs="+", choices=layers.names(), default=None, metavar="VARIANT")
    p.set_defaults(func=_flops)

    p = sub.add_parser("bench", help="speed and memory of every variant as ratios to base")
    bench.add_arguments(p)
    p.set_defaults(func=None)

    p = sub.add_parser("data", help="data sets")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    d = data_sub.add_parser("download", help="download and unpack a data set into DYNLAB_DATA")
    d.add_argument("dataset", choices=DATASETS)
    d.set_defaults(func=_download)
    return parser


#: what the user can fix: printed as one line, exit status 2 (``--debug`` shows the traceback)
USER_ERRORS = (DynlabError, ValueError, OSError)


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, DynlabError) and error.filename is not None:
        what = {errno.ENAMETOOLONG: "a name in it is too long", errno.EACCES: "permission denied",
                errno.EROFS: "the file system is read-only", errno.ENOTDIR: "a file is in the way",
                errno.EEXIST: "a file is in the way", errno.ENOSPC: "no space left on device"}
        reason = what.get(error.errno, error.strerror or str(error))
        return f"cannot write {error.filename}: {reason}; choose another folder, or free or fix that one"
    return " ".join(str(error).split()) or type(error).__name__


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = " ".join(["dynlab", *[a for a in argv if a != "--debug"]])  # what the reports name
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)  # `kill` or `timeout` stops it like Ctrl-C
    try:
        if args.command == "bench":
            from . import bench

            return bench.main(argv[argv.index("bench") + 1:])
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"dynlab {args.command}: interrupted; the same command with --resume carries on", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"dynlab {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


if __name__ == "__main__":
    sys.exit(main())
