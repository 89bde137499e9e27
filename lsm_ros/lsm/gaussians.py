"""The 3-D Gaussian scene representation produced by LSM.

Conventions
-----------
* All tensors share leading dims ``(..., N)``: ``(B, N)`` for a batch, ``(N,)`` for one scene.
* ``means`` in the reference camera's frame (view 1, OpenCV: x right, y down, z forward),
  in the model's normalised scene units (pointmap scale; metric only up to scale).
* ``scales`` are linear standard deviations (not log); ``rotations`` unit quaternions **wxyz**.
* ``opacities`` in [0, 1]; ``sh`` spherical-harmonic colour coefficients ``(..., N, K, 3)``
  with ``K = (degree + 1)**2``, coefficient-major as in 3DGS; ``features`` the per-Gaussian
  semantic feature ``(..., N, F)`` that is rendered and expanded into the text space.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

SH_C0 = 0.28209479177387814  # Y_0^0, as in 3DGS


def rgb_to_sh_dc(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> degree-0 SH coefficient (inverse of :func:`sh_dc_to_rgb`)."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: torch.Tensor) -> torch.Tensor:
    """Degree-0 SH coefficient -> RGB, clamped at 0 like the 3DGS rasteriser."""
    return (SH_C0 * dc + 0.5).clamp_min(0.0)


@dataclass
class Gaussians:
    means: torch.Tensor
    scales: torch.Tensor
    rotations: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor
    features: torch.Tensor

    @property
    def count(self) -> int:
        return self.means.shape[-2]

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[-2] ** 0.5)) - 1

    def colors(self) -> torch.Tensor:
        """View-independent RGB ``(..., N, 3)``: the DC term, what the official renderer uses."""
        return sh_dc_to_rgb(self.sh[..., 0, :])

    def map(self, fn) -> "Gaussians":
        return Gaussians(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def __getitem__(self, index) -> "Gaussians":
        """Index the leading (batch) dimension: ``gaussians[b]`` is one scene."""
        return self.map(lambda t: t[index])

    def to(self, *args, **kwargs) -> "Gaussians":
        return self.map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "Gaussians":
        return self.map(lambda t: t.detach())
