"""The numba tile rasteriser against the torch rasteriser: same images (to float rounding)
on a real reconstruction and on dense scenes, chosen by backend='auto' for CPU inference,
never where a gradient is needed."""
from __future__ import annotations

import pytest
import torch

from lsm.rendering import render, tile_rasterizer

pytestmark = pytest.mark.skipif(not tile_rasterizer.available(), reason="numba is not installed")


def _scene(n, size, seed=0):
    from lsm_tools.render_benchmark import make_pointmap_scene

    s = make_pointmap_scene(n, size, seed=seed)
    feats = torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))
    return (s["means"], s["quats"], s["scales"], s["opacities"], s["colors"], s["Ks"],
            s["viewmats"], size, size), feats


@pytest.mark.parametrize("n,size", [(4096, 64), (32768, 128)])
def test_tiles_equal_torch_on_dense_scenes(n, size):
    args, feats = _scene(n, size)
    with torch.no_grad():
        a = render(*args, features=feats, backend="tiles")
        b = render(*args, features=feats, backend="torch")
    assert b.alpha.mean() > 0.5  # a dense scene, not an empty one
    _assert_same_images(a, b)


def _assert_same_images(a, b) -> None:
    for x, y in ((a.rgb, b.rgb), (a.alpha, b.alpha), (a.features, b.features),
                 (a.depth * a.alpha, b.depth * b.alpha)):
        err = (x - y).abs()
        err = err.amax(-1) if err.dim() == 4 else err
        # both composite the same pairs in the same order; a Gaussian exactly at the 1/255
        # threshold may flip (float32 vs float64 sigma): 0.1 % of pixels may differ by it
        assert (err > 1e-4).float().mean() <= 1e-3, float(err.max())
        assert float(err.max()) <= float(y.abs().max()) / 255 + 1e-4


def test_tiles_render_a_reconstruction_like_torch_and_auto_picks_them():
    from lsm.perception import Perception
    from lsm_train.data.procedural import generate_sample

    p = Perception.load(device="cpu")
    rec = p.reconstruct([tuple(v.image for v in generate_sample(5, size=(240, 320)).context)])[0]
    g = rec.gaussians
    viewmat = torch.linalg.inv(rec.c2w[1])[None]
    args = (g.means, g.rotations, g.scales, g.opacities, g.colors(), rec.intrinsics[1][None],
            viewmat, rec.size, rec.size)
    with torch.no_grad():
        tiles = render(*args, features=g.features, backend="tiles")
        auto = render(*args, features=g.features)
        ref = render(*args, features=g.features, backend="torch")
    assert torch.equal(auto.rgb, tiles.rgb)  # CPU inference: auto is the tile rasteriser
    assert ref.alpha.mean() > 0.5
    _assert_same_images(tiles, ref)


def test_gradients_still_go_through_torch_and_tiles_refuse_them():
    args, feats = _scene(512, 32)
    means = args[0].clone().requires_grad_(True)
    out = render(means, *args[1:], features=feats)  # auto with a gradient: torch
    out.rgb.sum().backward()
    assert means.grad is not None and means.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="without gradients"):
        render(means, *args[1:], backend="tiles")
