"""Training in bfloat16 autocast on the CPU (what ``dynlab.device`` picks on a CPU with AMX).

The rest of the suite runs in float32 (``conftest.py``). Here every unit runs under
CPU autocast, is compared with its float32 self, and a short ``fit`` trains in it (the per-sample
paths under autocast: ``kernels/test_per_sample_kernels.py``).
"""
import pytest
import torch

from dynlab import device as dev
from dynlab import layers
from dynlab.engine import fit
from dynlab.models.timeseries import tsresnet

CPU = torch.device("cpu")


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.detach().float() - want.detach()).norm() / want.detach().norm())


def test_the_setting_and_the_default(monkeypatch):
    monkeypatch.setenv("DYNLAB_CPU_BF16", "1")
    assert dev.autocast_dtype(CPU) is torch.bfloat16
    assert dev.describe(CPU).endswith("threads, bf16 autocast)")
    assert not dev.grad_scaler(CPU).is_enabled()  # bfloat16 has float32's range: no scaling
    monkeypatch.setenv("DYNLAB_CPU_BF16", "0")
    assert dev.autocast_dtype(CPU) is None and "autocast" not in dev.describe(CPU)
    monkeypatch.setenv("DYNLAB_CPU_BF16", "yes")
    with pytest.raises(ValueError, match="DYNLAB_CPU_BF16 must be 0"):
        dev.autocast_dtype(CPU)
    monkeypatch.delenv("DYNLAB_CPU_BF16")
    for hardware in (True, False):
        monkeypatch.setattr(dev, "cpu_has_bf16_matrix_units", lambda: hardware)
        assert (dev.autocast_dtype(CPU) is torch.bfloat16) == hardware


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name", layers.names())
def test_every_unit_under_cpu_autocast_is_close_to_float32(name, dim):
    torch.manual_seed(0)
    unit = layers.build(name, 8, 8, 3, dim=dim, padding=1).train()
    x = torch.randn(4, 8, *((12, 12) if dim == 2 else (24,)))
    want = unit(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = unit(x.requires_grad_())
    assert got.dtype == torch.bfloat16
    assert relative_error(got, want.detach()) < 0.03
    (got.float() ** 2).mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in unit.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), pname




def test_fit_trains_in_cpu_autocast(monkeypatch):
    monkeypatch.setenv("DYNLAB_CPU_BF16", "1")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 32, generator=g)
    y = (x[:, 0, :16].mean(1) > x[:, 0, 16:].mean(1)).long()  # which half is higher: learnable
    train = torch.utils.data.TensorDataset(x[:32], y[:32])
    val = torch.utils.data.TensorDataset(x[32:], y[32:])
    torch.manual_seed(0)
    model = tsresnet("odconv", num_classes=2, channels=(8, 8, 8))
    history = fit(model, train, val, epochs=4, batch_size=8, lr=3e-3, quiet=True, device="cpu")
    assert history.config["device"].endswith("bf16 autocast)")
    losses = [r["train_loss"] for r in history.records]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps float32 weights
