"""The course's own models, as `make study` and the notebooks train them, against ``base``.

    python -m benchmarks course                          # every variant on every task
    python -m benchmarks course --tasks classification --variants base dyconv --repeats 9

For each task, every variant's network in the course profile (its width, stem, head and unit options,
as ``dynlab.experiments.build_model`` builds it) takes one training step on one batch of the task's
training data, as ``dynlab.engine.fit`` takes it (the recipe's optimizer, fused where PyTorch has it;
the loss with its label smoothing and the units' auxiliary loss; gradients clipped as the recipe
says), and one inference on the same batch. Every variant is timed beside ``base`` in one process, in
rotated order, the median of ``--repeats``. Per MAC = time ratio over MAC ratio (MACs by
``dynlab.flops``; ``hard``'s dense MACs, every gate open): 1.0 means a variant costs what its
multiply-accumulates predict. Float32, the threads torch picks unless ``--threads`` says.

``--units`` looks inside the per-sample-kernel variants (``dyconv``, ``odconv``, ``odconv4x``): each of
their units, on the input it gets in the course step, takes forward + backward on every exact path of
``dynlab.kernels.per_sample``, timed against a static convolution of its shape (the unit's time
includes its attention). With every unit on its best path and nothing outside the units counted (the
larger optimizer step), the step would take at least base's step plus the units' extra time over the
static convolutions: the last line gives that bound per MAC.

    python -m benchmarks course --units --tasks classification --variants dyconv

``--parts`` splits what ``hard``, ``dyconv``, ``odconv`` and ``odconv4x`` add over ``base`` into their
attention, the rest of their units and what lies outside the units (``course_parts``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from dynlab import kernels, layers, profiles
from dynlab.bench import machine_info
from dynlab.data.tasks import TASKS
from dynlab.device import prepare_model
from dynlab.engine.evaluate import logits_of
from dynlab.engine.optim import make_optimizer
from dynlab.experiments.pipeline import build_model, load_data
from dynlab.flops import cost
from dynlab.kernels.dyconv import FastDynamicConv
from dynlab.kernels.odconv import FastODConv
from dynlab.kernels.per_sample import applicable_paths, choose_path

from . import course_parts
from ._timing import median_ms

PROFILE = "quick"
#: the label the segmentation masks leave out of the loss (as ``fit``'s default ``ignore_index``)
IGNORE = 255


class CourseStep:
    """One variant's course model with the optimizer, loss and clipping its recipe trains with."""

    def __init__(self, variant: str, task: str, data, batch) -> None:
        recipe = profiles.get_profile(PROFILE).task(task).for_variant(variant)
        torch.manual_seed(0)
        self.model = prepare_model(build_model(variant, task, data, PROFILE), torch.device("cpu"))
        self.optimizer = make_optimizer(recipe.optimizer, self.model.parameters(), recipe.lr, recipe.weight_decay)
        self.loss = nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=recipe.label_smoothing)
        self.clip = recipe.clip_grad_norm
        self.x, self.y = batch
        self.macs = cost(self.model, (1, *data.sample_shape)).macs

    def train(self) -> float:
        self.model.train()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(logits_of(self.model(self.x)).float(), self.y) + layers.auxiliary_loss(self.model)
        loss.backward()
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return time.perf_counter() - start

    def infer(self) -> float:
        self.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            self.model(self.x)
        return time.perf_counter() - start


def task_batch(task: str):
    """(the task's data, its first batch of training samples, stacked): what every variant is timed on."""
    size = profiles.get_profile(PROFILE).task(task).batch_size
    data = load_data(task, "synthetic", PROFILE, limit=size)
    samples = [data.train[i] for i in range(size)]
    return data, (torch.stack([x for x, _ in samples]), torch.stack([torch.as_tensor(y) for _, y in samples]))


def measure(task: str, variants: list[str], repeats: int, warmup: int) -> list[dict]:
    """Each variant's median training step and inference on ``task``, with its ratios to ``base``."""
    data, batch = task_batch(task)
    steps = {v: CourseStep(v, task, data, batch) for v in variants}
    for step in steps.values():
        for _ in range(warmup):
            step.train()
            step.infer()
    train = {v: [] for v in variants}
    infer = {v: [] for v in variants}
    for r in range(repeats):
        for v in variants[r % len(variants):] + variants[:r % len(variants)]:
            train[v].append(steps[v].train())
            infer[v].append(steps[v].infer())
    t0, i0, m0 = statistics.median(train["base"]), statistics.median(infer["base"]), steps["base"].macs
    rows = []
    for v in variants:
        t, i, mac_ratio = statistics.median(train[v]), statistics.median(infer[v]), steps[v].macs / m0
        rows.append({"task": task, "variant": v, "batch": len(batch[0]), "macs": steps[v].macs, "mac_ratio": mac_ratio,
                     "train_ms": 1e3 * t, "train_per_mac": t / t0 / mac_ratio,
                     "infer_ms": 1e3 * i, "infer_per_mac": i / i0 / mac_ratio})
    return rows


