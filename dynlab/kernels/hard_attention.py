"""``hard`` at inference: only the output channels some sample's gates open are convolved.

A closed gate makes its output channel exactly zero, so without gradients the unit gathers the open
filters, convolves with them alone (normalised by the unit's own BatchNorm, ``gate_after_norm``, on
those channels only) and puts the result back among zeros. With gradients on (training, Grad-CAM) it
computes the masked formula of ``dynlab.layers.hard_attention``.

Whether that saves time depends on the maps. On the 56x56 to 7x7 maps of a 224x224 input a
convolution's arithmetic outweighs reading its weight, and skipping half the channels pays for the
gate networks. On the 16x16 to 2x2 maps of a 64x64 input a convolution with one sample costs about
one read of its weight, which the gather reads too, and the gate networks cost more than the skipped
channels save. ``python -m benchmarks hard`` measures both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

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
        index = (opened[0] if x.shape[0] == 1 else opened.any(dim=0)).nonzero().squeeze(1)
        if index.numel() == self.out_channels:  # nothing to skip
            y = self.convolve(x)
            return y if x.shape[0] == 1 else y.mul_(spread(opened, self.dim))
        out = x.new_zeros(x.shape[0], self.out_channels, *self.output_shape(x))
        if index.numel() == 0:  # every channel closed: nothing to compute
            return out
        bias = self.bias.index_select(0, index) if self.bias is not None else None
        partial = self._norm_open(self.conv(x, self._open_filters(index), bias), index)
        if x.shape[0] > 1:
            partial.mul_(spread(opened.index_select(1, index), self.dim))
        return out.index_copy_(1, index, partial)

    def _norm_open(self, partial: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The unit's own BatchNorm (``gate_after_norm``), in inference, on the open channels ``index`` only.

        Computed at every call, not folded into cached weights: fused optimisers and BatchNorm's running
        statistics change their tensors in place without bumping the version counter a cache could check.
        """
        norm = self.norm
        if norm is None:
            return partial
        pick = (lambda t: None if t is None else t.index_select(0, index))
        return F.batch_norm(partial, pick(norm.running_mean), pick(norm.running_var), pick(norm.weight),
                            pick(norm.bias), False, 0.0, norm.eps)

    def _open_filters(self, index: torch.Tensor) -> torch.Tensor:
        """The filters ``index`` of the weight, gathered into a scratch buffer kept between calls (a gather
        into freshly allocated, page-faulted memory would cost as much as the channels it saves)."""
        weight = self.weight
        buffer = self.__dict__.get("_filter_buffer")
        if buffer is None or buffer.shape != weight.shape or buffer.dtype != weight.dtype \
                or buffer.device != weight.device or buffer.is_inference() != torch.is_inference_mode_enabled():
            buffer = self.__dict__["_filter_buffer"] = torch.empty_like(weight)
        return torch.index_select(weight, 0, index, out=buffer[:index.numel()])

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_filter_buffer", None)  # scratch memory, not state
        return state
