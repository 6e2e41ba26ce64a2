"""Speed, memory and MAC ratios of every variant's ResNet-18 to ``base``, measured side by side.

What it measures:

- **MAC ratio**: ``dynlab.flops.cost(model, (batch, 3, size, size)).macs`` over ``base``'s.
- **Training step**: forward, cross-entropy (+ the variant's auxiliary loss), backward and one Adam
  step (fused, from ``dynlab.engine.make_optimizer``, as ``fit`` trains). **Inference**: one forward in
  eval mode without gradients. Every variant's model is built once; each repeat times every variant
  once, in a rotated order (so no variant always runs first or after the same neighbour), after
  warm-up steps; the reported time is the median over repeats and the ratio is to ``base``'s median
  from the same run.
- **Per-MAC ratio** = time ratio / MAC ratio; the goal is at most 1.2 (``PER_MAC_GOAL``).
- **Peak memory of a training step**. On CPU, torch's allocations are invisible to ``tracemalloc``,
  so each variant runs in a fresh subprocess with glibc's mmap threshold fixed at 64 KiB (every tensor
  above it is mapped on allocation and returned to the system when freed, so resident memory follows
  live tensors): the figure is the peak resident set (``VmHWM``) during one steady-state training step
  (after a warm-up step, with the peak counter reset through ``/proc/self/clear_refs``) minus the
  resident set before the model was built (measured after a training step of a width-8 copy, so
  that the pages of torch's own code are already resident and not counted). It therefore counts
  parameters, gradients, Adam state, activations and temporaries. On CUDA it is the growth of
  ``torch.cuda.max_memory_allocated`` over a steady-state step (gradients, activations and temporaries:
  the weights and Adam state exist before it). The goal is at most 2 x base's x MAC ratio. Beside it
  the report splits off the part that only follows the parameter count (4 bytes a parameter for the
  gradient on CUDA; 16 on CPU: weight, gradient and two Adam moments) and gives the rest, activations
  and temporaries, as its own ratio: with K = 4 kernels ``dyconv`` and ``odconv4x`` have four times
  ``base``'s parameters, which no choice of algorithm can shrink.
- **Allocator**: the timings run with freed memory kept for reuse (``dynlab.kernels.allocator``), as ``fit``
  trains, so that no step faults its blocks of up to 32 MiB in afresh, whatever the process ran
  before; the report says so where it took effect (glibc on Linux).
- **hard at batch 1**: inference of ``hard`` with its gates forced to an open rate of exactly 0.5
  (gate weights zeroed, biases +-6 on alternate channels) against ``base``, interleaved; the goal is
  a wall-time ratio below 1.

Use ``main(argv)`` (the ``dynlab bench`` command, ``python -m benchmarks steps``), or ``run_benchmark(...)``
and ``format_report``; ``Runner``, ``build`` and ``inputs`` are the pieces the other benchmarks reuse.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from . import kernels
from .errors import DeviceError
from .engine import make_optimizer
from .kernels.per_sample import PATHS

PER_MAC_GOAL = 1.2
MEMORY_GOAL = 2.0
#: bytes a trainable parameter adds to the measured peak: weight, gradient and two Adam moments on CPU
#: (the whole process is measured); the gradient only on CUDA (growth over a step, see the module doc)
PARAMETER_STATE_BYTES = {"cpu": 16, "cuda": 4}
NUM_CLASSES = 200
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser`` (``dynlab bench`` and ``python -m benchmarks steps``)."""
    from . import layers
    from .cli import positive_int

    parser.add_argument("--variants", nargs="+", choices=layers.names(), default=None, metavar="VARIANT",
                        help="variants to time (base is always added; default: all)")
    parser.add_argument("--stem", choices=("imagenet", "small"), default="imagenet", help="ResNet-18 stem")
    parser.add_argument("--size", type=positive_int, default=64, help="input height and width (default 64)")
    parser.add_argument("--batch", type=positive_int, default=32, help="batch size (default 32)")
    parser.add_argument("--width", type=positive_int, default=64, help="ResNet width (64 is ResNet-18)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed repeats per variant (median; default 3)")
    parser.add_argument("--warmup", type=positive_int, default=1, help="untimed warm-up steps per variant (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models (CUDA)")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                        help="torch.compile mode (reduce-overhead replays CUDA graphs; default: default)")
    parser.add_argument("--path", choices=PATHS, default="auto",
                        help="per-sample-kernel path of every dyconv/odconv unit (default: auto, the cost model's)")
    parser.add_argument("--no-amp", action="store_true", help="on CUDA, run in fp32 instead of bf16 autocast")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--no-hard-batch1", action="store_true", help="skip the hard batch-1 inference check")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    return parser


