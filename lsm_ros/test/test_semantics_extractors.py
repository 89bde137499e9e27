"""2-D semantic feature extractors: official LSeg layout (paper) and the learned one (tiny)."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lsm.config import SemanticConfig, paper, tiny
from lsm.model.lseg import extract_lseg_state_dict, load_lseg_checkpoint
from lsm.model.semantic_extractor import LearnedSemanticExtractor, build_semantic_extractor
from lsm.semantics.labels import label_map
from lsm.semantics.text_encoder import ClipTextEncoder

OFFICIAL_KEYS = Path("/work/shared/reference/official_lsm_state_dict_keys.txt")
# Element counts of the official lseg_feature_extractor state dict (parameters + BN buffers).
OFFICIAL_NUMEL = {"clip_pretrained": 151_277_313, "pretrained": 327_530_984, "scratch": 16_336_400}
OFFICIAL_NUM_KEYS = 730


@pytest.fixture(scope="module")
def lseg():
    torch.manual_seed(0)
    return build_semantic_extractor(paper().semantic)


# ----------------------------------------------------------------------------- LSeg layout

def test_lseg_state_dict_matches_official_counts_and_spot_shapes(lseg):
    sd = lseg.state_dict()
    assert len(sd) == OFFICIAL_NUM_KEYS
    numel = {}
    for k, v in sd.items():
        numel[k.split(".")[0]] = numel.get(k.split(".")[0], 0) + v.numel()
    assert numel == OFFICIAL_NUMEL
    spot = {
        "clip_pretrained.token_embedding.weight": (49408, 512),
        "clip_pretrained.visual.conv1.weight": (768, 3, 32, 32),
        "clip_pretrained.logit_scale": (),
        "pretrained.model.pos_embed": (1, 577, 1024),
        "pretrained.model.head.weight": (1000, 1024),
        "pretrained.act_postprocess1.0.project.0.weight": (1024, 2048),
        "pretrained.act_postprocess1.4.weight": (256, 256, 4, 4),
        "pretrained.act_postprocess2.4.weight": (512, 512, 2, 2),
        "pretrained.act_postprocess4.4.weight": (1024, 1024, 3, 3),
        "scratch.layer3_rn.weight": (256, 1024, 3, 3),
        "scratch.refinenet2.resConfUnit1.bn2.running_var": (256,),
        "scratch.head1.weight": (512, 256, 1, 1),
    }
    for k, shape in spot.items():
        assert tuple(sd[k].shape) == shape, k


@pytest.mark.skipif(not OFFICIAL_KEYS.is_file(), reason="official key listing not available")
def test_lseg_state_dict_equals_official_listing(lseg):
    ref = {}
    for line in OFFICIAL_KEYS.read_text().splitlines():
        if line.startswith("lseg_feature_extractor.") and "\t" in line:
            key, shape, dtype = line.split("\t")
            ref[key[len("lseg_feature_extractor."):]] = (tuple(eval(shape)), dtype)  # shape tuples only
    ours = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in lseg.state_dict().items()}
    assert ours == ref


def test_lseg_is_frozen_and_stays_in_eval(lseg):
    assert lseg.trainable is False and lseg.out_dim == 512
    assert not any(p.requires_grad for p in lseg.parameters())
    lseg.train()
    assert not lseg.training and not any(m.training for m in lseg.modules())


def test_lseg_features_shape_and_batch_consistency(lseg):
    torch.manual_seed(1)
    img = torch.rand(2, 3, 256, 256) * 2 - 1
    feats = lseg.extract_features(img)
    assert feats.shape == (2, 512, 128, 128) and torch.isfinite(feats).all()
    assert not feats.requires_grad
    single = lseg(img[1:])  # forward == extract_features; eval BN -> per-sample independent
    assert torch.allclose(single[0], feats[1], atol=1e-4, rtol=1e-4)
    # Non-square inputs (multiples of 32) follow the resized position embedding.
    assert lseg(torch.zeros(1, 3, 64, 96)).shape == (1, 512, 32, 48)


def test_lseg_full_res_option_upsamples(lseg):
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    half = lseg.extract_features(img)
    lseg.half_res = False
    try:
        full = lseg.extract_features(img)
    finally:
        lseg.half_res = True
    assert full.shape == (1, 512, 64, 64)
    assert torch.allclose(full, F.interpolate(half, scale_factor=2, mode="bilinear", align_corners=True))


@pytest.mark.parametrize("shape,msg", [((1, 3, 48, 64), "multiples of 32"), ((1, 4, 64, 64), r"\(B, 3, H, W\)"),
                                       ((3, 64, 64), r"\(B, 3, H, W\)")])
def test_lseg_rejects_bad_images(lseg, shape, msg):
    with pytest.raises(ValueError, match=msg):
        lseg(torch.zeros(shape))


def test_lseg_rejects_nan(lseg):
    img = torch.zeros(1, 3, 32, 32)
    img[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        lseg(img)


def test_lseg_loads_official_prefixed_state_dict(lseg):
    """LSM checkpoints prefix ``lseg_feature_extractor.``; the load is strict and changes outputs."""
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    before = lseg(img)
    sd = {f"lseg_feature_extractor.{k}": v.clone() for k, v in lseg.state_dict().items()}
    sd["lseg_feature_extractor.scratch.head1.bias"] += 1.0
    sd["dust3r.some.weight"] = torch.zeros(1)  # other LSM modules are ignored
    original = lseg.scratch.head1.bias.clone()
    try:
        lseg.load_official(sd)
        assert torch.allclose(lseg(img), before + 1.0, atol=1e-4)
        del sd["lseg_feature_extractor.scratch.head1.weight"]
        with pytest.raises(RuntimeError, match="head1.weight"):
            lseg.load_official(sd)
    finally:
        lseg.scratch.head1.bias.copy_(original)
    assert set(extract_lseg_state_dict({"net.a": 1, "net.b": 2})) == {"a", "b"}


def test_clip_text_encoder_shares_lseg_clip(lseg):
    enc = ClipTextEncoder.from_lseg(lseg)
    assert enc.model is lseg.clip_pretrained
    emb = enc.encode(["wall", "chair"])
    assert emb.shape == (2, 512)
    # features -> labels end to end (random weights: only the plumbing is checked here)
    ids, score = label_map(lseg(torch.zeros(1, 3, 64, 64)), emb)
    assert ids.shape == (1, 32, 32) and set(ids.unique().tolist()) <= {0, 1}


# ----------------------------------------------------------------------------- learned

def test_factory_builds_learned_for_tiny_and_rejects_bad_configs():
    m = build_semantic_extractor(tiny().semantic)
    assert isinstance(m, LearnedSemanticExtractor) and m.trainable and m.out_dim == 384
    assert all(p.requires_grad for p in m.parameters())
    with pytest.raises(ValueError, match="512-d"):
        build_semantic_extractor(SemanticConfig(extractor="lseg", text_dim=384))
    with pytest.raises(ValueError, match="unknown semantic extractor"):
        build_semantic_extractor(SemanticConfig(extractor="sam"))


@pytest.mark.parametrize("h,w", [(128, 128), (64, 96), (30, 42)])
def test_learned_extractor_output_shape(h, w):
    torch.manual_seed(0)
    m = LearnedSemanticExtractor(width=16, text_dim=32)
    out = m(torch.rand(2, 3, h, w) * 2 - 1)
    assert out.shape == (2, 32, h // 2, w // 2) and torch.isfinite(out).all()


def test_learned_extractor_rejects_bad_images():
    m = LearnedSemanticExtractor(width=8, text_dim=4)
    with pytest.raises(ValueError, match="even"):
        m(torch.zeros(1, 3, 31, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.zeros(1, 1, 32, 32))


def test_learned_extractor_distils_a_teacher_label_layout():
    """Cosine distillation towards per-pixel teacher embeddings learns the label layout."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(3, 24, generator=g), dim=-1)  # teacher space, 3 labels
    colours = torch.tensor([[0.9, -0.8, -0.8], [-0.8, 0.9, -0.8], [-0.8, -0.8, 0.9]])
    gt = torch.zeros(4, 16, 16, dtype=torch.long)  # label layout at H/2 for 32x32 images
    for b in range(4):
        cut = 4 + 2 * b
        gt[b, :, cut:] = 1
        gt[b, cut + 4:, :] = 2
    img = colours[gt].permute(0, 3, 1, 2).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    img = img + 0.1 * torch.randn(img.shape, generator=g)
    target = text[gt].permute(0, 3, 1, 2)

    m = LearnedSemanticExtractor(width=16, text_dim=24)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    acc0 = (label_map(m(img), text)[0] == gt).float().mean()
    for _ in range(60):
        loss = 1 - F.cosine_similarity(m(img), target, dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    ids, score = label_map(m(img), text)
    acc = (ids == gt).float().mean()
    assert acc > 0.95 and acc > acc0
    assert math.isfinite(loss.item()) and loss.item() < 0.2


def test_load_lseg_checkpoint_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_lseg_checkpoint(tmp_path / "demo_e200.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="could not read LSeg weights"):
        load_lseg_checkpoint(bad)
