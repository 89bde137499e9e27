"""Sample containers, on-disk round trip and resize/crop intrinsics."""
import json
import os

import numpy as np
import pytest

from lsm_train.data.procedural import generate_room, generate_sample, intrinsics_from_fov, render_view
from lsm_train.data.sample import SceneSample, ViewSample, load_sample, resize_and_crop, resize_view, save_sample


def test_save_load_round_trip(tmp_path):
    s = generate_sample(21, (40, 56), num_targets=2)
    s.meta["note"] = "round trip"
    save_sample(s, str(tmp_path / "s0"))
    names = sorted(os.listdir(tmp_path / "s0"))
    assert "cameras.json" in names and "view_3_depth.png" in names and "view_0_rgb.png" in names
    doc = json.load(open(tmp_path / "s0" / "cameras.json"))
    assert [v["role"] for v in doc["views"]] == ["context", "context", "target", "target"]
    r = load_sample(str(tmp_path / "s0"))
    assert r.class_names == s.class_names and r.meta == s.meta
    assert len(r.context) == 2 and len(r.target) == 2
    for a, b in zip(s.views, r.views):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.instance, b.instance)
        np.testing.assert_array_equal(a.K, b.K)
        np.testing.assert_array_equal(a.c2w, b.c2w)
        assert np.max(np.abs(a.depth - b.depth)) <= 0.0005 + 1e-6


def test_invalid_depth_round_trips_as_zero(tmp_path):
    s = generate_sample(1, 16)
    s.context[0].depth[:4] = 0.0
    s.context[0].labels[:4] = 255
    save_sample(s, str(tmp_path / "x"))
    r = load_sample(str(tmp_path / "x"))
    assert np.all(r.context[0].depth[:4] == 0) and np.all(r.context[0].depth[4:] > 0)
    assert np.all(r.context[0].labels[:4] == 255)


def test_view_validation():
    img = np.zeros((4, 5, 3), np.uint8)
    ok = dict(image=img, depth=np.ones((4, 5), np.float32), labels=np.zeros((4, 5), np.uint8),
              K=np.eye(3), c2w=np.eye(4))
    ViewSample(**ok)
    for key, bad in [("depth", np.full((4, 5), np.nan)), ("depth", np.ones((5, 4))),
                     ("labels", np.zeros((4, 5), np.int32)), ("K", np.eye(4)), ("image", np.zeros((4, 5), np.uint8))]:
        with pytest.raises(ValueError):
            ViewSample(**{**ok, key: bad})
    v = ViewSample(**ok)
    with pytest.raises(ValueError):
        SceneSample(context=[v], target=[])
    with pytest.raises(ValueError):
        load_sample("/nonexistent/folder")


def test_resize_and_crop_intrinsics_match_a_direct_render():
    """Cropping/downscaling a 4:3 render must equal rendering directly with the new K."""
    room = generate_room(5)
    s = generate_sample(5, 8)
    c2w = s.context[0].c2w
    K = intrinsics_from_fov(65, (96, 128))
    big = render_view(room, K, c2w, (96, 128))
    depth_small, K_small = resize_and_crop(big.depth, K, 48, nearest=True)
    assert depth_small.shape == (48, 48)
    np.testing.assert_allclose(K_small[0, 0], K[0, 0] / 2, rtol=1e-6)
    np.testing.assert_allclose(K_small[:2, 2], [24, 24], atol=1e-5)
    direct = render_view(room, K_small, c2w, 48)
    rel = np.abs(direct.depth - depth_small) / direct.depth
    assert np.median(rel) < 0.01
    assert np.mean(rel < 0.05) > 0.9
    view = resize_view(big.to_view(K, c2w), (30, 40))
    assert view.image.shape == (30, 40, 3) and view.labels.shape == (30, 40)
    with pytest.raises(ValueError):
        resize_and_crop(np.zeros((4, 4, 3, 1)), K, 2)
