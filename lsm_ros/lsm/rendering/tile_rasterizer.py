"""Tile rasteriser for inference on a CPU (numba; forward only).

Same compositing rule and the same candidate set as :mod:`.torch_rasterizer`, so the two
agree to float rounding: visible Gaussians in one global depth order (the same argsort),
a Gaussian covers the pixels of its radius box where sigma >= 0, sigma <= 0.5 * 3.33^2
and alpha = o exp(-sigma) >= 1/255; per pixel, front to back, alpha is clamped at 0.99
and compositing stops before the Gaussian that would bring the transmittance to <= 1e-4.

How: each Gaussian is appended, in depth order, to the lists of the ``tile`` x ``tile``
pixel tiles its box touches (so every list is already front to back, no per-tile sort);
tiles are composited in parallel (numba ``prange``): each Gaussian of a tile's list
updates the pixels of its box in that tile, a pixel stops for good at the transmittance
cutoff and a tile once all its pixels have, colour, depth and features in one pass.  Nothing of size
pixels x Gaussians is built.  No gradients: training uses :mod:`.torch_rasterizer`.

numba is optional: :func:`available` says whether it imports; the first call compiles
(cached on disk next to this file when writable; :func:`warm_up` does it at model load).
Calls from several threads take turns (one lock): numba's parallel kernels are not
re-entrant under every threading layer.
"""
from __future__ import annotations

import math
import threading
from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from .projection import ALPHA_THRESHOLD, MAX_EXTENT_SIGMA

ALPHA_MAX = 0.99
TRANSMITTANCE_MIN = 1e-4
SIGMA_MAX = 0.5 * MAX_EXTENT_SIGMA ** 2
TILE = 16
# numba's parallel kernels must not be entered by two threads at once (its workqueue
# threading layer aborts the process then); renders from several threads take turns
_LOCK = threading.Lock()

try:
    import numba
except ImportError:  # the torch rasteriser serves
    numba = None


def available() -> bool:
    """Whether numba imports (the tile rasteriser can run)."""
    return numba is not None


