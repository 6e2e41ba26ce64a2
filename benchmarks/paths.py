"""Time every exact per-sample-kernel path of ``dynlab.kernels.per_sample`` on ResNet-18's unit shapes.

    python -m benchmarks paths                       # ImageNet stem 64x64 and small stem 32x32, batch 32
    python -m benchmarks paths --batch 32 --repeats 5
    python -m benchmarks paths --units-only --repeats 5    # and what the units alone make of a step

For each 3x3 unit shape of ResNet-18 (input channels, output channels, stride, input size) and each
kind of mixing (dyconv: K = 4; odconv: K = 1 with spatial attention; odconv4x: K = 4 with spatial
attention) it prints the time of each path, forward + backward and forward alone, as a ratio to a
static convolution of the same shape, and the path ``choose_path`` picks. This is what the
cost-model weights in ``dynlab/kernels/per_sample.py`` were calibrated on.

``--units-only`` adds, per kind, what the 3x3 units alone make of its whole ResNet-18's training
step: base's step time (measured in the same run) plus, for each of the 16 units, the best path's
extra time over the static convolution, as a ratio to base's step. It leaves out everything else a
dynamic model adds (attention heads, their products with the feature maps, a larger optimizer step).
Units timed one at a time can run slower than inside the model, so it is an estimate of the units'
share, not a strict floor; where it is above the issue's goal (1.2 x the MAC ratio) by more than that
noise, no choice among these paths meets the goal.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from dynlab.kernels import per_sample
from dynlab.layers.unit import ConvUnit

SHAPES = {
    "imagenet64": [(64, 64, 1, 16), (64, 128, 2, 16), (128, 128, 1, 8), (128, 256, 2, 8), (256, 256, 1, 4),
                   (256, 512, 2, 4), (512, 512, 1, 2)],
    "small32": [(64, 64, 1, 32), (64, 128, 2, 32), (128, 128, 1, 16), (128, 256, 2, 16), (256, 256, 1, 8),
                (256, 512, 2, 8), (512, 512, 1, 4)],
}
KINDS = {"dyconv": (4, False), "odconv": (1, True), "odconv4x": (4, True)}
#: how many of ResNet-18's 3x3 units have each shape of ``SHAPES`` (2 blocks of 2 units per stage; the
#: first unit of stages 2-4 has stride 2)
UNITS_PER_SHAPE = (4, 1, 3, 1, 3, 1, 3)
SETTING_INPUT = {"imagenet64": ("imagenet", 64), "small32": ("small", 32)}


def _time(fn, repeats, device="cpu"):
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(batch, repeats, settings, kinds, device="cpu", units_only=False):
    g = torch.Generator().manual_seed(0)

    def rand(*shape, normal=True):
        return (torch.randn if normal else torch.rand)(*shape, generator=g).to(device)

    for setting in settings:
        print(f"\n### {setting}, batch {batch}, {device}: time / static conv (train = forward + backward; "
              "infer = forward)\n")
        print("| kind | C_in->C_out s size | path | train | infer | auto |")
        print("| --- | --- | --- | ---: | ---: | --- |")
        extra = {kind: 0.0 for kind in kinds}  # seconds the best paths add over static convolutions
        for (c_in, c_out, stride, size), units in zip(SHAPES[setting], UNITS_PER_SHAPE):
            unit = ConvUnit(c_in, c_out, 3, stride=stride, padding=1)
            x = rand(batch, c_in, size, size).requires_grad_()
            static = rand(c_out, c_in, 3, 3).requires_grad_()

            def conv_train():
                F.conv2d(x, static, None, stride, 1).sum().backward()

            def conv_infer():
                with torch.no_grad():
                    F.conv2d(x, static, None, stride, 1)

            for kind in kinds:
                count, has_spatial = KINDS[kind]
                kernels = rand(count, c_out, c_in, 3, 3).requires_grad_()
                attention = rand(batch, count, normal=False).requires_grad_() if count > 1 else None
                spatial = rand(batch, 9, normal=False).requires_grad_() if has_spatial else None
                paths = list(per_sample.applicable_paths(count, has_spatial))
                fns = {"static": (conv_train, conv_infer)}
                for path in paths:
                    def train(path=path):
                        per_sample.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path).sum().backward()

                    def infer(path=path):
                        with torch.no_grad():
                            per_sample.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path)
                    fns[path] = (train, infer)
                results = {name: ([], []) for name in fns}
                for name, (train, infer) in fns.items():  # warm-up
                    train()
                    infer()
                for _ in range(repeats):
                    for name, (train, infer) in fns.items():
                        results[name][0].append(_time(train, 1, device))
                        results[name][1].append(_time(infer, 1, device))
                base_t, base_i = (statistics.median(v) for v in results["static"])
                auto = per_sample.choose_path(unit, x, count, has_spatial)
                if count == 1 and auto == "unfold_dense":  # one kernel: the same algorithm, listed as unfold
                    auto = "unfold"
                for path in paths:
                    t, i = (statistics.median(v) for v in results[path])
                    print(f"| {kind} | {c_in}->{c_out} s{stride} {size}x{size} | {path} | {t / base_t:.2f} | "
                          f"{i / base_i:.2f} | {'<-' if path == auto else ''} |", flush=True)
                best = min(statistics.median(results[path][0]) for path in paths)
                extra[kind] += units * (best - base_t)
        if units_only:
            print_units_only(setting, batch, repeats, extra, device)


def print_units_only(setting, batch, repeats, extra, device):
    """Each kind's training-step ratio to ``base`` if only its 3x3 units cost more (see the module doc)."""
    from dynlab.bench import PER_MAC_GOAL, Runner, build, inputs
    from dynlab.flops import cost

    stem, size = SETTING_INPUT[setting]
    runner = Runner("base", stem, 64, device, amp=False, compile_model=False)
    x, y = inputs(batch, size, device)
    runner.train_step(x, y)
    step = statistics.median(runner.train_step(x, y) for _ in range(max(repeats, 3)))
    base_macs = cost(build("base", stem, 64, "cpu"), (batch, 3, size, size)).macs
    print(f"\n{setting}: base's training step {1e3 * step:.0f} ms. Units-only ratio = (base step + the best "
          "paths' extra time over static convolutions in all 16 units) / base step.\n")
    print("| kind | extra ms | units-only train ratio | MAC ratio | units-only per MAC | goal per MAC |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for kind, seconds in extra.items():
        mac_ratio = cost(build(kind, stem, 64, "cpu"), (batch, 3, size, size)).macs / base_macs
        ratio = 1 + seconds / step
        print(f"| {kind} | {1e3 * seconds:.0f} | {ratio:.2f} | {mac_ratio:.2f} | {ratio / mac_ratio:.2f} | "
              f"{PER_MAC_GOAL} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="float32 on either")
    parser.add_argument("--units-only", action="store_true",
                        help="also print, per kind, its ResNet-18's step ratio to base if only the 3x3 units cost more")
    args = parser.parse_args(argv)
    run(args.batch, args.repeats, args.settings, args.kinds, args.device, args.units_only)