# -- models and steps -------------------------------------------------------------------------------


def build(variant: str, stem: str, width: int, device: str, seed: int = 0):
    from .device import prepare_model
    from .models import resnet18

    torch.manual_seed(seed)
    return prepare_model(resnet18(variant, NUM_CLASSES, stem=stem, width=width), torch.device(device))


class Runner:
    """One variant's model, optimiser and (optionally compiled) forward, with a timed step and inference."""

    def __init__(self, variant, stem, width, device, amp, compile_model, compile_mode="default", path="auto"):
        self.variant = variant
        self.device = device
        self.amp = amp
        self.model = build(variant, stem, width, device)
        for module in self.model.modules():
            if hasattr(module, "path"):
                module.path = path
        self.optimizer = make_optimizer("adam", self.model.parameters(), lr=1e-3)  # as ``fit`` trains
        self.forward = torch.compile(self.model, mode=compile_mode) if compile_model else self.model
        # CUDA graphs are replayed per step; a new step must say so, or outputs of the last are overwritten
        self.graph_steps = compile_model and compile_mode == "reduce-overhead"

    def _begin_step(self):
        if self.graph_steps:
            torch.compiler.cudagraph_mark_step_begin()

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and self.device == "cuda")

    def _sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()

    def train_step(self, x, y) -> float:
        from .layers import auxiliary_loss

        self.model.train()
        self._sync()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        self._begin_step()
        with self._autocast():
            loss = F.cross_entropy(self.forward(x), y) + auxiliary_loss(self.model)
        loss.backward()
        self.optimizer.step()
        self._sync()
        return time.perf_counter() - start

    def inference(self, x) -> float:
        self.model.eval()
        self._sync()
        start = time.perf_counter()
        self._begin_step()
        with torch.no_grad(), self._autocast():
            self.forward(x)
        self._sync()
        return time.perf_counter() - start


def inputs(batch, size, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    if device == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=g).to(device)
    return x, y


# -- peak memory --------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(variant, stem, size, batch, width, threads, path="auto"):
    """Child process: peak resident growth (MiB) of one steady-state training step; see the module doc."""
    import ctypes

    if threads:
        torch.set_num_threads(threads)
    warm = Runner(variant, stem, 8, "cpu", amp=False, compile_model=False, path=path)
    warm.train_step(*inputs(2, size, "cpu"))  # page in the code of the same kernels, so it is not counted
    del warm
    x, y = inputs(batch, size, "cpu")
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc_trim(0)
    before = _status_kib("VmRSS")
    runner = Runner(variant, stem, width, "cpu", amp=False, compile_model=False, path=path)
    runner.train_step(x, y)
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM, the peak resident set, to the current resident set
    runner.train_step(x, y)
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - before) / 1024}))


def _peak_memory_cpu(variant, stem, size, batch, width, threads, path="auto") -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    code = (f"from dynlab.bench import memory_probe; "
            f"memory_probe({variant!r}, {stem!r}, {size}, {batch}, {width}, {threads!r}, {path!r})")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def _peak_memory_cuda(runner: Runner, x, y) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    runner.train_step(x, y)
    return (torch.cuda.max_memory_allocated() - start) / 2**20


# -- hard at batch 1 ----------------------------------------------------------------------------------


