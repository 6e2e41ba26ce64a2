"""A ResNet-18 training step with PyTorch's foreach Adam against its fused Adam, side by side.

    python -m benchmarks optimizer                       # base, dyconv, odconv4x; 64x64, batch 32, CPU
    python -m benchmarks optimizer --variants base local --repeats 7

``dynlab.engine.make_optimizer`` (what ``fit`` and ``dynlab bench`` use) picks the fused kernels. The
optimizer step costs in proportion to the parameters (the variants with K = 4 kernels hold four times
``base``'s), so this prints each variant's step with both, interleaved in one process (median over
repeats after one warm-up step), and the ratios to ``base`` under each.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from dynlab import bench, layers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=layers.names(), default=["base", "dyconv", "odconv4x"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    variants = ["base"] + [v for v in args.variants if v != "base"]
    x, y = bench.inputs(args.batch, args.size, "cpu")
    runs = {}
    for variant in variants:
        for fused in (False, True):
            model = bench.build(variant, "imagenet", 64, "cpu")
            kind = {"fused": True} if fused else {"foreach": True}
            runs[variant, fused] = (model, torch.optim.Adam(model.parameters(), lr=1e-3, **kind))

    def step(model, optimizer):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    for model, optimizer in runs.values():
        step(model, optimizer)
    times = {key: [] for key in runs}
    for _ in range(args.repeats):
        for key, (model, optimizer) in runs.items():
            start = time.perf_counter()
            step(model, optimizer)
            times[key].append(time.perf_counter() - start)
    ms = {key: statistics.median(t) * 1e3 for key, t in times.items()}
    print(f"ResNet-18, imagenet stem, {args.size}x{args.size}, batch {args.batch}, CPU, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; median of {args.repeats} interleaved repeats\n")
    print("| variant | foreach Adam, ms | fused Adam, ms | fused / foreach | ratio to base, foreach | "
          "ratio to base, fused |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for v in variants:
        print(f"| {v} | {ms[v, False]:.0f} | {ms[v, True]:.0f} | {ms[v, True] / ms[v, False]:.2f} | "
              f"{ms[v, False] / ms['base', False]:.2f} | {ms[v, True] / ms['base', True]:.2f} |")
    return 0
