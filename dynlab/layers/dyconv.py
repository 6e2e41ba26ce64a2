"""``dyconv``: dynamic convolution (Chen et al., CVPR 2020), K kernels mixed per image.

    pi = softmax(FC(relu(FC(GAP x))) / T),   W(x) = sum_k pi_k W_k,   y = W(x) * x.

With ``routing="sigmoid"`` the unit is CondConv (Yang et al., NeurIPS 2019): its routing is one fully
connected layer, r = sigmoid(GAP(x) R) (as in timm's ``CondConv2d``), each kernel's weight on its own
(they need not sum to 1), and no temperature.
This is the paper's eq. 1, W = sum A W: one mixed kernel per *image*.

``attention_norm="batch"`` puts a BatchNorm on the attention's hidden layer (GAP -> FC without bias ->
BN -> ReLU -> FC, as ODConv's trunk has). Where pooled features differ little from image to image (the
course's segmentation scenes, mostly background), it scales those differences up to unit variance, so
the kernel attention can follow the image; each image's attention then depends on its batch in
training, as ODConv's does. The default, ``"none"``, is the paper's.
"""
from __future__ import annotations

import torch
from torch import nn

from .unit import ConvUnit, conv_per_sample, global_average, stacked_kernels

ROUTINGS = ("softmax", "sigmoid")
ATTENTION_NORMS = ("none", "batch")


class DynamicConv(ConvUnit):
    uses_temperature = True

    def __init__(self, *args, kernels: int = 4, routing: str = "softmax", attention_norm: str = "none",
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
        if attention_norm not in ATTENTION_NORMS:
            raise ValueError(f"attention_norm must be one of {', '.join(ATTENTION_NORMS)}, got {attention_norm!r}")
        if attention_norm == "batch" and routing != "softmax":
            raise ValueError("attention_norm='batch' needs routing='softmax': CondConv's routing has no hidden layer")
        if kernels < 1:
            raise ValueError(f"kernels must be >= 1, got {kernels}")
        self.kernels = kernels
        self.routing = routing
        self.uses_temperature = routing == "softmax"
        if routing == "softmax":  # DyConv's two-layer attention
            hidden = max(self.in_channels // 4, 16)
            self.attention_hidden = nn.Linear(self.in_channels, hidden, bias=attention_norm == "none")
            self.attention_norm = nn.BatchNorm1d(hidden) if attention_norm == "batch" else None
            self.attention_logits = nn.Linear(hidden, kernels)
        else:  # CondConv's routing: one layer
            self.attention_hidden = self.attention_norm = None
            self.attention_logits = nn.Linear(self.in_channels, kernels)
        self.weight = stacked_kernels(kernels, self.weight_shape)
        self.bias = nn.Parameter(torch.zeros(kernels, self.out_channels)) if self.has_bias else None

    @property
    def batchnorm_in_attention(self) -> bool:
        return self.attention_norm is not None

    def kernel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """pi: (B, K), how much of each kernel goes into each image's kernel."""
        pooled = global_average(x)
        if self.routing == "sigmoid":
            return torch.sigmoid(self.attention_logits(pooled))
        hidden = self.attention_hidden(pooled)
        if self.attention_norm is not None:
            if self.training and x.shape[0] == 1:
                raise ValueError("dyconv with attention_norm='batch' needs at least 2 samples per batch in training "
                                 "(its BatchNorm cannot normalise one); use a larger batch or call model.eval()")
            hidden = self.attention_norm(hidden)
        return torch.softmax(self.attention_logits(torch.relu(hidden)) / self.temperature, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        attention = self.kernel_attention(x)
        self._record(kernel=attention)
        # W_b = sum_k pi_bk W_k, one kernel (and bias) per image, then every image with its own kernel
        weights = torch.einsum("bk,k...->b...", attention, self.weight)
        bias = attention @ self.bias if self.bias is not None else None
        return conv_per_sample(self, x, weights, bias)

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        batch = x.shape[0]
        aggregation = batch * self.kernels * self.weight[0].numel()
        return self.conv_macs(batch, y[0, 0].numel()) + aggregation
