"""Dense (linear) layers on an x86 CPU through oneDNN instead of the BLAS behind aten's linear.

torch's fp32 ``linear`` and ``matmul`` call MKL's sgemm on x86. MKL takes its AVX2 code path
on AMD processors, so on an AVX-512 AMD CPU (this project's 2-core EPYC) it runs at about
half the machine's fp32 rate: 221-243 GFLOP/s against 464-540 GFLOP/s for oneDNN's kernels,
which torch also ships (``torch.ops.mkldnn._linear_pointwise``, the op torch's own compiler
emits for CPU linear layers). Same fp32 arithmetic, only the summation order differs
(results within ~1e-7 relative of aten's; pointmaps of the paper configuration 3e-7).
Measured (``lsm-benchmark``): the paper configuration's forward pass 1.4x faster; the
embedded model, whose products are small, gains nothing.

oneDNN builds a kernel (a "primitive") for every input shape and keeps it in a cache, with
working memory that can be as large as the output (measured: about 9 MB more resident
memory for each new row count of a 64-wide layer with 40,000 rows), and building one costs
0.2-1.4 ms. So only layers whose input shape never changes take oneDNN's route: a
:class:`OneDNNLinear` runs its first call on aten and notes the shape, runs on oneDNN while
later calls bring the same shape, and returns to aten for good at the first other shape
(the point transformer's pooled levels, whose point counts change with every pair; its
first level, one point per pixel, keeps its shape). At most one primitive per layer, and
none for a layer whose first two shapes differ.

The route is also only taken where it computes what ``F.linear`` would and is worth it
(:func:`applies`): CPU, float32 input and weight, no autograd graph to build, no CPU
autocast active, a product of at least :data:`MIN_MACS` multiply-adds, outside
``with aten():`` (the benchmark's comparison), and after a check at first use that the op
exists and agrees with ``F.linear`` (:func:`available`). Everything else (training, bf16
autocast, CUDA, small products) is ``F.linear`` itself. :func:`use_onednn_linear` switches
a model's ``nn.Linear`` layers over (same parameters, same state dict);
:meth:`lsm.perception.Perception.load` does so for a CPU model.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import platform
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

MIN_MACS = 1 << 27  # multiply-adds; smaller products stay on aten (a kernel build costs more)
_ATEN_ONLY = contextvars.ContextVar("lsm_aten_linear_only", default=False)


@contextlib.contextmanager
def aten() -> Iterator[None]:
    """Within this block (this thread or task), every linear layer runs ``F.linear``."""
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
        gen = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*s, generator=gen) for s in ((7, 3, 48), (40, 48), (40,)))
        with torch.no_grad():
            got = onednn_linear(x, w, b)
            ref = F.linear(x, w, b)
        return got.shape == ref.shape and bool(torch.allclose(got, ref, rtol=1e-4, atol=1e-4))
    except (AttributeError, RuntimeError):
        return False


def applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether an input and weight qualify for oneDNN's route (a :class:`OneDNNLinear` also
    needs its input shape to repeat)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.numel() * weight.shape[0] >= MIN_MACS
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.is_autocast_enabled("cpu") and not _ATEN_ONLY.get() and available())


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear`` computed by oneDNN, unconditionally (no autograd). Builds and caches a
    kernel per input shape: for shapes that repeat (benchmarks, tests)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` whose inference on a CPU runs on oneDNN while its input shape stays the
    one it first saw (see the module docstring); :func:`use_onednn_linear` makes them."""

    _first_shape: Optional[Tuple[int, ...]] = None
    _shape_varies = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._takes_onednn(x):
            return onednn_linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)

    def _takes_onednn(self, x: torch.Tensor) -> bool:
        if self._shape_varies or not applies(x, self.weight):
            return False
        shape = tuple(x.shape)
        if self._first_shape is None:
            self._first_shape = shape  # this first call runs on aten
            return False
        if shape != self._first_shape:
            self._shape_varies = True  # aten from now on: no kernel per shape
            return False
        return True

    @property
    def route(self) -> str:
        """'oneDNN' (from its second call, while the shape repeats), 'aten: shape varies' or
        'aten: no call so far'."""
        if self._shape_varies:
            return "aten: shape varies"
        return "oneDNN" if self._first_shape is not None else "aten: no call so far"


def use_onednn_linear(model: nn.Module) -> int:
    """Switch every plain ``nn.Linear`` of ``model`` to :class:`OneDNNLinear` in place (the
    same parameter tensors; subclasses such as MultiheadAttention's projections, whose
    weights their owner reads directly, are left alone), or reset the shape record of those
    already switched. Returns how many there are; 0 where oneDNN's linear is not
    :func:`available`."""
    if not available():
        return 0
    switched = 0
    for module in model.modules():
        if type(module) in (nn.Linear, OneDNNLinear):
            module.__class__ = OneDNNLinear
            module._first_shape, module._shape_varies = None, False
            switched += 1
    return switched
