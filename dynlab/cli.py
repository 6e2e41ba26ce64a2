"""The ``dynlab`` command line."""
from __future__ import annotations

import argparse
import sys


def _flops(args) -> int:
    from . import flops

    print("Parameters and MACs (multiply-accumulates; FLOPs = 2 x MACs), by DESIGN §7's convention.")
    print(flops.format_table(flops.table(args.variants)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import layers

    parser = argparse.ArgumentParser(
        prog="dynlab",
        description="Dynamic convolution course kit: train, compare and count dynamic CNNs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  dynlab flops\n  dynlab flops --variants base odconv odconv4x",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("flops", help="parameter and MAC table for every variant and task")
    p.add_argument("--variants", nargs="+", choices=layers.names(), default=None, metavar="VARIANT",
                   help=f"variants to count (default: all of {', '.join(layers.names())})")
    p.set_defaults(func=_flops)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
