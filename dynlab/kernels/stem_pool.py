"""The ImageNet stem's max pool, computed through channels-last memory on the CPU.

PyTorch's CPU max pool over an NCHW tensor works one channel plane at a time, without vector
instructions; over a channels-last tensor it vectorizes across channels, so the stem's pool runs
through a channels-last copy (``python -m benchmarks pool`` times both). Its backward scatters the
gradient through the forward's indices with the NCHW kernel, which was the faster of the two.

Values, indices and gradients are ``nn.MaxPool2d``'s, ties included: both kernels keep the first
maximum of a window, and after the stem's ReLU many windows are all zeros. On other devices, under
``torch.compile``, for channels-last inputs and for the options the stem does not use (dilation,
ceil mode, returned indices) it is ``nn.MaxPool2d`` itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


class _PoolThroughChannelsLast(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding):
        out, indices = torch.ops.aten.max_pool2d_with_indices(
            x.contiguous(memory_format=torch.channels_last), kernel_size, stride, padding)
        ctx.save_for_backward(indices.contiguous())
        ctx.geometry = (x.shape, kernel_size, stride, padding)
        return out.contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        shape, kernel_size, stride, padding = ctx.geometry
        # the NCHW kernel reads only the input's shape; the indices say where each maximum was
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(), grad.new_empty(shape), kernel_size, stride, padding, [1, 1], False, indices)
        return grad_x, None, None, None


class StemMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that pools NCHW inputs on the CPU through a channels-last copy (see the module doc)."""

    def _through_channels_last(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous()
                and not x.is_contiguous(memory_format=torch.channels_last)
                and _pair(self.dilation) == (1, 1) and not self.ceil_mode and not self.return_indices
                and not torch.compiler.is_compiling())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._through_channels_last(x):
            return super().forward(x)
        kernel_size, stride, padding = (list(_pair(v)) for v in (self.kernel_size, self.stride, self.padding))
        if torch.is_grad_enabled() and x.requires_grad:
            return _PoolThroughChannelsLast.apply(x, kernel_size, stride, padding)
        return F.max_pool2d(x.contiguous(memory_format=torch.channels_last), kernel_size, stride,
                            padding).contiguous()
