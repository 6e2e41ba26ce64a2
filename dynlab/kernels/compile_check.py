"""Does ``torch.compile`` compile a variant's ResNet-18, and does the compiled model compute what the eager one does?

For one variant, on one device and in one precision, ``check_variant`` runs a training step (forward,
loss with the variant's auxiliary term, backward; no optimiser step, so both see the same weights)
eagerly and compiled, and an inference forward the same two ways, and compares them:

- **training**: compiled with ``fullgraph=True``, so any graph break is an error, not a silent
  fallback to Python. Compared: the loss, and the gradient of all parameters together as a relative
  error of norms ``|g_compiled - g_eager| / |g_eager|``.
- **inference**: also ``fullgraph=True``. (``hard``'s eager inference convolves only the channels its
  gates open, a shape known only at run time; compiled, it computes them all and multiplies by the
  gates, see ``dynlab.kernels.hard_attention``.)

Precisions: ``bf16`` (autocast, and channels-last on CUDA: how the engine trains there), ``float32``
and ``float64``. Fused kernels reorder sums, so compiled and eager results differ by rounding, and
the gradients of a freshly initialised ResNet fed noise amplify rounding a lot: BatchNorm's backward
subtracts nearly equal terms, and ODConv's attention BatchNorm normalises pooled vectors that barely
differ between samples (relative gradient errors of tens of percent in bf16 and even float32, against
about 1e-11 in float64: ``python -m benchmarks compile`` prints them). So the gradients are judged in
float64 only, where no rounding hides a wrong one; in bf16 and float32 the loss and the inference output are judged (their
errors stay near the precision) and the gradient error is reported. Dropout is off (compiled and eager
draw different random masks). ``python -m benchmarks compile`` prints the table for every variant; the
tests run the ``aot_eager`` backend (Dynamo's capture and AOTAutograd's traced backward, where graph
breaks and untraceable autograd code show up, without generating kernels: it reorders nothing).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

PRECISIONS = ("bf16", "float32", "float64")
#: largest accepted relative error between compiled and eager results, by precision
TOLERANCE = {"bf16": 5e-2, "float32": 1e-4, "float64": 1e-8}
#: precisions in which the gradients are judged (see the module doc)
GRADIENTS_JUDGED = ("float64",)


def _relative_error(compiled: torch.Tensor, eager: torch.Tensor) -> float:
    compiled, eager = compiled.double(), eager.double()
    return float((compiled - eager).norm() / eager.norm().clamp_min(1e-30))


def _train_step(model, forward, x, y, autocast):
    from ..layers import auxiliary_loss

    model.train()
    model.zero_grad(set_to_none=True)
    with autocast():
        loss = F.cross_entropy(forward(x), y) + auxiliary_loss(model)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach().double(), grads


def _infer(model, forward, x, autocast):
    model.eval()
    with torch.no_grad(), autocast():
        return forward(x).double()


def check_variant(variant: str, device: str = "cpu", stem: str = "imagenet", size: int = 64, batch: int = 8,
                  width: int = 16, backend: str = "inductor", precision: str = "float32", model=None) -> dict:
    """Compile ``variant``'s ResNet-18 and compare it with the eager model; returns one row of results.

    ``precision``: one of ``PRECISIONS``. ``model``: a ready model to check instead of a fresh
    ResNet-18 (tests use smaller ones); its dropout should be off.
    """
    from ..bench import NUM_CLASSES, inputs
    from ..device import prepare_model
    from ..models import resnet18

    torch.manual_seed(0)
    if model is None:
        model = resnet18(variant, NUM_CLASSES, stem=stem, width=width, dropout=0.0)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model = prepare_model(model, torch.device(device))
    if precision == "float64":
        model = model.double()

    def autocast():
        return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")

    x, _ = inputs(batch, size, device)
    x = x.double() if precision == "float64" else x
    if model.dim == 1:
        x = x.flatten(2)
    y = torch.randint(0, model.fc.out_features, (batch,), generator=torch.Generator().manual_seed(0)).to(device)
    torch._dynamo.reset()
    train_forward = torch.compile(model, backend=backend, fullgraph=True)
    eval_forward = torch.compile(model, backend=backend, fullgraph=True)

    eager_loss, eager_grads = _train_step(model, model, x, y, autocast)
    start = time.perf_counter()
    compiled_loss, compiled_grads = _train_step(model, train_forward, x, y, autocast)
    train_compile_s = time.perf_counter() - start
    if compiled_grads.keys() != eager_grads.keys():
        raise RuntimeError(f"{variant}: the compiled step gave gradients to other parameters than the eager one")
    grad_error = _relative_error(torch.cat([compiled_grads[n].flatten() for n in eager_grads]),
                                 torch.cat([eager_grads[n].flatten() for n in eager_grads]))
    loss_error = abs(float(compiled_loss - eager_loss)) / abs(float(eager_loss))

    eager_out = _infer(model, model, x, autocast)
    start = time.perf_counter()
    compiled_out = _infer(model, eval_forward, x, autocast)
    eval_compile_s = time.perf_counter() - start
    output_error = _relative_error(compiled_out, eager_out)

    tolerance = TOLERANCE[precision]
    judged = [loss_error, output_error] + ([grad_error] if precision in GRADIENTS_JUDGED else [])
    return {
        "variant": variant, "device": device, "backend": backend, "precision": precision,
        "channels_last": device == "cuda", "loss_error": loss_error, "grad_error": grad_error,
        "gradients_judged": precision in GRADIENTS_JUDGED, "output_error": output_error,
        "train_compile_s": train_compile_s, "eval_compile_s": eval_compile_s, "tolerance": tolerance,
        "passed": max(judged) <= tolerance,
    }


def format_rows(rows: list[dict]) -> str:
    """A markdown table of ``check_variant`` rows."""
    lines = ["| variant | device | backend | precision | loss rel. error | gradient rel. error | "
             "inference rel. error | compile s (train, eval) | within tolerance |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | :---: |"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['device']}{', channels-last' if r['channels_last'] else ''} | {r['backend']} | "
            f"{r['precision']} | {r['loss_error']:.1e} | {r['grad_error']:.1e}"
            f"{'' if r.get('gradients_judged', True) else ' (not judged)'} | {r['output_error']:.1e} | "
            f"{r['train_compile_s']:.0f}, {r['eval_compile_s']:.0f} | "
            f"{'yes' if r['passed'] else '**no** (> %.0e)' % r['tolerance']} |")
    return "\n".join(lines)