def unit_paths(task: str, variant: str, repeats: int) -> str:
    """Markdown: each per-sample-kernel unit of ``variant``'s course model on every path, over a static conv."""
    data, batch = task_batch(task)
    step, base = CourseStep(variant, task, data, batch), CourseStep("base", task, data, batch)
    units = [m for m in step.model.modules() if isinstance(m, (FastDynamicConv, FastODConv))]
    inputs = {}

    def keep_input(unit, args, out):  # returns None, so the unit's output stays as it is
        inputs[unit] = args[0].detach()

    hooks = [u.register_forward_hook(keep_input) for u in units]
    step.train()
    for hook in hooks:
        hook.remove()
    lines = ["| unit input | C_out | auto | best path | auto / static | best / static |",
             "| --- | ---: | --- | --- | ---: | ---: |"]
    extra, static_total = 0.0, 0.0
    for unit in units:
        x = inputs[unit].clone().requires_grad_()
        static = torch.randn(unit.out_channels, unit.in_channels // unit.groups, *unit.kernel_size, requires_grad=True)
        has_spatial = isinstance(unit, FastODConv) and unit.attention.spatial_fc is not None
        count = unit.weight.shape[0]
        times = {"static": median_ms(lambda: unit.conv(x, static).sum().backward(), repeats)}
        for path in applicable_paths(count, has_spatial):
            unit.path = path
            times[path] = median_ms(lambda: unit(x).sum().backward(), repeats)
        unit.path = "auto"
        auto = choose_path(unit, x, count, has_spatial)
        best = min((p for p in times if p != "static"), key=times.get)
        extra += times[best] - times["static"]
        static_total += times["static"]
        lines.append(f"| {tuple(x.shape)} | {unit.out_channels} | {auto} | {best} | "
                     f"{times[auto] / times['static']:.2f} | {times[best] / times['static']:.2f} |")
    base.train()
    base_step = statistics.median([base.train() for _ in range(repeats)])
    bound = (base_step + extra / 1e3) / base_step / (step.macs / base.macs)
    lines.append(f"\n{len(units)} units: static convolutions {static_total:.1f} ms, best paths "
                 f"{static_total + extra:.1f} ms; base's step {1e3 * base_step:.1f} ms; with every unit on "
                 f"its best path and nothing outside the units added, {variant}'s step per MAC is at least {bound:.2f}")
    return "\n".join(lines)


def parts_table(task: str, variants: list[str], repeats: int, warmup: int) -> str:
    """Markdown: ``course_parts.table`` for ``variants``' course models on ``task``, after ``warmup`` steps."""
    data, batch = task_batch(task)
    steps = {v: CourseStep(v, task, data, batch) for v in ["base", *variants]}
    for step in steps.values():
        for _ in range(warmup):
            step.train()
            step.infer()
    return course_parts.table(steps, repeats)


def table(rows: list[dict]) -> str:
    """Markdown: one row per variant, its MACs, times and per-MAC ratios to ``base``."""
    lines = ["| variant | MACs/sample | MAC ratio | train ms | train per MAC | infer ms | infer per MAC |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['variant']} | {r['macs'] / 1e6:.1f} M | {r['mac_ratio']:.2f} | {r['train_ms']:.1f} | "
              f"{r['train_per_mac']:.2f} | {r['infer_ms']:.1f} | {r['infer_per_mac']:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks course", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--variants", nargs="+", choices=layers.names(), default=None, metavar="VARIANT",
                        help="variants beside base (default: all)")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per variant (median; default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    instead = parser.add_mutually_exclusive_group()
    instead.add_argument("--units", action="store_true",
                         help="each unit of dyconv, odconv and odconv4x on every per-sample path instead")
    instead.add_argument("--parts", action="store_true",
                         help="split what hard, dyconv, odconv and odconv4x add over base into attention and the rest")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    kernels.prepare_process()  # as fit trains
    variants = ["base"] + [v for v in (args.variants or layers.names()) if v != "base"]
    info = machine_info("cpu")
    print(f"course profile ('{PROFILE}'), float32; {info['cpu']}, {info['cores']} cores, {info['threads']} threads, "
          f"torch {info['torch']}; median of {args.repeats} after {args.warmup} warm-up steps; load average at the "
          f"start {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.units:
        for task in args.tasks:
            for variant in (v for v in variants if v in ("dyconv", "odconv", "odconv4x")):
                print(f"\n{task}, {variant}: forward + backward of each unit over a static convolution\n")
                print(unit_paths(task, variant, args.repeats))
        return 0
    if args.parts:
        for task in args.tasks:
            print(f"\n{task}: the extra time over base, split\n")
            print(parts_table(task, [v for v in variants if v in course_parts.VARIANTS], args.repeats, args.warmup))
        return 0
    for task in args.tasks:
        rows = measure(task, variants, args.repeats, args.warmup)
        print(f"\n{task} (batch {rows[0]['batch']}):\n\n{table(rows)}")
    return 0
