"""``hard`` at inference: the output channels no sample's gates open are skipped, where that pays.

A closed gate makes its output channel exactly zero, so without gradients the unit can gather the open
filters, convolve with them alone (normalised by the unit's own BatchNorm, ``gate_after_norm``, on
those channels only) and put the result back among zeros. With gradients on (training, Grad-CAM) it
computes the masked formula of ``dynlab.layers.hard_attention``.

Whether skipping saves time depends on how much it skips. The gather reads the open filters once more,
and the BatchNorm and the write-back run as extra operations: on a CPU that costs about what convolving
a few million MACs does. So the unit skips only where the closed channels' MACs (a sample; channels open
for any sample of the batch are convolved for all) reach ``FastGatedConv.skip_at_least``; below that it
convolves every channel and multiplies by the gates, which was faster (``python -m benchmarks hard`` and
the course's trained models, ``benchmarks/results/README.md``). On the 56x56 to 7x7 maps of a 224x224
input half the channels closed skip enough; on the 16x16 to 2x2 maps of a 64x64 input only a quarter
open does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..layers.hard_attention import GatedConv
from ..layers.unit import spread


class FastGatedConv(GatedConv):
    """``GatedConv`` that, without gradients, convolves only the open output channels where that skips
    at least ``skip_at_least`` MACs.

    Under ``torch.compile`` it computes every channel and multiplies by the gates, as training does:
    which channels to skip is known only at run time, and the skip would break the graph in every unit
    (and recompile it for every shape).
    """

    #: closed-channel MACs a sample below which a call convolves every channel instead; set on a 2-core
    #: x86 CPU from ``python -m benchmarks hard`` and the course's trained models
    skip_at_least = 6_000_000

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
        """The masked formula: the open output channels convolved, the rest zero.

        Where the closed channels come to fewer than ``skip_at_least`` MACs a sample, every channel is convolved
        and multiplied by its gate; else only the open ones are. With one sample and every gate open, or
        with only open channels convolved, the gates (exactly 1) are not multiplied in.
        """
        batch, dense_macs = x.shape[0], self.conv_macs(1, self.output_positions(x))  # per sample
        index, closed = None, 0
        if dense_macs >= self.skip_at_least:  # else even every channel closed would not skip enough
            index = (opened[0] if batch == 1 else opened.any(dim=0)).nonzero().squeeze(1)
            closed = self.out_channels - index.numel()
        if closed == 0 or dense_macs * closed < self.skip_at_least * self.out_channels:
            y = self.convolve(x)
            every_gate_open = batch == 1 and index is not None and closed == 0
            return y if every_gate_open else y.mul_(spread(opened, self.dim))
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
