"""Two-stream cross-view transformer decoder (CroCo/DUSt3R ``dec_blocks`` / ``dec_blocks2``).

Each view has its own stack of :class:`DecoderBlock`. At layer ``i`` the view-1 block updates
the view-1 tokens while cross-attending to the view-2 tokens of layer ``i-1`` and vice versa,
so the two streams exchange information at every layer.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import RoPE2D, RotaryTable
from .vit import Mlp, SelfAttention, check_heads, layer_norm, merge_heads, split_heads


class CrossAttention(nn.Module):
    """Multi-head attention of queries onto a separate key/value token set (RoPE on q and k)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, memory: torch.Tensor,
                query_rope: Optional[RotaryTable], memory_rope: Optional[RotaryTable]) -> torch.Tensor:
        q = split_heads(self.projq(query), self.num_heads)
        k = split_heads(self.projk(memory), self.num_heads)
        v = split_heads(self.projv(memory), self.num_heads)
        if query_rope is not None:
            q = RoPE2D.rotate(q, query_rope)
        if memory_rope is not None:
            k = RoPE2D.rotate(k, memory_rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(merge_heads(out))


class DecoderBlock(nn.Module):
    """self-attention -> cross-attention to the other view (normalised by ``norm_y``) -> MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = SelfAttention(dim, num_heads)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm2 = layer_norm(dim)
        self.norm3 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = layer_norm(dim)

    def forward(self, x: torch.Tensor, other: torch.Tensor,
                x_rope: Optional[RotaryTable], other_rope: Optional[RotaryTable]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), x_rope)
        y = self.norm_y(other)
        x = x + self.cross_attn(self.norm2(x), y, x_rope, other_rope)
        return x + self.mlp(self.norm3(x))


def make_decoder_stack(dim: int, depth: int, num_heads: int, mlp_ratio: float) -> nn.ModuleList:
    return nn.ModuleList([DecoderBlock(dim, num_heads, mlp_ratio) for _ in range(depth)])


def run_cross_view_decoder(
    blocks1: nn.ModuleList, blocks2: nn.ModuleList, final_norm: nn.Module,
    tokens1: torch.Tensor, tokens2: torch.Tensor,
    rope1: Optional[RotaryTable], rope2: Optional[RotaryTable],
) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Run both stacks in lock-step on decoder-width tokens (B, N, C).

    Returns, per view, the list of the ``depth`` block outputs; the last one is passed
    through ``final_norm`` (DUSt3R ``dec_norm``).
    """
    outs1: List[torch.Tensor] = []
    outs2: List[torch.Tensor] = []
    f1, f2 = tokens1, tokens2
    for blk1, blk2 in zip(blocks1, blocks2):
        f1, f2 = blk1(f1, f2, rope1, rope2), blk2(f2, f1, rope2, rope1)
        outs1.append(f1)
        outs2.append(f2)
    if outs1:
        outs1[-1] = final_norm(outs1[-1])
        outs2[-1] = final_norm(outs2[-1])
    return outs1, outs2
