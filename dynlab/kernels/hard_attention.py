"""``hard`` at inference: only the output channels some sample's gates open are convolved.

A closed gate makes its output channel exactly zero, so without gradients the unit gathers the open
filters, convolves with them alone and puts the result back among zeros, with the unit's own
BatchNorm (``gate_after_norm``) folded into the gathered weights. With gradients on (training,
Grad-CAM) it computes the masked formula of ``dynlab.layers.hard_attention``.

Whether that saves time depends on the maps. On the 56x56 to 7x7 maps of a 224x224 input a
convolution's arithmetic outweighs reading its weight, and skipping half the channels pays for the
gate networks. On the 16x16 to 2x2 maps of a 64x64 input a convolution with one sample costs about
one read of its weight, which the gather reads too, and the gate networks cost more than the skipped
channels save. ``python -m benchmarks hard`` measures both.
"""
from __future__ import annotations

import torch

from ..layers.hard_attention import GatedConv
from ..layers.unit import spread


class FastGatedConv(GatedConv):
    """``GatedConv`` that, without gradients, convolves only the open output channels.

    Under ``torch.compile`` it computes every channel and multiplies by the gates, as training does:
    which channels to skip is known only at run time, and the skip would break the graph in every unit
    (and recompile it for every shape).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled() or torch.compiler.is_compiling() or self.groups != 1:
            return super().forward(x)
        self.check_input(x)
        return self._executed_forward(x, self._open_gates(x))

    def _open_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The gates as booleans, (B, C_out): ``gates`` at inference, without its float copy."""
        opened = self.gate_probabilities(x) > 0.5
        if self.record_attention:
            self._record(gates=opened.to(x.dtype))
        self._last_gates = opened
        self.aux_term = None
        return opened

    def _executed_forward(self, x: torch.Tensor, opened: torch.Tensor) -> torch.Tensor:
        """Convolve the open output channels; the rest of the output is zero.

        With one sample every convolved channel is open, so its gate, exactly 1, is not multiplied in.
        """
        weight, bias = self._inference_operands()
        index = (opened[0] if x.shape[0] == 1 else opened.any(dim=0)).nonzero().squeeze(1)
        if index.numel() == self.out_channels:  # nothing to skip
            y = self.conv(x, weight, bias)
            return y if x.shape[0] == 1 else y.mul_(spread(opened, self.dim))
        out = x.new_zeros(x.shape[0], self.out_channels, *self.output_shape(x))
        if index.numel() == 0:  # every channel closed: nothing to compute
            return out
        partial = self.conv(x, self._open_filters(weight, index), bias.index_select(0, index))
        if x.shape[0] > 1:
            partial.mul_(spread(opened.index_select(1, index), self.dim))
        return out.index_copy_(1, index, partial)

    def _inference_operands(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias with the unit's own BatchNorm (inference statistics) folded in, kept until a
        parameter or statistic changes (an optimiser step or ``load_state_dict`` bumps its version)."""
        norm = self.norm
        sources = [self.weight, self.bias] + ([] if norm is None else
                                              [norm.running_mean, norm.running_var, norm.weight, norm.bias])
        key = tuple(None if t is None else (id(t), t._version, t.dtype, t.device) for t in sources)
        cached = self.__dict__.get("_operands")
        if cached is not None and cached[0] == key:
            return cached[1]
        weight = self.weight.detach()
        bias = self.bias.detach() if self.bias is not None else weight.new_zeros(self.out_channels)
        if norm is not None:
            scale = torch.rsqrt(norm.running_var + norm.eps)
            if norm.weight is not None:
                scale = scale * norm.weight.detach()
            shift = -norm.running_mean * scale + (norm.bias.detach() if norm.bias is not None else 0.0)
            weight = weight * scale.reshape(-1, *[1] * (weight.dim() - 1))
            bias = bias * scale + shift
        operands = (weight.contiguous(), bias.contiguous())
        self.__dict__["_operands"] = (key, operands)
        return operands

    def _open_filters(self, weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The filters ``index`` of ``weight``, gathered into a scratch buffer kept between calls (a gather
        into freshly allocated, page-faulted memory would cost as much as the channels it saves)."""
        buffer = self.__dict__.get("_filter_buffer")
        if buffer is None or buffer.shape != weight.shape or buffer.dtype != weight.dtype \
                or buffer.device != weight.device or buffer.is_inference() != torch.is_inference_mode_enabled():
            buffer = self.__dict__["_filter_buffer"] = torch.empty_like(weight)
        return torch.index_select(weight, 0, index, out=buffer[:index.numel()])

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_filter_buffer", None)  # scratch memory, not state
        state.pop("_operands", None)
        return state
