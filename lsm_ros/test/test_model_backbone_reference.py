"""The geometry backbone reproduces the official DUSt3R/CroCo implementation numerically.

``test_model_backbone_reference.npz`` holds outputs of the official code (naver/dust3r c9e9336
with naver/croco 743ee71, the commits pinned by NVlabs/LSM; pure-PyTorch RoPE2D) for the
``tiny()`` sizes, with deterministic weights from :func:`reference_weights` and the deterministic
images from :func:`reference_images`. Regenerate with::

    python test/test_model_backbone_reference.py --regenerate DUST3R_DIR CROCO_DIR

where DUST3R_DIR contains the ``dust3r`` package and CROCO_DIR the ``models`` package
(einops and huggingface_hub are needed by the official modules).
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest
import torch

from lsm.config import tiny
from lsm.model.geometry_backbone import GeometryBackbone

FIXTURE = pathlib.Path(__file__).with_suffix(".npz")
HEIGHT, WIDTH = 48, 80  # odd 3x5 patch grid: exercises the DPT crop and non-square RoPE
SUBSAMPLE = 2  # stored pixels: every 2nd row and column


def canonical_name(key: str) -> str:
    """``layer_rn.i`` aliases ``layer{i+1}_rn``: give both the same weights."""
    for i in range(4):
        key = key.replace(f"scratch.layer_rn.{i}.", f"scratch.layer{i + 1}_rn.")
    return key


def reference_weights(shapes: dict) -> dict:
    """Deterministic, well-scaled weights for the given {name: shape} (numpy PCG64 stream)."""
    out = {}
    for index, name in enumerate(sorted({canonical_name(k) for k in shapes})):
        shape = next(s for k, s in shapes.items() if canonical_name(k) == name)
        rng = np.random.default_rng(1000 + index)
        z = rng.standard_normal(shape).astype(np.float32)
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            if name.endswith("act_postprocess.0.1.weight") or name.endswith("act_postprocess.1.1.weight"):
                fan_in = int(shape[0] * np.prod(shape[2:]))  # ConvTranspose2d: (in, out, k, k)
            w = z / np.sqrt(fan_in)
            if ".dpt.head.4." in name:
                w = 0.3 * w  # keep the raw xyz norm moderate: points go through expm1
        elif "norm" in name.split(".")[-2] and name.endswith("weight"):
            w = 1.0 + 0.1 * z  # LayerNorm gains
        else:
            w = 0.05 * z  # biases
        out[name] = torch.from_numpy(w)
    return {k: out[canonical_name(k)] for k in shapes}


def reference_images() -> tuple:
    """Two deterministic (1,3,HEIGHT,WIDTH) images in [-1, 1]."""
    yy, xx = torch.meshgrid(torch.arange(HEIGHT, dtype=torch.float32),
                            torch.arange(WIDTH, dtype=torch.float32), indexing="ij")
    img1 = torch.stack([torch.sin(xx / 7 + c) * torch.cos(yy / 5 - c) for c in range(3)])
    img2 = torch.stack([torch.cos(xx / 9 - 2 * c) * torch.sin(yy / 4 + c) for c in range(3)])
    return img1[None] * 0.9, img2[None] * 0.9


def build_tiny() -> GeometryBackbone:
    cfg = tiny()
    model = GeometryBackbone(cfg.encoder, cfg.decoder, cfg.dpt, cfg.image_size).eval()
    shapes = {k: tuple(v.shape) for k, v in model.dust3r.state_dict().items()}
    model.dust3r.load_state_dict(reference_weights(shapes), strict=True)
    return model


@pytest.fixture(scope="module")
def outputs():
    if not FIXTURE.exists():
        pytest.fail(f"missing fixture {FIXTURE}")
    ref = dict(np.load(FIXTURE))
    model = build_tiny()
    img1, img2 = reference_images()
    with torch.no_grad():
        out = model(img1, img2, symmetric=True)
    return ref, out


def _sub(t: torch.Tensor) -> np.ndarray:
    return t[0, ::SUBSAMPLE, ::SUBSAMPLE].numpy()


def _assert_close(actual: np.ndarray, expected: np.ndarray, name: str):
    scale = float(np.abs(expected).max())
    err = float(np.abs(actual - expected).max())
    print(f"{name}: max |err| {err:.3g} (max |value| {scale:.3g})")
    assert actual.shape == expected.shape, name
    assert err <= 1e-4 * max(scale, 1.0), f"{name}: max error {err} vs scale {scale}"


def test_encoder_tokens_match_official(outputs):
    ref, out = outputs
    _assert_close(out.enc_tokens[0].numpy(), ref["enc_tokens"], "enc_tokens")


def test_pointmaps_and_confidence_match_official(outputs):
    ref, out = outputs
    assert float(np.abs(ref["pts1"]).max()) > 0.05  # the fixture is not degenerate
    assert float(np.std(ref["pts2"])) > 0.01
    _assert_close(_sub(out.pts1), ref["pts1"], "pts1")
    _assert_close(_sub(out.pts2), ref["pts2"], "pts2 (in view-1 frame)")
    _assert_close(_sub(out.conf1), ref["conf1"], "conf1")
    _assert_close(_sub(out.conf2), ref["conf2"], "conf2")


def test_swapped_pair_matches_official(outputs):
    ref, out = outputs
    _assert_close(_sub(out.swapped.pts2), ref["swapped_pts2"], "swapped pts2 (view-2 frame)")
    _assert_close(_sub(out.swapped.pts1), ref["swapped_pts1"], "swapped pts1 (in view-2 frame)")
    _assert_close(_sub(out.swapped.conf2), ref["swapped_conf2"], "swapped conf2")
    _assert_close(_sub(out.swapped.conf1), ref["swapped_conf1"], "swapped conf1")


def regenerate(dust3r_dir: str, croco_dir: str) -> None:
    """Run the official modules on the reference weights/images and write the fixture."""
    sys.path[:0] = [dust3r_dir, croco_dir]
    from dust3r.heads.dpt_head import PixelwiseTaskWithDPT
    from dust3r.heads.postprocess import postprocess
    from dust3r.model import AsymmetricCroCo3DStereo

    cfg = tiny()
    e, d, p = cfg.encoder, cfg.decoder, cfg.dpt
    inf = float("inf")
    net = AsymmetricCroCo3DStereo(
        output_mode="pts3d", head_type="linear", depth_mode=("exp", -inf, inf), conf_mode=("exp", 1, inf),
        landscape_only=False, patch_embed_cls="PatchEmbedDust3R", img_size=(HEIGHT, WIDTH),
        patch_size=e.patch_size, enc_embed_dim=e.embed_dim, enc_depth=e.depth, enc_num_heads=e.num_heads,
        dec_embed_dim=d.embed_dim, dec_depth=d.depth, dec_num_heads=d.num_heads,
        mlp_ratio=e.mlp_ratio, pos_embed=f"RoPE{int(e.rope_freq)}")
    for i in (1, 2):  # the official DPT factory hard-codes the paper widths; build tiny DPT heads
        head = PixelwiseTaskWithDPT(
            num_channels=p.output_dim, feature_dim=p.feature_dim, last_dim=p.last_dim,
            hooks_idx=list(p.hooks), layer_dims=list(p.layer_dims),
            dim_tokens=[e.embed_dim if h == 0 else d.embed_dim for h in p.hooks],
            postprocess=postprocess, depth_mode=net.depth_mode, conf_mode=net.conf_mode,
            head_type="regression")
        setattr(net, f"downstream_head{i}", head)
        setattr(net, f"head{i}", lambda decout, shape, head=head: head(decout, tuple(shape[0].tolist())))
    net.eval()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict(reference_weights(shapes), strict=True)
    img1, img2 = reference_images()

    def view(img, tag):
        return {"img": img, "instance": [tag]}

    with torch.no_grad():
        r1, r2 = net(view(img1, "a"), view(img2, "b"))
        s1, s2 = net(view(img2, "b"), view(img1, "a"))
        _, (f1, f2), _ = net._encode_symmetrized(view(img1, "a"), view(img2, "b"))
    np.savez_compressed(
        FIXTURE,
        enc_tokens=torch.cat((f1, f2), dim=1)[0].numpy(),
        pts1=_sub(r1["pts3d"]), conf1=_sub(r1["conf"]),
        pts2=_sub(r2["pts3d_in_other_view"]), conf2=_sub(r2["conf"]),
        swapped_pts2=_sub(s1["pts3d"]), swapped_conf2=_sub(s1["conf"]),
        swapped_pts1=_sub(s2["pts3d_in_other_view"]), swapped_conf1=_sub(s2["conf"]),
    )
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--regenerate":
        regenerate(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
