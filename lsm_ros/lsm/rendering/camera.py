"""Pinhole camera description used by the renderer.

Frames: ``c2w`` maps camera coordinates to world coordinates, **OpenCV convention**
(x right, y down, z forward). ``K`` holds pixel intrinsics where pixel (u, v) has its
centre at (u + 0.5, v + 0.5), as in gsplat.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import torch
from torch import Tensor


def invert_rigid(transform: Tensor) -> Tensor:
    """Inverse of rigid 4x4 transforms (..., 4, 4) using R^T and -R^T t."""
    rot = transform[..., :3, :3]
    trans = transform[..., :3, 3:]
    rot_t = rot.transpose(-1, -2)
    out = torch.zeros_like(transform)
    out[..., :3, :3] = rot_t
    out[..., :3, 3:] = -rot_t @ trans
    out[..., 3, 3] = 1.0
    return out


@dataclass
class Camera:
    """One pinhole camera.

    Attributes:
        K: (3, 3) pixel intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]].
        c2w: (4, 4) camera-to-world pose, OpenCV axes.
        width, height: image size in pixels.
    """

    K: Tensor
    c2w: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if tuple(self.K.shape) != (3, 3):
            raise ValueError(f"Camera.K must be (3, 3), got {tuple(self.K.shape)}")
        if tuple(self.c2w.shape) != (4, 4):
            raise ValueError(f"Camera.c2w must be (4, 4), got {tuple(self.c2w.shape)}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"Camera size must be positive, got {self.width}x{self.height}")

    @property
    def viewmat(self) -> Tensor:
        """(4, 4) world-to-camera transform (OpenCV), what :func:`render` expects."""
        return invert_rigid(self.c2w)


def stack_cameras(cameras: Sequence[Camera]) -> Tuple[Tensor, Tensor, int, int]:
    """Stack cameras of one size into ``(Ks (C,3,3), viewmats (C,4,4), width, height)``."""
    if len(cameras) == 0:
        raise ValueError("stack_cameras needs at least one camera")
    width, height = int(cameras[0].width), int(cameras[0].height)
    if any((int(c.width), int(c.height)) != (width, height) for c in cameras):
        raise ValueError("all cameras passed to one render call must share width and height")
    Ks = torch.stack([c.K for c in cameras])
    viewmats = torch.stack([c.viewmat for c in cameras])
    return Ks, viewmats, width, height
