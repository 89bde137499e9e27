"""Pointmaps: per-pixel 3-D points, their making from depth, transforming and normalising.

Conventions used throughout ``lsm.geometry``:

* Camera frame: OpenCV (x right, y down, z forward); depth is the z coordinate.
* Poses are camera-to-world (c2w) 4x4 matrices: ``X_world = R @ X_cam + t``.
* Pixel (u, v) (column u, row v) has its centre at ``(u + pixel_center, v + pixel_center)``
  with ``pixel_center = 0.5`` by default, so the image spans [0, W] x [0, H] and the
  geometric image centre is exactly (W/2, H/2), the principal point used by the symmetric
  rasteriser frustum (FoV = 2 atan(W / 2f)).  DUSt3R instead puts pixel centres at integers
  (``xy_grid``) while still using (W/2, H/2) as principal point, i.e. half a pixel off the
  geometric centre; pass ``pixel_center=0.0`` to reproduce its numbers exactly.
* Pointmaps have shape (B, H, W, 3); index [b, v, u] is pixel (u, v).

All functions here take torch tensors (numpy arrays are accepted and converted) and return
torch tensors.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray]

DEFAULT_PIXEL_CENTER = 0.5


def as_tensor(x: ArrayLike, name: str, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Return ``x`` as a torch tensor (numpy arrays are converted, not copied where possible)."""
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
        return t if dtype is None else t.to(dtype)
    raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def pixel_grid(
    height: int,
    width: int,
    *,
    pixel_center: float = DEFAULT_PIXEL_CENTER,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(H, W, 2) pixel-centre coordinates; ``grid[v, u] = (u + pixel_center, v + pixel_center)``."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got H={height}, W={width}")
    us = torch.arange(width, device=device, dtype=dtype) + pixel_center
    vs = torch.arange(height, device=device, dtype=dtype) + pixel_center
    vv, uu = torch.meshgrid(vs, us, indexing="ij")
    return torch.stack((uu, vv), dim=-1)


def intrinsics_from_focal(
    focal: ArrayLike, height: int, width: int, principal_point: Optional[ArrayLike] = None
) -> torch.Tensor:
    """Pinhole K (..., 3, 3) with fx = fy = focal and principal point (W/2, H/2) by default."""
    focal = as_tensor(focal, "focal")
    if not torch.is_floating_point(focal):
        focal = focal.double()
    K = torch.zeros(*focal.shape, 3, 3, dtype=focal.dtype, device=focal.device)
    K[..., 0, 0] = focal
    K[..., 1, 1] = focal
    if principal_point is None:
        K[..., 0, 2] = width / 2.0
        K[..., 1, 2] = height / 2.0
    else:
        pp = as_tensor(principal_point, "principal_point").to(focal)
        K[..., 0, 2] = pp[..., 0]
        K[..., 1, 2] = pp[..., 1]
    K[..., 2, 2] = 1.0
    return K


def _check_matrix(T: torch.Tensor, n: int, name: str) -> None:
    if T.ndim < 2 or T.shape[-2:] != (n, n):
        raise ValueError(f"{name} must have shape (..., {n}, {n}), got {tuple(T.shape)}")


def transform_points(T: ArrayLike, pts: ArrayLike) -> torch.Tensor:
    """Apply rigid/affine 4x4 transforms ``T`` (..., 4, 4) to points ``pts`` (..., 3).

    The batch dimensions of ``T`` must be a prefix of those of ``pts`` (the remaining point
    dimensions share the transform), e.g. T (B, 4, 4) with pts (B, H, W, 3), or T (4, 4) with
    any pts.  Returns ``T[:3, :3] @ p + T[:3, 3]`` with the shape of ``pts``.
    """
    T = as_tensor(T, "T")
    pts = as_tensor(pts, "pts")
    _check_matrix(T, 4, "T")
    if pts.ndim < 1 or pts.shape[-1] != 3:
        raise ValueError(f"pts must have shape (..., 3), got {tuple(pts.shape)}")
    batch = T.shape[:-2]
    if tuple(pts.shape[: len(batch)]) != tuple(batch):
        raise ValueError(
            f"batch dims of T {tuple(batch)} must prefix the dims of pts {tuple(pts.shape[:-1])}"
        )
    T = T.to(pts.dtype) if torch.is_floating_point(pts) else T
    flat = pts.reshape(*batch, -1, 3)
    out = flat @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]
    return out.reshape(pts.shape)


