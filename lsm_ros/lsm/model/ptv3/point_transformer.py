"""Point Transformer V3 with LSM's cross-model fusion blocks (paper Sec. 3.2-3.3).

Input convention (``PointTransformer.forward``)
-----------------------------------------------
* ``coord`` (N, 3): points normalised to the unit cube per sample (centred, divided by the
  max-abs coordinate), as LSM's ``merge_points`` does.
* ``feat`` (N, in_channels): per-point input features, LSM uses [xyz, rgb].
* ``offset`` (B,): cumulative point counts (Pointcept convention), or ``batch=`` (N,) sample
  index; the points of a sample must be contiguous.
* ``dust_tokens`` (B, T1, enc_token_dim): geometry-encoder tokens of the sample's views.
* ``sem_tokens`` (B, T2, sem_token_dim): semantic tokens (pooled 2-D semantic features).
* Returns (N, dec_channels[0]) point features in the input order.

Voxelisation: ``grid = floor((coord - min_sample(coord)) / grid_size)`` per sample, with no
de-duplication (every point is a site; several may share a voxel). The official code takes
the minimum over the whole batch instead; for one sample per batch (inference) both agree.

Order of operations (official ``PTV3.forward``): embedding -> encoder -> cross-attention to
projected geometry tokens -> cross-attention to projected semantic tokens -> deepest decoder
stage -> "multi-scale" cross-attention to the semantic tokens -> remaining decoder stages.

Module names and shapes equal the official ``point_transformer.*`` state dict.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...config import FusionConfig, PTv3Config
from ..fusion import CrossModelBlock
from .serialization import MAX_DEPTH, ORDERS, inverse_permutation, serialize
from .sparse_conv import SparseGrid, SubMConv3d


# --------------------------------------------------------------------------- point levels
@dataclass
class PointLevel:
    """The points of one resolution level (batch-contiguous).

    feat (N, C); grid (N, 3) voxel coords; batch (N,); counts: points per sample;
    code/order/inverse (k, N) serialisation per curve; depth: bits per axis of the codes;
    parent/cluster: the finer level and each parent point's index at this level.
    """

    feat: torch.Tensor
    grid: torch.Tensor
    batch: torch.Tensor
    counts: List[int]
    depth: int
    code: torch.Tensor
    order: torch.Tensor
    inverse: torch.Tensor
    sites: SparseGrid
    parent: Optional["PointLevel"] = None
    cluster: Optional[torch.Tensor] = None
    cache: Dict = dataclasses.field(default_factory=dict)
    # what the next block's xCPE conv reads when it is not ``feat`` (official unpooling,
    # see PTv3Config.decoder_cpe_input); cleared by every feature update
    conv_feat: Optional[torch.Tensor] = None

    def with_feat(self, feat: torch.Tensor) -> "PointLevel":
        return dataclasses.replace(self, feat=feat, conv_feat=None)


def _shuffle(code, order, inverse):
    perm = torch.randperm(code.shape[0])
    return code[perm], order[perm], inverse[perm]


class DropPath(nn.Module):
    """Stochastic depth per row (per point, as PTv3 applies timm's DropPath to (N, C))."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


def _batch_norm(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)


# --------------------------------------------------------------------------- building blocks
class _Stem(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, backend: str):
        super().__init__()
        self.conv = SubMConv3d(in_channels, out_channels, kernel, bias=False, backend=backend)
        self.norm = _batch_norm(out_channels)
        self.act = nn.GELU()


class Embedding(nn.Module):
    """Sparse conv (k = embed_kernel, no bias) -> BatchNorm -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, backend: str):
        super().__init__()
        self.stem = _Stem(in_channels, out_channels, kernel, backend)

    def forward(self, level: PointLevel) -> PointLevel:
        s = self.stem
        return level.with_feat(s.act(s.norm(s.conv(level.feat, level.sites))))


class SerializedAttention(nn.Module):
    """Multi-head attention within patches of ``patch_size`` consecutive points along a curve.

    Patching follows PTv3's flash path: a sample with n <= K points is one patch; otherwise
    patches are [iK, iK+K) and the last one is [n-K, n), whose overlap with the previous
    patch is only used as context.
    """

    def __init__(self, channels: int, num_heads: int, patch_size: int, order_index: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels {channels} not divisible by num_heads {num_heads}")
        self.channels = channels
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.order_index = order_index
        self.qkv = nn.Linear(channels, channels * 3)
        self.proj = nn.Linear(channels, channels)

    def _patches(self, level: PointLevel):
        key = ("patches", self.patch_size)
        if key not in level.cache:
            K = self.patch_size
            device = level.grid.device
            full_pos, keep, small = [], [], []
            start = 0
            for n in level.counts:
                if n < K:
                    small.append((start, n))
                else:
                    P = math.ceil(n / K)
                    first = torch.arange(P, device=device) * K
                    shifted = first.clone()
                    shifted[-1] = n - K
                    pos = shifted[:, None] + torch.arange(K, device=device)[None, :]
                    full_pos.append(start + pos)
                    keep.append(pos >= first[:, None])
                start += n
            full = (torch.cat(full_pos), torch.cat(keep)) if full_pos else None
            level.cache[key] = (full, small)
        return level.cache[key]

    def forward(self, feat: torch.Tensor, level: PointLevel) -> torch.Tensor:
        N, C = feat.shape
        H = self.num_heads
        order = level.order[self.order_index % level.order.shape[0]]
        qkv = self.qkv(feat)
        full, small = self._patches(level)
        targets, values = [], []
        if full is not None:
            pos, keep = full
            idx = order[pos]  # (P, K) point indices
            q, k, v = qkv[idx].view(*idx.shape, 3, H, C // H).permute(2, 0, 3, 1, 4).unbind(0)
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(*idx.shape, C)
            targets.append(idx[keep])
            values.append(out[keep])
        for start, n in small:
            idx = order[start:start + n]
            q, k, v = qkv[idx].view(1, n, 3, H, C // H).permute(2, 0, 3, 1, 4).unbind(0)
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, C)
            targets.append(idx)
            values.append(out)
        out = feat.new_zeros(N, C).index_copy(0, torch.cat(targets), torch.cat(values))
        return self.proj(out)


class PointMlp(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """PTv3 block: x += CPE(c); x += Attn(LN(x)); x += MLP(LN(x)).

    CPE = submanifold conv (k = cpe_kernel, bias) -> Linear -> LayerNorm; c = x, or the
    level's ``conv_feat`` right after an unpooling in "skip" mode.
    """

    def __init__(self, channels: int, num_heads: int, patch_size: int, mlp_ratio: float,
                 drop_path: float, order_index: int, cpe_kernel: int, backend: str):
        super().__init__()
        self.cpe = nn.ModuleList([
            SubMConv3d(channels, channels, cpe_kernel, bias=True, backend=backend),
            nn.Linear(channels, channels),
            nn.LayerNorm(channels),
        ])
        self.norm1 = nn.Sequential(nn.LayerNorm(channels))
        self.attn = SerializedAttention(channels, num_heads, patch_size, order_index)
        self.norm2 = nn.Sequential(nn.LayerNorm(channels))
        self.mlp = nn.Sequential(PointMlp(channels, int(channels * mlp_ratio)))
        self.drop_path = DropPath(drop_path)

    def forward(self, level: PointLevel) -> PointLevel:
        x = level.feat
        conv, lin, norm = self.cpe
        conv_in = x if level.conv_feat is None else level.conv_feat
        x = x + norm(lin(conv(conv_in, level.sites)))
        x = x + self.drop_path(self.attn(self.norm1(x), level))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return level.with_feat(x)


class SerializedPooling(nn.Module):
    """Merge the points of each (stride)^3 voxel cell: Linear -> segment max -> BN -> GELU.

    Cells come from shifting the curve codes right by 3*log2(stride) bits.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, shuffle_orders: bool):
        super().__init__()
        if stride < 2 or stride & (stride - 1):
            raise ValueError(f"pooling stride must be a power of two >= 2, got {stride}")
        self.stride = stride
        self.shuffle_orders = shuffle_orders
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = nn.Sequential(_batch_norm(out_channels))
        self.act = nn.GELU()

    def forward(self, level: PointLevel) -> PointLevel:
        shift = (self.stride - 1).bit_length()
        if shift > level.depth:
            shift = 0
        code = level.code >> (3 * shift)
        _, cluster = torch.unique(code[0], sorted=True, return_inverse=True)
        M = int(cluster.max()) + 1
        ar = torch.arange(cluster.shape[0], device=cluster.device)
        head = torch.full((M,), cluster.shape[0], dtype=torch.long, device=cluster.device)
        head = head.scatter_reduce(0, cluster, ar, reduce="amin")
        code = code[:, head]
        order = torch.argsort(code, dim=1)
        inverse = inverse_permutation(order)
        if self.shuffle_orders and self.training:
            code, order, inverse = _shuffle(code, order, inverse)
        x = self.proj(level.feat)
        pooled = x.new_zeros(M, x.shape[1]).scatter_reduce(
            0, cluster[:, None].expand_as(x), x, reduce="amax", include_self=False)
        pooled = self.act(self.norm(pooled))
        grid = level.grid[head] >> shift
        batch = level.batch[head]
        counts = torch.bincount(batch, minlength=len(level.counts)).tolist()
        return PointLevel(pooled, grid, batch, counts, level.depth - shift, code, order, inverse,
                          SparseGrid(grid, batch, len(counts)), parent=level, cluster=cluster)


