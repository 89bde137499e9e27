"""Dense (linear) layers on an x86 CPU through oneDNN instead of the BLAS behind aten's linear.

torch's fp32 ``linear`` and ``matmul`` call MKL's sgemm on x86. MKL takes its AVX2 code path
on AMD processors, so on an AVX-512 AMD CPU (this project's 2-core EPYC) it runs at about
half the machine's fp32 rate: 210-230 GFLOP/s against 420-480 GFLOP/s for oneDNN's kernels,
which torch also ships (``torch.ops.mkldnn._linear_pointwise``, the op torch's own compiler
emits for CPU linear layers). Same fp32 arithmetic, only the summation order differs
(results within ~1e-7 relative of aten's; pointmaps of the paper configuration 3e-7).
Measured (``lsm-benchmark``): the paper configuration's forward pass 1.4x faster; the
embedded model, whose products are small, gains nothing in a live stream.

:func:`linear` takes oneDNN's route only where it computes what ``F.linear`` would and is
worth it: CPU, float32 input and weight, no autograd graph to build, no CPU autocast
active, a product of at least :data:`MIN_MACS` multiply-adds, and a check at first use
that the op exists and agrees with ``F.linear`` (:func:`available`). Everything else
(training, bf16 autocast, CUDA, small products) is ``F.linear`` itself, as is everything
inside ``with aten():`` (the benchmark's comparison).
:func:`use_onednn_linear` switches a model's ``nn.Linear`` layers over (same parameters,
same state dict); :meth:`lsm.perception.Perception.load` does so for a CPU model.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import platform
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

# oneDNN builds (JIT-compiles) a kernel for every new input shape, 0.2-1.4 ms here: a small
# product on a new point count (the point transformer's, every pair) never earns that back.
MIN_MACS = 1 << 27  # multiply-adds; smaller products stay on aten
_ATEN_ONLY = contextvars.ContextVar("lsm_aten_linear_only", default=False)


@contextlib.contextmanager
def aten() -> Iterator[None]:
    """Within this block (this thread or task), :func:`linear` is plain ``F.linear``."""
    token = _ATEN_ONLY.set(True)
    try:
        yield
    finally:
        _ATEN_ONLY.reset(token)


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Whether oneDNN's linear runs here and matches ``F.linear`` (checked once)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False  # elsewhere torch's oneDNN build, if any, has other kernels: not measured
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        op = torch.ops.mkldnn._linear_pointwise
        gen = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*s, generator=gen) for s in ((7, 3, 48), (40, 48), (40,)))
        with torch.no_grad():
            got = op(x, w, b, "none", [], "")
            ref = F.linear(x, w, b)
        return got.shape == ref.shape and bool(torch.allclose(got, ref, rtol=1e-4, atol=1e-4))
    except (AttributeError, RuntimeError):
        return False


def applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` takes oneDNN's route for this input and weight."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.numel() * weight.shape[0] >= MIN_MACS
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.is_autocast_enabled("cpu") and not _ATEN_ONLY.get() and available())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN where that computes the same (see above)."""
    if applies(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` whose inference on a CPU goes through :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def use_onednn_linear(model: nn.Module) -> int:
    """Switch every plain ``nn.Linear`` of ``model`` to :class:`OneDNNLinear` in place (the
    same parameter tensors; subclasses such as MultiheadAttention's projections, whose
    weights their owner reads directly, are left alone). Returns how many were switched;
    0 where oneDNN's linear is not :func:`available`."""
    if not available():
        return 0
    switched = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = OneDNNLinear
            switched += 1
    return switched
