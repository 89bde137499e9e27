"""Space-filling-curve serialisation of voxel grids (Point Transformer V3, Sec. 3.1).

Conventions
-----------
* ``grid``: (N, 3) non-negative integer voxel coordinates (x, y, z), each < ``2**depth``.
* A code is an int64. The curve code of a voxel occupies the low ``3*depth`` bits and the
  sample (batch) index the bits above, so sorting by code groups samples and, within a
  sample, follows the curve. ``code >> 3`` is the code of the parent voxel ``grid >> 1``
  for both curves (both are hierarchical), which is how pooling coarsens.
* Orders: ``"z"`` (Morton, x is the most significant bit of every triple), ``"hilbert"``
  (Skilling's construction, numerically identical to Pointcept's PTv3 implementation), and
  the ``"-trans"`` variants, which swap the x and y axes before encoding.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch

ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")
MAX_DEPTH = 16  # bits per axis; 3 * 16 = 48 bits leave room for the sample index


def _check_grid(grid: torch.Tensor, depth: int) -> torch.Tensor:
    if grid.dim() != 2 or grid.shape[1] != 3:
        raise ValueError(f"grid must have shape (N, 3), got {tuple(grid.shape)}")
    if not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in [0, {MAX_DEPTH}], got {depth}")
    grid = grid.long()
    if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= (1 << depth)):
        raise ValueError(f"grid coordinates must lie in [0, 2**{depth})")
    return grid


def z_order_encode(grid: torch.Tensor, depth: int) -> torch.Tensor:
    """Morton code: bit i of x, y, z goes to bit 3i+2, 3i+1, 3i. (N, 3) -> (N,) int64."""
    grid = _check_grid(grid, depth)
    x, y, z = grid.unbind(1)
    code = torch.zeros_like(x)
    for i in range(depth):
        code |= (((x >> i) & 1) << (3 * i + 2)) | (((y >> i) & 1) << (3 * i + 1)) | (((z >> i) & 1) << (3 * i))
    return code


def z_order_decode(code: torch.Tensor, depth: int) -> torch.Tensor:
    """Inverse of :func:`z_order_encode`: (N,) -> (N, 3) int64."""
    code = code.long()
    x = torch.zeros_like(code)
    y = torch.zeros_like(code)
    z = torch.zeros_like(code)
    for i in range(depth):
        x |= ((code >> (3 * i + 2)) & 1) << i
        y |= ((code >> (3 * i + 1)) & 1) << i
        z |= ((code >> (3 * i)) & 1) << i
    return torch.stack([x, y, z], dim=1)


def _interleave(axes: Sequence[torch.Tensor], depth: int) -> torch.Tensor:
    """Bits of axes[0..2], most significant level first, axis 0 first within a level."""
    code = torch.zeros_like(axes[0])
    for level in range(depth - 1, -1, -1):
        for a in axes:
            code = (code << 1) | ((a >> level) & 1)
    return code


def _deinterleave(code: torch.Tensor, depth: int) -> list:
    axes = [torch.zeros_like(code) for _ in range(3)]
    for level in range(depth):
        for d in range(3):
            shift = 3 * level + (2 - d)
            axes[d] |= ((code >> shift) & 1) << level
    return axes


def hilbert_encode(grid: torch.Tensor, depth: int) -> torch.Tensor:
    """3-D Hilbert code of each voxel. (N, 3) -> (N,) int64.

    Skilling (2004) "Programming the Hilbert curve": undo the excess work axis by axis from
    the most significant bit, interleave the transposed bits, then Gray-decode the result.
    """
    grid = _check_grid(grid, depth)
    if depth == 0:
        return torch.zeros(grid.shape[0], dtype=torch.long, device=grid.device)
    axes = [grid[:, d].clone() for d in range(3)]
    for level in range(depth - 1, 0, -1):
        lower = (1 << level) - 1  # all bits below the current one
        for d in range(3):
            bit_on = ((axes[d] >> level) & 1).bool()
            # bit set: invert the lower bits of axis 0; else swap lower bits of axis 0 and d
            flip = torch.where(bit_on, torch.zeros_like(axes[0]), (axes[0] ^ axes[d]) & lower)
            axes[0] = torch.where(bit_on, axes[0] ^ lower, axes[0] ^ flip)
            if d != 0:
                axes[d] = axes[d] ^ flip
    gray = _interleave(axes, depth)
    binary = gray
    shift = 1
    while shift < 3 * depth:
        binary = binary ^ (binary >> shift)
        shift <<= 1
    return binary


def hilbert_decode(code: torch.Tensor, depth: int) -> torch.Tensor:
    """Inverse of :func:`hilbert_encode`: (N,) -> (N, 3) int64."""
    code = code.long()
    if depth == 0:
        return torch.zeros(code.shape[0], 3, dtype=torch.long, device=code.device)
    gray = code ^ (code >> 1)
    axes = _deinterleave(gray, depth)
    for level in range(1, depth):
        lower = (1 << level) - 1
        for d in range(2, -1, -1):
            bit_on = ((axes[d] >> level) & 1).bool()
            flip = torch.where(bit_on, torch.zeros_like(axes[0]), (axes[0] ^ axes[d]) & lower)
            axes[0] = torch.where(bit_on, axes[0] ^ lower, axes[0] ^ flip)
            if d != 0:
                axes[d] = axes[d] ^ flip
    return torch.stack(axes, dim=1)


def encode(grid: torch.Tensor, batch: torch.Tensor, depth: int, order: str) -> torch.Tensor:
    """Curve code of ``order`` with the sample index in the high bits. -> (N,) int64."""
    if order not in ORDERS:
        raise ValueError(f"unknown serialisation order {order!r}; choose from {ORDERS}")
    if order.endswith("-trans"):
        grid = grid[:, [1, 0, 2]]
    code = z_order_encode(grid, depth) if order.startswith("z") else hilbert_encode(grid, depth)
    return (batch.long() << (3 * depth)) | code


def serialize(grid: torch.Tensor, batch: torch.Tensor, depth: int,
              orders: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes, sorting permutations and their inverses for every order, each (k, N).

    ``order[j]`` lists point indices along curve j; ``inverse[j][i]`` is the position of
    point i along it.
    """
    code = torch.stack([encode(grid, batch, depth, o) for o in orders])
    order = torch.argsort(code, dim=1)
    return code, order, inverse_permutation(order)


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    """Row-wise inverse of permutations stored in the last dimension."""
    inverse = torch.empty_like(order)
    ar = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    return inverse.scatter_(-1, order, ar)
