"""Float32 against bfloat16 autocast on this CPU: the Adiac 1D ResNet's training step, per variant.

    python -m benchmarks precision                    # every variant, batch 16 (the Adiac recipe's)
    python -m benchmarks precision --variants base odconv --repeats 5

Both precisions of a variant run side by side, interleaved, in one process; the table gives the
median step time of each and their ratio. Where the CPU lacks bfloat16 matrix units (AMX), bfloat16
is emulated and slower: that is why ``dynlab.device`` only picks it where they exist (its answer here
is printed first).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from dynlab import device, layers
from dynlab.models.timeseries import tsresnet


def step_times(variant: str, batch: int, steps: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = tsresnet(variant)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, 176), torch.randint(0, 37, (batch,))

    def step(bf16: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    times = {False: [], True: []}
    for bf16 in (False, True):  # warm-up
        step(bf16)
    for _ in range(repeats):
        for bf16 in (False, True):
            start = time.perf_counter()
            for _ in range(steps):
                step(bf16)
            times[bf16].append((time.perf_counter() - start) / steps)
    return {"fp32": statistics.median(times[False]) * 1e3, "bf16": statistics.median(times[True]) * 1e3}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=layers.names(), choices=layers.names())
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"CPU: AMX {'present' if device.cpu_has_bf16_matrix_units() else 'absent'}; dynlab trains here in "
          f"{'bf16 autocast' if device.cpu_bf16_autocast() else 'float32'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"\ntsresnet training step (forward, backward, Adam), batch {args.batch}, length 176; median of "
          f"{args.repeats} interleaved repeats of {args.steps} steps\n")
    print("| variant | float32 ms | bf16 autocast ms | float32 / bf16 |")
    print("| --- | ---: | ---: | ---: |")
    for variant in args.variants:
        t = step_times(variant, args.batch, args.steps, args.repeats)
        print(f"| {variant} | {t['fp32']:.1f} | {t['bf16']:.1f} | {t['fp32'] / t['bf16']:.2f} |", flush=True)
