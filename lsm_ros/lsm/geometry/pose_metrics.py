"""Pose comparison helpers: rotation angles, translation directions, similarity alignment.

Poses are camera-to-world (c2w) 4x4 matrices in the OpenCV camera convention.  Inputs may be
torch tensors or numpy arrays; results are numpy float64 (these are evaluation numbers).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from .pointmaps import ArrayLike


def _np(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float64)
    raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def rotation_angle_deg(R_a: ArrayLike, R_b: ArrayLike) -> np.ndarray:
    """Geodesic angle (degrees) between rotations (..., 3, 3): angle of ``R_a^T R_b``."""
    a, b = _np(R_a, "R_a"), _np(R_b, "R_b")
    if a.shape[-2:] != (3, 3) or b.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must be (..., 3, 3), got {a.shape} and {b.shape}")
    rel = np.swapaxes(a, -1, -2) @ b
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    # atan2 of (sin, cos) stays accurate for tiny angles, where arccos loses precision
    axial = np.stack(
        [rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]], -1
    )
    sin = np.linalg.norm(axial, axis=-1) / 2.0
    return np.degrees(np.arctan2(sin, cos))


def direction_angle_deg(v_a: ArrayLike, v_b: ArrayLike) -> np.ndarray:
    """Angle (degrees) between vectors (..., 3), ignoring their lengths (e.g. translations)."""
    a, b = _np(v_a, "v_a"), _np(v_b, "v_b")
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    if np.any(na == 0) or np.any(nb == 0):
        raise ValueError("direction_angle_deg needs non-zero vectors")
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(-1)))


def relative_pose_errors(c2w_est: ArrayLike, c2w_gt: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """(rotation error, translation-direction error) in degrees of c2w poses (..., 4, 4).

    Both poses must be expressed in the same reference frame (e.g. view 2 in view 1's frame);
    the translation is compared up to scale, as pointmap-based poses have no metric scale.
    """
    est, gt = _np(c2w_est, "c2w_est"), _np(c2w_gt, "c2w_gt")
    if est.shape[-2:] != (4, 4) or gt.shape[-2:] != (4, 4):
        raise ValueError(f"poses must be (..., 4, 4), got {est.shape} and {gt.shape}")
    return (
        rotation_angle_deg(est[..., :3, :3], gt[..., :3, :3]),
        direction_angle_deg(est[..., :3, 3], gt[..., :3, 3]),
    )


def umeyama_similarity(
    src: ArrayLike, dst: ArrayLike, with_scale: bool = True
) -> Tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (s, R, t) with ``dst ~ s * R @ src + t`` (Umeyama 1991).

    ``src``, ``dst``: (N, 3) corresponding points, N >= 3 and not collinear.
    """
    x, y = _np(src, "src"), _np(dst, "dst")
    if x.ndim != 2 or x.shape[1] != 3 or x.shape != y.shape:
        raise ValueError(f"src and dst must both be (N, 3), got {x.shape} and {y.shape}")
    if x.shape[0] < 3 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("umeyama_similarity needs at least 3 finite point pairs")
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    cov = yc.T @ xc / x.shape[0]
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    var_x = (xc ** 2).sum() / x.shape[0]
    if var_x <= 0:
        raise ValueError("umeyama_similarity: source points are all identical")
    s = float(np.trace(np.diag(S) @ D) / var_x) if with_scale else 1.0
    t = my - s * R @ mx
    return s, R, t
