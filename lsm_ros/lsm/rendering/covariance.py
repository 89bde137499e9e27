"""3-D Gaussian geometry: quaternion (wxyz) to rotation, scale+rotation to covariance.

Conventions: quaternions are ``(w, x, y, z)`` (scalar first, like gsplat and 3DGS)
and need not be normalised (they are normalised here); scales are linear standard
deviations along the Gaussian's local axes (not log-scales).
"""
from __future__ import annotations

import torch
from torch import Tensor


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) in **wxyz** order.

    The quaternion is normalised first, so any non-zero 4-vector is accepted.
    """
    if quats.shape[-1] != 4:
        raise ValueError(f"quats must have a last dimension of 4 (wxyz), got {tuple(quats.shape)}")
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return rot.reshape(q.shape[:-1] + (3, 3))


def covariance_from_scale_rotation(scales: Tensor, quats: Tensor) -> Tensor:
    """World-frame covariances (..., 3, 3) = R diag(s)^2 R^T.

    Args:
        scales: (..., 3) linear standard deviations (scene units).
        quats: (..., 4) rotations, wxyz.
    """
    if scales.shape[-1] != 3 or scales.shape[:-1] != quats.shape[:-1]:
        raise ValueError(
            f"scales (...,3) and quats (...,4) must share leading dims, got {tuple(scales.shape)} "
            f"and {tuple(quats.shape)}"
        )
    m = quat_to_rotmat(quats) * scales[..., None, :]
    return m @ m.transpose(-1, -2)
