"""Geometry backbone: official state-dict layout, output contract, gradients, input checks."""
from __future__ import annotations

import math
import pathlib
import re
from collections import defaultdict

import pytest
import torch

from lsm.config import paper, tiny
from lsm.model.dpt_head import pointmap_from_raw
from lsm.model.geometry_backbone import GeometryBackbone, official_backbone_state_dict
from lsm.model.rope import RoPE2D, patch_grid_positions

# The dust3r part of the official state-dict listing (names, shapes, element counts).
LISTING = pathlib.Path(__file__).with_name("test_model_backbone_official_keys.txt")


def read_listing():
    """(shapes {key: shape} of tensors under ``dust3r.``, element counts {child: millions})."""
    shapes, figures = {}, {}
    for line in LISTING.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].startswith("dust3r."):
            shapes[parts[0]] = tuple(int(s) for s in re.findall(r"\d+", parts[1]))
        m = re.match(r"^(dust3r\.dust3r\.\w+): ([\d.]+) M$", line)
        if m:
            figures[m.group(1)] = float(m.group(2))
        m = re.match(r"^dust3r: ([\d.]+) M$", line)
        if m:
            figures["dust3r"] = float(m.group(1))
        m = re.match(r"^dust3r: ([\d.]+) M trainable$", line)
        if m:
            figures["dust3r trainable"] = float(m.group(1))
    return shapes, figures


def build(cfg) -> GeometryBackbone:
    return GeometryBackbone(cfg.encoder, cfg.decoder, cfg.dpt, cfg.image_size)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build(tiny()).eval()


def images(b=1, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, h, w, generator=g) * 2 - 1, torch.rand(b, 3, h, w, generator=g) * 2 - 1)


# ---------------------------------------------------------------- official layout (paper sizes)

def test_paper_state_dict_matches_official_listing():
    shapes, figures = read_listing()
    assert len(shapes) > 1000
    with torch.device("meta"):  # ViT-L sized; no memory or init cost
        model = build(paper())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {k[len("dust3r."):]: s for k, s in shapes.items()}
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: s for k, s in ours.items() if expected[k] != s} == {}

    counts = defaultdict(int)
    for k, v in model.state_dict().items():  # state-dict elements, as the listing counts them
        counts["dust3r.dust3r." + k.split(".")[1]] += v.numel()
    for child, millions in sorted(counts.items()):
        print(f"{child}: {millions / 1e6:.3f} M (official {figures.get(child)})")
        assert round(millions / 1e6, 3) == pytest.approx(figures[child], abs=1e-3)
    total = sum(counts.values()) / 1e6
    print(f"total {total:.3f} M (official {figures['dust3r']}); unique parameters "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.3f} M")
    assert round(total, 3) == pytest.approx(figures["dust3r"], abs=1e-3)

    # official training freezes the encoder (freeze='encoder'); the never-used
    # refinenet4.resConfUnit1 is trainable there but receives no gradient
    model.set_encoder_trainable(False)
    trainable = sum(p.numel() for n, p in model.named_parameters()
                    if p.requires_grad or "refinenet4.resConfUnit1" in n) / 1e6
    print(f"trainable with frozen encoder: {trainable:.3f} M (official {figures['dust3r trainable']})")
    assert round(trainable, 3) == pytest.approx(figures["dust3r trainable"], abs=1e-3)


def test_official_keys_load_without_renaming(tiny_model):
    lsm_like = {"dust3r." + k: v.clone() for k, v in tiny_model.state_dict().items()}
    lsm_like["point_transformer.embedding.stem.conv.weight"] = torch.zeros(1)  # other modules: ignored
    fresh = build(tiny())
    fresh.load_state_dict(official_backbone_state_dict(lsm_like), strict=True)
    x1, x2 = images(h=32, w=32)
    with torch.no_grad():
        a, b = tiny_model(x1, x2), fresh.eval()(x1, x2)
    assert torch.equal(a.pts1, b.pts1) and torch.equal(a.conf2, b.conf2)


def test_dpt_projection_aliases_share_weights(tiny_model):
    scratch = tiny_model.dust3r.downstream_head1.dpt.scratch
    assert scratch.layer_rn[2] is scratch.layer3_rn
    assert scratch.layer1_rn.bias is None


# ---------------------------------------------------------------- output contract (tiny)

