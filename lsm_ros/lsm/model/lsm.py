"""The Large Spatial Model network: an unposed image pair -> semantic 3-D Gaussians (paper 3).

Module names follow the official release (``dust3r``, ``point_transformer``,
``gaussian_head``, ``lseg_feature_extractor``, ``feature_expansion``, ``feature_reduction``)
so that its state dict loads without renaming.

Forward pass (shapes for batch B, image S x S, N = 2*S*S Gaussians):

1. geometry backbone -> pointmaps of both views in view 1's camera frame (B,S,S,3),
   confidences (B,S,S) and the encoder tokens (B, 2*T, C_enc);
2. 2-D semantic features (B*2, D_text, S/2, S/2) -> tokens (AvgPool) and, reduced to F
   channels at full resolution, a per-pixel residual for the Gaussian features;
3. merged, detached points normalised to the unit cube with their colours -> point
   transformer (with cross-attention to both token sets) -> per-point features (with
   ``ptv3.point_stride`` s > 1: over every s-th pixel of each view, then up-sampled);
4. Gaussian head -> one Gaussian per pixel, centred on the (unnormalised) pointmap.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LSMConfig, get_config
from ..gaussians import Gaussians
from .gaussian_head import GaussianHead
from .geometry_backbone import GeometryBackbone
from .ptv3 import PointTransformer
from .semantic_extractor import build_semantic_extractor


@dataclass
class LSMOutput:
    """Network outputs; Gaussians are ordered (view, row, column) per batch element."""

    pts1: torch.Tensor  # (B,S,S,3) view-1 pointmap, view-1 frame
    pts2: torch.Tensor  # (B,S,S,3) view-2 pointmap, view-1 frame
    conf1: torch.Tensor  # (B,S,S) >= 1
    conf2: torch.Tensor
    gaussians: Gaussians  # leading dims (B, 2*S*S)
    semantic_2d: torch.Tensor = None  # (2*B, D_text, S/2, S/2), view-major: [view 1 batch; view 2 batch]
    backbone: object = None  # the geometry backbone's full output (symmetric predictions etc.)


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    """[0,1] -> [-1,1] (DUSt3R ImgNorm: mean 0.5, std 0.5)."""
    return images * 2.0 - 1.0


def check_pair(img1: torch.Tensor, img2: torch.Tensor, patch: int) -> None:
    for name, img in (("img1", img1), ("img2", img2)):
        if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 3:
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"{name} must be a (B,3,H,W) tensor, got {shape}")
        if not img.is_floating_point():
            raise ValueError(f"{name} must be a float tensor in [0,1], got {img.dtype}")
        if img.shape[0] == 0 or img.shape[2] == 0 or img.shape[3] == 0:
            raise ValueError(f"{name} is empty: {tuple(img.shape)}")
        if not torch.isfinite(img).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if img1.shape != img2.shape:
        raise ValueError(f"image pair sizes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
    h, w = img1.shape[-2:]
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}")


class LSM(nn.Module):
    def __init__(self, config: LSMConfig):
        super().__init__()
        self.config = config
        stride = config.ptv3.point_stride
        if stride < 1 or config.image_size % stride:
            raise ValueError(f"ptv3.point_stride must be a positive divisor of image_size "
                             f"{config.image_size}, got {stride}")
        sem = config.semantic
        self.dust3r = GeometryBackbone(config.encoder, config.decoder, config.dpt, config.image_size)
        self.point_transformer = PointTransformer(
            config.ptv3, config.fusion, enc_token_dim=config.encoder.embed_dim, sem_token_dim=sem.text_dim)
        self.gaussian_head = GaussianHead(
            in_dim=config.ptv3.dec_channels[0], feature_dim=sem.feature_dim,
            sh_degree=config.gaussian.sh_degree, scale_clamp=config.gaussian.scale_clamp,
            knn=config.gaussian.knn)
        self.lseg_feature_extractor = build_semantic_extractor(sem)
        self.tokenizer = nn.AvgPool2d(config.fusion.token_pool, config.fusion.token_pool)
        self.feature_expansion = nn.Sequential(
            nn.Upsample(scale_factor=0.5, mode="bilinear"), nn.Conv2d(sem.feature_dim, sem.text_dim, 1))
        self.feature_reduction = nn.Sequential(
            nn.Conv2d(sem.text_dim, sem.feature_dim, 1), nn.Upsample(scale_factor=2, mode="bilinear"))

    @classmethod
    def from_config(cls, name_or_config="tiny") -> "LSM":
        cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
        return cls(cfg)

    def text_encoder(self):
        """The text encoder whose space the semantic features live in (built once, lazily)."""
        enc = self.__dict__.get("_text_encoder")
        if enc is None:
            from ..semantics.text_encoder import ClipTextEncoder, build_text_encoder

            if self.config.semantic.text_encoder == "clip":
                enc = ClipTextEncoder.from_lseg(self.lseg_feature_extractor)
            else:
                enc = build_text_encoder(self.config.semantic.text_encoder)
            self.__dict__["_text_encoder"] = enc
        return enc

    # ------------------------------------------------------------------ semantics
    def semantic_features(self, images: torch.Tensor) -> torch.Tensor:
        """2-D semantic features in text space (B, D_text, H/2, W/2) of images in [0,1]."""
        return self.lseg_feature_extractor(normalise_images(images))

    def expand_features(self, features: torch.Tensor, downsample: bool = True) -> torch.Tensor:
        """Rendered Gaussian features (B,F,H,W) -> text space (B,D_text,H/2,W/2).

        ``downsample=False`` for features already rendered at half size: (B,D_text,H,W).
        """
        if downsample:
            return self.feature_expansion(features)
        return self.feature_expansion[1](features)  # the 1x1 conv without the 2x down-sampling

    def expand_point_features(self, features: torch.Tensor) -> torch.Tensor:
        """Per-Gaussian features (...,F) -> text space (...,D_text) with the same 1x1 conv."""
        conv = self.feature_expansion[1]
        return features @ conv.weight[:, :, 0, 0].t() + conv.bias

    def point_text_similarity(self, features: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of expanded per-Gaussian features (N,F) to text embeddings
        (L,D_text): (N,L), equal to ``normalize(expand_point_features(f)) @ text_emb.T`` for
        unit-norm ``text_emb``.

        The expansion is affine (``W f + b``), so the similarity is computed in the F-dim
        feature space: numerator ``[f, 1] @ [W | b].T @ t`` and squared norm ``a.T G a``
        with ``G = [W | b].T [W | b]`` (F+1 x F+1, float64): N*(F+1)*(F+1+L) operations
        instead of N*F*D_text, and no (N, D_text) tensor.
        """
        conv = self.feature_expansion[1]
        affine = torch.cat([conv.weight[:, :, 0, 0], conv.bias[:, None]], dim=1)  # (D, F+1)
        a = torch.cat([features, features.new_ones(features.shape[:-1] + (1,))], dim=-1)
        numerator = a @ (affine.t().to(a.dtype) @ text_emb.to(a.dtype).t())  # (N, L)
        gram = affine.double().t() @ affine.double()  # (F+1, F+1)
        a64 = a.double()
        sq_norm = ((a64 @ gram) * a64).sum(dim=-1).clamp_min(1e-24)
        return numerator / sq_norm.sqrt().to(numerator.dtype)[..., None]

    # ------------------------------------------------------------------ forward
    def forward(self, img1: torch.Tensor, img2: torch.Tensor, symmetric: bool = False) -> LSMOutput:
        """img1, img2: (B,3,S,S) RGB in [0,1]."""
        geo, sem = self.geometry(img1, img2, symmetric)
        B, _, H, W = img1.shape
        points = torch.stack([geo.pts1, geo.pts2], dim=1).detach().reshape(B, 2 * H * W, 3)
        gaussians = self.gaussians_from_points(points, img1, img2, geo.enc_tokens, sem)
        return LSMOutput(geo.pts1, geo.pts2, geo.conf1, geo.conf2, gaussians, sem, geo)

    def geometry(self, img1: torch.Tensor, img2: torch.Tensor, symmetric: bool = False):
        """Steps 1-2 of the forward pass: the geometry backbone's output (pointmaps,
        confidences, encoder tokens; the swapped prediction too when ``symmetric``) and the
        2-D semantic features (2B, D, S/2, S/2). With :meth:`gaussians_from_points` this is
        the whole forward pass, split so that measured depth can replace predicted points."""
        check_pair(img1, img2, self.config.encoder.patch_size)
        x1, x2 = normalise_images(img1), normalise_images(img2)
        geo = self.dust3r(x1, x2, symmetric=symmetric) if symmetric else self.dust3r(x1, x2)
        sem = self.lseg_feature_extractor(torch.cat([x1, x2], dim=0))  # (2B, D, H/2, W/2)
        return geo, sem

    def gaussians_from_points(self, points: torch.Tensor, img1: torch.Tensor, img2: torch.Tensor,
                              enc_tokens: torch.Tensor, sem: torch.Tensor):
        """Steps 3-4 of the forward pass: point aggregation with cross-model fusion, then
        the Gaussian head.

        points (B, 2*S*S, 3): both views' pointmaps in view 1's frame, order (view, row,
        col); img1/img2 (B,3,S,S) RGB in [0,1]; enc_tokens (B, 2*T, C_enc); sem (2B, D, S/2,
        S/2) the 2-D semantic features of view 1's then view 2's images.
        Returns the Gaussians (B, 2*S*S per sample).
        """
        B, _, H, W = img1.shape
        residual = self.feature_reduction(sem)  # (2B, F, H, W)
        residual = residual.unflatten(0, (2, B)).permute(1, 0, 3, 4, 2).reshape(B, 2 * H * W, -1)
        rgb = torch.stack([img1, img2], dim=1).permute(0, 1, 3, 4, 2).reshape(B, 2 * H * W, 3)
        point_feat = self.point_features(points, rgb, H, W, enc_tokens, sem)
        return self.gaussian_head(point_feat, points, rgb, residual)

    def point_features(self, points: torch.Tensor, rgb: torch.Tensor, H: int, W: int,
                       enc_tokens: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        """Step 3: the point transformer's features (B, 2*H*W, C) of every pixel.

        points / rgb (B, 2*H*W, 3) in (view, row, col) order (rgb in [0,1]). With
        ``ptv3.point_stride`` s > 1 the transformer sees pixels (s*i, s*j) of each view and
        the features of the pixels between are bilinear in the image (exact at the seen
        pixels, the last s-1 rows and columns repeat the last seen ones).
        """
        B = points.shape[0]
        tokens = self.tokenizer(sem)  # (2B, D, h, w)
        tokens = tokens.unflatten(0, (2, B)).permute(1, 0, 3, 4, 2).reshape(B, -1, sem.shape[1])
        center = points.mean(dim=1, keepdim=True)
        scale = (points - center).abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)
        coord = (points - center) / scale
        feat = torch.cat([coord, rgb * 2 - 1], dim=-1)  # official: xyz + colour in [-1,1]
        s = self.config.ptv3.point_stride
        if s > 1:
            feat = feat.reshape(B, 2, H, W, 6)[:, :, ::s, ::s]
            h, w = feat.shape[2:4]
            feat = feat.reshape(B, 2 * h * w, 6)
            coord = feat[..., :3]
        n = feat.shape[1]
        offset = torch.arange(1, B + 1, device=points.device) * n
        out = self.point_transformer(coord.reshape(-1, 3), feat.reshape(-1, 6), offset, enc_tokens, tokens)
        if s == 1:
            return out.reshape(B, n, -1)
        grid = out.reshape(B * 2, h, w, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=((h - 1) * s + 1, (w - 1) * s + 1), mode="bilinear",
                             align_corners=True)  # pixel s*i reads sample i exactly
        grid = F.pad(grid, (0, W - grid.shape[-1], 0, H - grid.shape[-2]), mode="replicate")
        return grid.permute(0, 2, 3, 1).reshape(B, 2 * H * W, -1)
