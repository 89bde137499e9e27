"""Camera images -> model input, and model pixels -> original camera pixels.

The model sees square ``S x S`` images (official LSM: short side resized to S, centre crop).
:class:`ImageTransform` records that mapping so every output (masks, label images,
intrinsics) can be taken back to the original camera resolution.

Pixel convention: pixel (u, v) covers [u, u+1) x [v, v+1); its centre is (u+0.5, v+0.5).
A model pixel centre x_m maps to the original x_o = (x_m + offset) / scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class ImageTransform:
    """Resize by ``scale`` then crop ``size`` pixels starting at ``offset`` (x, y), resized frame."""

    original_size: tuple  # (width, height) of the camera image
    size: tuple  # (width, height) of the model image
    scale: float
    offset: tuple  # (x, y) crop origin in resized pixels

    def intrinsics_to_model(self, K: np.ndarray) -> np.ndarray:
        K = np.array(K, dtype=np.float64, copy=True)
        K[:2] *= self.scale
        K[0, 2] -= self.offset[0]
        K[1, 2] -= self.offset[1]
        return K

    def intrinsics_to_original(self, K: np.ndarray) -> np.ndarray:
        K = np.array(K, dtype=np.float64, copy=True)
        K[0, 2] += self.offset[0]
        K[1, 2] += self.offset[1]
        K[:2] /= self.scale
        return K

    def to_model_pixels(self, uv) -> np.ndarray:
        """Camera-image pixel coordinates (..., 2) -> model-image coordinates (continuous,
        pixel (u, v) covers [u, u+1); the mapping K follows in :meth:`intrinsics_to_model`)."""
        return np.asarray(uv, dtype=np.float64) * self.scale - np.asarray(self.offset)

    def to_camera_pixels(self, uv) -> np.ndarray:
        """Model-image pixel coordinates (..., 2) -> camera-image coordinates (the inverse of
        :meth:`to_model_pixels`; outside [0, W) x [0, H) for model pixels off the image)."""
        return (np.asarray(uv, dtype=np.float64) + np.asarray(self.offset)) / self.scale

    def to_model(self, image: np.ndarray, nearest: bool = True, fill=0) -> np.ndarray:
        """Warp a camera-resolution map (H, W[, C]) to the model image (S x S), as the model
        input is made but without its area pre-filter; use ``nearest`` for depth and labels
        (no mixing of foreground and background)."""
        flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.warpAffine(image, self._to_model_affine(), tuple(self.size), flags=flags,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=fill)

    def _model_to_original_affine(self) -> np.ndarray:
        """2x3 affine for ``cv2.warpAffine`` (whose pixel centres are integers): model pixel
        index X_m -> original X_o = (X_m + 0.5 + offset) / scale - 0.5."""
        s, (ox, oy) = self.scale, self.offset
        return np.array([[1 / s, 0, (ox + 0.5) / s - 0.5], [0, 1 / s, (oy + 0.5) / s - 0.5]], dtype=np.float64)

    def _to_model_affine(self, sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
        """2x3 affine (integer pixel centres) from an image already resized by (sx, sy) to the
        model image: X_m = (scale/sx) (X + 0.5) - 0.5 - offset."""
        ax, ay = self.scale / sx, self.scale / sy
        return np.array([[ax, 0, 0.5 * ax - 0.5 - self.offset[0]],
                         [0, ay, 0.5 * ay - 0.5 - self.offset[1]]], dtype=np.float64)

    def to_original(self, image: np.ndarray, nearest: bool = True, fill=0) -> np.ndarray:
        """Warp a model-resolution map (H_m, W_m[, C]) to the original camera resolution.

        Original pixels outside the crop get ``fill``. Use ``nearest`` for labels and masks.
        """
        flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.warpAffine(image, self._model_to_original_affine(), tuple(self.original_size),
                              flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def square_crop_transform(width: int, height: int, size: int) -> ImageTransform:
    """Short side -> ``size``, centred square crop (the official LSM preprocessing)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image has zero size ({width}x{height})")
    scale = size / min(width, height)
    rw, rh = width * scale, height * scale
    offset = ((rw - size) / 2.0, (rh - size) / 2.0)
    return ImageTransform((int(width), int(height)), (size, size), float(scale), offset)


def check_rgb(image, name: str = "image") -> np.ndarray:
    """Validate an RGB image: uint8 (H,W,3), or float (H,W,3) in [0,1]; returns uint8."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name} must be an RGB image of shape (H, W, 3), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} has zero size {arr.shape[:2]}")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
            raise ValueError(f"{name}: float images must be in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
        arr = np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
    return arr


def prepare_image(image, size: int) -> tuple[torch.Tensor, ImageTransform]:
    """RGB image (H,W,3) -> model tensor (3,S,S) in [0,1] and the transform used."""
    rgb = check_rgb(image)
    h, w = rgb.shape[:2]
    tf = square_crop_transform(w, h, size)
    sx = sy = 1.0
    if tf.scale < 1:  # down-sampling: area filter first, then the exact residual (~1x) warp
        rw, rh = max(size, round(w * tf.scale)), max(size, round(h * tf.scale))
        rgb = cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_AREA)
        sx, sy = rw / w, rh / h
    out = cv2.warpAffine(rgb, tf._to_model_affine(sx, sy), (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).float() / 255.0, tf
