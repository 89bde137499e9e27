"""``ptv3.point_stride``: the point transformer over every s-th pixel, its features up-sampled.

The features of the seen pixels must be exactly what the transformer gives for those points
(normalised with the whole cloud's centre and scale, as at stride 1); the pixels between are
bilinear in the image; everything outside the point transformer is unchanged.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from lsm.config import LSMConfig, tiny
from lsm.model.lsm import LSM

SIZE = 32


def _config(stride: int) -> LSMConfig:
    t = tiny()
    return dataclasses.replace(t, image_size=SIZE, ptv3=dataclasses.replace(t.ptv3, point_stride=stride))


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    full = LSM(_config(1)).eval()
    strided = LSM(_config(2)).eval()
    strided.load_state_dict(full.state_dict())
    return full, strided


@pytest.fixture(scope="module")
def inputs(models):
    g = torch.Generator().manual_seed(1)
    img1, img2 = torch.rand(2, 1, 3, SIZE, SIZE, generator=g)
    with torch.no_grad():
        geo, sem = models[0].geometry(img1, img2)
    points = torch.stack([geo.pts1, geo.pts2], dim=1).reshape(1, 2 * SIZE * SIZE, 3)
    rgb = torch.stack([img1, img2], dim=1).permute(0, 1, 3, 4, 2).reshape(1, 2 * SIZE * SIZE, 3)
    return img1, img2, geo, sem, points, rgb


def test_seen_pixels_get_the_transformers_features_and_the_others_are_bilinear(models, inputs):
    _, strided = models
    _, _, geo, sem, points, rgb = inputs
    with torch.no_grad():
        out = strided.point_features(points, rgb, SIZE, SIZE, geo.enc_tokens, sem)
        # by hand: normalise the whole cloud, keep pixels (2i, 2j) of each view, run PTv3
        center = points.mean(dim=1, keepdim=True)
        scale = (points - center).abs().amax(dim=(1, 2), keepdim=True)
        coord = ((points - center) / scale).reshape(2, SIZE, SIZE, 3)[:, ::2, ::2].reshape(-1, 3)
        colour = (rgb * 2 - 1).reshape(2, SIZE, SIZE, 3)[:, ::2, ::2].reshape(-1, 3)
        tokens = strided.tokenizer(sem).permute(0, 2, 3, 1).reshape(1, -1, sem.shape[1])
        seen = strided.point_transformer(coord, torch.cat([coord, colour], 1),
                                         torch.tensor([coord.shape[0]]), geo.enc_tokens, tokens)
    C = out.shape[-1]
    grid = out.reshape(2, SIZE, SIZE, C)
    half = SIZE // 2
    torch.testing.assert_close(grid[:, ::2, ::2], seen.reshape(2, half, half, C), rtol=1e-5, atol=1e-5)
    # between two seen pixels of a row / a column: their mean
    torch.testing.assert_close(grid[:, ::2, 1:-1:2], (grid[:, ::2, 0:-2:2] + grid[:, ::2, 2::2]) / 2,
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grid[:, 1:-1:2, ::2], (grid[:, 0:-2:2, ::2] + grid[:, 2::2, ::2]) / 2,
                               rtol=1e-5, atol=1e-5)
    # the last row and column repeat the last seen ones
    torch.testing.assert_close(grid[:, -1], grid[:, -2])
    torch.testing.assert_close(grid[:, :, -1], grid[:, :, -2])


def test_only_the_point_features_change(models, inputs):
    full, strided = models
    img1, img2, *_ = inputs
    with torch.no_grad():
        a, b = full(img1, img2), strided(img1, img2)
    assert b.gaussians.means.shape == (1, 2 * SIZE * SIZE, 3)
    torch.testing.assert_close(a.pts1, b.pts1)
    torch.testing.assert_close(a.gaussians.means, b.gaussians.means)
    assert not torch.allclose(a.gaussians.features, b.gaussians.features)


def test_a_stride_that_does_not_divide_the_image_is_refused():
    for bad in (0, 3, -2):
        with pytest.raises(ValueError, match="point_stride"):
            LSM(_config(bad))


def test_the_stride_is_saved_with_the_config_and_older_files_mean_one():
    cfg = _config(2)
    assert LSMConfig.from_dict(cfg.to_dict()).ptv3.point_stride == 2
    old = cfg.to_dict()
    del old["ptv3"]["point_stride"]
    assert LSMConfig.from_dict(old).ptv3.point_stride == 1
