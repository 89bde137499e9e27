"""The whole LSM forward pass reproduces NVlabs/LSM (official code) given the same weights and images.

``test_weights_official_equivalence.npz`` holds outputs of the official ``LSM_Dust3R`` (NVlabs/LSM
4f12d74 with dust3r c9e9336 / croco 743ee71, PointTransformerV3 342656c, lang-seg 65c0a09; run on
CPU with the patches listed in docs/official_equivalence.md) for :func:`equivalence_config`
(the paper model with a 2-block DUSt3R encoder and a 192-wide decoder, at 32x32), with the
deterministic weights of :func:`seeded_weights` and the images of :func:`reference_images`.
The recipe that produced it is in docs/official_equivalence.md.
"""
from __future__ import annotations

import dataclasses
import pathlib
import zlib

import numpy as np
import pytest
import torch

from lsm.config import DecoderConfig, EncoderConfig, paper

FIXTURE = pathlib.Path(__file__).with_suffix(".npz")
SIZE = 32
# Tolerance: max |ours - official| / max |official| per output.
REL_TOL = 1e-4


def equivalence_config(size: int = SIZE, full: bool = False):
    """The paper configuration; unless ``full``, with the DUSt3R encoder cut to 2 blocks and the
    decoder to 192 wide / 3 heads (the official DPT head needs >= 10 decoder blocks; the
    1024-d encoder width is hard-coded by LSM's ``dust_feat_proj``)."""
    cfg = paper()
    if not full:
        cfg = dataclasses.replace(cfg, name="paper-shrunk",
                                  encoder=EncoderConfig(embed_dim=1024, depth=2, num_heads=16),
                                  decoder=DecoderConfig(embed_dim=192, depth=12, num_heads=3))
    return dataclasses.replace(cfg, image_size=size)


def canonical_name(key: str) -> str:
    """DUSt3R's DPT registers ``scratch.layer_rn.i`` as an alias of ``scratch.layer{i+1}_rn``."""
    for i in range(4):
        key = key.replace(f"scratch.layer_rn.{i}.", f"scratch.layer{i + 1}_rn.")
    return key


def seeded_weights(reference: dict) -> dict:
    """Deterministic, well-scaled weights for ``reference`` ({key: tensor or meta tensor}).

    Each tensor comes from its own numpy PCG64 stream seeded by the CRC32 of its (canonical)
    key, so any subset of keys gets the same values: matrices ~ N(0, 1/fan_in), norm gains
    1 + 0.1 N, biases 0.05 N, BatchNorm running means 0.1 N and variances U(0.5, 1.5), counters 0.
    """
    out = {}
    for key, ref in reference.items():
        name = canonical_name(key)
        shape = tuple(ref.shape)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        leaf = name.split(".")[-1]
        if not ref.dtype.is_floating_point:
            out[key] = torch.zeros(shape, dtype=ref.dtype)
            continue
        if leaf == "running_var":
            w = rng.uniform(0.5, 1.5, shape)
        elif leaf == "running_mean":
            w = 0.1 * rng.standard_normal(shape)
        elif len(shape) >= 2:
            w = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
            if ".dpt.head.4." in name:
                w = 0.3 * w  # moderate raw xyz: DUSt3R maps it through expm1
        elif len(shape) == 1 and leaf == "weight":  # every 1-D weight is a norm gain
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            w = 0.05 * rng.standard_normal(shape)
        out[key] = torch.from_numpy(np.asarray(w, dtype=np.float32)).to(ref.dtype)
    return out


def reference_images(size: int = SIZE) -> tuple:
    """Two deterministic (1,3,size,size) RGB images in [0,1]: smooth gradients plus texture."""
    rng = np.random.default_rng(7)
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    imgs = []
    for shift in (0.0, 0.15):
        base = np.stack([xx + shift, yy, 0.5 * (xx + yy)], 0) % 1.0
        imgs.append(np.clip(0.8 * base + 0.2 * rng.random((3, size, size)), 0, 1))
    return tuple(torch.from_numpy(i[None].astype(np.float32)) for i in imgs)


