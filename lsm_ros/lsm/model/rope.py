"""2-D rotary position embedding (RoPE) over a patch grid, as in CroCo v2 / DUSt3R.

Convention (must match the official weights):

* a token at patch row ``y`` and column ``x`` has position ``(y, x)`` (integer grid indices);
* within one attention head of width ``Dh`` the first ``Dh/2`` channels are rotated by the
  ``y`` position and the last ``Dh/2`` channels by the ``x`` position;
* each half of width ``D = Dh/2`` is rotated "rotate-half" style: channel ``i`` pairs with
  channel ``i + D/2`` at angle ``pos * freq**(-2i/D)`` for ``i < D/2``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def patch_grid_positions(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(h*w, 2) long tensor of (row, col) indices in row-major token order."""
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    return torch.cartesian_prod(ys, xs)


@dataclass(frozen=True)
class RotaryTable:
    """Per-token cosines and sines, both (N, head_dim): [y-half | x-half]."""

    cos: torch.Tensor
    sin: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return self.cos.shape[0]


class RoPE2D:
    """Builds :class:`RotaryTable` objects and rotates query/key tensors.

    Holds no parameters (nothing appears in a state dict).
    """

    def __init__(self, freq: float = 100.0):
        if not freq > 0:
            raise ValueError(f"RoPE base frequency must be positive, got {freq}")
        self.freq = float(freq)

    def table(self, positions: torch.Tensor, head_dim: int, dtype: torch.dtype) -> RotaryTable:
        """Table for ``positions`` (N, 2) long (row, col) and heads of width ``head_dim``."""
        if head_dim % 4 != 0:
            raise ValueError(f"2-D RoPE needs a head dim divisible by 4, got {head_dim}")
        if positions.ndim != 2 or positions.shape[1] != 2:
            raise ValueError(f"positions must be (N, 2), got {tuple(positions.shape)}")
        half = head_dim // 2  # channels per axis
        inv_freq = 1.0 / (self.freq ** (torch.arange(0, half, 2, device=positions.device,
                                                     dtype=torch.float32) / half))
        cos_parts, sin_parts = [], []
        for axis in (0, 1):  # y first, then x
            angles = positions[:, axis].to(torch.float32)[:, None] * inv_freq[None, :]
            angles = torch.cat((angles, angles), dim=-1)  # (N, half)
            cos_parts.append(angles.cos())
            sin_parts.append(angles.sin())
        return RotaryTable(cos=torch.cat(cos_parts, -1).to(dtype), sin=torch.cat(sin_parts, -1).to(dtype))

    @staticmethod
    def rotate(tokens: torch.Tensor, table: RotaryTable) -> torch.Tensor:
        """Rotate ``tokens`` (B, heads, N, head_dim) by the table's angles."""
        if tokens.shape[-2] != table.num_tokens or tokens.shape[-1] != table.cos.shape[-1]:
            raise ValueError(f"tokens {tuple(tokens.shape)} do not match the rotary table "
                             f"{tuple(table.cos.shape)}")
        a, b, c, d = tokens.chunk(4, dim=-1)  # y-half = [a, b], x-half = [c, d]
        rotated = torch.cat((-b, a, -d, c), dim=-1)
        return tokens * table.cos + rotated * table.sin
