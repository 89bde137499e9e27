"""Label maps: cosine similarity, argmax labels, query masks, colours."""
import pytest
import torch
import torch.nn.functional as F

from lsm.semantics.labels import DEFAULT_LABELS, colorize, label_map, palette, query_mask, similarity


def _planted(seed=0, b=2, d=16, h=5, w=7, n_labels=4):
    """Feature map (B, D, H, W) whose pixel (b, :, y, x) is a scaled, noisy copy of label gt[b, y, x]."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(n_labels, d, generator=g)
    gt = torch.randint(0, n_labels, (b, h, w), generator=g)
    feats = text[gt] * torch.rand(b, h, w, 1, generator=g).add(0.5) * 3.0
    feats = feats + 0.05 * torch.randn(b, h, w, d, generator=g)
    return feats.permute(0, 3, 1, 2).contiguous(), text, gt


def test_default_labels_follow_official_order():
    assert DEFAULT_LABELS == ("wall", "floor", "ceiling", "chair", "table", "sofa", "bed", "other")


def test_similarity_channels_first_and_last_agree_and_are_cosines():
    feats, text, _ = _planted()
    sim_first = similarity(feats, text)  # (B, L, H, W)
    sim_last = similarity(feats.permute(0, 2, 3, 1), text)  # (B, H, W, L)
    assert sim_first.shape == (2, 4, 5, 7) and sim_last.shape == (2, 5, 7, 4)
    assert torch.allclose(sim_first.permute(0, 2, 3, 1), sim_last, atol=1e-6)
    ref = F.cosine_similarity(feats[0, :, 1, 2][None], text, dim=-1)
    assert torch.allclose(sim_first[0, :, 1, 2], ref, atol=1e-6)
    assert sim_first.abs().max() <= 1.0 + 1e-6
    # scale invariance of both inputs
    assert torch.allclose(similarity(feats * 7.0, text * 0.1), sim_first, atol=1e-5)


def test_similarity_of_points_n_by_d():
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(100, 8, generator=g)
    text = torch.randn(3, 8, generator=g)
    sim = similarity(pts, text)
    assert sim.shape == (100, 3)
    assert torch.allclose(sim, F.normalize(pts, dim=-1) @ F.normalize(text, dim=-1).T, atol=1e-6)


def test_label_map_recovers_planted_labels():
    feats, text, gt = _planted()
    ids, score = label_map(feats, text)
    assert ids.shape == gt.shape and ids.dtype == torch.int64
    assert torch.equal(ids, gt)
    assert (score > 0.95).all() and (score <= 1.0 + 1e-6).all()
    ids_last, score_last = label_map(feats.permute(0, 2, 3, 1), text)
    assert torch.equal(ids_last, gt) and torch.allclose(score_last, score, atol=1e-6)


def test_query_mask_selects_exactly_the_queried_label():
    feats, text, gt = _planted(seed=3)
    mask = query_mask(feats, text[2], threshold=0.9)
    assert mask.dtype == torch.bool and mask.shape == gt.shape
    assert torch.equal(mask, gt == 2)
    assert not query_mask(feats, text[2:3], threshold=1.0).all()


def test_ambiguous_layout_needs_explicit_flag():
    text = torch.randn(3, 4)
    feats = torch.randn(1, 4, 6, 4)  # both (B, D, H, W) and (..., D) fit
    with pytest.raises(ValueError, match="ambiguous"):
        similarity(feats, text)
    assert similarity(feats, text, channels_first=True).shape == (1, 3, 6, 4)
    assert similarity(feats, text, channels_first=False).shape == (1, 4, 6, 3)


@pytest.mark.parametrize("feats,text,msg", [
    (torch.randn(2, 5), torch.randn(3, 4), "no axis"),
    (torch.randn(2, 4), torch.randn(4), r"\(L, D\)"),
    (torch.full((2, 4), float("nan")), torch.randn(3, 4), "NaN"),
    (torch.randn(2, 4), torch.full((3, 4), float("inf")), "NaN or Inf"),
])
def test_similarity_rejects_bad_input(feats, text, msg):
    with pytest.raises(ValueError, match=msg):
        similarity(feats, text)


def test_query_mask_rejects_bad_threshold_and_multi_row_query():
    with pytest.raises(ValueError, match="threshold"):
        query_mask(torch.randn(3, 4), torch.randn(4), 1.5)
    with pytest.raises(ValueError, match=r"\(1, D\)"):
        query_mask(torch.randn(3, 4), torch.randn(2, 4), 0.5)


def test_palette_matches_official_demo_colours():
    # LSM demo: tab10 resampled to 9 entries, class k coloured with entry k + 1.
    pal = palette(8)
    assert pal.dtype == torch.uint8 and pal.shape == (8, 3)
    expected = [(255, 127, 14), (44, 160, 44), (214, 39, 40), (140, 86, 75),
                (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    assert pal.tolist() == [list(c) for c in expected]
    big = palette(15)
    assert big.shape == (15, 3) and len({tuple(c) for c in big.tolist()}) == 15


def test_colorize_maps_ids_and_blacks_out_invalid():
    ids = torch.tensor([[0, 1], [-1, 7]])
    rgb = colorize(ids, num_labels=8)
    pal = palette(8)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == torch.uint8
    assert torch.equal(rgb[0, 0], pal[0]) and torch.equal(rgb[0, 1], pal[1])
    assert torch.equal(rgb[1, 1], pal[7]) and rgb[1, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="no colour"):
        colorize(torch.tensor([8]), num_labels=8)
    with pytest.raises(ValueError, match="integer"):
        colorize(torch.tensor([0.5]))
