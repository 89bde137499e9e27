"""Camera image -> model image (short side to S, centre crop) and back.

Pixel convention (lsm.preprocess): pixel (u, v) covers [u, u+1) x [v, v+1); a point at
original x lands at model x * scale - offset.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lsm.preprocess import check_rgb, prepare_image, square_crop_transform

SIZES = [(640, 480), (160, 120), (100, 150), (96, 96), (1280, 720)]  # (width, height)


@pytest.mark.parametrize("w,h", SIZES)
def test_intrinsics_round_trip(w, h):
    tf = square_crop_transform(w, h, 128)
    K = np.array([[500.0, 0, w / 2 + 3.3], [0, 510.0, h / 2 - 7.1], [0, 0, 1]])
    Km = tf.intrinsics_to_model(K)
    np.testing.assert_allclose(tf.intrinsics_to_original(Km), K, rtol=1e-12, atol=1e-9)
    # centred principal point stays centred: the crop is central
    Kc = np.array([[300.0, 0, w / 2], [0, 300.0, h / 2], [0, 0, 1]])
    np.testing.assert_allclose(tf.intrinsics_to_model(Kc)[:2, 2], [64, 64], atol=1e-9)
    np.testing.assert_allclose(tf.intrinsics_to_model(Kc)[0, 0], 300 * 128 / min(w, h))


@pytest.mark.parametrize("w,h", SIZES)
def test_projection_through_model_intrinsics_hits_the_same_image_content(w, h):
    """A 3-D point projected with the model intrinsics falls where the model image shows what
    the original image shows at the point's original projection (sub-pixel: the centroid of
    a smooth blob, 0.1 model pixel)."""
    tf = square_crop_transform(w, h, 128)
    f = 1.5 * min(w, h)
    K = np.array([[f, 0, w / 2 + 1.7], [0, 1.02 * f, h / 2 - 2.3], [0, 0, 1]])
    Km = tf.intrinsics_to_model(K)
    for X in (np.array([0.05, -0.07, 1.0]), np.array([-0.11, 0.04, 1.0])):
        bx, by = (K @ X)[:2]  # continuous original coordinates
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        sigma = 4.0 / tf.scale  # 4 model pixels
        blob = np.exp(-((u - bx) ** 2 + (v - by) ** 2) / (2 * sigma ** 2))
        img = np.repeat((blob * 255).round().astype(np.uint8)[..., None], 3, axis=2)
        t, tf2 = prepare_image(img, 128)
        assert tf2 == tf and t.shape == (3, 128, 128) and t.dtype == torch.float32
        m = t[0].numpy().astype(np.float64)
        m = np.where(m > 0.05, m, 0)
        ym, xm = np.mgrid[0:128, 0:128] + 0.5
        cx, cy = (m * xm).sum() / m.sum(), (m * ym).sum() / m.sum()
        pu, pv = (Km @ X)[:2]
        assert abs(cx - pu) < 0.1 and abs(cy - pv) < 0.1, (w, h, cx, pu, cy, pv)


@pytest.mark.parametrize("w,h", SIZES)
def test_mask_warped_back_lands_on_the_right_pixels(w, h):
    """A model-resolution mask taken back to the camera resolution covers the original pixels
    whose centres map into the masked model pixels, and nothing outside the crop."""
    tf = square_crop_transform(w, h, 128)
    mask = np.zeros((128, 128), np.uint8)
    mask[30:70, 50:100] = 255
    back = tf.to_original(mask, nearest=True)
    assert back.shape == (h, w) and back.dtype == np.uint8
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    xm, ym = u * tf.scale - tf.offset[0], v * tf.scale - tf.offset[1]
    inside = (xm >= 50) & (xm < 100) & (ym >= 30) & (ym < 70)
    # nearest-neighbour sampling at pixel centres: exact except for centres on an edge
    tol = 0.02  # model pixels
    near_edge = np.zeros_like(inside)
    for e in (50, 100):
        near_edge |= np.abs(xm - e) < tol
    for e in (30, 70):
        near_edge |= np.abs(ym - e) < tol
    wrong = ((back == 255) != inside) & ~near_edge
    assert not wrong.any(), f"{wrong.sum()} pixels misplaced"
    assert inside.sum() > 0 and (back[inside & ~near_edge] == 255).all()
    # whole-image mask: exactly the crop region comes back, the rest is the fill value
    full = tf.to_original(np.full((128, 128), 255, np.uint8), nearest=True, fill=0)
    crop = (xm >= 0) & (xm < 128) & (ym >= 0) & (ym < 128)
    edge = (np.abs(xm) < tol) | (np.abs(xm - 128) < tol) | (np.abs(ym) < tol) | (np.abs(ym - 128) < tol)
    assert not (((full == 255) != crop) & ~edge).any()


def test_round_trip_of_a_smooth_image():
    """Original -> model -> original reproduces the image inside the crop (up to resampling)."""
    h, w = 120, 160
    v, u = np.mgrid[0:h, 0:w]
    img = np.stack([u * 255 / w, v * 255 / h, 128 + 0 * u], -1).astype(np.uint8)
    t, tf = prepare_image(img, 128)
    model_img = (t.permute(1, 2, 0).numpy() * 255).astype(np.float32)
    back = tf.to_original(model_img, nearest=False)
    sl = np.s_[2:-2, 22:138]  # inside the crop, away from its border
    assert np.abs(back[sl] - img[sl].astype(np.float32)).max() < 3.0


def test_input_validation():
    with pytest.raises(ValueError, match="RGB"):
        check_rgb(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        check_rgb(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="zero size"):
        check_rgb(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        check_rgb(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_rgb(np.full((4, 4, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match="zero size"):
        square_crop_transform(0, 10, 128)
    # float [0,1] and uint8 give the same model image
    img = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    a, _ = prepare_image(img, 32)
    b, _ = prepare_image(torch.from_numpy(img.astype(np.float32) / 255), 32)
    assert torch.equal(a, b)
