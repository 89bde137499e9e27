"""PointTransformer (PTv3 + cross-model fusion): official layout, batching, order, gradients."""
import dataclasses
from pathlib import Path

import pytest
import torch

from lsm.config import paper, tiny
from lsm.model.ptv3 import PointTransformer, spconv_available

KEYS_FILE = Path(__file__).with_name("test_model_ptv3_official_keys.txt")
PREFIX = "point_transformer."


def _official_listing():
    listing = {}
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("#") or "\t" not in line:
            continue
        name, shape, dtype = line.split("\t")
        listing[name[len(PREFIX):]] = (tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), dtype)
    return listing


def _tiny_model(backend="torch", seed=0):
    torch.manual_seed(seed)
    cfg = tiny()
    model = PointTransformer(cfg.ptv3, cfg.fusion, cfg.encoder.embed_dim, cfg.semantic.text_dim, backend=backend)
    return model.eval(), cfg


def _surface(n, seed, duplicates=0.1):
    """A wavy depth-map-like surface in the unit cube; a fraction of points repeated exactly."""
    g = torch.Generator().manual_seed(seed)
    uv = torch.rand(n, 2, generator=g) * 2 - 1
    z = 0.3 * torch.sin(3 * uv[:, :1]) * torch.cos(2 * uv[:, 1:]) + 0.01 * torch.randn(n, 1, generator=g)
    xyz = torch.cat([uv, z], 1)
    k = int(n * duplicates)
    if k:
        xyz[-k:] = xyz[torch.randint(0, n - k, (k,), generator=g)]
    xyz = xyz - xyz.mean(0)
    xyz = xyz / xyz.abs().max()
    rgb = torch.rand(n, 3, generator=g) * 2 - 1
    return xyz, torch.cat([xyz, rgb], 1)


def _tokens(cfg, batch, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 12, cfg.encoder.embed_dim, generator=g),
            torch.randn(batch, 10, cfg.semantic.text_dim, generator=g))


def _distinct_voxels(xyz, feat, grid_size):
    grid = torch.floor((xyz - xyz.min(0).values) / grid_size).long()
    key = (grid[:, 0] * 1000 + grid[:, 1]) * 1000 + grid[:, 2]
    _, inv = torch.unique(key, return_inverse=True)
    first = torch.full((int(inv.max()) + 1,), len(key)).scatter_reduce(0, inv, torch.arange(len(key)), "amin")
    keep = torch.sort(first).values
    return xyz[keep], feat[keep]


# --------------------------------------------------------------------------- official layout
def test_paper_state_dict_equals_official_listing():
    cfg = paper()
    model = PointTransformer(cfg.ptv3, cfg.fusion, enc_token_dim=1024, sem_token_dim=512)
    listing = _official_listing()
    assert len(listing) == 342
    ours = model.state_dict()
    assert sorted(set(listing) - set(ours)) == []
    assert sorted(set(ours) - set(listing)) == []
    for name, (shape, dtype) in listing.items():
        assert tuple(ours[name].shape) == shape, name
        assert str(ours[name].dtype) == f"torch.{dtype}", name
    assert ours["embedding.stem.conv.weight"].shape == (32, 5, 5, 5, 6)  # spconv (out, k, k, k, in)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(t.numel() for t in ours.values())
    listed = sum(torch.Size(shape).numel() for shape, _ in listing.values())
    assert total == listed
    assert round(trainable / 1e6, 3) == 33.690
    assert round(total / 1e6, 3) == 33.694
    model.load_state_dict({k: torch.zeros(s[0], dtype=getattr(torch, s[1])) for k, s in listing.items()},
                          strict=True)


# --------------------------------------------------------------------------- behaviour
def test_batched_samples_match_separate_runs_in_input_order():
    model, cfg = _tiny_model()
    a_xyz, a_feat = _surface(1100, seed=1)
    b_xyz, b_feat = _surface(700, seed=2)
    dust, sem = _tokens(cfg, 2, seed=3)
    with torch.no_grad():
        both = model(torch.cat([a_xyz, b_xyz]), torch.cat([a_feat, b_feat]), torch.tensor([1100, 1800]), dust, sem)
        a = model(a_xyz, a_feat, torch.tensor([1100]), dust[:1], sem[:1])
        b = model(b_xyz, b_feat, torch.tensor([700]), dust[1:], sem[1:])
    assert both.shape == (1800, cfg.ptv3.dec_channels[0]) == (1800, model.out_channels)
    assert torch.isfinite(both).all()
    assert torch.allclose(both[:1100], a, atol=1e-4)
    assert torch.allclose(both[1100:], b, atol=1e-4)
    assert (a[:700] - b).abs().max() > 1e-2  # different clouds give different features


