"""Frozen LSeg dense feature extractor (paper configuration), in CLIP ViT-B/32 text space.

Architecture of LSeg ``LSegNet`` (isl-org/lang-seg) as used by LSM
(``large_spatial_model/lseg.py``): backbone ``clip_vitl16_384`` = timm ViT-L/16 at 384
(hooks after blocks 5, 11, 17, 23, readout ``"project"``), DPT reassemble + RefineNet fusion
with 256 features and BatchNorm residual units, ``head1`` 1x1 conv 256 -> 512. The full OpenAI
CLIP ViT-B/32 sits in ``clip_pretrained``; only its text tower is used (label embeddings).

Module names and shapes equal the official ``lseg_feature_extractor.*`` state dict (prefix
stripped), so official LSM / LSeg weights load with ``load_state_dict(strict=True)``.

Input images: ``(B, 3, H, W)`` RGB in [-1, 1] (mean 0.5 / std 0.5 normalisation, as LSM feeds
LSeg), ``H`` and ``W`` multiples of 32. Output of :meth:`extract_features`:
``(B, 512, H/2, W/2)`` raw (not normalised) features, like the official ``extract_features``
with ``half_res=True``; cosine against L2-normalised CLIP text embeddings gives the labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from lsm.semantics.text_encoder import build_openai_clip_vit_b32, load_checkpoint_file

VIT_HOOKS = (5, 11, 17, 23)  # ViT-L block outputs tapped by the DPT decoder
VIT_DIM = 1024
REASSEMBLE_DIMS = (256, 512, 1024, 1024)
FUSION_DIM = 256
CLIP_DIM = 512
PATCH = 16


class ProjectReadout(nn.Module):
    """DPT readout "project": concat each patch token with the class token, Linear + GELU.

    ``(B, 1 + N, C)`` tokens -> ``(B, N, C)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, 1:]
        readout = tokens[:, :1].expand_as(patches)
        return self.project(torch.cat([patches, readout], dim=-1))


class ReassembleStage(nn.Module):
    """Tokens of one ViT block -> image-like feature map at one DPT scale.

    Child names ``0``, ``3``, ``4`` mirror the official ``nn.Sequential`` indices
    (indices 1 and 2 were the parameter-free transpose and unflatten).
    ``(B, 1 + h*w, 1024)`` -> ``(B, out_dim, h*s, w*s)`` with ``s`` in {4, 2, 1, 1/2}.
    """

    def __init__(self, out_dim: int, resample: str):
        super().__init__()
        self.add_module("0", ProjectReadout(VIT_DIM))
        self.add_module("3", nn.Conv2d(VIT_DIM, out_dim, kernel_size=1))
        if resample == "up4":
            self.add_module("4", nn.ConvTranspose2d(out_dim, out_dim, kernel_size=4, stride=4))
        elif resample == "up2":
            self.add_module("4", nn.ConvTranspose2d(out_dim, out_dim, kernel_size=2, stride=2))
        elif resample == "down2":
            self.add_module("4", nn.Conv2d(out_dim, out_dim, kernel_size=3, stride=2, padding=1))
        elif resample != "none":
            raise ValueError(f"unknown resample {resample!r}")

    def forward(self, tokens: torch.Tensor, grid_hw: Tuple[int, int]) -> torch.Tensor:
        x = getattr(self, "0")(tokens)  # (B, N, C)
        x = x.transpose(1, 2).unflatten(2, grid_hw)  # (B, C, h, w)
        x = getattr(self, "3")(x)
        if hasattr(self, "4"):
            x = getattr(self, "4")(x)
        return x