class SerializedUnpooling(nn.Module):
    """parent.feat <- proj_skip(parent.feat) + proj(coarse.feat)[cluster]; each Linear->BN->GELU.

    ``cpe_input="skip"``: the next block's xCPE conv reads proj_skip(parent.feat) only
    (official behaviour, see PTv3Config.decoder_cpe_input); "sum": it reads the new feat.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int,
                 cpe_input: str = "skip"):
        super().__init__()
        if cpe_input not in ("skip", "sum"):
            raise ValueError(f"decoder_cpe_input must be 'skip' or 'sum', got {cpe_input!r}")
        self.cpe_input = cpe_input
        self.proj = nn.Sequential(nn.Linear(in_channels, out_channels), _batch_norm(out_channels), nn.GELU())
        self.proj_skip = nn.Sequential(nn.Linear(skip_channels, out_channels), _batch_norm(out_channels), nn.GELU())

    def forward(self, level: PointLevel) -> PointLevel:
        parent = level.parent
        skip = self.proj_skip(parent.feat)
        out = parent.with_feat(skip + self.proj(level.feat)[level.cluster])
        return dataclasses.replace(out, conv_feat=skip) if self.cpe_input == "skip" else out


# --------------------------------------------------------------------------- the network
class PointTransformer(nn.Module):
    """PTv3 U-Net over the merged point cloud with LSM's three cross-model fusion blocks."""

    def __init__(self, ptv3: PTv3Config, fusion: FusionConfig, enc_token_dim: int, sem_token_dim: int,
                 backend: str = "auto", shuffle_orders: bool = True):
        super().__init__()
        _validate_config(ptv3, fusion)
        self.config = ptv3
        self.enc_token_dim = enc_token_dim
        self.sem_token_dim = sem_token_dim
        self.orders = tuple(ptv3.order)
        self.shuffle_orders = shuffle_orders  # only while training; evaluation is deterministic
        S = len(ptv3.enc_depths)

        self.embedding = Embedding(ptv3.in_channels, ptv3.enc_channels[0], ptv3.embed_kernel, backend)

        enc_dp = torch.linspace(0, ptv3.drop_path, sum(ptv3.enc_depths)).tolist()
        self.enc = nn.ModuleDict()
        for s in range(S):
            stage = nn.ModuleDict()
            if s > 0:
                stage["down"] = SerializedPooling(ptv3.enc_channels[s - 1], ptv3.enc_channels[s],
                                                  ptv3.stride[s - 1], shuffle_orders)
            dp = enc_dp[sum(ptv3.enc_depths[:s]):sum(ptv3.enc_depths[:s + 1])]
            for i in range(ptv3.enc_depths[s]):
                stage[f"block{i}"] = Block(ptv3.enc_channels[s], ptv3.enc_num_head[s], ptv3.enc_patch_size[s],
                                           ptv3.mlp_ratio, dp[i], i % len(self.orders), ptv3.cpe_kernel, backend)
            self.enc[f"enc{s}"] = stage

        dec_dp = torch.linspace(0, ptv3.drop_path, sum(ptv3.dec_depths)).tolist()
        dec_channels = list(ptv3.dec_channels) + [ptv3.enc_channels[-1]]
        self.dec = nn.ModuleDict()
        for s in reversed(range(S - 1)):
            stage = nn.ModuleDict()
            stage["up"] = SerializedUnpooling(dec_channels[s + 1], ptv3.enc_channels[s], dec_channels[s],
                                              ptv3.decoder_cpe_input)
            dp = dec_dp[sum(ptv3.dec_depths[:s]):sum(ptv3.dec_depths[:s + 1])][::-1]
            for i in range(ptv3.dec_depths[s]):
                stage[f"block{i}"] = Block(dec_channels[s], ptv3.dec_num_head[s], ptv3.dec_patch_size[s],
                                           ptv3.mlp_ratio, dp[i], i % len(self.orders), ptv3.cpe_kernel, backend)
            self.dec[f"dec{s}"] = stage

        self.dust_feat_proj = nn.Linear(enc_token_dim, fusion.dust_dim)
        self.decoder_block_dust = CrossModelBlock(fusion.dust_dim, fusion.dust_heads, fusion.mlp_ratio)
        self.lseg_feat_proj = nn.Linear(sem_token_dim, fusion.lseg_dim)
        self.decoder_block_lseg = CrossModelBlock(fusion.lseg_dim, fusion.lseg_heads, fusion.mlp_ratio)
        self.multi_scale_proj = nn.Linear(sem_token_dim, fusion.multi_scale_dim)
        self.decoder_block_multi_scale = CrossModelBlock(fusion.multi_scale_dim, fusion.multi_scale_heads,
                                                         fusion.mlp_ratio)

    @property
    def out_channels(self) -> int:
        return self.config.dec_channels[0]

    # ------------------------------------------------------------------ input handling
    def _check_inputs(self, coord, feat, offset, batch, dust_tokens, sem_tokens) -> Tuple[torch.Tensor, List[int]]:
        if not torch.is_tensor(coord) or coord.dim() != 2 or coord.shape[1] != 3:
            raise ValueError(f"coord must be (N, 3), got {tuple(getattr(coord, 'shape', ()))}")
        N = coord.shape[0]
        if N == 0:
            raise ValueError("the point cloud is empty")
        if not torch.is_tensor(feat) or feat.shape != (N, self.config.in_channels):
            raise ValueError(f"feat must be ({N}, {self.config.in_channels}), got {tuple(getattr(feat, 'shape', ()))}")
        if not torch.isfinite(coord).all():
            raise ValueError("coord contains NaN or Inf")
        if not torch.isfinite(feat).all():
            raise ValueError("feat contains NaN or Inf")
        if (offset is None) == (batch is None):
            raise ValueError("give exactly one of offset (B,) or batch (N,)")
        if offset is not None:
            offset = torch.as_tensor(offset, device=coord.device).long().reshape(-1)
            if offset.numel() == 0:
                raise ValueError("offset is empty")
            counts = torch.diff(offset, prepend=offset.new_zeros(1))
            if (counts <= 0).any() or int(offset[-1]) != N:
                raise ValueError(f"offset must be strictly increasing cumulative counts ending at N={N}, "
                                 f"got {offset.tolist()}")
            batch = torch.repeat_interleave(torch.arange(len(counts), device=coord.device), counts)
        else:
            batch = torch.as_tensor(batch, device=coord.device)
            if batch.shape != (N,) or batch.is_floating_point():
                raise ValueError(f"batch must be an integer tensor of shape ({N},)")
            batch = batch.long()
            if int(batch[0]) != 0 or (torch.diff(batch) < 0).any() or (torch.diff(batch) > 1).any():
                raise ValueError("batch must start at 0 and be non-decreasing without gaps "
                                 "(the points of a sample must be contiguous)")
        counts = torch.bincount(batch).tolist()
        B = len(counts)
        for name, tok, dim in (("dust_tokens", dust_tokens, self.enc_token_dim),
                               ("sem_tokens", sem_tokens, self.sem_token_dim)):
            if (not torch.is_tensor(tok) or tok.dim() != 3 or tok.shape[0] != B or tok.shape[2] != dim
                    or tok.shape[1] == 0):
                raise ValueError(f"{name} must be ({B}, T, {dim}) with T > 0, got {tuple(getattr(tok, 'shape', ()))}")
            if not torch.isfinite(tok).all():
                raise ValueError(f"{name} contains NaN or Inf")
        return batch, counts

    def _first_level(self, coord, feat, batch, counts) -> PointLevel:
        B = len(counts)
        idx = batch[:, None].expand(-1, 3)
        lo = coord.new_full((B, 3), float("inf")).scatter_reduce(0, idx, coord.detach(), reduce="amin")
        grid = torch.floor((coord.detach() - lo[batch]) / self.config.grid_size).long()
        depth = max(int(grid.max()).bit_length(), 1)
        if depth > MAX_DEPTH or 3 * depth + B.bit_length() > 63:
            raise ValueError(f"the cloud spans {int(grid.max()) + 1} voxels of size {self.config.grid_size}; "
                             f"at most 2**{MAX_DEPTH} per axis are supported (normalise coords to the unit cube)")
        code, order, inverse = serialize(grid, batch, depth, self.orders)
        if self.shuffle_orders and self.training:
            code, order, inverse = _shuffle(code, order, inverse)
        return PointLevel(feat, grid, batch, counts, depth, code, order, inverse, SparseGrid(grid, batch, B))

    # ------------------------------------------------------------------ forward
    def forward(self, coord: torch.Tensor, feat: torch.Tensor, offset: Optional[torch.Tensor],
                dust_tokens: torch.Tensor, sem_tokens: torch.Tensor,
                batch: Optional[torch.Tensor] = None) -> torch.Tensor:
        """See the module docstring for shapes. Returns (N, dec_channels[0])."""
        batch, counts = self._check_inputs(coord, feat, offset, batch, dust_tokens, sem_tokens)
        level = self._first_level(coord, feat, batch, counts)
        level = self.embedding(level)
        for stage in self.enc.values():
            for module in stage.values():
                level = module(level)
        dust = self.dust_feat_proj(dust_tokens)
        level = level.with_feat(self.decoder_block_dust.forward_points(level.feat, level.counts, dust))
        lseg = self.lseg_feat_proj(sem_tokens)
        level = level.with_feat(self.decoder_block_lseg.forward_points(level.feat, level.counts, lseg))
        for i, stage in enumerate(self.dec.values()):
            for module in stage.values():
                level = module(level)
            if i == 0:
                ms = self.multi_scale_proj(sem_tokens)
                level = level.with_feat(self.decoder_block_multi_scale.forward_points(level.feat, level.counts, ms))
        return level.feat