def test_batch_index_equals_offset():
    model, cfg = _tiny_model()
    xyz, feat = _surface(900, seed=4)
    dust, sem = _tokens(cfg, 2, seed=5)
    batch = torch.cat([torch.zeros(400, dtype=torch.long), torch.ones(500, dtype=torch.long)])
    with torch.no_grad():
        by_offset = model(xyz, feat, torch.tensor([400, 900]), dust, sem)
        by_batch = model(xyz, feat, None, dust, sem, batch=batch)
    assert torch.equal(by_offset, by_batch)


def test_permuting_points_permutes_features():
    model, cfg = _tiny_model()
    xyz, feat = _distinct_voxels(*_surface(1500, seed=6, duplicates=0.0), cfg.ptv3.grid_size)
    n = xyz.shape[0]
    assert n > cfg.ptv3.enc_patch_size[0]  # several attention patches
    dust, sem = _tokens(cfg, 1, seed=7)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        out = model(xyz, feat, torch.tensor([n]), dust, sem)
        out_perm = model(xyz[perm], feat[perm], torch.tensor([n]), dust, sem)
    assert torch.allclose(out_perm, out[perm], atol=1e-4)


def test_every_input_and_token_set_matters():
    model, cfg = _tiny_model()
    xyz, feat = _surface(600, seed=9)
    dust, sem = _tokens(cfg, 1, seed=10)
    off = torch.tensor([600])
    with torch.no_grad():
        base = model(xyz, feat, off, dust, sem)
        assert torch.equal(base, model(xyz, feat, off, dust, sem))  # eval is deterministic
        other_dust = model(xyz, feat, off, torch.randn_like(dust), sem)
        other_sem = model(xyz, feat, off, dust, torch.randn_like(sem))
        recoloured = feat.clone()
        recoloured[:, 3:] = -recoloured[:, 3:]
        other_rgb = model(xyz, recoloured, off, dust, sem)
    for other in (other_dust, other_sem, other_rgb):
        assert (other - base).abs().mean() > 1e-3


def test_gradient_reaches_every_parameter_in_training_mode():
    model, cfg = _tiny_model()
    model.train()
    xyz, feat = _surface(800, seed=11)
    dust, sem = _tokens(cfg, 2, seed=12)
    dust.requires_grad_(True)
    out = model(xyz, feat, torch.tensor([300, 800]), dust, sem)
    (out.square().mean() + out.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().max() == 0]
    assert missing == []
    assert dust.grad is not None and dust.grad.abs().max() > 0


@pytest.mark.skipif(not spconv_available(), reason="spconv not importable")
def test_spconv_and_torch_backends_give_the_same_network():
    model_t, cfg = _tiny_model(backend="torch")
    model_s, _ = _tiny_model(backend="spconv")
    model_s.load_state_dict(model_t.state_dict())
    xyz, feat = _surface(1000, seed=13, duplicates=0.2)
    dust, sem = _tokens(cfg, 1, seed=14)
    with torch.no_grad():
        a = model_t(xyz, feat, torch.tensor([1000]), dust, sem)
        b = model_s(xyz, feat, torch.tensor([1000]), dust, sem)
    assert torch.allclose(a, b, atol=1e-4)


