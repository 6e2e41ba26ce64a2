"""One process or many under ``torchrun``: the process group, sharding, and what ranks must agree on.

``fit`` reads RANK/WORLD_SIZE from the environment, shards the data, sums metric counts across
processes, and only rank 0 writes files or shows progress bars.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Subset

from ..device import pick_device


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    created_group: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@contextlib.contextmanager
def session(requested_device) -> Iterator[tuple[Dist, torch.device]]:
    """This process's place and device; joins (and at the end leaves) the group under torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    device = pick_device(requested_device)  # under torchrun "cuda" means cuda:LOCAL_RANK
    if world_size <= 1:
        yield Dist(), device
        return
    created = False
    if not torch_dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    dist = Dist(torch_dist.get_rank(), torch_dist.get_world_size(), created)
    try:
        yield dist, device
        if created:  # every process is done with the group before any tears it down (gloo aborts)
            torch_dist.barrier()
    finally:
        if created:
            torch_dist.destroy_process_group()


def current() -> Dist:
    """The process group already joined (by ``fit`` or the caller), or a single process."""
    if torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        return Dist(torch_dist.get_rank(), torch_dist.get_world_size())
    return Dist()


def wrap(model: nn.Module, dist: Dist, device: torch.device) -> nn.Module:
    """The module the training steps call: ``model`` itself, or its DistributedDataParallel."""
    if not dist.active:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def shard(dataset: Dataset, dist: Dist) -> Dataset:
    """Every ``world_size``-th sample for this rank: no padding, so summed counts are exact."""
    if not dist.active:
        return dataset
    return Subset(dataset, range(dist.rank, len(dataset), dist.world_size))


def broadcast_buffers(model: nn.Module, dist: Dist) -> None:
    """Give every process rank 0's BatchNorm statistics.

    DDP copies them from rank 0 at the start of each training forward, so after the last step each
    process still holds its own update; evaluation and the saved checkpoint must use the same ones.
    """
    if dist.active:
        for buffer in model.buffers():
            torch_dist.broadcast(buffer, src=0)


def gather(value, dist: Dist) -> list:
    """``value`` from every process, in rank order (a list of one without a group)."""
    if not dist.active:
        return [value]
    values = [None] * dist.world_size
    torch_dist.all_gather_object(values, value)
    return values


def any_rank(flag: bool, dist: Dist, device: torch.device) -> bool:
    """Whether ``flag`` is true on some process: every process must agree, or the next collective hangs."""
    if not dist.active:
        return flag
    tensor = torch.tensor([float(flag)], device=device)
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MAX)
    return bool(tensor.item())
