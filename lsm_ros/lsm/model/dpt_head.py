"""DPT pointmap head (DUSt3R ``downstream_head{1,2}``), parameter names as in the official code.

Input: a list of token tensors ``[encoder output, decoder block 1 output, ..., block D output]``,
each (B, h*w, C) in row-major patch order. Four of them (``DPTConfig.hooks``) are reassembled
into feature maps at 4x, 2x, 1x and 1/2x the patch grid (``act_postprocess``), projected to
``feature_dim`` (``scratch.layer_rn``), fused coarse-to-fine (``scratch.refinenet4..1``, each
upsampling 2x) and mapped to ``output_dim`` channels at full image resolution (``head``).

Postprocess (DUSt3R ``depth_mode=('exp', -inf, inf)``, ``conf_mode=('exp', vmin, inf)``):
``xyz = v / |v| * expm1(|v|)`` and ``conf = vmin + exp(c)``.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DPTConfig


def _conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=bias)


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class Upsample2x(nn.Module):
    """Bilinear x2 (align_corners=True); parameter-free so ``head`` indices match DPT."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upsample2x(x)


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x))))."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = _conv3x3(features, features)
        self.conv2 = _conv3x3(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + x


class FusionBlock(nn.Module):
    """DPT refinenet: (coarser path [+ rcu1(skip)]) -> rcu2 -> bilinear x2 -> 1x1 out_conv."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, bias=True)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, path: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        return self.out_conv(_upsample2x(path))


class DPTScratch(nn.Module):
    """Projection convs (bias-free, also reachable as ``layer_rn[i]``) and the 4 refinenets."""

    def __init__(self, layer_dims: Sequence[int], feature_dim: int):
        super().__init__()
        self.layer1_rn = _conv3x3(layer_dims[0], feature_dim, bias=False)
        self.layer2_rn = _conv3x3(layer_dims[1], feature_dim, bias=False)
        self.layer3_rn = _conv3x3(layer_dims[2], feature_dim, bias=False)
        self.layer4_rn = _conv3x3(layer_dims[3], feature_dim, bias=False)
        # Same modules registered a second time: the official state dict holds both names.
        self.layer_rn = nn.ModuleList([self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn])
        self.refinenet1 = FusionBlock(feature_dim)
        self.refinenet2 = FusionBlock(feature_dim)
        self.refinenet3 = FusionBlock(feature_dim)
        self.refinenet4 = FusionBlock(feature_dim)
        # refinenet4 has no skip input, so its resConfUnit1 is never used (as in DPT/DUSt3R);
        # it exists for the checkpoint layout only and is frozen.
        self.refinenet4.resConfUnit1.requires_grad_(False)


def _reassemble(token_dim: int, layer_dim: int, level: int) -> nn.Sequential:
    """1x1 projection then resampling by 4x, 2x, 1x or 1/2x for levels 0..3."""
    project = nn.Conv2d(token_dim, layer_dim, kernel_size=1)
    if level == 0:
        return nn.Sequential(project, nn.ConvTranspose2d(layer_dim, layer_dim, kernel_size=4, stride=4))
    if level == 1:
        return nn.Sequential(project, nn.ConvTranspose2d(layer_dim, layer_dim, kernel_size=2, stride=2))
    if level == 2:
        return nn.Sequential(project)
    return nn.Sequential(project, nn.Conv2d(layer_dim, layer_dim, kernel_size=3, stride=2, padding=1))


class DPTAdapter(nn.Module):
    """Tokens at 4 hooks -> (B, output_dim, 16h, 16w) for patch size 16."""

    def __init__(self, cfg: DPTConfig, token_dims: Sequence[int]):
        super().__init__()
        self.hooks = tuple(cfg.hooks)
        self.act_postprocess = nn.ModuleList(
            [_reassemble(token_dims[i], cfg.layer_dims[i], i) for i in range(4)])
        self.scratch = DPTScratch(cfg.layer_dims, cfg.feature_dim)
        half = cfg.feature_dim // 2
        self.head = nn.Sequential(
            _conv3x3(cfg.feature_dim, half),
            Upsample2x(),
            _conv3x3(half, cfg.last_dim),
            nn.ReLU(),
            nn.Conv2d(cfg.last_dim, cfg.output_dim, kernel_size=1),
        )

    def forward(self, tokens: Sequence[torch.Tensor], grid_hw: Tuple[int, int]) -> torch.Tensor:
        h, w = grid_hw
        maps: List[torch.Tensor] = []
        for level, hook in enumerate(self.hooks):
            t = tokens[hook]
            fmap = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)
            fmap = self.act_postprocess[level](fmap)
            maps.append(self.scratch.layer_rn[level](fmap))
        s = self.scratch
        path = s.refinenet4(maps[3])[:, :, :maps[2].shape[2], :maps[2].shape[3]]
        path = s.refinenet3(path, maps[2])
        path = s.refinenet2(path, maps[1])
        path = s.refinenet1(path, maps[0])
        return self.head(path)


def pointmap_from_raw(raw: torch.Tensor, conf_vmin: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, 4, H, W) raw head output -> pts (B, H, W, 3), conf (B, H, W) >= conf_vmin."""
    fmap = raw.permute(0, 2, 3, 1)
    xyz = fmap[..., :3]
    dist = xyz.norm(dim=-1, keepdim=True)
    pts = xyz / dist.clamp(min=1e-8) * torch.expm1(dist)
    conf = conf_vmin + fmap[..., 3].exp()
    return pts, conf


class PointmapHead(nn.Module):
    """One view's DPT head plus postprocess (``downstream_head{1,2}`` holding ``dpt``)."""

    def __init__(self, cfg: DPTConfig, enc_dim: int, dec_dim: int, dec_depth: int):
        super().__init__()
        validate_dpt_config(cfg, dec_depth)
        self.conf_vmin = float(cfg.conf_vmin)
        token_dims = [enc_dim if hook == 0 else dec_dim for hook in cfg.hooks]
        self.dpt = DPTAdapter(cfg, token_dims)

    def forward(self, tokens: Sequence[torch.Tensor], grid_hw: Tuple[int, int]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """tokens: [encoder out, decoder block outs...] -> pts (B,H,W,3), conf (B,H,W)."""
        return pointmap_from_raw(self.dpt(tokens, grid_hw), self.conf_vmin)


def validate_dpt_config(cfg: DPTConfig, dec_depth: int) -> None:
    if len(cfg.hooks) != 4 or len(cfg.layer_dims) != 4:
        raise ValueError(f"DPT needs exactly 4 hooks and 4 layer_dims, got {cfg.hooks} / {cfg.layer_dims}")
    if any(h < 0 or h > dec_depth for h in cfg.hooks):
        raise ValueError(f"DPT hooks {cfg.hooks} must lie in [0, decoder depth={dec_depth}]")
    if cfg.output_dim != 4:
        raise ValueError(f"the pointmap head predicts xyz + confidence: output_dim must be 4, got {cfg.output_dim}")
    if cfg.feature_dim % 2 != 0:
        raise ValueError(f"DPT feature_dim must be even, got {cfg.feature_dim}")