def project_points(pts_cam: ArrayLike, K: ArrayLike) -> torch.Tensor:
    """Pinhole projection of camera-frame points (..., 3) with K (..., 3, 3) -> pixels (..., 2).

    Batch dims of K must prefix those of ``pts_cam`` (as in :func:`transform_points`).
    Points with z <= 0 give non-finite or meaningless pixels; callers mask them.
    """
    K = as_tensor(K, "K")
    pts_cam = as_tensor(pts_cam, "pts_cam")
    _check_matrix(K, 3, "K")
    if pts_cam.shape[-1] != 3:
        raise ValueError(f"pts_cam must have shape (..., 3), got {tuple(pts_cam.shape)}")
    batch = K.shape[:-2]
    if tuple(pts_cam.shape[: len(batch)]) != tuple(batch):
        raise ValueError(
            f"batch dims of K {tuple(batch)} must prefix the dims of pts_cam {tuple(pts_cam.shape[:-1])}"
        )
    flat = pts_cam.reshape(*batch, -1, 3)
    hom = flat @ K.to(flat.dtype)[..., :3, :3].transpose(-1, -2)
    uv = hom[..., :2] / hom[..., 2:3]
    return uv.reshape(*pts_cam.shape[:-1], 2)


def depth_to_pointmap(
    depth: ArrayLike,
    K: ArrayLike,
    c2w: Optional[ArrayLike] = None,
    *,
    pixel_center: float = DEFAULT_PIXEL_CENTER,
) -> torch.Tensor:
    """Unproject depth maps (B, H, W) (z along the optical axis) to pointmaps (B, H, W, 3).

    ``K`` is (B, 3, 3) (or (3, 3), shared).  Without ``c2w`` the points are in each camera's
    own frame; with ``c2w`` (B, 4, 4) (or (4, 4)) they are mapped to the world frame.
    A depth of 0 (invalid pixel in ScanNet-style maps) yields the camera centre; mask it.
    """
    depth = as_tensor(depth, "depth")
    if depth.ndim != 3:
        raise ValueError(f"depth must have shape (B, H, W), got {tuple(depth.shape)}")
    if not torch.is_floating_point(depth):
        depth = depth.float()
    B, H, W = depth.shape
    K = as_tensor(K, "K").to(device=depth.device, dtype=depth.dtype)
    _check_matrix(K, 3, "K")
    if K.ndim == 2:
        K = K.expand(B, 3, 3)
    if K.shape != (B, 3, 3):
        raise ValueError(f"K must have shape ({B}, 3, 3) or (3, 3), got {tuple(K.shape)}")
    grid = pixel_grid(H, W, pixel_center=pixel_center, device=depth.device, dtype=depth.dtype)
    fx = K[:, 0, 0].view(B, 1, 1)
    fy = K[:, 1, 1].view(B, 1, 1)
    cx = K[:, 0, 2].view(B, 1, 1)
    cy = K[:, 1, 2].view(B, 1, 1)
    x = (grid[..., 0] - cx) / fx * depth
    y = (grid[..., 1] - cy) / fy * depth
    pts = torch.stack((x, y, depth), dim=-1)
    if c2w is None:
        return pts
    c2w = as_tensor(c2w, "c2w").to(device=depth.device, dtype=depth.dtype)
    _check_matrix(c2w, 4, "c2w")
    if c2w.ndim == 2:
        c2w = c2w.expand(B, 4, 4)
    if c2w.shape != (B, 4, 4):
        raise ValueError(f"c2w must have shape ({B}, 4, 4) or (4, 4), got {tuple(c2w.shape)}")
    return transform_points(c2w, pts)