def test_output_shapes_ranges_and_finiteness(tiny_model):
    cfg = tiny()
    x1, x2 = images(b=2, h=64, w=96)
    with torch.no_grad():
        out = tiny_model(x1, x2)
    assert out.grid_hw == (4, 6)
    for t in (out.pts1, out.pts2):
        assert t.shape == (2, 64, 96, 3) and torch.isfinite(t).all()
    for t in (out.conf1, out.conf2):
        assert t.shape == (2, 64, 96) and torch.isfinite(t).all()
        assert (t >= cfg.dpt.conf_vmin).all()
    assert out.enc_tokens.shape == (2, 2 * 24, cfg.encoder.embed_dim)
    assert out.swapped is None
    # enc_tokens = [view-1 tokens | view-2 tokens] as produced by encode()
    enc1 = tiny_model.encode(x1)
    assert enc1.grid_hw == (4, 6)
    torch.testing.assert_close(out.enc_tokens[:, :24], enc1.tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.enc_tokens[:, 24:], tiny_model.encode(x2).tokens, atol=1e-5, rtol=1e-5)


def test_symmetric_mode_equals_running_the_swapped_pair(tiny_model):
    x1, x2 = images(b=2, h=48, w=64, seed=3)
    with torch.no_grad():
        sym = tiny_model(x1, x2, symmetric=True)
        fwd = tiny_model(x1, x2)
        rev = tiny_model(x2, x1)
    for name in ("pts1", "pts2", "conf1", "conf2", "enc_tokens"):
        torch.testing.assert_close(getattr(sym, name), getattr(fwd, name), atol=1e-5, rtol=1e-5)
    sw = sym.swapped
    assert sw.pts1.shape == sw.pts2.shape == (2, 48, 64, 3)
    assert sw.conf1.shape == sw.conf2.shape == (2, 48, 64)
    torch.testing.assert_close(sw.pts2, rev.pts1, atol=1e-5, rtol=1e-5)  # view 2 in its own frame
    torch.testing.assert_close(sw.pts1, rev.pts2, atol=1e-5, rtol=1e-5)  # view 1 in view-2 frame
    torch.testing.assert_close(sw.conf2, rev.conf1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sw.conf1, rev.conf2, atol=1e-5, rtol=1e-5)
    # swapping the inputs swaps the halves of the encoder tokens
    n = 12
    torch.testing.assert_close(rev.enc_tokens, torch.cat((fwd.enc_tokens[:, n:], fwd.enc_tokens[:, :n]), 1))
    # ... and is a different prediction (the reference frame changes)
    assert (sw.pts2 - fwd.pts1).abs().max() > 1e-3


def test_each_view_depends_on_the_other_view(tiny_model):
    x1, x2 = images(h=32, w=48, seed=1)
    _, x2b = images(h=32, w=48, seed=2)
    with torch.no_grad():
        a, b = tiny_model(x1, x2), tiny_model(x1, x2b)
    assert (a.pts1 - b.pts1).abs().max() > 1e-4  # cross-attention carries view 2 into view 1
    torch.testing.assert_close(a.enc_tokens[:, :6], b.enc_tokens[:, :6])  # encoder is siamese


def test_batch_elements_are_independent(tiny_model):
    x1, x2 = images(b=3, h=32, w=32, seed=4)
    with torch.no_grad():
        full = tiny_model(x1, x2, symmetric=True)
        one = tiny_model(x1[1:2], x2[1:2], symmetric=True)
    torch.testing.assert_close(full.pts2[1:2], one.pts2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full.swapped.pts1[1:2], one.swapped.pts1, atol=1e-5, rtol=1e-5)


def test_gradient_reaches_every_trainable_parameter():
    torch.manual_seed(0)
    model = build(tiny()).train()
    x1, x2 = images(h=32, w=32, seed=5)
    out = model(x1, x2)
    loss = (out.pts1.square().mean() + out.pts2.square().mean()
            + out.conf1.log().mean() + out.conf2.log().mean() + out.enc_tokens.square().mean())
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0)]
    assert missing == []
    # unused parameters kept only for the checkpoint layout are frozen
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"dust3r.mask_token"} | {
        f"dust3r.downstream_head{i}.dpt.scratch.refinenet4.resConfUnit1.conv{j}.{k}"
        for i in (1, 2) for j in (1, 2) for k in ("weight", "bias")}


def test_encoder_freezing_matches_official_split():
    model = build(tiny())
    always_frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    model.set_encoder_trainable(False)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad} - always_frozen
    assert frozen == {n for n, _ in model.named_parameters()
                      if n.startswith(("dust3r.patch_embed.", "dust3r.enc_blocks."))}
    assert {id(p) for p in model.encoder_parameters()} == {
        id(p) for n, p in model.named_parameters() if n in frozen or n == "dust3r.mask_token"}
    model.set_encoder_trainable(True)
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == always_frozen


# ---------------------------------------------------------------- components

