"""One entry point for every benchmark: ``python -m benchmarks MODE [options]`` (``MODE --help`` for each).

Each mode prints markdown tables; speed is given as ratios to ``base`` (or to the plain operation)
measured side by side in one process. ``benchmarks/results/README.md`` holds the current tables,
with the command, machine, torch version and commit of each.
"""
from __future__ import annotations

import importlib
import sys

#: mode -> (module of this folder, what it measures)
MODES = {
    "steps": ("steps", "every variant's ResNet-18 training step, inference, memory and MACs against base"),
    "course": ("course", "every variant's course-profile model on each task: training step and inference per MAC"),
    "paths": ("paths", "every exact per-sample-kernel path on ResNet-18's unit shapes (--units-only: the units' share)"),
    "compile": ("compile", "torch.compile of every variant against eager: errors and compile times"),
    "precision": ("precision", "float32 against bfloat16 autocast on this CPU, the Adiac 1D ResNet's step"),
    "optimizer": ("optimizer", "PyTorch's foreach Adam against its fused Adam in a training step"),
    "orient": ("orient", "building orient's rotated kernels: rot90 copies against one gather"),
    "faults": ("faults", "page faults and kernel time of a step, with and without freed memory kept"),
    "pool": ("pool", "the ImageNet stem's max pool: nn.MaxPool2d against the channels-last one"),
    "subnormal": ("subnormal", "consecutive training steps and the subnormal numbers in their gradients"),
    "hard": ("hard", "hard at inference on one sample: MACs and wall time against the share of gates open"),
    "tiled": ("tiled", "per-sample kernels built and applied in cache-sized tiles, against the paths (an experiment)"),
}


def usage() -> str:
    width = max(map(len, MODES))
    return ("usage: python -m benchmarks MODE [options]\n\nmodes:\n"
            + "\n".join(f"  {mode:<{width}}  {about}" for mode, (_, about) in MODES.items()))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    mode, rest = argv[0], argv[1:]
    if mode not in MODES:
        print(f"unknown mode {mode!r}\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.{MODES[mode][0]}")
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
