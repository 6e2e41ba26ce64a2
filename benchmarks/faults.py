"""Page faults and kernel time of a training step, with and without ``dynlab.kernels.allocator.keep_freed_memory``.

    python -m benchmarks faults                          # base and dyconv, 2 rounds
    python -m benchmarks faults --variants base odconv dyconv --rounds 3

Each round runs two fresh processes, one with glibc's defaults and one with freed memory kept, each
timing 8 interleaved training steps of every variant (ImageNet stem, 64x64, batch 32) after 2 warm-up
steps. Per variant it prints the median step time, and per step the minor page faults and the time
the process spent in the kernel (``getrusage``: summed over threads, so it can exceed the step's part
of the wall time). Page faults and kernel time are the direct measure; step times move from process
to process on a shared machine by more than the difference.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys


def child(keep: bool, variants: list[str], steps: int = 8) -> dict:
    from dynlab.kernels.allocator import keep_freed_memory

    if keep and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() did not take effect here (not glibc on Linux?)")
    from dynlab.bench import Runner, inputs

    runners = {v: Runner(v, "imagenet", 64, "cpu", False, False) for v in variants}
    x, y = inputs(32, 64, "cpu")
    for runner in runners.values():
        runner.train_step(x, y)
        runner.train_step(x, y)
    times = {v: [] for v in variants}
    faults = dict.fromkeys(variants, 0)
    kernel = dict.fromkeys(variants, 0.0)
    for i in range(steps):
        for v in (variants if i % 2 else variants[::-1]):
            before = resource.getrusage(resource.RUSAGE_SELF)
            times[v].append(runners[v].train_step(x, y))
            after = resource.getrusage(resource.RUSAGE_SELF)
            faults[v] += after.ru_minflt - before.ru_minflt
            kernel[v] += after.ru_stime - before.ru_stime
    return {v: {"step_ms": 1e3 * statistics.median(times[v]), "faults": faults[v] / steps,
                "kernel_ms": 1e3 * kernel[v] / steps} for v in variants}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=["base", "dyconv"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=("default", "keep"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child == "keep", args.variants)))
        return
    print("| round | malloc | variant | step ms | page faults a step | kernel ms a step |")
    print("| ---: | --- | --- | ---: | ---: | ---: |")
    for round_ in range(1, args.rounds + 1):
        for mode in ("default", "keep"):
            out = subprocess.run([sys.executable, "-m", "benchmarks", "faults", "--child", mode, "--variants", *args.variants],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            label = "glibc defaults" if mode == "default" else "freed memory kept"
            for v, r in result.items():
                print(f"| {round_} | {label} | {v} | {r['step_ms']:.0f} | {r['faults']:.0f} | {r['kernel_ms']:.0f} |",
                      flush=True)
