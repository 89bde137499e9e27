"""Cross-model attention: point features attend to 2-D image tokens (paper Sec. 3.2-3.3).

The official release calls this block ``DecoderBlock`` (NVlabs/LSM ``ptv3.py``):
self-attention over all points of a sample, cross-attention from the points to the other
modality's tokens (normalised by ``norm_y``), then an MLP, each pre-normed with a residual.
Attention projections carry no bias (``nn.MultiheadAttention(bias=False)``), so the state
dict is ``norm1, attn.in_proj_weight, attn.out_proj.weight, cross_attn.*, norm2, norm3,
mlp.fc1, mlp.fc2, norm_y``.

The maths uses ``F.scaled_dot_product_attention`` on the module's own weights. On CPU its
fused kernel does not materialise the (L, L) score matrix, so all-points self-attention
stays linear in memory.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class TokenMlp(nn.Module):
    """fc1 -> GELU -> fc2 (CroCo ``Mlp`` layout)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _multihead(mha: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
               attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """nn.MultiheadAttention maths (no bias, no dropout) via SDPA. query (B,L,C), key (B,S,C)."""
    B, L, C = query.shape
    H = mha.num_heads
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3, dim=0)
    q = (query @ w_q.t()).view(B, L, H, C // H).transpose(1, 2)
    k = (key @ w_k.t()).view(B, key.shape[1], H, C // H).transpose(1, 2)
    v = (key @ w_v.t()).view(B, key.shape[1], H, C // H).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    out = out.transpose(1, 2).reshape(B, L, C) @ mha.out_proj.weight.t()
    return out if mha.out_proj.bias is None else out + mha.out_proj.bias


class CrossModelBlock(nn.Module):
    """Self-attention -> cross-attention to tokens -> MLP, over one sample's points each.

    ``dim`` is both the point width and the token width (project tokens beforehand).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, bias=False, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, bias=False, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio))
        self.norm_y = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor,
                key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, L, dim) padded point features, tokens (B, T, dim),
        key_padding_mask (B, L) bool, True at padding (as nn.MultiheadAttention) -> (B, L, dim).
        Padded rows are computed but meaningless."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be (B, L, {self.dim}), got {tuple(x.shape)}")
        if tokens.dim() != 3 or tokens.shape[0] != x.shape[0] or tokens.shape[-1] != self.dim:
            raise ValueError(f"tokens must be ({x.shape[0]}, T, {self.dim}), got {tuple(tokens.shape)}")
        mask = None
        if key_padding_mask is not None:
            if key_padding_mask.shape != x.shape[:2]:
                raise ValueError("key_padding_mask must be (B, L)")
            mask = ~key_padding_mask[:, None, None, :].bool()
        h = self.norm1(x)
        x = x + _multihead(self.attn, h, h, mask)
        y = self.norm_y(tokens)
        x = x + _multihead(self.cross_attn, self.norm2(x), y, None)
        return x + self.mlp(self.norm3(x))

    def forward_points(self, feat: torch.Tensor, counts: Sequence[int], tokens: torch.Tensor) -> torch.Tensor:
        """feat (N, dim) with the points of sample b contiguous (``counts[b]`` of them),
        tokens (B, T, dim) -> (N, dim). Samples run one at a time, so no padding is needed;
        this equals padding + ``key_padding_mask`` exactly."""
        counts = [int(c) for c in counts]
        if feat.dim() != 2 or feat.shape[0] != sum(counts):
            raise ValueError(f"feat must be (sum(counts)={sum(counts)}, dim), got {tuple(feat.shape)}")
        if tokens.shape[0] != len(counts):
            raise ValueError(f"got tokens for {tokens.shape[0]} samples but {len(counts)} point clouds")
        outs = [self.forward(part[None], tokens[b:b + 1])[0]
                for b, part in enumerate(feat.split(counts, dim=0))]
        return torch.cat(outs, dim=0)
