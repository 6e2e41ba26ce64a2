"""Building ``orient``'s stacked rotated kernels: R strided copies and a concatenation, or one gather.

    python -m benchmarks orient

For ResNet-18's 3x3 weights (C, C, 3, 3), C = 64 ... 512: the time to build the (4 C, C, 3, 3)
kernels of the stacked convolution without gradients (inference) and with their backward (training),
the old way (``torch.rot90`` copies stacked by ``stack_for_dense_conv``) and the new one
(``stacked_oriented_kernels``, one ``index_select``), median of 10 after a warm-up, and the
convolution they feed (batch 32, the map size of that stage at 64x64 input) for scale.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from ._timing import median_ms
from dynlab.kernels.allocator import keep_freed_memory
from dynlab.kernels.orient import rotation_index, stacked_oriented_kernels
from dynlab.kernels.products import stack_for_dense_conv
from dynlab.layers.orient import oriented_kernels


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    keep_freed_memory()  # as fit and dynlab bench run
    print("| weight | rot90 + stack, inference ms | gather, inference ms | rot90 + stack, fwd+bwd ms "
          "| gather, fwd+bwd ms | the stacked convolution's forward ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for channels, size in ((64, 16), (128, 8), (256, 4), (512, 2)):
        weight = torch.randn(channels, channels, 3, 3, requires_grad=True)
        index = rotation_index(channels, 3, 2)
        grad = torch.randn(4 * channels, channels, 3, 3)

        def old():
            return stack_for_dense_conv(oriented_kernels(weight, 2), 1)

        def new():
            return stacked_oriented_kernels(weight, index)

        row = []
        for build in (old, new):
            with torch.no_grad():
                row.append(median_ms(build))
        for build in (old, new):
            row.append(median_ms(lambda: torch.autograd.grad(build(), weight, grad)))
        x = torch.randn(32, channels, size, size)
        with torch.no_grad():
            kernels = new()
            row.append(median_ms(lambda: F.conv2d(x, kernels, padding=1)))
        print(f"| ({channels}, {channels}, 3, 3) | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)
