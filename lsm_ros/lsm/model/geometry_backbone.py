"""DUSt3R-style geometry backbone (LSM paper 3.1): unposed image pair -> two pointmaps.

Frames and units: all points are expressed in the camera frame of the *reference* view
(view 1 unless stated otherwise), OpenCV axes (x right, y down, z forward), in the network's
arbitrary, scale-free unit. Images are (B, 3, H, W), normalised to [-1, 1]
(``(rgb01 - 0.5) / 0.5``), with H and W multiples of the patch size (16).

Module layout mirrors the official ``Dust3RWithFeature.dust3r`` (an ``AsymmetricCroCo3DStereo``),
so ``GeometryBackbone.load_state_dict`` accepts the ``dust3r.*`` entries of LSM's
``checkpoint-final.pth`` with the leading ``dust3r.`` removed, and ``backbone.dust3r`` accepts a
plain DUSt3R checkpoint's ``model`` dict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from ..config import DecoderConfig, DPTConfig, EncoderConfig
from .cross_view_decoder import make_decoder_stack, run_cross_view_decoder
from .dpt_head import PointmapHead
from .rope import RoPE2D, RotaryTable, patch_grid_positions
from .vit import EncoderBlock, PatchEmbed, check_heads, init_transformer_weights, layer_norm

# Inputs must look like ImgNorm output; this bound rejects 0..255 or 0..1-then-ImageNet inputs
# with room for resampling overshoot.
MAX_ABS_INPUT = 1.5


@dataclass
class EncodedImage:
    """Encoder output for a batch of images of one size."""

    tokens: torch.Tensor  # (B, h*w, enc_dim), after enc_norm, row-major patch order
    grid_hw: Tuple[int, int]  # patch grid (h, w) = (H/16, W/16)


@dataclass
class SwappedPointmaps:
    """Prediction for the swapped pair (view 2 as reference); all points in the view-2 frame."""

    pts2: torch.Tensor  # (B, H, W, 3) view-2 pointmap in view-2 frame
    pts1: torch.Tensor  # (B, H, W, 3) view-1 pointmap in view-2 frame
    conf2: torch.Tensor  # (B, H, W) >= conf_vmin
    conf1: torch.Tensor  # (B, H, W) >= conf_vmin


@dataclass
class BackboneOutput:
    pts1: torch.Tensor  # (B, H, W, 3) view-1 pointmap in view-1 frame
    pts2: torch.Tensor  # (B, H, W, 3) view-2 pointmap in view-1 frame
    conf1: torch.Tensor  # (B, H, W) >= conf_vmin (1)
    conf2: torch.Tensor  # (B, H, W) >= conf_vmin (1)
    enc_tokens: torch.Tensor  # (B, 2*h*w, enc_dim): [view-1 tokens, view-2 tokens] after enc_norm
    grid_hw: Tuple[int, int]  # patch grid (h, w)
    swapped: Optional[SwappedPointmaps] = None  # only with symmetric=True


class AsymmetricStereoNet(nn.Module):
    """Siamese ViT encoder, two cross-view decoders and two DPT heads (official names)."""

    def __init__(self, encoder: EncoderConfig, decoder: DecoderConfig, dpt: DPTConfig):
        super().__init__()
        check_heads(encoder.embed_dim, encoder.num_heads)
        check_heads(decoder.embed_dim, decoder.num_heads)
        for name, dim, heads in (("encoder", encoder.embed_dim, encoder.num_heads),
                                 ("decoder", decoder.embed_dim, decoder.num_heads)):
            if (dim // heads) % 4 != 0:
                raise ValueError(f"{name} head dim {dim // heads} must be divisible by 4 for 2-D RoPE")
        if encoder.depth < 1 or decoder.depth < 1:
            raise ValueError("encoder and decoder depth must be >= 1")
        self.patch_size = encoder.patch_size
        self.enc_heads = encoder.num_heads
        self.dec_heads = decoder.num_heads
        self.rope = RoPE2D(encoder.rope_freq)

        # Unused at inference; kept (frozen) so official checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder.embed_dim), requires_grad=False)
        self.patch_embed = PatchEmbed(encoder.patch_size, encoder.embed_dim)
        self.enc_blocks = nn.ModuleList([
            EncoderBlock(encoder.embed_dim, encoder.num_heads, encoder.mlp_ratio)
            for _ in range(encoder.depth)])
        self.enc_norm = layer_norm(encoder.embed_dim)
        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder.embed_dim)
        self.dec_blocks = make_decoder_stack(decoder.embed_dim, decoder.depth, decoder.num_heads,
                                             decoder.mlp_ratio)
        self.dec_norm = layer_norm(decoder.embed_dim)
        self.dec_blocks2 = make_decoder_stack(decoder.embed_dim, decoder.depth, decoder.num_heads,
                                              decoder.mlp_ratio)
        self.downstream_head1 = PointmapHead(dpt, encoder.embed_dim, decoder.embed_dim, decoder.depth)
        self.downstream_head2 = PointmapHead(dpt, encoder.embed_dim, decoder.embed_dim, decoder.depth)
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.mask_token, std=0.02)
        for part in (self.enc_blocks, self.enc_norm, self.decoder_embed, self.dec_blocks,
                     self.dec_norm, self.dec_blocks2):
            part.apply(init_transformer_weights)

    def rotary(self, grid_hw: Tuple[int, int], heads: int, dim: int, like: torch.Tensor) -> RotaryTable:
        positions = patch_grid_positions(grid_hw[0], grid_hw[1], like.device)
        return self.rope.table(positions, dim // heads, like.dtype)

    def encode(self, images: torch.Tensor) -> EncodedImage:
        """(B,3,H,W) -> tokens (B, h*w, enc_dim) after enc_norm."""
        p = self.patch_size
        grid_hw = (images.shape[-2] // p, images.shape[-1] // p)
        x = self.patch_embed(images)
        rope = self.rotary(grid_hw, self.enc_heads, x.shape[-1], x)
        for blk in self.enc_blocks:
            x = blk(x, rope)
        return EncodedImage(self.enc_norm(x), grid_hw)

    def decode(self, enc1: torch.Tensor, enc2: torch.Tensor, grid_hw: Tuple[int, int]
               ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Encoder tokens of both views -> per view ``[encoder tokens, block 1..D outputs]``."""
        f1 = self.decoder_embed(enc1)
        f2 = self.decoder_embed(enc2)
        rope = self.rotary(grid_hw, self.dec_heads, f1.shape[-1], f1)
        outs1, outs2 = run_cross_view_decoder(self.dec_blocks, self.dec_blocks2, self.dec_norm,
                                              f1, f2, rope, rope)
        return [enc1] + outs1, [enc2] + outs2

    def predict(self, enc1: torch.Tensor, enc2: torch.Tensor, grid_hw: Tuple[int, int]
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> pts1 (view-1 frame), conf1, pts2 (in view-1 frame), conf2."""
        dec1, dec2 = self.decode(enc1, enc2, grid_hw)
        # As in DUSt3R, the heads run in float32 outside autocast (expm1/exp overflow in fp16).
        with torch.autocast(device_type=enc1.device.type, enabled=False):
            pts1, conf1 = self.downstream_head1([t.float() for t in dec1], grid_hw)
            pts2, conf2 = self.downstream_head2([t.float() for t in dec2], grid_hw)
        return pts1, conf1, pts2, conf2


def validate_image_pair(img1: torch.Tensor, img2: torch.Tensor, patch_size: int) -> None:
    """Raise ValueError unless both are finite float (B,3,H,W) in about [-1,1], same shape, H,W % p == 0."""
    for name, img in (("img1", img1), ("img2", img2)):
        if not isinstance(img, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(img).__name__}")
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"{name} must be (B, 3, H, W), got {tuple(img.shape)}")
        if not img.is_floating_point():
            raise ValueError(f"{name} must be a float tensor normalised to [-1, 1], got {img.dtype}")
        h, w = img.shape[-2:]
        if h < patch_size or w < patch_size or h % patch_size or w % patch_size:
            raise ValueError(f"{name} size {h}x{w} must be a positive multiple of the patch size {patch_size}")
        if img.shape[0] == 0:
            raise ValueError(f"{name} has an empty batch")
    if img1.shape != img2.shape:
        raise ValueError(f"image pair shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
    if img1.device != img2.device or img1.dtype != img2.dtype:
        raise ValueError("img1 and img2 must share device and dtype")
    for name, img in (("img1", img1), ("img2", img2)):
        if not torch.isfinite(img).all():
            raise ValueError(f"{name} contains NaN or Inf values")
        peak = img.detach().abs().max().item()
        if peak > MAX_ABS_INPUT:
            raise ValueError(f"{name} has values up to {peak:.3g}; expected images normalised to [-1, 1] "
                             "((rgb/255 - 0.5) / 0.5)")


class GeometryBackbone(nn.Module):
    """Pair of images -> pointmaps of both views in the view-1 frame, confidences and encoder tokens.

    ``image_size`` is the nominal (training / checkpoint) square size; any size that is a
    multiple of the patch size is accepted at run time.
    """

    def __init__(self, encoder: EncoderConfig, decoder: DecoderConfig, dpt: DPTConfig, image_size: int):
        super().__init__()
        if image_size <= 0 or image_size % encoder.patch_size != 0:
            raise ValueError(f"image_size {image_size} must be a positive multiple of patch size {encoder.patch_size}")
        self.image_size = image_size
        self.encoder_config = encoder
        self.dust3r = AsymmetricStereoNet(encoder, decoder, dpt)

    @property
    def patch_size(self) -> int:
        return self.dust3r.patch_size

    @property
    def enc_dim(self) -> int:
        return self.encoder_config.embed_dim

    def encoder_parameters(self) -> List[nn.Parameter]:
        """Parameters the official training freezes (``freeze='encoder'``)."""
        d = self.dust3r
        return [d.mask_token, *d.patch_embed.parameters(), *d.enc_blocks.parameters()]

    def set_encoder_trainable(self, trainable: bool) -> None:
        """Freeze/unfreeze patch embedding and encoder blocks (mask_token stays frozen)."""
        d = self.dust3r
        for p in [*d.patch_embed.parameters(), *d.enc_blocks.parameters()]:
            p.requires_grad_(trainable)

    def encode(self, images: torch.Tensor) -> EncodedImage:
        """(B,3,H,W) in [-1,1] -> encoder tokens (B, h*w, enc_dim) after enc_norm."""
        validate_image_pair(images, images, self.patch_size)
        return self.dust3r.encode(images)

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, symmetric: bool = False) -> BackboneOutput:
        """img1, img2: (B,3,H,W) in [-1,1]. With ``symmetric`` also predicts the swapped pair.

        The encoder runs once on both images (batched); the symmetric decoder pass runs on a
        doubled batch [(1,2), (2,1)].
        """
        validate_image_pair(img1, img2, self.patch_size)
        b = img1.shape[0]
        enc = self.dust3r.encode(torch.cat((img1, img2), dim=0))
        enc1, enc2 = enc.tokens[:b], enc.tokens[b:]
        grid_hw = enc.grid_hw
        if symmetric:
            ref = torch.cat((enc1, enc2), dim=0)
            other = torch.cat((enc2, enc1), dim=0)
            pts_ref, conf_ref, pts_other, conf_other = self.dust3r.predict(ref, other, grid_hw)
            swapped = SwappedPointmaps(pts2=pts_ref[b:], pts1=pts_other[b:],
                                       conf2=conf_ref[b:], conf1=conf_other[b:])
            pts1, conf1, pts2, conf2 = pts_ref[:b], conf_ref[:b], pts_other[:b], conf_other[:b]
        else:
            pts1, conf1, pts2, conf2 = self.dust3r.predict(enc1, enc2, grid_hw)
            swapped = None
        return BackboneOutput(pts1=pts1, pts2=pts2, conf1=conf1, conf2=conf2,
                              enc_tokens=torch.cat((enc1, enc2), dim=1), grid_hw=grid_hw,
                              swapped=swapped)


def official_backbone_state_dict(lsm_state_dict: dict) -> dict:
    """The ``dust3r.*`` entries of an official LSM state dict, renamed for :class:`GeometryBackbone`."""
    prefix = "dust3r."
    return {k[len(prefix):]: v for k, v in lsm_state_dict.items() if k.startswith(prefix)}