# --------------------------------------------------------------------------- errors
def test_bad_input_is_rejected():
    model, cfg = _tiny_model()
    xyz, feat = _surface(100, seed=15)
    dust, sem = _tokens(cfg, 1, seed=16)
    off = torch.tensor([100])
    bad_calls = {
        "coord shape": lambda: model(xyz[:, :2], feat, off, dust, sem),
        "feat channels": lambda: model(xyz, feat[:, :5], off, dust, sem),
        "feat rows": lambda: model(xyz, feat[:99], off, dust, sem),
        "NaN coord": lambda: model(torch.full_like(xyz, float("nan")), feat, off, dust, sem),
        "NaN feat": lambda: model(xyz, feat * float("nan"), off, dust, sem),
        "offset total": lambda: model(xyz, feat, torch.tensor([90]), dust, sem),
        "offset order": lambda: model(xyz, feat, torch.tensor([60, 40, 100]), _tokens(cfg, 3, 0)[0],
                                      _tokens(cfg, 3, 0)[1]),
        "offset and batch": lambda: model(xyz, feat, off, dust, sem, batch=torch.zeros(100, dtype=torch.long)),
        "neither": lambda: model(xyz, feat, None, dust, sem),
        "batch gaps": lambda: model(xyz, feat, None, dust, sem, batch=torch.arange(100) % 2),
        "token batch": lambda: model(xyz, feat, off, _tokens(cfg, 2, 0)[0], sem),
        "token width": lambda: model(xyz, feat, off, dust[..., :10], sem),
        "NaN tokens": lambda: model(xyz, feat, off, dust, sem * float("nan")),
        "empty": lambda: model(xyz[:0], feat[:0], torch.tensor([0]), dust, sem),
        "not normalised": lambda: model(xyz * 1e4, feat, off, dust, sem),
    }
    for name, call in bad_calls.items():
        with pytest.raises(ValueError):
            call()
            pytest.fail(name)


def test_inconsistent_config_is_rejected():
    cfg = tiny()
    with pytest.raises(ValueError):
        PointTransformer(cfg.ptv3, dataclasses.replace(cfg.fusion, dust_dim=64), 192, 384)
    with pytest.raises(ValueError):
        PointTransformer(cfg.ptv3, dataclasses.replace(cfg.fusion, multi_scale_dim=32), 192, 384)
    with pytest.raises(ValueError):
        PointTransformer(dataclasses.replace(cfg.ptv3, stride=(2, 2)), cfg.fusion, 192, 384)
    with pytest.raises(ValueError):
        PointTransformer(dataclasses.replace(cfg.ptv3, order=("peano",)), cfg.fusion, 192, 384)


@pytest.mark.parametrize("mode", ["skip", "sum"])
def test_decoder_cpe_reads_the_skip_features_only_in_official_mode(mode):
    """Official PTv3 (342656c) feeds the first decoder block's xCPE conv proj_skip(skip) only
    (issues #65/#149); "sum" feeds it skip + up-sampled coarse features."""
    torch.manual_seed(0)
    cfg = tiny()
    ptv3 = dataclasses.replace(cfg.ptv3, decoder_cpe_input=mode)
    model = PointTransformer(ptv3, cfg.fusion, cfg.encoder.embed_dim, cfg.semantic.text_dim,
                             backend="torch").eval()
    seen = {}
    stage = model.dec["dec0"]
    stage["up"].proj_skip.register_forward_hook(lambda m, i, o: seen.__setitem__("skip", o))
    stage["up"].register_forward_hook(lambda m, i, o: seen.__setitem__("sum", o.feat))
    stage["block0"].cpe[0].register_forward_hook(lambda m, i, o: seen.__setitem__("conv_in", i[0]))
    xyz, feat = _surface(600, seed=3)
    dust, sem = _tokens(cfg, 1, seed=4)
    with torch.no_grad():
        model(xyz, feat, torch.tensor([600]), dust, sem)
    assert not torch.allclose(seen["skip"], seen["sum"])
    assert torch.equal(seen["conv_in"], seen[mode])


def test_decoder_cpe_input_of_each_configuration():
    from lsm.config import LSMConfig

    assert paper().ptv3.decoder_cpe_input == "skip"  # loads official weights
    assert tiny().ptv3.decoder_cpe_input == "sum"  # the embedded model was trained so
    old = tiny().to_dict()
    del old["ptv3"]["decoder_cpe_input"]  # a checkpoint written before the option existed
    assert LSMConfig.from_dict(old).ptv3.decoder_cpe_input == "sum"
    with pytest.raises(ValueError, match="decoder_cpe_input"):
        PointTransformer(dataclasses.replace(tiny().ptv3, decoder_cpe_input="avg"), tiny().fusion,
                         192, 384)
