"""``hard`` at inference: only the output channels some sample's gates open are convolved."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..layers.hard_attention import GatedConv
from ..layers.unit import spread


class FastGatedConv(GatedConv):
    """``GatedConv`` that skips closed channels at inference (for batch 1, exactly the open ones).

    The skipped channels are the zeros they are in training. Under ``torch.compile`` inference
    computes every channel and multiplies by the gates, as training does: which channels to skip is
    known only at run time, and the skip would break the graph in every unit (and recompile it for
    every shape).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.compiler.is_compiling():
            return super().forward(x)
        self.check_input(x)
        return self._executed_forward(x, self.gates(x))

    def _executed_forward(self, x: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
        """Convolve only the output channels that are open for at least one sample.

        The open filters are gathered with ``index_select`` (a row copy; advanced indexing of the
        weight is several times slower) and the result is put back with ``index_copy_``. With one
        sample every convolved channel is open, so its gate, exactly 1, is not multiplied in.
        """
        index = (hard.amax(dim=0) > 0).nonzero().squeeze(1)
        if index.numel() == 0:  # every channel closed: nothing to compute
            return x.new_zeros(x.shape[0], self.out_channels, *self.output_shape(x))
        if self.groups != 1 or index.numel() == self.out_channels:
            return self.convolve(x) * spread(hard, self.dim)
        bias = self.bias.index_select(0, index) if self.bias is not None else None
        partial = self._norm_open(self.conv(x, self._open_filters(index), bias), index)
        if x.shape[0] > 1:
            partial = partial * spread(hard.index_select(1, index), self.dim)
        out = partial.new_zeros(x.shape[0], self.out_channels, *partial.shape[2:])
        return out.index_copy_(1, index, partial)

    def _norm_open(self, partial: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The unit's own BatchNorm (``gate_after_norm``), in inference, on the open channels ``index`` only."""
        norm = self.norm
        if norm is None:
            return partial
        pick = (lambda t: None if t is None else t.index_select(0, index))
        return F.batch_norm(partial, pick(norm.running_mean), pick(norm.running_var), pick(norm.weight),
                            pick(norm.bias), False, 0.0, norm.eps)

    def _open_filters(self, index: torch.Tensor) -> torch.Tensor:
        """The filters ``index`` of the weight, gathered into a scratch buffer kept between calls.

        At batch 1 a convolution on small maps costs about one read of its weight, so a gather into
        freshly allocated (page-faulted) memory would cost as much as the channels it saves. Without
        autograd the rows are copied into a buffer the size of the weight, allocated once.
        """
        if torch.is_grad_enabled():
            return self.weight.index_select(0, index)
        buffer = self.__dict__.get("_filter_buffer")
        if buffer is None or buffer.shape != self.weight.shape or buffer.dtype != self.weight.dtype \
                or buffer.device != self.weight.device:
            buffer = self.__dict__["_filter_buffer"] = torch.empty_like(self.weight)
        return torch.index_select(self.weight, 0, index, out=buffer[:index.numel()])

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_filter_buffer", None)  # scratch memory, not state
        return state
