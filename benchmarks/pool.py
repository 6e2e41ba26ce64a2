"""The ImageNet stem's max pool: ``nn.MaxPool2d`` against ``dynlab``'s ``StemMaxPool2d`` on the CPU.

    python -m benchmarks pool

First the pool alone, forward and forward + backward, on the stem's input for 64x64, 112x112 and
224x224 images (batch 32, 64 channels, after a ReLU); then ``base``'s ResNet-18 (64x64, batch 32)
with either pool, as two models in one process, training steps and inferences interleaved.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from ._timing import median_ms
from dynlab.kernels.allocator import keep_freed_memory
from dynlab.bench import Runner, inputs
from dynlab.kernels.stem_pool import StemMaxPool2d


def pool_alone():
    print("| stem input | nn.MaxPool2d forward ms | StemMaxPool2d forward ms | nn.MaxPool2d fwd+bwd ms "
          "| StemMaxPool2d fwd+bwd ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for size in (32, 56, 112):
        x = torch.relu(torch.randn(32, 64, size, size)).requires_grad_()
        row = []
        for pool in (nn.MaxPool2d(3, 2, 1), StemMaxPool2d(3, 2, 1)):
            with torch.no_grad():
                row.append(median_ms(lambda: pool(x)))
        for pool in (nn.MaxPool2d(3, 2, 1), StemMaxPool2d(3, 2, 1)):
            row.append(median_ms(lambda: pool(x).sum().backward()))
        print(f"| (32, 64, {size}, {size}) | " + " | ".join(f"{v:.1f}" for v in row) + " |", flush=True)


def in_the_model(repeats=10):
    keep_freed_memory()  # as dynlab bench and fit run
    runners = {"nn.MaxPool2d": Runner("base", "imagenet", 64, "cpu", False, False),
               "StemMaxPool2d": Runner("base", "imagenet", 64, "cpu", False, False)}
    runners["nn.MaxPool2d"].model.maxpool = nn.MaxPool2d(3, 2, 1)
    x, y = inputs(32, 64, "cpu")
    for runner in runners.values():
        runner.train_step(x, y)
        runner.inference(x)
    train = {name: [] for name in runners}
    infer = {name: [] for name in runners}
    for r in range(repeats):
        for name in (list(runners) if r % 2 else list(runners)[::-1]):
            train[name].append(1e3 * runners[name].train_step(x, y))
            infer[name].append(1e3 * runners[name].inference(x))
    print("\n| base ResNet-18, 64x64, batch 32 | training step ms | inference ms |")
    print("| --- | ---: | ---: |")
    for name in runners:
        print(f"| {name} | {statistics.median(train[name]):.0f} | {statistics.median(infer[name]):.1f} |")


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    pool_alone()
    in_the_model()
    return 0