if numba is not None:
    @numba.njit(cache=True)
    def _tile_lists(x0, x1, y0, y1, tiles_x, tiles_y, tile):  # pragma: no cover (compiled)
        n = x0.shape[0]
        counts = np.zeros(tiles_x * tiles_y + 1, np.int64)
        for g in range(n):
            if x1[g] <= x0[g] or y1[g] <= y0[g]:
                continue
            for ty in range(y0[g] // tile, (y1[g] - 1) // tile + 1):
                for tx in range(x0[g] // tile, (x1[g] - 1) // tile + 1):
                    counts[ty * tiles_x + tx + 1] += 1
        offsets = np.cumsum(counts)
        fill = offsets[:-1].copy()
        entries = np.empty(offsets[-1], np.int32)
        for g in range(n):  # in depth order: every tile's list is front to back
            if x1[g] <= x0[g] or y1[g] <= y0[g]:
                continue
            for ty in range(y0[g] // tile, (y1[g] - 1) // tile + 1):
                for tx in range(x0[g] // tile, (x1[g] - 1) // tile + 1):
                    t = ty * tiles_x + tx
                    entries[fill[t]] = g
                    fill[t] += 1
        return offsets, entries

    @numba.njit(parallel=True, cache=True)
    def _composite(offsets, entries, x0, x1, y0, y1, mx, my, ca, cb, cc, opac, channels,
                   width, height, tiles_x, tile, alpha_min, alpha_max, t_min,
                   sigma_max):  # pragma: no cover (compiled)
        num_tiles = offsets.shape[0] - 1
        nch = channels.shape[1]
        out = np.zeros((height * width, nch), np.float32)
        alpha_img = np.zeros(height * width, np.float32)
        for t in numba.prange(num_tiles):
            start, stop = offsets[t], offsets[t + 1]
            if stop == start:
                continue
            px0 = (t % tiles_x) * tile
            py0 = (t // tiles_x) * tile
            px1 = min(px0 + tile, width)
            py1 = min(py0 + tile, height)
            trans = np.ones(tile * tile, np.float64)
            done = np.zeros(tile * tile, np.bool_)
            acc = np.zeros((tile * tile, nch), np.float32)
            remaining = (px1 - px0) * (py1 - py0)
            # Gaussian by Gaussian, front to back, over the pixels of its box in this tile;
            # a pixel stops for good before the Gaussian that would bring T to <= t_min
            for k in range(start, stop):
                g = entries[k]
                for py in range(max(y0[g], py0), min(y1[g], py1)):
                    dy = py + 0.5 - my[g]
                    for px in range(max(x0[g], px0), min(x1[g], px1)):
                        i = (py - py0) * tile + (px - px0)
                        if done[i]:
                            continue
                        dx = px + 0.5 - mx[g]
                        sigma = 0.5 * (ca[g] * dx * dx + cc[g] * dy * dy) + cb[g] * dx * dy
                        if sigma < 0.0 or sigma > sigma_max:
                            continue
                        a = opac[g] * math.exp(-sigma)
                        if a < alpha_min:
                            continue
                        a = min(a, alpha_max)
                        after = trans[i] * (1.0 - a)
                        if after <= t_min:
                            done[i] = True
                            remaining -= 1
                            continue
                        w = np.float32(a * trans[i])
                        for c in range(nch):
                            acc[i, c] += w * channels[g, c]
                        trans[i] = after
                if remaining == 0:
                    break
            for py in range(py0, py1):
                for px in range(px0, px1):
                    i = (py - py0) * tile + (px - px0)
                    p = py * width + px
                    for c in range(nch):
                        out[p, c] = acc[i, c]
                    alpha_img[p] = 1.0 - trans[i]
        return out, alpha_img


@torch.no_grad()
def rasterize_camera_tiles(means2d: Tensor, conics: Tensor, opacities: Tensor, channels: Tensor,
                           depths: Tensor, radii: Tensor, width: int, height: int,
                           tile: int = TILE) -> Tuple[Tensor, Tensor]:
    """Composite one camera on the CPU: (H, W, D) channel image and (H, W) alpha.

    Inputs as :func:`lsm.rendering.torch_rasterizer.rasterize_camera` (one camera, CPU
    tensors); not differentiable.
    """
    if numba is None:
        raise RuntimeError("the tile rasteriser needs numba (pip install numba)")
    dtype = channels.dtype
    visible = torch.nonzero((radii > 0).all(-1)).squeeze(1)
    if visible.numel():
        visible = visible.index_select(0, torch.argsort(depths.index_select(0, visible)))
    m = means2d.index_select(0, visible)
    r = radii.index_select(0, visible).to(means2d.dtype)
    x0 = torch.ceil(m[:, 0] - r[:, 0] - 0.5).clamp(0, width).to(torch.int32)
    x1 = (torch.floor(m[:, 0] + r[:, 0] - 0.5) + 1).clamp(0, width).to(torch.int32)
    y0 = torch.ceil(m[:, 1] - r[:, 1] - 0.5).clamp(0, height).to(torch.int32)
    y1 = (torch.floor(m[:, 1] + r[:, 1] - 0.5) + 1).clamp(0, height).to(torch.int32)
    con = conics.index_select(0, visible).double()
    arrays = [t.contiguous().numpy() for t in (x0, x1, y0, y1)]
    tiles_x, tiles_y = -(-width // tile), -(-height // tile)
    with _LOCK:
        out, alpha = _rasterize(arrays, m, con, opacities, channels, visible, width, height,
                                tiles_x, tiles_y, tile)
    return (torch.from_numpy(out).to(dtype).reshape(height, width, -1),
            torch.from_numpy(alpha).to(dtype).reshape(height, width))


def _rasterize(arrays, m, con, opacities, channels, visible, width, height, tiles_x, tiles_y,
               tile):
    offsets, entries = _tile_lists(*arrays, tiles_x, tiles_y, tile)
    return _composite(
        offsets, entries, *arrays,
        m[:, 0].double().contiguous().numpy(), m[:, 1].double().contiguous().numpy(),
        con[:, 0].contiguous().numpy(), con[:, 1].contiguous().numpy(),
        con[:, 2].contiguous().numpy(), opacities.index_select(0, visible).double().numpy(),
        channels.index_select(0, visible).float().contiguous().numpy(),
        width, height, tiles_x, tile, ALPHA_THRESHOLD, ALPHA_MAX, TRANSMITTANCE_MIN, SIGMA_MAX)


def warm_up() -> bool:
    """Compile the kernels now (or load them from numba's cache) on a tiny input, so that
    the first real render does not pay for it; False when numba is missing."""
    if numba is None:
        return False
    means2d = torch.tensor([[3.0, 3.0], [4.0, 2.0]])
    conics = torch.tensor([[0.5, 0.0, 0.5], [0.3, 0.1, 0.4]])
    rasterize_camera_tiles(means2d, conics, torch.tensor([0.6, 0.9]), torch.rand(2, 4),
                           torch.tensor([1.0, 2.0]), torch.full((2, 2), 3), 8, 8)
    return True
