"""``hard`` at inference on one sample: MACs and wall time against the share of gates open, beside ``base``.

    python -m benchmarks hard                          # 64x64 and 224x224; open rates 1, 0.75, 0.5, 0.25
    python -m benchmarks hard --sizes 64 --rates 0.5 --repeats 50

The seed's first argument for dynamic networks is that they spend less on easy inputs. Trained gates
open what an input needs; here the share open is forced instead (``dynlab.bench.force_open_rate``: gate
weights zeroed, biases set), so that cost can be read against it. ResNet-18 at full width with the
ImageNet stem, gates after the unit's own normalisation as the course recipe trains them, one sample,
no gradients, ``base`` timed in turn with ``hard`` in the same process (``dynlab.bench.hard_open_rates``).
Per open rate it prints, as ratios to ``base``, the executed MACs (the kit's count, ``dynlab.flops``:
closed output channels skipped, which is what the fast path ``dynlab.kernels.hard_attention`` convolves
where they come to ``skip_at_least`` MACs a sample) and the wall time (below 1.00, ``hard`` answers
faster than the static network), and the largest difference between the fast path's output and the plain
layers' masked computation (every channel convolved, then multiplied by its gate), which must stay
within float tolerance.

``--course`` times the shipped course models of ``hard`` instead (``checkpoints/course``: trained gates,
batches of the course profile, test samples): the library's unit against the plain masked layer on the
same weights, in turn, with the share of channels open for some sample of a batch in each unit.

    python -m benchmarks hard --course
"""
from __future__ import annotations

import argparse

import torch

from dynlab import profiles
from dynlab.bench import hard_open_rates, interleaved_ms, machine_info


def table(rows: list[dict]) -> list[str]:
    lines = ["| open rate | executed MACs | time | max abs difference to the masked layers |",
             "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['open_rate']:.2f} | {r['executed_mac_ratio']:.2f} | {r['time_ratio']:.2f} | "
              f"{r['max_difference']:.1e} |" for r in rows]
    return lines


def course_models(repeats: int, batches: int = 8) -> list[str]:
    """Lines: each task's shipped ``hard`` model, the fast unit against the plain masked layer."""
    import copy

    from dynlab.experiments import cell_data
    from dynlab.experiments.course_models import course_cell, load_course_network, manifest
    from dynlab.kernels.hard_attention import FastGatedConv
    from dynlab.layers import GatedConv

    lines = []
    for task in ("classification", "segmentation", "timeseries"):
        data = cell_data(course_cell("hard", task), manifest()[1].get("limit"))
        fast = load_course_network("hard", task, data=data)
        plain = copy.deepcopy(fast)
        for unit in plain.modules():
            if isinstance(unit, FastGatedConv):
                unit.__class__ = GatedConv
        size = profiles.get_profile("quick").task(task).batch_size
        xs = [torch.stack([data.test[i][0] for i in range(start, start + size)])
              for start in range(0, min(batches * size, len(data.test) - size + 1), size)]
        every_batch = {name: (lambda batches, model=model: [model(x) for x in batches])
                       for name, model in (("fast", fast), ("plain", plain))}
        ms = interleaved_ms(every_batch, xs, repeats)
        with torch.no_grad():
            difference = max(float((fast(x) - plain(x)).abs().max()) for x in xs)
        union = [u.last_union_rate for u in fast.modules() if isinstance(u, GatedConv)]
        lines.append(f"| {task} | {size} | {ms['fast'] / len(xs):.1f} | {ms['plain'] / len(xs):.1f} | "
                     f"{ms['fast'] / ms['plain']:.2f} | {min(union):.2f}-{max(union):.2f} | {difference:.1e} |")
    return ["| task | batch | library's unit ms | plain masked layer ms | ratio | share open (batch union) | "
            "max abs difference |", "| --- | ---: | ---: | ---: | ---: | --- | ---: |", *lines]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224], help="input sizes, square (default 64 224)")
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.25],
                        help="shares of each unit's gates forced open (default 1 0.75 0.5 0.25)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls of each model per median (default 30)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--course", action="store_true",
                        help="the shipped course models of hard instead: the library's unit against the plain layer")
    args = parser.parse_args(argv)
    if any(not 0.0 <= rate <= 1.0 for rate in args.rates):
        parser.error(f"--rates are shares of gates open, each in [0, 1]; got {args.rates}")
    if args.threads:
        torch.set_num_threads(args.threads)
    m = machine_info("cpu")
    print(f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} threads; ratios to base, "
          f"median of {args.repeats} interleaved calls")
    if args.course:
        print("\nThe shipped course models of hard, 8 test batches each; ms a batch\n")
        print("\n".join(course_models(args.repeats)))
        return 0
    for size in args.sizes:
        rows = hard_open_rates(size, args.rates, repeats=args.repeats)
        print(f"\nResNet-18, ImageNet stem, {size}x{size}, batch 1 (base: {rows[0]['base_ms']:.2f} ms)\n")
        print("\n".join(table(rows)))
    return 0