class ViTL16Backbone(nn.Module):
    """The official ``pretrained`` module: timm ``vit_large_patch16_384`` + 4 reassemble stages."""

    def __init__(self):
        super().__init__()
        import timm

        self.model = timm.create_model("vit_large_patch16_384", pretrained=False)
        self.act_postprocess1 = ReassembleStage(REASSEMBLE_DIMS[0], "up4")
        self.act_postprocess2 = ReassembleStage(REASSEMBLE_DIMS[1], "up2")
        self.act_postprocess3 = ReassembleStage(REASSEMBLE_DIMS[2], "none")
        self.act_postprocess4 = ReassembleStage(REASSEMBLE_DIMS[3], "down2")

    def _pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        """Position embedding with the 24x24 grid bilinearly resized to ``gh x gw``."""
        pe = self.model.pos_embed
        cls_pe, grid = pe[:, :1], pe[0, 1:]
        g = int(round(grid.shape[0] ** 0.5))
        grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
        return torch.cat([cls_pe, grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)

    def forward(self, img: torch.Tensor) -> List[torch.Tensor]:
        """``(B, 3, H, W)`` -> 4 maps at H/4, H/8, H/16, H/32 with 256, 512, 1024, 1024 channels."""
        b, _, h, w = img.shape
        gh, gw = h // PATCH, w // PATCH
        vit = self.model
        x = vit.patch_embed.proj(img).flatten(2).transpose(1, 2)
        x = torch.cat([vit.cls_token.expand(b, -1, -1), x], dim=1) + self._pos_embed(gh, gw)
        taps = []
        for i, blk in enumerate(vit.blocks[: VIT_HOOKS[-1] + 1]):
            x = blk(x)
            if i in VIT_HOOKS:
                taps.append(x)
        stages = (self.act_postprocess1, self.act_postprocess2, self.act_postprocess3, self.act_postprocess4)
        return [stage(t, (gh, gw)) for stage, t in zip(stages, taps)]


class ResidualConvUnit(nn.Module):
    """ReLU-conv3x3-BN-ReLU-conv3x3-BN + skip (convs without bias, as with ``use_bn=True``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(F.relu(x)))
        out = self.bn2(self.conv2(F.relu(out)))
        return out + x


class FusionBlock(nn.Module):
    """RefineNet fusion: (coarse [+ RCU(skip)]) -> RCU -> x2 bilinear (align_corners) -> 1x1 conv."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_conv = nn.Conv2d(dim, dim, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(dim)
        self.resConfUnit2 = ResidualConvUnit(dim)

    def forward(self, coarse: torch.Tensor, skip: Union[torch.Tensor, None] = None) -> torch.Tensor:
        x = coarse if skip is None else coarse + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Scratch(nn.Module):
    """The official ``scratch`` module: per-scale 3x3 projections, 4 fusion blocks, ``head1``."""

    def __init__(self):
        super().__init__()
        for i, c in enumerate(REASSEMBLE_DIMS, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(c, FUSION_DIM, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self, f"refinenet{i}", FusionBlock(FUSION_DIM))
        self.head1 = nn.Conv2d(FUSION_DIM, CLIP_DIM, kernel_size=1)

    def forward(self, layers: List[torch.Tensor]) -> torch.Tensor:
        """4 reassembled maps -> ``(B, 512, H/2, W/2)``."""
        l1, l2, l3, l4 = (getattr(self, f"layer{i}_rn")(x) for i, x in enumerate(layers, start=1))
        p = self.refinenet4(l4)
        p = self.refinenet3(p, l3)
        p = self.refinenet2(p, l2)
        p = self.refinenet1(p, l1)
        return self.head1(p)


class LSegFeatureExtractor(nn.Module):
    """Frozen LSeg (ViT-L/16 DPT) image encoder producing CLIP-space features at half resolution.

    Always in eval mode (``train()`` is a no-op) with ``requires_grad=False`` everywhere;
    randomly initialised until official weights are loaded (:meth:`load_official`).
    """

    out_dim = CLIP_DIM
    trainable = False

    def __init__(self, half_res: bool = True):
        super().__init__()
        self.half_res = bool(half_res)
        self.clip_pretrained = build_openai_clip_vit_b32()
        self.pretrained = ViTL16Backbone()
        self.scratch = Scratch()
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "LSegFeatureExtractor":
        """Frozen module: stays in eval mode (BatchNorm statistics never update)."""
        return super().train(False)

    @staticmethod
    def _check_images(img: torch.Tensor) -> None:
        if not isinstance(img, torch.Tensor) or img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got "
                             f"{tuple(img.shape) if isinstance(img, torch.Tensor) else type(img)}")
        h, w = img.shape[-2:]
        if h % 32 or w % 32 or h == 0 or w == 0:
            raise ValueError(f"LSeg needs H and W to be positive multiples of 32, got {h}x{w}")
        if not torch.isfinite(img).all():
            raise ValueError("images contain NaN or Inf")

    @torch.no_grad()
    def extract_features(self, img: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> ``(B, 512, H/2, W/2)`` raw CLIP-space features
        (``(B, 512, H, W)`` when ``half_res=False``)."""
        self._check_images(img)
        img = img.to(self.scratch.head1.weight.dtype)
        feats = self.scratch(self.pretrained(img))
        if not self.half_res:
            feats = F.interpolate(feats, scale_factor=2, mode="bilinear", align_corners=True)
        return feats

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.extract_features(img)

    def load_official(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load official weights, strictly. Accepts the LSM checkpoint's ``model`` dict (keys
        ``lseg_feature_extractor.*``), LSeg's ``demo_e200.ckpt`` ``state_dict`` (keys ``net.*``)
        or an already stripped dict. Extra keys outside the LSeg prefix are ignored."""
        sd = extract_lseg_state_dict(state_dict)
        self.load_state_dict(sd, strict=True)


def extract_lseg_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Strip ``lseg_feature_extractor.`` or ``net.`` from an official LSM / LSeg state dict."""
    for prefix in ("lseg_feature_extractor.", "net."):
        sub = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if sub:
            return sub
    return dict(state_dict)


def load_lseg_checkpoint(path: Union[str, Path], half_res: bool = True) -> LSegFeatureExtractor:
    """Build an :class:`LSegFeatureExtractor` from a local LSM ``checkpoint-final.pth`` or LSeg
    ``demo_e200.ckpt`` (read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LSeg checkpoint not found: {path}")
    try:
        obj = load_checkpoint_file(path)
    except Exception as e:
        raise ValueError(f"could not read LSeg weights from {path}: {type(e).__name__}: {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    model = LSegFeatureExtractor(half_res=half_res)
    model.load_official(obj)
    return model