def _safe_norm(pts: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last dim whose gradient is 0 (not NaN) at the origin."""
    sq = pts.square().sum(dim=-1)
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def normalize_pointmaps(
    pts_list: Sequence[ArrayLike],
    valid_masks: Optional[Sequence[Optional[ArrayLike]]] = None,
    *,
    eps: float = 1e-8,
) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Joint average-distance normalisation (DUSt3R ``Regr3D(norm_mode='avg_dis')``).

    ``pts_list``: pointmaps (B, H_i, W_i, 3) expressed in one common frame (e.g. view 1's).
    ``valid_masks``: matching boolean masks (B, H_i, W_i) or None (all valid).
    The scale of batch element b is the mean Euclidean norm of all its valid points over all
    views; every view is divided by it.  Returns (normalised pointmaps, scale (B,)).
    Invalid points are ignored (they may be NaN/inf) and are divided as well, by a detached
    scale.  Differentiable (finite gradients even with points at the origin).  Raises
    ValueError on bad shapes, on non-finite valid points, or when a batch element has no
    valid point or an all-zero scale.
    """
    if len(pts_list) == 0:
        raise ValueError("pts_list must hold at least one pointmap")
    if valid_masks is not None and len(valid_masks) != len(pts_list):
        raise ValueError(
            f"got {len(valid_masks)} valid masks for {len(pts_list)} pointmaps"
        )
    tensors = [as_tensor(p, f"pts_list[{i}]") for i, p in enumerate(pts_list)]
    B = tensors[0].shape[0] if tensors[0].ndim == 4 else None
    total = None
    count = None
    masks, safes = [], []
    for i, pts in enumerate(tensors):
        if pts.ndim != 4 or pts.shape[-1] != 3 or pts.shape[0] != B:
            raise ValueError(
                f"pts_list[{i}] must have shape (B, H, W, 3) with a common B, got {tuple(pts.shape)}"
            )
        mask = None if valid_masks is None else valid_masks[i]
        if mask is None:
            mask = torch.ones(pts.shape[:3], dtype=torch.bool, device=pts.device)
        else:
            mask = as_tensor(mask, f"valid_masks[{i}]").to(pts.device).bool()
            if mask.shape != pts.shape[:3]:
                raise ValueError(
                    f"valid_masks[{i}] must have shape {tuple(pts.shape[:3])}, got {tuple(mask.shape)}"
                )
        safe = torch.where(mask[..., None], pts, torch.zeros((), dtype=pts.dtype, device=pts.device))
        if not torch.isfinite(safe).all():
            raise ValueError(f"pts_list[{i}] has non-finite values at valid pixels")
        masks.append(mask)
        safes.append(safe)
        dist = _safe_norm(safe).flatten(1).sum(dim=1)
        n = mask.flatten(1).sum(dim=1)
        total = dist if total is None else total + dist
        count = n if count is None else count + n
    if (count == 0).any():
        bad = torch.nonzero(count == 0).flatten().tolist()
        raise ValueError(f"batch elements {bad} have no valid point to normalise")
    scale = total / count.to(total.dtype)
    if (scale <= eps).any():
        bad = torch.nonzero(scale <= eps).flatten().tolist()
        raise ValueError(f"batch elements {bad} have all valid points at the origin")
    s = scale.view(-1, 1, 1, 1)
    # invalid pixels are divided by a detached scale so their garbage (NaN/inf) cannot leak
    # into the gradient of the scale
    normalized = [
        torch.where(mask[..., None], safe / s, pts / s.detach())
        for pts, safe, mask in zip(tensors, safes, masks)
    ]
    return normalized, scale
