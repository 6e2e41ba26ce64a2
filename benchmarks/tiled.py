"""Per-sample kernels aggregated and applied in cache-sized tiles of output channels, against the paths.

    python -m benchmarks tiled                        # ResNet-18's 3x3 unit shapes at 64x64, batch 32
    python -m benchmarks tiled --tile-kib 256 1024 --repeats 5

The lead of issue 22 for the full-width units: ``unfold`` (``dynlab.kernels.per_sample``) writes all
B per-sample kernels to memory and reads them back, which on the deep units is memory traffic, not
arithmetic. Here the kernels of a few output channels at a time are aggregated, multiplied by the
unfolded input and dropped while they are still in the CPU's cache, forward and backward:

    for each tile T of output channels:
        W_b[T] = sum_k a_bk W_k[T]                       (B, |T|, C_in k^2), tile-sized
        y_b[T] = W_b[T] cols_b                           one batched product
    backward, per tile: dW_b[T] = dy_b[T] cols_b^T, then da_b += <dW_b[T], W_k[T]>,
        dW_k[T] = sum_b a_bk dW_b[T] and dcols_b += W_b[T]^T dy_b[T]

Eager PyTorch runs each tile as its own few operations, so the tile count is Python overhead; the
tile size (``--tile-kib``: the bytes of one tile's B kernels) trades that against the cache. It
prints, per unit shape, forward + backward as a ratio to a static convolution for each tile size,
beside the best path of ``per_sample`` (dyconv's kind: K = 4, no spatial attention). It is an
experiment, kept here with its result (``benchmarks/results/README.md``), not a path of the library.
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from dynlab.bench import machine_info
from dynlab.kernels import per_sample
from dynlab.kernels.im2col import unfold
from dynlab.layers.unit import ConvUnit

from ._timing import median_ms
from .paths import SHAPES, UNITS_PER_SHAPE


def tile_channels(batch: int, kernel_size: int, tile_bytes: int, out_channels: int) -> int:
    """Output channels per tile so that the tile's B kernels take about ``tile_bytes`` in float32."""
    return max(1, min(out_channels, tile_bytes // (4 * batch * kernel_size)))


class TiledPerSample(torch.autograd.Function):
    """y_b = conv(x_b, sum_k a_bk W_k) for a 2D, ungrouped unit, the kernels built tile by tile."""

    @staticmethod
    def forward(ctx, x, kernels, attention, unit, channels):
        ctx.unit, ctx.channels = unit, channels
        ctx.save_for_backward(x, kernels, attention)
        cols = unfold(unit, x)  # (B, D, L)
        flat = kernels.reshape(kernels.shape[0], kernels.shape[1], -1)  # (K, C_out, D)
        tiles = [torch.bmm(_aggregated(attention, flat, start, channels), cols)
                 for start in range(0, flat.shape[1], channels)]
        return torch.cat(tiles, dim=1).reshape(x.shape[0], unit.out_channels, *unit.output_shape(x))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, kernels, attention = ctx.saved_tensors
        unit, channels = ctx.unit, ctx.channels
        batch, count = attention.shape
        with torch.enable_grad():
            leaf = x.detach().requires_grad_()
            cols_graph = unfold(unit, leaf)
        cols = cols_graph.detach()
        flat = kernels.reshape(count, kernels.shape[1], -1)
        grad = grad.reshape(batch, unit.out_channels, -1)  # (B, C_out, L)
        grad_cols = torch.zeros_like(cols)
        grad_attention = torch.zeros_like(attention)
        grad_kernels = torch.empty_like(flat)
        cols_t = cols.transpose(1, 2)
        for start in range(0, flat.shape[1], channels):
            stop = min(start + channels, flat.shape[1])
            weights = _aggregated(attention, flat, start, channels)  # (B, c, D), rebuilt in cache
            grad_tile = grad[:, start:stop]
            grad_cols.baddbmm_(weights.transpose(1, 2), grad_tile)
            grad_weights = torch.bmm(grad_tile, cols_t).reshape(batch, -1)  # (B, c D)
            tile = flat[:, start:stop].reshape(count, -1)  # (K, c D)
            grad_attention.addmm_(grad_weights, tile.t())
            grad_kernels[:, start:stop] = (attention.t() @ grad_weights).reshape(count, stop - start, -1)
        grad_x, = torch.autograd.grad(cols_graph, leaf, grad_cols)
        return grad_x, grad_kernels.reshape(kernels.shape), grad_attention, None, None


def _aggregated(attention, flat, start, channels):
    """The B per-sample kernels of output channels [start, start + channels): (B, c, D)."""
    tile = flat[:, start:start + channels]
    return (attention @ tile.reshape(tile.shape[0], -1)).reshape(attention.shape[0], tile.shape[1], -1)


def tiled_per_sample(unit: ConvUnit, x, kernels, attention, tile_bytes: int):
    channels = tile_channels(x.shape[0], kernels[0, 0].numel(), tile_bytes, unit.out_channels)
    return TiledPerSample.apply(x, kernels, attention, unit, channels)


def run(batch: int, repeats: int, tile_kib: list[int], count: int = 4) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for (c_in, c_out, stride, size), units in zip(SHAPES["imagenet64"], UNITS_PER_SHAPE):
        unit = ConvUnit(c_in, c_out, 3, stride=stride, padding=1)
        x = torch.randn(batch, c_in, size, size, generator=g).requires_grad_()
        static = torch.randn(c_out, c_in, 3, 3, generator=g).requires_grad_()
        kernels = torch.randn(count, c_out, c_in, 3, 3, generator=g).requires_grad_()
        attention = torch.rand(batch, count, generator=g).requires_grad_()
        fns = {"static": lambda: F.conv2d(x, static, None, stride, 1).sum().backward()}
        for path in per_sample.applicable_paths(count, False):
            fns[path] = (lambda path=path: per_sample.mix_kernels_per_sample(
                unit, x, kernels, attention, None, path).sum().backward())
        for kib in tile_kib:
            fns[f"tiled {kib} KiB"] = (lambda kib=kib: tiled_per_sample(
                unit, x, kernels, attention, kib * 1024).sum().backward())
        times = {name: [] for name in fns}
        for _ in range(repeats):  # interleaved, so that a slow spell of the machine hits every one
            for name, fn in fns.items():
                times[name].append(median_ms(fn, 1))
        ms = {name: statistics.median(t) for name, t in times.items()}
        paths = [p for p in ms if p in per_sample.PATHS]
        best = min(paths, key=ms.get)
        rows.append({"shape": f"{c_in}->{c_out} s{stride} {size}x{size}", "units": units, "ms": ms, "best": best})
    return rows


def table(rows: list[dict], tile_kib: list[int]) -> str:
    tiled = [f"tiled {kib} KiB" for kib in tile_kib]
    lines = ["| unit | units | best path | best path / static | " + " | ".join(f"{t} / static" for t in tiled) + " |",
             "| --- | ---: | --- | ---: | " + " | ".join("---:" for _ in tiled) + " |"]
    for r in rows:
        ms = r["ms"]
        lines.append(f"| {r['shape']} | {r['units']} | {r['best']} | {ms[r['best']] / ms['static']:.2f} | "
                     + " | ".join(f"{ms[t] / ms['static']:.2f}" for t in tiled) + " |")
    totals = {name: sum(r["units"] * r["ms"][name] for r in rows) for name in ["static", *tiled]}
    best_total = sum(r["units"] * r["ms"][r["best"]] for r in rows)
    lines.append(f"| all 16 units | 16 | | {best_total / totals['static']:.2f} | "
                 + " | ".join(f"{totals[t] / totals['static']:.2f}" for t in tiled) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks tiled", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed forward + backward passes per median")
    parser.add_argument("--tile-kib", type=int, nargs="+", default=[256, 1024, 4096],
                        help="bytes of one tile's per-sample kernels, in KiB (default 256 1024 4096)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or any(k < 1 for k in args.tile_kib):
        parser.error("--batch, --repeats and every --tile-kib must be at least 1")
    m = machine_info("cpu")
    print(f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} threads; ResNet-18's 3x3 units at "
          f"64x64 (ImageNet stem), batch {args.batch}, K = 4; forward + backward over a static convolution, "
          f"median of {args.repeats}\n")
    print(table(run(args.batch, args.repeats, args.tile_kib), args.tile_kib))
    return 0