def test_pointmap_postprocess_exp_depth_and_conf():
    raw = torch.tensor([3.0, 0.0, 4.0, math.log(2.0)]).view(1, 4, 1, 1)
    pts, conf = pointmap_from_raw(raw, conf_vmin=1.0)
    assert pts.shape == (1, 1, 1, 3) and conf.shape == (1, 1, 1)
    torch.testing.assert_close(pts.view(3), torch.tensor([0.6, 0.0, 0.8]) * math.expm1(5.0))
    torch.testing.assert_close(conf.view(()), torch.tensor(3.0))
    pts0, _ = pointmap_from_raw(torch.zeros(1, 4, 1, 1), conf_vmin=1.0)
    assert torch.equal(pts0, torch.zeros(1, 1, 1, 3))  # zero raw -> origin, no NaN


def test_rope_is_relative_and_splits_rows_and_columns():
    rope = RoPE2D(100.0)
    pos = patch_grid_positions(3, 4)
    assert pos.tolist()[:5] == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]  # (row, col), row-major
    table = rope.table(pos, head_dim=16, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 12, 16, generator=g)
    rq = RoPE2D.rotate(q, table)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))  # a rotation
    # same vector at every position: scores depend only on the position difference
    v = torch.randn(16, generator=g).expand(1, 1, 12, 16)
    rv = RoPE2D.rotate(v, table)[0, 0]
    s = rv @ rv.t()
    # (0,0)-(1,1) and (1,2)-(2,3) share the offset (1,1)
    torch.testing.assert_close(s[0, 5], s[6, 11])
    assert not torch.allclose(s[0, 5], s[0, 1])
    # first half of the channels only sees the row, second half only the column
    same_row = RoPE2D.rotate(v, table)[0, 0, [0, 3]]
    torch.testing.assert_close(same_row[0, :8], same_row[1, :8])
    assert not torch.allclose(same_row[0, 8:], same_row[1, 8:])


def test_dpt_output_resolution_for_odd_grids(tiny_model):
    x1, x2 = images(h=80, w=48, seed=6)  # 5 x 3 patch grid
    with torch.no_grad():
        out = tiny_model(x1, x2)
    assert out.pts1.shape == (1, 80, 48, 3) and out.conf2.shape == (1, 80, 48)
    assert out.grid_hw == (5, 3)


# ---------------------------------------------------------------- input validation

@pytest.mark.parametrize("make, message", [
    (lambda: (torch.zeros(3, 32, 32), torch.zeros(3, 32, 32)), r"\(B, 3, H, W\)"),
    (lambda: (torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)), r"\(B, 3, H, W\)"),
    (lambda: (torch.zeros(1, 3, 40, 32), torch.zeros(1, 3, 40, 32)), "multiple of the patch size"),
    (lambda: (torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 48, 32)), "shapes differ"),
    (lambda: (torch.zeros(2, 3, 32, 32), torch.zeros(1, 3, 32, 32)), "shapes differ"),
    (lambda: (torch.zeros(1, 3, 32, 32, dtype=torch.uint8),) * 2, "float"),
    (lambda: (torch.full((1, 3, 32, 32), float("nan")), torch.zeros(1, 3, 32, 32)), "NaN"),
    (lambda: (torch.zeros(1, 3, 32, 32), torch.full((1, 3, 32, 32), float("inf"))), "NaN or Inf"),
    (lambda: (torch.full((1, 3, 32, 32), 200.0), torch.zeros(1, 3, 32, 32)), r"normalised to \[-1, 1\]"),
    (lambda: ([[0.0]], torch.zeros(1, 3, 32, 32)), "torch.Tensor"),
])
def test_bad_inputs_raise_clear_errors(tiny_model, make, message):
    a, b = make()
    with pytest.raises(ValueError, match=message):
        tiny_model(a, b)


def test_bad_configurations_raise():
    cfg = tiny()
    from dataclasses import replace
    with pytest.raises(ValueError, match="divisible"):
        GeometryBackbone(replace(cfg.encoder, num_heads=5), cfg.decoder, cfg.dpt, cfg.image_size)
    with pytest.raises(ValueError, match="hooks"):
        GeometryBackbone(cfg.encoder, cfg.decoder, replace(cfg.dpt, hooks=(0, 2, 3, 9)), cfg.image_size)
    with pytest.raises(ValueError, match="image_size"):
        GeometryBackbone(cfg.encoder, cfg.decoder, cfg.dpt, 100)


def test_heads_run_in_float32_under_autocast(tiny_model):
    x1, x2 = images(h=32, w=32, seed=7)
    with torch.no_grad():
        ref = tiny_model(x1, x2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tiny_model(x1, x2)
    assert low.pts1.dtype == low.conf1.dtype == torch.float32
    scale = ref.pts1.abs().max()
    assert (low.pts1 - ref.pts1).abs().max() < 0.05 * scale
