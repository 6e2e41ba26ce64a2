"""``odconv`` / ``odconv4x``: omni-dimensional dynamic convolution (Li, Zhou and Yao, ICLR 2022).

One trunk, GAP -> FC (no bias) -> BN -> ReLU, feeds four heads, each logit divided by T:
spatial (k^d, sigmoid), input channel (C_in, sigmoid), output channel (C_out, sigmoid) and
kernel (K, softmax). Then

    W_b = sum_k a_kernel[b, k] * a_spatial[b] * W_k,
    y_b = a_filter[b] * conv(a_channel[b] * x_b, W_b).

As in the reference: no kernel head when K = 1, no spatial head for a 1x1 kernel, no output-channel
head for a depthwise convolution. The paper's "omni-directional CNN" cites ODConv by title but
describes rotated kernels instead; those are ``orient``.

``attention_norm="none"`` drops the trunk's BatchNorm (GAP -> FC with bias -> ReLU). The reference's
BatchNorm normalises the pooled vectors over the batch, so each sample's attention depends on the
other samples in its batch; with small batches of features that differ little from sample to sample
(Adiac: batches of 16 z-normalised series) that noise kept ``odconv`` from fitting its training
set (README, "Adiac"). The default stays the reference's.

Parameter names follow the reference implementation (``weight``, ``attention.fc``, ``attention.bn``,
``attention.channel_fc``, ``filter_fc``, ``spatial_fc``, ``kernel_fc``) so its checkpoints map across
(see ``dynlab.models.odconv_resnet18_from_reference``).
"""
from __future__ import annotations

import torch
from torch import nn

from .unit import ConvUnit, conv_per_sample, global_average, spread, stacked_kernels


ATTENTION_NORMS = ("batch", "none")


class ODAttention(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_volume, groups, kernels, reduction=0.0625, min_hidden=16,
                 norm="batch"):
        super().__init__()
        if norm not in ATTENTION_NORMS:
            raise ValueError(f"attention_norm must be one of {', '.join(ATTENTION_NORMS)}, got {norm!r}")
        hidden = max(int(in_channels * reduction), min_hidden)
        self.fc = nn.Linear(in_channels, hidden, bias=norm == "none")
        self.bn = nn.BatchNorm1d(hidden) if norm == "batch" else None
        self.channel_fc = nn.Linear(hidden, in_channels)
        depthwise = in_channels == groups == out_channels
        self.filter_fc = None if depthwise else nn.Linear(hidden, out_channels)
        self.spatial_fc = nn.Linear(hidden, kernel_volume) if kernel_volume > 1 else None
        self.kernel_fc = nn.Linear(hidden, kernels) if kernels > 1 else None
        for layer in (self.fc, self.channel_fc, self.filter_fc, self.spatial_fc, self.kernel_fc):
            if layer is not None:
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, temperature: float):
        """Returns (channel, filter, spatial, kernel) attentions; a skipped head gives None."""
        if self.bn is not None and self.training and x.shape[0] == 1:
            raise ValueError(
                "odconv in training mode needs at least 2 samples per batch: its attention BatchNorm "
                "cannot normalise a single sample. Use a batch of 2 or more, call model.eval(), or build "
                "it with attention_norm='none'."
            )
        h = self.fc(global_average(x))
        h = torch.relu(h if self.bn is None else self.bn(h))
        channel = torch.sigmoid(self.channel_fc(h) / temperature)
        filt = torch.sigmoid(self.filter_fc(h) / temperature) if self.filter_fc is not None else None
        spatial = torch.sigmoid(self.spatial_fc(h) / temperature) if self.spatial_fc is not None else None
        kernel = torch.softmax(self.kernel_fc(h) / temperature, dim=1) if self.kernel_fc is not None else None
        return channel, filt, spatial, kernel


class ODConv(ConvUnit):
    uses_temperature = True

    def __init__(self, *args, kernels: int = 1, reduction: float = 0.0625, attention_norm: str = "batch",
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.has_bias:
            raise ValueError("odconv has no bias (as in the reference); follow it with a BatchNorm instead")
        if kernels < 1:
            raise ValueError(f"kernels must be >= 1, got {kernels}")
        self.kernels = kernels
        self.attention = ODAttention(
            self.in_channels, self.out_channels, self.kernel_volume, self.groups, kernels, reduction,
            norm=attention_norm,
        )
        self.weight = stacked_kernels(kernels, self.weight_shape)

    @property
    def batchnorm_in_attention(self) -> bool:
        return self.attention.bn is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        channel, filt, spatial, kernel = self.attention(x, self.temperature)
        self._record(
            **{k: v for k, v in (("channel", channel), ("filter", filt), ("spatial", spatial), ("kernel", kernel))
               if v is not None}
        )
        batch = x.shape[0]
        # W_b = sum_k a_kernel[b, k] * a_spatial[b] * W_k: one kernel per sample
        if kernel is None:
            weights = self.weight[:1].expand(batch, *self.weight.shape[1:])
        else:
            weights = torch.einsum("bk,k...->b...", kernel, self.weight)
        if spatial is not None:
            weights = weights * spatial.reshape(batch, 1, 1, *self.kernel_size)
        out = conv_per_sample(self, x * spread(channel, self.dim), weights)
        return out if filt is None else out * spread(filt, self.dim)

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        batch = x.shape[0]
        weights = self.weight[0].numel()
        total = self.conv_macs(batch, y[0, 0].numel())
        total += x.numel()  # input-channel attention on the feature map
        if self.attention.filter_fc is not None:
            total += y.numel()  # output-channel attention on the feature map
        if self.attention.spatial_fc is not None:
            total += batch * self.kernels * weights  # spatial attention modulates every kernel weight
        if self.attention.kernel_fc is not None:
            total += batch * self.kernels * weights  # kernel aggregation
        return total
