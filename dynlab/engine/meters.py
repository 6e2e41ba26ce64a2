"""Sums over batches (and processes) that give a run's loss and metrics exactly."""
from __future__ import annotations

import torch
import torch.distributed as torch_dist

from ..metrics import ConfusionMatrix
from .distributed import Dist


class Meter:
    """Sums over batches (and, with ``reduce``, over processes): loss, counts, correct, confusion matrix.

    Sums rather than per-batch means, so that the result is exact whatever the batch sizes and however
    the data is split across processes.
    """

    def __init__(self, task: str, ignore_index: int, device: torch.device) -> None:
        self.task = task
        self.ignore_index = ignore_index
        self.device = device
        # loss_sum, loss_count (samples or counted pixels), aux_sum, samples, top1, top5
        self.sums = torch.zeros(6, dtype=torch.float64, device=device)
        self.confusion: ConfusionMatrix | None = None
        self.num_classes: int | None = None

    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor, loss_count,
               aux: torch.Tensor | float = 0.0) -> None:
        logits = logits.detach().float()
        batch = targets.shape[0]
        self.num_classes = logits.shape[1]
        s = self.sums
        s[0] += loss_sum.detach().double()
        s[1] += loss_count
        s[2] += (aux.detach().double() if torch.is_tensor(aux) else float(aux)) * batch
        s[3] += batch
        if self.task == "segmentation":
            if self.confusion is None:
                self.confusion = ConfusionMatrix(self.num_classes, self.ignore_index, device=self.device)
            self.confusion.update(logits, targets)
        else:
            top = logits.topk(min(5, self.num_classes), dim=1).indices
            hits = top == targets.reshape(-1, 1)
            s[4] += hits[:, 0].sum()
            s[5] += hits.any(dim=1).sum()

    def reduce(self, dist: Dist) -> None:
        if not dist.active:
            return
        torch_dist.all_reduce(self.sums)
        if self.task == "segmentation":
            # a process that saw no batch has no matrix yet: agree on the class count first
            classes = torch.tensor([self.num_classes or 0], device=self.device)
            torch_dist.all_reduce(classes, op=torch_dist.ReduceOp.MAX)
            if self.confusion is None:
                self.confusion = ConfusionMatrix(int(classes), self.ignore_index, device=self.device)
            torch_dist.all_reduce(self.confusion.matrix)
        else:
            classes = torch.tensor([self.num_classes or 0], device=self.device)
            torch_dist.all_reduce(classes, op=torch_dist.ReduceOp.MAX)
            self.num_classes = int(classes)

    def results(self) -> dict[str, float]:
        loss_sum, loss_count, aux_sum, samples, top1, top5 = self.sums.tolist()
        out = {"loss": loss_sum / loss_count if loss_count else float("nan")}
        if aux_sum:
            out["aux_loss"] = aux_sum / samples
        if self.task == "segmentation":
            out["miou"] = self.confusion.miou() if self.confusion is not None else float("nan")
            out["pixel_accuracy"] = self.confusion.pixel_accuracy() if self.confusion is not None else float("nan")
        else:
            out["accuracy"] = top1 / samples if samples else float("nan")
            if (self.num_classes or 0) >= 5:
                out["top5"] = top5 / samples if samples else float("nan")
        return out