def force_open_rate(model, rate: float = 0.5) -> None:
    """Make every ``hard`` gate input-independent with a share ``rate`` of each unit's output channels open,
    spread evenly over the channels (gate weights zeroed, biases +6 for open and -6 for closed)."""
    from .layers import GatedConv

    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate (the share of gates open) must be in [0, 1], got {rate}")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, GatedConv):
                channels = torch.arange(m.out_channels, dtype=torch.float64)
                opened = torch.floor((channels + 1) * rate) > torch.floor(channels * rate)
                m.gate_logits.weight.zero_()
                m.gate_logits.bias.copy_(torch.where(opened, 6.0, -6.0))


def interleaved_ms(models: dict, x, repeats: int, device: str = "cpu", warmup: int = 3) -> dict:
    """Median inference wall time in ms of each model on ``x``, no gradients, the models taking turns in
    alternating order, so that a slow spell of the machine hits every one."""
    times = {name: [] for name in models}
    order = list(models)
    with torch.no_grad():
        for r in range(warmup + repeats):
            for name in (order if r % 2 else order[::-1]):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                models[name](x)
                if device == "cuda":
                    torch.cuda.synchronize()
                if r >= warmup:
                    times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def hard_batch1(stem, size, width, device, repeats) -> dict:
    """Inference wall time of ``hard`` at open rate 0.5 against ``base``, batch 1, interleaved."""
    from .layers import GatedConv

    models = {"base": build("base", stem, width, device), "hard": build("hard", stem, width, device)}
    force_open_rate(models["hard"], 0.5)
    x, _ = inputs(1, size, device)
    for m in models.values():
        m.eval()
    ms = interleaved_ms(models, x, repeats, device)
    rates = [m.last_open_rate for m in models["hard"].modules() if isinstance(m, GatedConv)]
    return {"base_ms": ms["base"], "hard_ms": ms["hard"], "ratio": ms["hard"] / ms["base"],
            "open_rate": sum(rates) / len(rates), "repeats": repeats, "passed": ms["hard"] < ms["base"]}


