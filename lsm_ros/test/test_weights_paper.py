"""The ``paper`` configuration has exactly the official LSM state dict, and official-layout files
with those keys load (by the official rule) and run.

``test_weights_official_keys.txt``: key, shape, dtype of every tensor of NVlabs/LSM's
``LSM_Dust3R(configs/default.yaml).state_dict()`` (2,087 tensors, 1.107 B elements), listed
from a random-init CPU instantiation of the official code (4f12d74 and its pinned submodules).
"""
from __future__ import annotations

import argparse
import ast
import pathlib

import pytest
import torch

from lsm.config import paper
from lsm.convert import model_reference

LISTING = pathlib.Path(__file__).with_name("test_weights_official_keys.txt")


def official_listing() -> dict:
    """{key: (shape tuple, dtype)} from the listing."""
    out = {}
    for line in LISTING.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            out[parts[0]] = (tuple(ast.literal_eval(parts[1])), getattr(torch, parts[2]))
    return out


def test_paper_state_dict_has_exactly_the_official_keys_shapes_and_dtypes():
    listing = official_listing()
    assert len(listing) == 2087
    ref = model_reference(paper())
    ours = {k: (tuple(v.shape), v.dtype) for k, v in ref.items()}
    assert sorted(set(listing) - set(ours)) == [] and sorted(set(ours) - set(listing)) == []
    wrong = {k: (ours[k], listing[k]) for k in listing if ours[k] != listing[k]}
    assert wrong == {}
    assert sum(torch.Size(s).numel() for s, _ in listing.values()) == 1_106_719_755 or \
        abs(sum(torch.Size(s).numel() for s, _ in listing.values()) / 1e6 - 1106.72) < 0.01


@pytest.mark.slow
def test_official_layout_files_from_the_listing_load_into_paper_and_run(tmp_path):
    """checkpoint-final.pth / DUSt3R .pth / LSeg .ckpt built from the listing with random
    values load with no missing or unexpected key, and a forward pass runs (~9 GB RAM, ~2 min)."""
    from test_weights_official_equivalence import seeded_weights

    from lsm.checkpoint import load_model

    listing = official_listing()
    state = seeded_weights({k: torch.empty(s, dtype=d, device="meta") for k, (s, d) in listing.items()})
    zero = lambda v: torch.zeros((), dtype=v.dtype).expand(v.shape)  # noqa: E731
    lsm_file, dust3r_file, lseg_file = (tmp_path / "checkpoint-final.pth", tmp_path / "dust3r.pth",
                                        tmp_path / "demo_e200.ckpt")
    # the LSM file's own dust3r/lseg copies are zeros: the official rule must replace them
    torch.save({"model": {k: zero(v) if k.startswith(("dust3r.", "lseg_feature_extractor.")) else v
                          for k, v in state.items()},
                "args": argparse.Namespace(model="LSM_Dust3R(config=...)"), "epoch": 99}, lsm_file)
    torch.save({"model": {k[len("dust3r.dust3r."):]: v for k, v in state.items() if k.startswith("dust3r.")},
                "args": argparse.Namespace(model="AsymmetricCroCo3DStereo(...)")}, dust3r_file)
    torch.save({"state_dict": {"net." + k[len("lseg_feature_extractor."):]: v for k, v in state.items()
                               if k.startswith("lseg_feature_extractor.")}, "epoch": 200}, lseg_file)
    probes = {k: state[k].clone() for k in ("dust3r.dust3r.patch_embed.proj.weight",
                                            "lseg_feature_extractor.scratch.head1.weight",
                                            "point_transformer.embedding.stem.conv.weight",
                                            "gaussian_head.gaussian_proj.weight")}
    del state

    model = load_model(lsm_file, dust3r=dust3r_file, lseg=lseg_file)  # strict: raises on any misfit
    sd = model.state_dict()
    assert set(sd) == set(listing)
    for k, v in probes.items():
        assert torch.equal(sd[k], v), k
    assert model.meta["sources"]["dust3r"].startswith("dust3r.pth")
    img1 = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    img2 = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(img1, img2)
    g = out.gaussians
    assert out.pts1.shape == (1, 64, 64, 3) and g.features.shape == (1, 2 * 64 * 64, 64)
    assert g.sh.shape == (1, 2 * 64 * 64, 16, 3) and out.semantic_2d.shape == (2, 512, 32, 32)
    for name in ("means", "scales", "rotations", "opacities", "sh", "features"):
        assert torch.isfinite(getattr(g, name)).all(), name
