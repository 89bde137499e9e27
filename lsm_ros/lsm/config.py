"""Typed model configurations.

Two named configurations exist:

* ``paper`` -- exactly the sizes of the official LSM release (ViT-L DUSt3R encoder,
  ViT-B decoder, DPT heads, PTv3 with the official depths/channels, LSeg + CLIP ViT-B/32),
  with the official module names so the official state dict loads without renaming.
* ``tiny``  -- the same modules, narrow and shallow, for CPU inference in well under a
  second per pair; it is the embedded default model.

Nothing here is evaluated from strings: every field is a plain typed value.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Tuple


@dataclass(frozen=True)
class EncoderConfig:
    """Siamese ViT encoder (CroCo/DUSt3R style, patch embedding + 2-D RoPE)."""

    patch_size: int = 16
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    rope_freq: float = 100.0


@dataclass(frozen=True)
class DecoderConfig:
    """Asymmetric cross-view decoder: one block stack per view."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class DPTConfig:
    """DPT pointmap head (one per view). Output: 3 xyz channels + 1 confidence channel."""

    feature_dim: int = 256
    last_dim: int = 128
    # Indices into [encoder output] + [decoder block outputs]; 0 is the encoder output.
    hooks: Tuple[int, ...] = (0, 6, 9, 12)
    # Per-hook channel count of the re-assembled feature maps (DUSt3R: 96, 192, 384, 768).
    layer_dims: Tuple[int, ...] = (96, 192, 384, 768)
    output_dim: int = 4
    conf_vmin: float = 1.0


@dataclass(frozen=True)
class PTv3Config:
    """Point Transformer V3 aggregation network (official LSM settings by default)."""

    in_channels: int = 6  # xyz + rgb
    grid_size: float = 0.01  # voxel size in the unit-cube-normalised point frame
    order: Tuple[str, ...] = ("z", "z-trans", "hilbert", "hilbert-trans")
    stride: Tuple[int, ...] = (2, 2, 2, 2)
    enc_depths: Tuple[int, ...] = (1, 1, 1, 3, 1)
    enc_channels: Tuple[int, ...] = (32, 64, 128, 256, 512)
    enc_num_head: Tuple[int, ...] = (2, 4, 8, 16, 32)
    enc_patch_size: Tuple[int, ...] = (1024, 1024, 1024, 1024, 1024)
    dec_depths: Tuple[int, ...] = (1, 1, 1, 1)
    dec_channels: Tuple[int, ...] = (64, 64, 128, 256)
    dec_num_head: Tuple[int, ...] = (4, 4, 8, 16)
    dec_patch_size: Tuple[int, ...] = (1024, 1024, 1024, 1024)
    mlp_ratio: float = 4.0
    drop_path: float = 0.3
    embed_kernel: int = 5
    cpe_kernel: int = 3
    # What the positional (xCPE) conv of the first decoder block after each unpooling reads:
    # "skip" = only the projected skip features, as the official code does (a quirk of
    # Pointcept PTv3 342656c, PointTransformerV3 issues #65/#149: unpooling updates the
    # point features but not the sparse tensor the conv reads) -- needed for official
    # weights; "sum" = skip + up-sampled features, the evident intent, used by the
    # embedded tiny model (trained that way).
    decoder_cpe_input: str = "skip"
    # The points the transformer sees: every ``point_stride``-th pixel of each view in each
    # direction (1 = every pixel, as the paper). With 2 it sees a quarter of the points and
    # its features are bilinearly up-sampled to every pixel before the Gaussian head (about
    # 4x less point-transformer work); weights must be trained for it (lsm-train
    # --point-stride, docs/training.md).
    point_stride: int = 1


@dataclass(frozen=True)
class FusionConfig:
    """Cross-model attention blocks injecting 2-D tokens into point features (paper 3.2-3.3).

    ``dust`` attends to the ViT encoder tokens, ``lseg`` to the semantic tokens after the
    encoder, ``multi_scale`` to the semantic tokens again after the first decoder stage.
    Widths must equal the PTv3 channel count at the place they are applied.
    """

    dust_dim: int = 512
    dust_heads: int = 8
    lseg_dim: int = 512
    lseg_heads: int = 8
    multi_scale_dim: int = 256
    multi_scale_heads: int = 4
    mlp_ratio: float = 4.0
    token_pool: int = 8  # AvgPool2d kernel turning the H/2 semantic map into tokens