def _validate_config(p: PTv3Config, f: FusionConfig) -> None:
    S = len(p.enc_depths)
    if S < 2:
        raise ValueError("PTv3 needs at least two encoder stages")
    for name in ("enc_channels", "enc_num_head", "enc_patch_size"):
        if len(getattr(p, name)) != S:
            raise ValueError(f"{name} must have {S} entries like enc_depths")
    if len(p.stride) != S - 1:
        raise ValueError(f"stride must have {S - 1} entries")
    for name in ("dec_depths", "dec_channels", "dec_num_head", "dec_patch_size"):
        if len(getattr(p, name)) != S - 1:
            raise ValueError(f"{name} must have {S - 1} entries")
    if not p.order or any(o not in ORDERS for o in p.order):
        raise ValueError(f"order must be a non-empty subset of {ORDERS}, got {p.order}")
    if p.grid_size <= 0:
        raise ValueError("grid_size must be positive")
    if f.dust_dim != p.enc_channels[-1] or f.lseg_dim != p.enc_channels[-1]:
        raise ValueError("fusion.dust_dim and fusion.lseg_dim must equal ptv3.enc_channels[-1]")
    if f.multi_scale_dim != p.dec_channels[-1]:
        raise ValueError("fusion.multi_scale_dim must equal ptv3.dec_channels[-1]")
