"""Consecutive training steps of one variant: step time and subnormal numbers in its kernel gradients.

    python -m benchmarks subnormal                     # local, 8 steps, 64x64, batch 32, CPU
    python -m benchmarks subnormal --variant orient --steps 12

Subnormal (denormal) float32 numbers, 0 < |v| < 1.2e-38, are multiplied through a slow microcode
path on x86 CPUs. ``dynlab bench`` times a few steps after one warm-up, so a variant whose gradients
drift into subnormals as it trains looks fast there and slows down later. This prints, per step, the
time and how many entries of the conv units' kernel gradients are subnormal, so that a slowdown can
be told apart from noise (``local`` did, before ``dynlab.kernels`` set its softmax weights under 2^-64
to 0: ``benchmarks/results/README.md`` has the steps).
"""
from __future__ import annotations

import argparse

import torch

from dynlab import bench, layers
from dynlab.layers import ConvUnit


def subnormal_count(t: torch.Tensor) -> int:
    return int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=layers.names(), default="local")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    runner = bench.Runner(args.variant, "imagenet", 64, "cpu", amp=False, compile_model=False)
    units = [m for m in runner.model.modules() if isinstance(m, ConvUnit)]
    x, y = bench.inputs(args.batch, args.size, "cpu")
    print(f"{args.variant} ResNet-18, imagenet stem, {args.size}x{args.size}, batch {args.batch}, CPU, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, Adam lr 1e-3\n")
    print("| step | ms | subnormal kernel-gradient entries |\n| ---: | ---: | ---: |")
    for step in range(args.steps):
        seconds = runner.train_step(x, y)
        count = sum(subnormal_count(u.weight.grad) for u in units if u.weight.grad is not None)
        print(f"| {step} | {seconds * 1e3:.0f} | {count} |", flush=True)
    return 0
