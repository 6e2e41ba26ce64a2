"""``hard``: input-dependent on/off gates on the output channels (the paper's 2.1.4).

    g = 1[sigmoid(z) > 0.5],   z = FC(relu(FC(GAP x))),   y = g * (W * x).

The forward uses the hard 0/1 gates; the backward passes the gradient of sigmoid(z)
(straight-through). A budget term ``budget_weight * (open rate - rho)^2`` keeps about a fraction
rho (``budget``) of the channels open; ``gate_bias`` is the gate logits' initial bias. The paper cites MetaDOCK, which prunes kernels per *task*; here the gates depend on each *input*.

Where the gate sits matters. In a ResNet block a BatchNorm follows the convolution. A channel that is
closed for every sample of a batch reaches it as a constant zero, whose variance is 0, and BatchNorm's
backward divides by sqrt(variance + eps): that channel's gate receives a gradient hundreds of times the
open ones', which swamps the straight-through signal (``results/course_recipe.md`` has the measurement).
With ``gate_after_norm`` the unit normalises its convolution itself and gates the normalised map,

    y = g * BN(W * x),

so a closed channel is exactly zero after the normalisation and the block adds no BatchNorm of its own
(``normalizes_output``; see ``dynlab.layers.norm_after``).

A closed channel's output is exactly zero, so it need not be computed at all: ``executed_macs``
counts what is left, and the fast inference path of ``dynlab.kernels`` skips the closed channels where
they come to enough MACs to pay for it.
"""
from __future__ import annotations

import torch
from torch import nn

from .unit import ConvUnit, batch_norm, global_average, single_kernel, spread


class GatedConv(ConvUnit):
    def __init__(self, *args, budget: float = 0.5, budget_weight: float = 1.0, gate_bias: float = 3.0,
                 gate_after_norm: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= budget <= 1.0:
            raise ValueError(f"budget (the target open rate) must be in [0, 1], got {budget}")
        self.budget = float(budget)
        self.budget_weight = float(budget_weight)
        self.weight = single_kernel(self.weight_shape)
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if self.has_bias else None
        self.norm = batch_norm(self.out_channels, self.dim) if gate_after_norm else None
        hidden = max(self.in_channels // 4, 16)
        self.gate_hidden = nn.Linear(self.in_channels, hidden)
        self.gate_logits = nn.Linear(hidden, self.out_channels)
        # gate_bias 3 starts every gate open (sigmoid(3) = 0.95), and closing one then takes thousands of
        # steps; near 0 the gates start undecided, so a short run can move them either way
        nn.init.constant_(self.gate_logits.bias, float(gate_bias))
        # the last forward's gates, (B, C_out), 0/1 or boolean: kept as a tensor (reading a rate out would
        # sync a GPU) and summarised only when a rate is asked for
        self._last_gates: torch.Tensor | None = None

    @property
    def normalizes_output(self) -> bool:
        return self.norm is not None

    @property
    def last_open_rate(self) -> float | None:
        """The share of gates open on the last forward, over its samples (None before the first)."""
        return None if self._last_gates is None else float(self._gate_values().mean())

    @property
    def last_union_rate(self) -> float | None:
        """The share of output channels open for at least one sample of the last forward's batch."""
        return None if self._last_gates is None else float(self._gate_values().amax(dim=0).mean())

    def _gate_values(self) -> torch.Tensor:
        gates = self._last_gates
        return gates if gates.is_floating_point() else gates.to(self.weight.dtype)

    def gate_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gate_logits(torch.relu(self.gate_hidden(global_average(x)))))

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """g: (B, C_out), exactly 0 or 1; in training with the gradient of sigmoid(z) and the budget term."""
        soft = self.gate_probabilities(x)
        hard = (soft > 0.5).to(soft.dtype)
        self._record(gates=hard)
        self._last_gates = hard.detach()
        if not self.training:
            self.aux_term = None
            return hard
        # straight-through: value hard, gradient of sigmoid. (hard - s) + s is exactly 0 or 1 (hard = 1 only
        # when s > 0.5, where 1 - s is exact); hard + s - s would round open gates off 1.
        gates = hard - soft.detach() + soft
        self.aux_term = self.budget_weight * (gates.mean() - self.budget) ** 2
        return gates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        gates = self.gates(x)
        return self.convolve(x) * spread(gates, self.dim)

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """W * x for every channel, normalised by the unit's own BatchNorm where it has one."""
        y = self.conv(x, self.weight, self.bias)
        return y if self.norm is None else self.norm(y)

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        # the convolution with every channel, plus one multiply per output element for the gates
        return self.conv_macs(x.shape[0], y[0, 0].numel()) + y.numel()

    def executed_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """MACs if every sample convolved only its own open channels (the mean open rate of this forward)."""
        rate = self.last_open_rate if self.last_open_rate is not None else 1.0
        return round(self.conv_macs(x.shape[0], y[0, 0].numel()) * rate) + y.numel()

    def union_macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """MACs of convolving, for the whole batch, the channels open for some sample: what one convolution
        over the batch computes when it skips closed channels (``dynlab.kernels``'s inference path, where it skips)."""
        rate = self.last_union_rate if self.last_union_rate is not None else 1.0
        return round(self.conv_macs(x.shape[0], y[0, 0].numel()) * rate) + y.numel()
