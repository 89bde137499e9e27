"""Shared definitions of the procedural scenes: class ids, surface kinds, image sizes.

World frame: metres, z up; see :mod:`lsm_train.data.procedural` for every convention.
"""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np

WALL, FLOOR, CEILING, CHAIR, TABLE, SOFA, BED, OTHER = range(8)
SizeLike = Union[int, Tuple[int, int]]

# Pattern kinds of a surface material.
PLAIN, CHECKER, STRIPES, WOOD, NOISE = range(5)

# Room surface ids (the first six surfaces of every room).
_FLOOR_S, _CEIL_S, _WALL_X0, _WALL_X1, _WALL_Y0, _WALL_Y1 = range(6)


def parse_size(size: SizeLike) -> Tuple[int, int]:
    """``size`` is an int (square) or ``(height, width)``; returns ``(H, W)``."""
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or a (height, width) pair, got {size!r}") from None
    if h < 2 or w < 2:
        raise ValueError(f"image size must be at least 2x2, got (H={h}, W={w})")
    return h, w
