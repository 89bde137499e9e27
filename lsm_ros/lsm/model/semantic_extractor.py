"""2-D semantic feature extractors and their factory.

Both extractors share one interface:

* ``extractor(img)`` / ``extractor.extract_features(img)``: ``(B, 3, H, W)`` RGB in [-1, 1]
  -> ``(B, out_dim, H/2, W/2)`` features in the text-embedding space (compare with
  L2-normalised label embeddings by cosine; the features themselves are not normalised);
* ``out_dim``: feature width (= text embedding width);
* ``trainable``: whether the extractor is optimised with the model (``False`` for LSeg).

``"lseg"`` -> :class:`lsm.model.lseg.LSegFeatureExtractor` (paper, frozen, 512-d CLIP space).
``"learned"`` -> :class:`LearnedSemanticExtractor` (tiny, trainable, distilled from a text
embedding teacher, e.g. 384-d MiniLM space).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lsm.config import SemanticConfig


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    groups = min(8, cout)
    while cout % groups:
        groups -= 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.GELU(),
    )


class _ResBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(_conv_block(dim, dim), nn.Conv2d(dim, dim, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LearnedSemanticExtractor(nn.Module):
    """Small trainable U-Net: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, text_dim, H/2, W/2)``.

    Encoder at H/2 (``width``), H/4 (``2*width``), H/8 (``4*width``, two residual blocks for
    context), decoder back to H/2 with skip connections, then a 1x1 projection to ``text_dim``.
    ``H`` and ``W`` must be even (any even size works; odd intermediate sizes are resampled).
    """

    trainable = True

    def __init__(self, width: int = 64, text_dim: int = 384):
        super().__init__()
        if width < 8 or text_dim < 1:
            raise ValueError(f"width must be >= 8 and text_dim >= 1, got {width}, {text_dim}")
        w = int(width)
        self.out_dim = int(text_dim)
        self.width = w
        self.enc1 = nn.Sequential(_conv_block(3, w, stride=2), _conv_block(w, w))  # H/2
        self.enc2 = _conv_block(w, 2 * w, stride=2)  # H/4
        self.enc3 = nn.Sequential(_conv_block(2 * w, 4 * w, stride=2),
                                  _ResBlock(4 * w), _ResBlock(4 * w))  # H/8
        self.dec2 = _conv_block(4 * w + 2 * w, 2 * w)
        self.dec1 = _conv_block(2 * w + w, w)
        self.head = nn.Conv2d(w, self.out_dim, kernel_size=1)

    def extract_features(self, img: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> ``(B, out_dim, H/2, W/2)`` (gradients flow)."""
        if not isinstance(img, torch.Tensor) or img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got "
                             f"{tuple(img.shape) if isinstance(img, torch.Tensor) else type(img)}")
        h, w = img.shape[-2:]
        if h % 2 or w % 2 or h < 2 or w < 2:
            raise ValueError(f"image height and width must be even and >= 2, got {h}x{w}")
        if not torch.isfinite(img).all():
            raise ValueError("images contain NaN or Inf")
        s1 = self.enc1(img)
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        x = F.interpolate(s3, size=s2.shape[-2:], mode="bilinear", align_corners=False)
        x = self.dec2(torch.cat([x, s2], dim=1))
        x = F.interpolate(x, size=s1.shape[-2:], mode="bilinear", align_corners=False)
        x = self.dec1(torch.cat([x, s1], dim=1))
        return self.head(x)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.extract_features(img)


def build_semantic_extractor(cfg: SemanticConfig) -> nn.Module:
    """Return the extractor named by ``cfg.extractor`` (``"lseg"`` or ``"learned"``)."""
    if cfg.extractor == "lseg":
        from lsm.model.lseg import LSegFeatureExtractor

        if cfg.text_dim != LSegFeatureExtractor.out_dim:
            raise ValueError(f"the lseg extractor produces 512-d CLIP features; "
                             f"semantic.text_dim is {cfg.text_dim}")
        return LSegFeatureExtractor(half_res=True)
    if cfg.extractor == "learned":
        return LearnedSemanticExtractor(width=cfg.learned_width, text_dim=cfg.text_dim)
    raise ValueError(f"unknown semantic extractor {cfg.extractor!r}; choose 'lseg' or 'learned'")

