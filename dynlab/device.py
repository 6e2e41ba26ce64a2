"""Where and in which precision to train: CUDA, then Apple's MPS, then the CPU.

On CUDA the engine uses channels-last memory and autocast (bfloat16 where the GPU supports it,
else float16 with a gradient scaler, since float16's small range lets small gradients underflow).
On a CPU with bfloat16 matrix units (Intel AMX, Xeon 4th generation and later) it uses bfloat16
autocast too: convolutions run about twice as fast there (``python -m benchmarks precision``).
Elsewhere, a CPU without them and MPS, it trains in plain float32, because emulated bfloat16
is slower than float32. ``DYNLAB_CPU_BF16=0`` (or ``1``) turns the CPU's choice off (or on).
"""
from __future__ import annotations

import contextlib
import os

import torch

from .errors import DeviceError


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Names of the device types this PyTorch can use here, best first."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available():
        names.append("mps")
    return names + ["cpu"]


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The requested device, or the best available one (CUDA, then MPS, then CPU).

    ``requested`` may be None or ``"auto"`` (pick), ``"cpu"``, ``"mps"``, ``"cuda"`` or ``"cuda:N"``.
    Under ``torchrun`` an unnumbered ``"cuda"`` means this process's GPU (``LOCAL_RANK``).
    A device that is not available raises ``DeviceError`` (a ``RuntimeError``) saying what is.
    """
    if requested is None or str(requested) == "auto":
        requested = available_devices()[0]
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise ValueError(f"unknown device {str(requested)!r}; use auto, cpu, mps, cuda or cuda:N") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(requested)!r} was requested but CUDA is not available "
                f"(this PyTorch {torch.__version__} sees no GPU); available here: {', '.join(available_devices())}"
            )
        index = device.index if device.index is not None else int(os.environ.get("LOCAL_RANK", 0))
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device cuda:{index} was requested but only {torch.cuda.device_count()} GPU(s) are visible"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps_available():
        raise DeviceError(
            f"device 'mps' was requested but Apple's MPS backend is not available; "
            f"available here: {', '.join(available_devices())}"
        )
    if device.type not in ("cpu", "mps"):
        raise ValueError(f"unsupported device {str(requested)!r}; use auto, cpu, mps, cuda or cuda:N")
    return device


def describe(device: torch.device) -> str:
    """A short name, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3, bf16 autocast)`` or ``cpu (2 threads)``."""
    dtype = autocast_dtype(device)
    precision = f", {_DTYPE_NAMES[dtype]} autocast" if dtype is not None else ""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}{precision})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads{precision})"
    return str(device)


_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX)."""
    is_supported = getattr(torch.cpu, "_is_amx_tile_supported", None)  # no public API for it in torch 2.x
    return bool(is_supported and is_supported())


def cpu_bf16_autocast() -> bool:
    """Whether training on the CPU uses bfloat16 autocast: ``DYNLAB_CPU_BF16`` if set, else the hardware's say."""
    setting = os.environ.get("DYNLAB_CPU_BF16", "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    if setting:
        raise ValueError(f"DYNLAB_CPU_BF16 must be 0 (float32) or 1 (bfloat16 autocast), got {setting!r}")
    return cpu_has_bf16_matrix_units()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 or fp16 on CUDA, bf16 on a CPU with AMX, else None (fp32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_bf16_autocast():
        return torch.bfloat16
    return None


def autocast(device: torch.device):
    """A context manager for the forward pass: autocast where ``autocast_dtype`` names a dtype, else nothing."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for float16 autocast (bfloat16 has float32's range)."""
    return torch.amp.GradScaler("cuda", enabled=autocast_dtype(device) == torch.float16)


def use_channels_last(device: torch.device) -> bool:
    """Channels-last memory pays off on CUDA (tensor cores); on the CPU and MPS we keep the default."""
    return device.type == "cuda"


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to ``device``, its 4D weights channels-last on CUDA.

    Not ``model.to(memory_format=torch.channels_last)``: that also converts 5D tensors, and refuses
    the stacked (K, C_out, C_in, kh, kw) kernels of the dynamic units.
    """
    model = model.to(device)
    if use_channels_last(device):
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                if tensor.dim() == 4:
                    tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device``; images (4D) become channels-last on CUDA, time series stay as they are."""
    x = x.to(device, non_blocking=device.type == "cuda")
    if use_channels_last(device) and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def inputs_for(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` where ``model`` can take it: on the device of its parameters, and floating inputs in
    their floating type. What shows a model (attention, Grad-CAM, the explorer) is handed CPU
    samples, while ``fit`` leaves the model on the device it trained on: a GPU, or MPS on a Mac."""
    tensors = [*model.parameters(), *model.buffers()]
    if not tensors:
        return x
    device = tensors[0].device
    floating = next((t.dtype for t in tensors if t.is_floating_point()), None)
    dtype = floating if x.is_floating_point() and floating is not None else x.dtype
    return x.to(device=device, dtype=dtype)
