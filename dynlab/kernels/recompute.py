"""Operands rebuilt in backward instead of kept: the memory side of the per-sample-kernel paths.

A per-sample-kernel path multiplies two large intermediate tensors built from small inputs: the
unfolded input (k^d times the input) and the per-sample kernels (B times the kernel). Autograd keeps
both for backward, which made a dynamic ResNet-18's training step hold 3 to 4 times the activation
memory of a plain one. ``rebuilt_operands`` keeps only the small inputs (the input, the shared
kernels, the attentions) and builds the operands again in backward, where they live for one unit at
a time. The rebuild is the cheap part (a strided copy, a (B, K) x (K, weights) product); the large
product itself is not recomputed. Values and gradients are those of the plain composition.

Small operands are kept as plain autograd keeps them (``KEEP_UP_TO``): on the course's width-16
models a rebuild saved a few MiB and cost more than the product it served, in the Python of its
backward (``python -m benchmarks course``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

Operands = Sequence[torch.Tensor]

#: operands of at most this many elements in all are kept for backward, not rebuilt (16 MiB of float32)
KEEP_UP_TO = 2 ** 22


class _RebuiltOperands(torch.autograd.Function):
    @staticmethod
    def forward(ctx, build, op, op_backward, *inputs):
        ctx.build, ctx.op_backward = build, op_backward
        ctx.autocast = _autocast_state(next(t for t in inputs if t is not None).device.type)
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            return op(*build(*inputs))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        inputs = [None if t is None else t.detach().requires_grad_(needs)
                  for t, needs in zip(ctx.saved_tensors, ctx.needs_input_grad[3:])]
        device_type, dtype, enabled = ctx.autocast
        with torch.autocast(device_type, dtype=dtype, enabled=enabled):  # the forward's precision
            with torch.enable_grad():
                operands = ctx.build(*inputs)
            operand_grads = ctx.op_backward(grad, *operands)
        wanted = [t for t in inputs if t is not None and t.requires_grad]
        pairs = [(o, g.to(o.dtype)) for o, g in zip(operands, operand_grads) if g is not None and o.requires_grad]
        grads = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True)
                     if pairs and wanted else [None] * len(wanted))
        return (None, None, None, *[next(grads) if t is not None and t.requires_grad else None for t in inputs])


def _autocast_state(device_type: str) -> tuple[str, torch.dtype, bool]:
    """(device type, autocast dtype, whether autocast is on) for tensors on ``device_type``."""
    if device_type not in ("cpu", "cuda"):
        return "cpu", torch.bfloat16, False
    return device_type, torch.get_autocast_dtype(device_type), torch.is_autocast_enabled(device_type)


def kept(size: int | None) -> bool:
    """Whether operands of ``size`` elements in all are kept for backward (None: size unknown, rebuilt)."""
    return size is not None and size <= KEEP_UP_TO


def rebuilt_operands(build: Callable[..., Operands], op: Callable[..., torch.Tensor],
                     op_backward: Callable[..., Operands], *inputs: torch.Tensor | None,
                     size: int | None = None) -> torch.Tensor:
    """``op(*build(*inputs))``, keeping ``inputs`` for backward instead of the operands ``build`` makes.

    ``op_backward(grad, *operands)`` returns the gradient of each operand (None where not needed).
    ``size``: the number of elements ``build`` makes, where the caller knows it; up to ``KEEP_UP_TO``
    the operands are kept, as by the plain composition. Without gradients to compute, it is the plain
    composition; so it is under ``torch.compile``, which cannot trace the nested ``autograd.grad`` of
    the rebuild and chooses by itself which intermediates to keep for backward and which to recompute.
    """
    if (not torch.is_grad_enabled() or torch.compiler.is_compiling() or kept(size)
            or not any(t is not None and t.requires_grad for t in inputs)):
        return op(*build(*inputs))
    return _RebuiltOperands.apply(build, op, op_backward, *inputs)


def matmul_backward(grad: torch.Tensor, left: torch.Tensor, right: torch.Tensor):
    """Gradients of ``left @ right`` for operands of the same batch shape (no broadcasting)."""
    return (grad @ right.transpose(-1, -2) if left.requires_grad else None,
            left.transpose(-1, -2) @ grad if right.requires_grad else None)


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype an autocast-aware op computes in here: the autocast dtype where it is on, else the tensors'."""
    _, autocast_dtype, autocast_on = _autocast_state(tensors[0].device.type)
    if autocast_on:
        return autocast_dtype
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype
