"""Time every exact per-sample-kernel path of ``dynlab.layers.mixing`` on ResNet-18's unit shapes.

    python benchmarks/unit_paths.py                       # ImageNet stem 64x64 and small stem 32x32, batch 32
    python benchmarks/unit_paths.py --batch 32 --repeats 5

For each 3x3 unit shape of ResNet-18 (input channels, output channels, stride, input size) and each
kind of mixing (dyconv: K = 4; odconv: K = 1 with spatial attention; odconv4x: K = 4 with spatial
attention) it prints the time of each path, forward + backward and forward alone, as a ratio to a
static convolution of the same shape, and the path ``choose_path`` picks. This is what the
cost-model weights in ``mixing.py`` were calibrated on.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from dynlab.layers import mixing
from dynlab.layers._unit import ConvUnit

SHAPES = {
    "imagenet64": [(64, 64, 1, 16), (64, 128, 2, 16), (128, 128, 1, 8), (128, 256, 2, 8), (256, 256, 1, 4),
                   (256, 512, 2, 4), (512, 512, 1, 2)],
    "small32": [(64, 64, 1, 32), (64, 128, 2, 32), (128, 128, 1, 16), (128, 256, 2, 16), (256, 256, 1, 8),
                (256, 512, 2, 8), (512, 512, 1, 4)],
}
KINDS = {"dyconv": (4, False), "odconv": (1, True), "odconv4x": (4, True)}


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


def run(batch, repeats, settings, kinds, device="cpu"):
    g = torch.Generator().manual_seed(0)

    def rand(*shape, normal=True):
        return (torch.randn if normal else torch.rand)(*shape, generator=g).to(device)

    for setting in settings:
        print(f"\n### {setting}, batch {batch}, {device}: time / static conv (train = forward + backward; "
              "infer = forward)\n")
        print("| kind | C_in->C_out s size | path | train | infer | auto |")
        print("| --- | --- | --- | ---: | ---: | --- |")
        for c_in, c_out, stride, size in SHAPES[setting]:
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
                paths = ["grouped", "unfold", "unfold_dense"] + ([] if has_spatial or count == 1 else ["dense"])
                if count == 1:
                    paths.remove("unfold_dense")
                fns = {"static": (conv_train, conv_infer)}
                for path in paths:
                    def train(path=path):
                        mixing.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path).sum().backward()

                    def infer(path=path):
                        with torch.no_grad():
                            mixing.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path)
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
                auto = mixing.choose_path(unit, x, count, has_spatial)
                if count == 1 and auto == "unfold_dense":  # one kernel: the same algorithm, listed as unfold
                    auto = "unfold"
                for path in paths:
                    t, i = (statistics.median(v) for v in results[path])
                    print(f"| {kind} | {c_in}->{c_out} s{stride} {size}x{size} | {path} | {t / base_t:.2f} | "
                          f"{i / base_i:.2f} | {'<-' if path == auto else ''} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="float32 on either")
    args = parser.parse_args(argv)
    run(args.batch, args.repeats, args.settings, args.kinds, args.device)


if __name__ == "__main__":
    main()
