"""Whether camera images can give a meaningful reconstruction (numpy only: importing this
costs nothing, so the ROS node checks every image before torch is even loaded)."""
from __future__ import annotations

from typing import Optional

import numpy as np

MIN_SIDE = 16  # pixels: below this the centre crop has too little to reconstruct
MAX_ASPECT = 8.0  # long side / short side: beyond this the centre crop is a sliver


def image_problem(rgb: np.ndarray) -> Optional[str]:
    """Why an RGB camera image (H, W, 3) uint8 cannot give a meaningful reconstruction, or
    None: too small, too elongated, or without any texture (every pixel the same)."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        return f"image is {w}x{h}: its short side is below {MIN_SIDE} pixels"
    if max(h, w) / min(h, w) > MAX_ASPECT:
        return f"image is {w}x{h}: more elongated than {MAX_ASPECT:g}:1 (the model sees a square crop)"
    sample = rgb[::7, ::7]
    if (sample == sample.flat[0]).all() and (rgb == rgb.flat[0]).all():
        return f"image has no texture: every pixel is {tuple(int(v) for v in rgb[0, 0])}"
    return None


def pair_problem(rgb0: np.ndarray, rgb1: np.ndarray) -> Optional[str]:
    """Why two views cannot form a pair, or None: different sizes, or identical images (no
    parallax: depth and relative pose would be meaningless)."""
    if rgb0.shape != rgb1.shape:
        return (f"the two images of a pair differ in size ({rgb0.shape[1]}x{rgb0.shape[0]} vs "
                f"{rgb1.shape[1]}x{rgb1.shape[0]}); both views must have the same resolution")
    if np.array_equal(rgb0, rgb1):
        return "the two views are identical images: no parallax, so no depth or pose"
    return None