@dataclass(frozen=True)
class SemanticConfig:
    """2-D semantic features and the text space they live in.

    ``extractor``: ``"lseg"`` (paper: frozen LSeg, 512-d CLIP space at H/2) or
    ``"learned"`` (tiny: a small trainable CNN distilled from a text-embedding teacher).
    ``text_encoder``: ``"clip"`` (open_clip ViT-B-32) or ``"minilm"`` (all-MiniLM-L6-v2, 384-d).
    """

    extractor: str = "lseg"
    text_encoder: str = "clip"
    text_dim: int = 512
    feature_dim: int = 64  # per-Gaussian semantic feature
    learned_width: int = 64  # width of the "learned" extractor (unused for lseg)


@dataclass(frozen=True)
class GaussianConfig:
    sh_degree: int = 3
    scale_clamp: Tuple[float, float] = (0.1, 3.0)  # x median 3-NN spacing
    knn: int = 3


@dataclass(frozen=True)
class LSMConfig:
    name: str = "paper"
    image_size: int = 256
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    dpt: DPTConfig = field(default_factory=DPTConfig)
    ptv3: PTv3Config = field(default_factory=PTv3Config)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    gaussian: GaussianConfig = field(default_factory=GaussianConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LSMConfig":
        """Inverse of :meth:`to_dict` (lists become tuples); unknown keys are an error."""
        sub = {f.name: f.type for f in dataclasses.fields(cls)}
        kinds = {
            "encoder": EncoderConfig, "decoder": DecoderConfig, "dpt": DPTConfig,
            "ptv3": PTv3Config, "fusion": FusionConfig, "semantic": SemanticConfig,
            "gaussian": GaussianConfig,
        }
        unknown = set(d) - set(sub)
        if unknown:
            raise ValueError(f"unknown LSMConfig fields: {sorted(unknown)}")
        kw = {}
        for k, v in d.items():
            if k == "ptv3" and "decoder_cpe_input" not in v:
                # written before the option existed, when "sum" was the only behaviour
                v = dict(v, decoder_cpe_input="sum")
            if k in kinds:
                fields = {f.name for f in dataclasses.fields(kinds[k])}
                bad = set(v) - fields
                if bad:
                    raise ValueError(f"unknown {k} config fields: {sorted(bad)}")
                kw[k] = kinds[k](**{n: tuple(x) if isinstance(x, list) else x for n, x in v.items()})
            else:
                kw[k] = v
        return cls(**kw)


def paper() -> LSMConfig:
    """The official LSM sizes (256x256 input)."""
    return LSMConfig()


def tiny() -> LSMConfig:
    """Small CPU configuration: same modules, narrow and shallow; the embedded default."""
    return LSMConfig(
        name="tiny",
        image_size=128,
        encoder=EncoderConfig(patch_size=16, embed_dim=192, depth=4, num_heads=3),
        decoder=DecoderConfig(embed_dim=192, depth=4, num_heads=3),
        dpt=DPTConfig(feature_dim=64, last_dim=32, hooks=(0, 2, 3, 4), layer_dims=(24, 48, 96, 192)),
        ptv3=PTv3Config(
            grid_size=0.01,
            stride=(2, 2, 2),
            enc_depths=(1, 1, 1, 1),
            enc_channels=(32, 48, 64, 96),
            enc_num_head=(2, 2, 4, 4),
            enc_patch_size=(256, 256, 256, 256),
            dec_depths=(1, 1, 1),
            dec_channels=(64, 48, 64),
            dec_num_head=(2, 2, 4),
            dec_patch_size=(256, 256, 256),
            drop_path=0.0,
            embed_kernel=3,
            decoder_cpe_input="sum",
        ),
        fusion=FusionConfig(dust_dim=96, dust_heads=4, lseg_dim=96, lseg_heads=4,
                            multi_scale_dim=64, multi_scale_heads=4, token_pool=4),
        semantic=SemanticConfig(extractor="learned", text_encoder="minilm", text_dim=384,
                                feature_dim=32, learned_width=48),
    )


CONFIGS = {"paper": paper, "tiny": tiny}


def get_config(name: str) -> LSMConfig:
    try:
        return CONFIGS[name]()
    except KeyError:
        raise ValueError(f"unknown model config {name!r}; choose one of {sorted(CONFIGS)}") from None
