"""A smoke run of the engine: a tiny model on synthetic data, alone or under ``torchrun``.

    python -m dynlab.engine.smoke --smoke runs/smoke
    torchrun --nproc_per_node=2 -m dynlab.engine.smoke --smoke runs/smoke-ddp --device cpu
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .. import layers
from .fit import fit


class TinyNet(nn.Module):
    """Two convolutions (the second one a dynlab unit), global pooling, a linear classifier."""

    def __init__(self, variant: str = "dyconv", num_classes: int = 2, width: int = 8, in_channels: int = 3) -> None:
        super().__init__()
        self.variant = variant
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.unit = layers.build(variant, width, width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)
        layers.bind(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.stem(x)))
        x = torch.relu(self.bn2(self.unit(x)))
        return self.fc(x.mean(dim=(2, 3)))


def smoke_datasets(samples: int = 192, size: int = 8, seed: int = 0) -> tuple[TensorDataset, ...]:
    """Train/val/test sets of noisy images whose class (0 or 1) shifts the first channel up or down."""
    generator = torch.Generator().manual_seed(seed)
    splits = []
    for n in (samples, samples // 4, samples // 4):
        labels = torch.randint(0, 2, (n,), generator=generator)
        images = torch.randn(n, 3, size, size, generator=generator)
        images[:, 0] += (labels.float() * 2 - 1).reshape(-1, 1, 1) * 0.3
        splits.append(TensorDataset(images, labels))
    return tuple(splits)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dynlab.engine.smoke",
        description="Smoke run of the training engine: a tiny model on synthetic data.",
        epilog="examples:\n  python -m dynlab.engine.smoke --smoke runs/smoke\n"
               "  torchrun --nproc_per_node=2 -m dynlab.engine.smoke --smoke runs/smoke-ddp --device cpu",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", metavar="OUT_DIR", required=True, help="folder for checkpoints and history")
    parser.add_argument("--variant", default="dyconv", choices=layers.names())
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--samples", type=int, default=192, help="training samples (val and test get a quarter each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="auto (default), cpu, mps, cuda or cuda:N")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in OUT_DIR")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model = TinyNet(args.variant)
    train_set, val_set, test_set = smoke_datasets(args.samples, seed=args.seed)
    history = fit(model, train_set, val_set, test_set, epochs=args.epochs, batch_size=args.batch_size, lr=1e-2,
                  seed=args.seed, device=args.device, out_dir=args.smoke, overwrite=args.overwrite, quiet=args.quiet)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"best epoch {history.best_epoch} val {history.metric} {history.best_metric:.4f}; test {history.test}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