def vary_norm_statistics(model, seed: int = 0) -> None:
    """Give every BatchNorm running statistics and an affine map away from their initial ones, as training
    would, so that an untrained network's output depends on all of them (and a comparison can fail)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))


def hard_open_rates(size: int = 64, rates=(1.0, 0.75, 0.5, 0.25), stem: str = "imagenet", width: int = 64,
                    repeats: int = 30, gate_after_norm: bool = True) -> list[dict]:
    """``hard`` at inference on one sample against ``base``, its gates forced to each open rate in turn.

    One row per rate: the executed MACs (``dynlab.flops``: each unit's closed output channels skipped)
    and the wall time, each as a ratio to ``base``'s, and the largest difference between the output of
    the fast path (``dynlab.kernels``) and the plain layers' masked computation (every channel
    convolved, then multiplied by its gate) on the same weights. ``gate_after_norm`` as the course
    recipe trains it.
    """
    from .flops import count
    from .models import resnet18

    x, _ = inputs(1, size, "cpu")
    base = build("base", stem, width, "cpu").eval()
    vary_norm_statistics(base)
    rows = []
    for rate in rates:
        torch.manual_seed(0)
        fast = resnet18("hard", NUM_CLASSES, stem=stem, width=width, gate_after_norm=gate_after_norm).eval()
        vary_norm_statistics(fast)
        force_open_rate(fast, rate)
        with kernels.disabled():
            plain = resnet18("hard", NUM_CLASSES, stem=stem, width=width, gate_after_norm=gate_after_norm).eval()
        plain.load_state_dict(fast.state_dict())
        with torch.no_grad():
            difference = float((fast(x) - plain(x)).abs().max())
        dense, executed, _ = count(fast, x)
        base_macs = count(base, x)[0]
        ms = interleaved_ms({"base": base, "hard": fast}, x, repeats)
        rows.append({"size": size, "open_rate": rate, "executed_mac_ratio": executed / base_macs,
                     "dense_mac_ratio": dense / base_macs,
                     "base_ms": ms["base"], "hard_ms": ms["hard"], "time_ratio": ms["hard"] / ms["base"],
                     "max_difference": difference, "repeats": repeats})
    return rows


# -- the benchmark --------------------------------------------------------------------------------------


def machine_info(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version()}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_benchmark(variants=None, stem="imagenet", size=64, batch=32, width=64, repeats=3, warmup=1, device="cpu",
                  compile=False, amp=True, memory=True, hard_batch1_check=True, threads=None, log=None,
                  compile_mode="default", path="auto") -> dict:
    """Time every variant against ``base`` in one interleaved run; returns a dict for ``format_report``."""
    from . import layers
    from .flops import cost

    if threads:
        torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    kept_freed_memory = kernels.prepare_process()  # as ``fit`` trains
    log = log or (lambda message: None)
    names = ["base"] + [v for v in (variants or layers.names()) if v != "base"]
    load_start = os.getloadavg()
    runners = {v: Runner(v, stem, width, device, amp, compile, compile_mode, path) for v in names}
    macs = {v: cost(build(v, stem, width, "cpu"), (batch, 3, size, size)).macs for v in names}
    parameters = {v: sum(p.numel() for p in runners[v].model.parameters() if p.requires_grad) for v in names}
    x, y = inputs(batch, size, device)
    for v, runner in runners.items():
        start = time.perf_counter()
        for _ in range(warmup):
            runner.train_step(x, y)
            runner.inference(x)
        log(f"{v}: {warmup} warm-up steps in {time.perf_counter() - start:.1f} s")
    train = {v: [] for v in names}
    infer = {v: [] for v in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for v in order:
            train[v].append(runners[v].train_step(x, y))
            infer[v].append(runners[v].inference(x))
        log(f"repeat {r + 1}/{repeats} done")
    peak = {}
    if memory:
        for v in names:
            peak[v] = (_peak_memory_cpu(v, stem, size, batch, width, threads or torch.get_num_threads(), path)
                       if device == "cpu" else _peak_memory_cuda(runners[v], x, y))
        log("memory done")
    rows = []
    t0, i0 = statistics.median(train["base"]), statistics.median(infer["base"])
    for v in names:
        t, i = statistics.median(train[v]), statistics.median(infer[v])
        mac_ratio = macs[v] / macs["base"]
        row = {"variant": v, "macs": macs[v], "mac_ratio": mac_ratio,
               "train_ms": 1e3 * t, "train_ratio": t / t0, "train_per_mac": t / t0 / mac_ratio,
               "infer_ms": 1e3 * i, "infer_ratio": i / i0, "infer_per_mac": i / i0 / mac_ratio,
               "train_images_s": batch / t, "infer_images_s": batch / i}
        if memory:
            row["peak_mib"] = peak[v]
            row["memory_ratio"] = peak[v] / peak["base"]
            row["memory_limit"] = MEMORY_GOAL * mac_ratio
            row["parameter_state_mib"] = parameters[v] * PARAMETER_STATE_BYTES[device] / 2**20
            row["activation_mib"] = peak[v] - row["parameter_state_mib"]
            base_activations = peak["base"] - parameters["base"] * PARAMETER_STATE_BYTES[device] / 2**20
            row["activation_ratio"] = row["activation_mib"] / base_activations
        row["passed"] = (row["train_per_mac"] <= PER_MAC_GOAL and row["infer_per_mac"] <= PER_MAC_GOAL
                         and (not memory or row["memory_ratio"] <= row["memory_limit"]))
        rows.append(row)
    result = {"settings": {"stem": stem, "size": size, "batch": batch, "width": width, "repeats": repeats,
                           "warmup": warmup, "device": device, "compile": compile,
                           "compile_mode": compile_mode if compile else None, "path": path,
                           "amp": bool(amp and device == "cuda"), "channels_last": device == "cuda",
                           "kept_freed_memory": kept_freed_memory},
              "machine": machine_info(device), "rows": rows}
    if hard_batch1_check and "hard" in names:
        result["hard_batch1"] = hard_batch1(stem, size, width, device, max(15, 5 * repeats))
    result["load_average"] = {"start": load_start, "end": os.getloadavg()}
    return result


def format_report(result: dict) -> str:
    """Markdown: the settings, the machine, one row per variant and the hard batch-1 check."""
    s, m = result["settings"], result["machine"]
    memory = "peak_mib" in result["rows"][0]
    lines = [
        f"### ResNet-18, {s['stem']} stem, {s['size']}x{s['size']}, batch {s['batch']}, width {s['width']}, "
        f"{s['device']}" + (", bf16 autocast, channels-last" if s["amp"] else "")
        + (f", torch.compile (mode {s.get('compile_mode') or 'default'})" if s["compile"] else "")
        + (f", every unit on the {s['path']} path" if s.get("path", "auto") != "auto" else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['threads']} threads"
        + (f", {m['gpu']}" if "gpu" in m else "") + f"; median of {s['repeats']} interleaved repeats after "
        f"{s['warmup']} warm-up; load average {result['load_average']['start'][0]:.2f} at start, "
        f"{result['load_average']['end'][0]:.2f} at end"
        + ("; freed memory kept for reuse (`dynlab.kernels.allocator`)." if s.get("kept_freed_memory") else "."),
        "",
        "| variant | MAC ratio | train ms | train ratio | train per-MAC | infer ms | infer ratio | infer per-MAC "
        "| train img/s | infer img/s |"
        + (" peak MiB | memory ratio | memory limit | of which parameter state MiB | activation ratio |"
           if memory else "")
        + " goal met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        + (" ---: | ---: | ---: | ---: | ---: |" if memory else "") + " :---: |",
    ]
    for r in result["rows"]:
        line = (f"| {r['variant']} | {r['mac_ratio']:.2f} | {r['train_ms']:.0f} | {r['train_ratio']:.2f} | "
                f"{r['train_per_mac']:.2f} | {r['infer_ms']:.0f} | {r['infer_ratio']:.2f} | {r['infer_per_mac']:.2f} | "
                f"{r['train_images_s']:.1f} | {r['infer_images_s']:.1f} |")
        if memory:
            line += (f" {r['peak_mib']:.0f} | {r['memory_ratio']:.2f} | {r['memory_limit']:.2f} | "
                     f"{r['parameter_state_mib']:.0f} | {r['activation_ratio']:.2f} |")
        lines.append(line + (" yes |" if r["passed"] else " **no** |"))
    lines += ["", f"Goals: per-MAC ratio (time ratio / MAC ratio) <= {PER_MAC_GOAL} for training step and inference"
              + (f"; peak training-step memory ratio <= {MEMORY_GOAL} x MAC ratio (peak resident growth of a "
                 "steady-state step in a fresh process on CPU, max_memory_allocated on CUDA); the activation "
                 "ratio is the peak less the parameter state, against base's" if memory else "")
              + "."]
    h = result.get("hard_batch1")
    if h:
        lines += ["", f"hard at inference, batch 1, open rate {h['open_rate']:.2f}: {h['hard_ms']:.2f} ms vs base "
                  f"{h['base_ms']:.2f} ms, ratio {h['ratio']:.2f} (goal < 1: {'met' if h['passed'] else 'NOT met'}; "
                  f"median of {h['repeats']})."]
    return "\n".join(lines)


def main(argv=None) -> int:
    """``dynlab bench`` / ``python -m benchmarks steps``: print the markdown report."""
    parser = add_arguments(argparse.ArgumentParser(prog="dynlab bench", description=__doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    result = run_benchmark(
        variants=args.variants, stem=args.stem, size=args.size, batch=args.batch, width=args.width,
        repeats=args.repeats, warmup=args.warmup, device=args.device, compile=args.compile, amp=not args.no_amp,
        memory=not args.no_memory, hard_batch1_check=not args.no_hard_batch1, threads=args.threads,
        compile_mode=args.compile_mode, path=args.path,
        log=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(format_report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
