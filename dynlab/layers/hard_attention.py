"""``hard``: input-dependent on/off gates on the output channels (seed 2.1.4).

g = 1[sigmoid(z) > 0.5] with z = FC(relu(FC(GAP x))). The forward uses the hard 0/1 gates; the backward
passes the gradient of sigmoid(z) (straight-through). A budget term (open rate - rho)^2 keeps about
a fraction rho of the channels open. The seed cites MetaDOCK, which prunes kernels per *task*; here the
gates depend on each *input*.

At inference a closed channel is not computed at all: only the channels open for some sample of the
batch are convolved (for batch 1, exactly the open ones), and the others are the zeros they are in training.
Under ``torch.compile`` inference computes every channel and multiplies by the gates, as training does.
"""
from __future__ import annotations

import torch
from torch import nn

from ._unit import ConvUnit, global_average, single_kernel, spread


class GatedConv(ConvUnit):
    def __init__(self, *args, budget: float = 0.5, budget_weight: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= budget <= 1.0:
            raise ValueError(f"budget (the target open rate) must be in [0, 1], got {budget}")
        self.budget = float(budget)
        self.budget_weight = float(budget_weight)
        self.weight = single_kernel(self.weight_shape)
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if self.has_bias else None
        hidden = max(self.in_channels // 4, 16)
        self.gate_hidden = nn.Linear(self.in_channels, hidden)
        self.gate_logits = nn.Linear(hidden, self.out_channels)
        nn.init.constant_(self.gate_logits.bias, 3.0)  # gates start open
        self._open_rate: torch.Tensor | None = None  # kept as a tensor: reading it out would sync a GPU

    @property
    def last_open_rate(self) -> float | None:
        """The share of gates open on the last forward (None before the first)."""
        return None if self._open_rate is None else float(self._open_rate)

    def gate_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gate_logits(torch.relu(self.gate_hidden(global_average(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        soft = self.gate_probabilities(x)
        hard = (soft > 0.5).to(soft.dtype)
        self._record(gates=hard)
        self._open_rate = hard.mean().detach()
        if self.training:
            # straight-through: value hard, gradient of sigmoid. (hard - s) + s is exactly 0 or 1 (hard = 1
            # only when s > 0.5, where 1 - s is exact); hard + s - s would round open gates off 1.
            gates = hard - soft.detach() + soft
            self.aux_term = self.budget_weight * (gates.mean() - self.budget) ** 2
            return self.conv(x, self.weight, self.bias) * spread(gates, self.dim)
        self.aux_term = None
        if torch.compiler.is_compiling():
            # which channels to skip is known only at run time: under torch.compile the skip would break
            # the graph in every unit (and recompile it for every shape), so compiled inference multiplies
            # by the gates instead, the training forward's arithmetic with the same outputs
            return self.conv(x, self.weight, self.bias) * spread(hard, self.dim)
        return self._executed_forward(x, hard)

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
            return self.conv(x, self.weight, self.bias) * spread(hard, self.dim)
        bias = self.bias.index_select(0, index) if self.bias is not None else None
        partial = self.conv(x, self._open_filters(index), bias)
        if x.shape[0] > 1:
            partial = partial * spread(hard.index_select(1, index), self.dim)
        out = partial.new_zeros(x.shape[0], self.out_channels, *partial.shape[2:])
        return out.index_copy_(1, index, partial)

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

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        # the convolution with every channel, plus one multiply per output element for the gates
        return self.conv_macs(x.shape[0], y[0, 0].numel()) + y.numel()

    def executed_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """MACs at the open rate measured on this forward (closed channels cost nothing)."""
        rate = self.last_open_rate if self.last_open_rate is not None else 1.0
        return round(self.conv_macs(x.shape[0], y[0, 0].numel()) * rate) + y.numel()