def outputs_of(out) -> dict:
    """Our :class:`LSMOutput` as the official per-view arrays (view 1, view 2 stacked first)."""
    B, S = out.pts1.shape[0], out.pts1.shape[1]
    g = out.gaussians

    def views(x):  # (B, 2*S*S, ...) -> (2, B, S, S, ...)
        return x.reshape(B, 2, S, S, *x.shape[2:]).transpose(0, 1)

    return {
        "pts3d": torch.stack([out.pts1, out.pts2]), "conf": torch.stack([out.conf1, out.conf2]),
        "enc_tokens": out.backbone.enc_tokens, "lseg_features": out.semantic_2d,
        "means": views(g.means), "scales": views(g.scales), "rotations": views(g.rotations),
        "opacities": views(g.opacities), "sh_coeffs": views(g.sh), "gs_feats": views(g.features),
    }


def compare(ours: dict, official: dict) -> dict:
    """{name: (max abs diff, max abs diff / max |official|)}."""
    result = {}
    for k, ref in official.items():
        a = torch.as_tensor(np.asarray(ours[k]), dtype=torch.float64)
        b = torch.as_tensor(np.asarray(ref), dtype=torch.float64)
        assert a.shape == b.shape, (k, a.shape, b.shape)
        diff = (a - b).abs().max().item()
        result[k] = (diff, diff / max(b.abs().max().item(), 1e-30))
    return result


# Outputs before the point aggregation (DUSt3R backbone, DPT heads, LSeg), and the Gaussian
# parameters after PTv3 + fusion + Gaussian head given the same points.
BACKBONE_OUTPUTS = ("pts3d", "conf", "enc_tokens", "lseg_features", "means")
GAUSSIAN_OUTPUTS = ("scales", "rotations", "opacities", "sh_coeffs", "gs_feats")


def _thin(ours: dict) -> dict:
    # the fixture keeps every 8th LSeg channel, every 4th Gaussian feature, every 3rd SH coefficient
    ours["lseg_features"] = ours["lseg_features"][:, ::8]
    ours["gs_feats"] = ours["gs_feats"][..., ::4]
    ours["sh_coeffs"] = ours["sh_coeffs"][..., ::3, :]
    return ours


@pytest.fixture(scope="module")
def differences():
    """~2.5 GB RAM (the frozen LSeg ViT-L + CLIP are full size), ~1 min on one core.

    ``end_to_end``: our whole forward pass; ``given_points``: our PTv3 + fusion + Gaussian
    head run on the official pointmaps. The end-to-end Gaussians are not asserted: our
    pointmaps differ from the official ones by <= 4e-5 (2e-6 relative), which is enough to
    move one of the 2,048 points of this fixture across a 0.01 voxel boundary (view 2, row
    15, col 11: z voxel 7.99999 vs 8.00000), and voxel membership is a step function
    (docs/official_equivalence.md).
    """
    if not FIXTURE.exists():
        pytest.skip("fixture not generated")
    from lsm.checkpoint import build_model_from_state
    from lsm.convert import model_reference
    from lsm.model.lsm import LSMOutput

    cfg = equivalence_config()
    state = seeded_weights(model_reference(cfg))
    model = build_model_from_state(cfg, state, source="seeded weights").eval()
    del state
    official = dict(np.load(FIXTURE))
    img1, img2 = reference_images()
    with torch.no_grad():
        out = model(img1, img2)
        B = out.pts1.shape[0]
        points = torch.from_numpy(official["pts3d"]).transpose(0, 1).reshape(B, -1, 3)
        given = model.gaussians_from_points(points, img1, img2, out.backbone.enc_tokens,
                                            out.semantic_2d)
    result = {
        "end_to_end": compare(_thin(outputs_of(out)), official),
        "given_points": compare(_thin(outputs_of(LSMOutput(
            out.pts1, out.pts2, out.conf1, out.conf2, given, out.semantic_2d, out.backbone))),
            {k: official[k] for k in GAUSSIAN_OUTPUTS}),
    }
    for name, diffs in result.items():
        for k, (diff, rel) in sorted(diffs.items()):
            print(f"{name:12s} {k:14s} max |diff| {diff:.3e}   relative {rel:.3e}")
    return result


@pytest.mark.slow
def test_backbone_and_semantic_outputs_match_official(differences):
    d = differences["end_to_end"]
    worst = {k: d[k] for k in BACKBONE_OUTPUTS if not d[k][1] <= REL_TOL}
    assert not worst, f"outputs differ from the official code: {worst}"


@pytest.mark.slow
def test_gaussian_parameters_match_official_given_the_same_points(differences):
    d = differences["given_points"]
    worst = {k: d[k] for k in GAUSSIAN_OUTPUTS if not d[k][1] <= REL_TOL}
    assert not worst, f"outputs differ from the official code: {worst}"
