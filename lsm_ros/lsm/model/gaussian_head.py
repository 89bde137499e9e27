"""Gaussian head: per-point features -> one 3-D Gaussian per input pixel (paper 3.3).

A single linear layer (official name ``gaussian_proj``) predicts, per point, in this order:
scale (3), rotation (4), opacity (1), SH colour ((degree+1)^2 x 3, coefficient-major) and the
semantic feature (F). Activations follow the official release:

* centre  = the (detached) pointmap itself; no offset is learned;
* scale   = exp(raw) x sqrt(mean squared distance to the k nearest neighbours), clamped to
  [lo, hi] x the scene's median spacing;
* rotation = normalised quaternion (wxyz); opacity = sigmoid;
* SH DC  = raw + RGB2SH(input colour); higher orders damped by 0.5 * 0.25**degree;
* feature = raw + the reduced 2-D semantic feature of the same pixel (residual).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..gaussians import Gaussians, rgb_to_sh_dc


def knn_spacing(points: torch.Tensor, k: int = 3) -> torch.Tensor:
    """sqrt(mean squared distance to the ``k`` nearest other points), per point.

    points: (B, N, 3) -> (B, N). Not differentiable (centres are detached pointmaps anyway).
    Runs a KD-tree (scipy) on the CPU, which is also the fastest option for N ~ 1e5 on a GPU host.
    """
    from scipy.spatial import cKDTree

    out = []
    for pts in points.detach().float().cpu().numpy():
        finite = np.isfinite(pts).all(axis=1)
        safe = np.where(finite[:, None], pts, 0.0)
        dist, _ = cKDTree(safe).query(safe, k=k + 1, workers=-1)
        d2 = np.square(dist[:, 1:]).mean(axis=1)
        out.append(np.sqrt(np.maximum(d2, 1e-7)))
    return torch.from_numpy(np.stack(out)).to(points.device, points.dtype)


class GaussianHead(nn.Module):
    def __init__(self, in_dim: int, feature_dim: int, sh_degree: int = 3,
                 scale_clamp: tuple = (0.1, 3.0), knn: int = 3):
        super().__init__()
        self.feature_dim = feature_dim
        self.sh_degree = sh_degree
        self.num_sh = (sh_degree + 1) ** 2
        self.scale_clamp = scale_clamp
        self.knn = knn
        self.splits = [3, 4, 1, 3 * self.num_sh, feature_dim]
        self.gaussian_proj = nn.Linear(in_dim, sum(self.splits))
        mask = torch.ones(self.num_sh)
        for degree in range(1, sh_degree + 1):
            mask[degree ** 2:(degree + 1) ** 2] = 0.5 * 0.25 ** degree
        self.register_buffer("sh_mask", mask, persistent=False)

    def forward(self, point_features: torch.Tensor, means: torch.Tensor, rgb: torch.Tensor,
                semantic_residual: torch.Tensor) -> Gaussians:
        """point_features (B,N,C); means (B,N,3); rgb (B,N,3) in [0,1]; semantic_residual (B,N,F)."""
        raw = self.gaussian_proj(point_features)
        scale_raw, rot_raw, opa_raw, sh_raw, feat_raw = torch.split(raw, self.splits, dim=-1)

        spacing = knn_spacing(means, self.knn)  # (B, N)
        median = spacing.median(dim=-1, keepdim=True).values[..., None]  # (B, 1, 1)
        scales = torch.exp(scale_raw) * spacing[..., None]
        lo, hi = self.scale_clamp
        scales = torch.minimum(torch.maximum(scales, lo * median), hi * median)

        sh = sh_raw.unflatten(-1, (self.num_sh, 3))
        sh = torch.cat([sh[..., :1, :] + rgb_to_sh_dc(rgb)[..., None, :], sh[..., 1:, :]], dim=-2)
        sh = sh * self.sh_mask[:, None]

        return Gaussians(
            means=means,
            scales=scales,
            rotations=F.normalize(rot_raw, dim=-1),
            opacities=torch.sigmoid(opa_raw[..., 0]),
            sh=sh,
            features=feat_raw + semantic_residual,
        )
