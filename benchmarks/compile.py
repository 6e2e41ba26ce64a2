"""Compile every variant's ResNet-18 with ``torch.compile`` and compare it with the eager model.

    python -m benchmarks compile                                   # CPU, inductor, float32
    python -m benchmarks compile --precision float64               # the gradients judged too
    python -m benchmarks compile --device cuda --width 64 --batch 32   # bf16 autocast, channels-last
    python -m benchmarks compile --variants dyconv --jsonl rows.jsonl  # one variant, rows appended
    python -m benchmarks compile --table-from rows.jsonl               # the table of collected rows

Training is compiled with ``fullgraph=True`` (a graph break fails the variant); see ``dynlab.kernels.compile_check``
for what is compared. Compile times are those of the first call: with inductor's on-disk caches warm
(a second run, or variants compiled in parallel processes first) they are much shorter.
"""
import argparse
import json

from dynlab import layers
from dynlab.kernels.compile_check import PRECISIONS, check_variant, format_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", choices=layers.names(), default=None, metavar="VARIANT")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (aot_eager: no code generation)")
    parser.add_argument("--stem", choices=("imagenet", "small"), default="imagenet")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=16, help="ResNet width (64 is ResNet-18)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="default: bf16 (autocast) on CUDA, float32 on the CPU; float64 judges the gradients")
    parser.add_argument("--jsonl", default=None, metavar="PATH", help="append each variant's row to this file")
    parser.add_argument("--table-from", default=None, metavar="PATH", help="only print the table of these rows")
    args = parser.parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        print(format_rows(rows))
        return 0 if all(r["passed"] for r in rows) else 1
    precision = args.precision or ("bf16" if args.device == "cuda" else "float32")
    rows = []
    for variant in args.variants or layers.names():
        row = check_variant(variant, args.device, args.stem, args.size, args.batch, args.width, args.backend,
                            precision=precision)
        rows.append(row)
        print(format_rows([row]).splitlines()[-1], flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")
    print(format_rows(rows))
    return 0 if all(r["passed"] for r in rows) else 1
