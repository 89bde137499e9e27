"""Paper-sized (ViT-L / ViT-B / DPT-256) backbone runs a 256x256 pair on CPU.

About 25 s and 3.2 GB RAM on one core (build ~7 s, forward ~15 s), hence ``slow``.
"""
import pytest
import torch

from lsm.config import paper
from lsm.model.geometry_backbone import GeometryBackbone

pytestmark = pytest.mark.slow


def test_paper_backbone_forward_256():
    cfg = paper()
    torch.manual_seed(0)
    model = GeometryBackbone(cfg.encoder, cfg.decoder, cfg.dpt, cfg.image_size).eval()
    g = torch.Generator().manual_seed(0)
    x1 = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1
    x2 = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1
    with torch.inference_mode():
        out = model(x1, x2)
    assert out.grid_hw == (16, 16)
    assert out.pts1.shape == out.pts2.shape == (1, 256, 256, 3)
    assert out.conf1.shape == out.conf2.shape == (1, 256, 256)
    assert out.enc_tokens.shape == (1, 512, 1024)  # as the official enc_feat
    for t in (out.pts1, out.pts2, out.conf1, out.conf2, out.enc_tokens):
        assert torch.isfinite(t).all()
    assert (out.conf1 >= 1).all() and (out.conf2 >= 1).all()
    assert out.pts1.std() > 0 and out.pts2.std() > 0
