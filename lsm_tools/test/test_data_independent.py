"""Independent (evaluation-only) SDF scene source: determinism, conventions, multi-view geometry,
content, and independence from the training generator."""
import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lsm_train.data import independent
from lsm_train.data.independent import generate_independent_sample
from lsm_train.data.sample import CLASS_NAMES, SceneSample

SIZE = 48
SEEDS = (0, 1, 2, 3, 4, 5)
FURNITURE = [CLASS_NAMES.index(n) for n in ("chair", "table", "sofa", "bed")]


@pytest.fixture(scope="module")
def samples():
    return {s: generate_independent_sample(s, SIZE, num_targets=1) for s in SEEDS}


def unproject(depth, K, c2w):
    """World points (H*W, 3) of a z-depth map; pixel centres at +0.5."""
    h, w = depth.shape
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    pix = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], 1)
    cam = (pix @ np.linalg.inv(K.astype(np.float64)).T) * depth.reshape(-1, 1).astype(np.float64)
    return cam @ c2w[:3, :3].astype(np.float64).T + c2w[:3, 3].astype(np.float64)


def project(points, K, c2w, shape):
    """(z, u, v, inside) of world points in a camera; u, v continuous pixel coordinates."""
    h, w = shape
    w2c = np.linalg.inv(c2w.astype(np.float64))
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    uv = (cam @ K.astype(np.float64).T)[:, :2] / np.maximum(z, 1e-9)[:, None]
    inside = (z > 0.05) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    return z, uv[:, 0], uv[:, 1], inside


def sample_inverse_depth(depth, u, v):
    """Bilinear inverse depth at continuous pixel coordinates (exact on planes)."""
    h, w = depth.shape
    x, y = np.clip(u - 0.5, 0, w - 1.001), np.clip(v - 0.5, 0, h - 1.001)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = x - x0, y - y0
    inv = 1.0 / depth.astype(np.float64)
    a, b = inv[y0, x0], inv[y0, x0 + 1]
    c, d = inv[y0 + 1, x0], inv[y0 + 1, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def test_deterministic_per_seed(samples):
    again = generate_independent_sample(3, SIZE, num_targets=1)
    ref = samples[3]
    assert again.meta == ref.meta
    for a, b in zip(again.views, ref.views):
        for name in ("image", "depth", "labels", "K", "c2w", "instance"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    other = samples[4]
    assert not np.array_equal(other.context[0].depth, ref.context[0].depth)


def test_shapes_dtypes_and_conventions():
    h, w = 36, 52
    s = generate_independent_sample(7, (h, w), num_targets=2)
    assert isinstance(s, SceneSample)
    assert len(s.context) == 2 and len(s.target) == 2
    assert s.class_names == CLASS_NAMES
    assert s.meta["source"] == "independent" and s.meta["seed"] == 7 and s.meta["evaluation_only"] is True
    json.dumps(s.meta)  # JSON-serialisable (sample folders store it)
    K0 = s.context[0].K
    for v in s.views:
        assert v.image.shape == (h, w, 3) and v.image.dtype == np.uint8
        assert v.depth.shape == (h, w) and v.depth.dtype == np.float32
        assert v.labels.shape == (h, w) and v.labels.dtype == np.uint8
        assert v.instance is not None and v.instance.dtype == np.uint16
        assert v.K.dtype == np.float32 and v.c2w.dtype == np.float32
        np.testing.assert_array_equal(v.K, K0)  # one K per sample
        assert v.K[0, 2] == pytest.approx(w / 2) and v.K[1, 2] == pytest.approx(h / 2)
        assert v.K[0, 0] == pytest.approx(v.K[1, 1]) and v.K[0, 1] == 0 and v.K[2, 2] == 1
        fov = math.degrees(2 * math.atan(w / 2 / v.K[0, 0]))
        assert 50 - 1e-3 <= fov <= 80 + 1e-3
        R = v.c2w[:3, :3].astype(np.float64)
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-5)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_array_equal(v.c2w[3], [0, 0, 0, 1])
        assert R[2, 1] < 0                     # OpenCV y axis (down) points down in the z-up world
        assert abs(R[2, 0]) < math.sin(math.radians(6))  # small roll only
        assert v.labels.max() < len(CLASS_NAMES)
        assert 0.8 - 1e-4 <= v.c2w[2, 3] <= 1.8 + 1e-4  # camera height


def test_all_depth_valid_and_floor_ceiling_geometry(samples):
    floor, ceiling = CLASS_NAMES.index("floor"), CLASS_NAMES.index("ceiling")
    for s in samples.values():
        for v in s.views:
            assert np.all(np.isfinite(v.depth)) and np.all(v.depth > 0.05) and np.all(v.depth < 20)
            world = unproject(v.depth, v.K, v.c2w)
            lab = v.labels.ravel()
            # z-depth (not range) with pixel-centre K: the floor is flat at world z = 0
            if np.any(lab == floor):
                assert np.abs(world[lab == floor, 2]).max() < 0.03
            if np.any(lab == ceiling):
                assert world[lab == ceiling, 2].min() > 2.2
            assert world[:, 2].min() > -0.03


def test_context_pair_relative_pose(samples):
    for s in samples.values():
        c1, c2 = (v.c2w.astype(np.float64) for v in s.context)
        base = np.linalg.norm(c2[:3, 3] - c1[:3, 3])
        ang = math.degrees(math.acos(np.clip((np.trace(c1[:3, :3].T @ c2[:3, :3]) - 1) / 2, -1, 1)))
        assert 0.2 - 1e-4 <= base <= 1.0 + 1e-4
        assert 5 - 1e-3 <= ang <= 30 + 1e-3


def test_depth_consistent_between_views(samples):
    for seed, s in samples.items():
        v0, v1 = s.context
        world = unproject(v0.depth, v0.K, v0.c2w)
        z, u, v, inside = project(world, v1.K, v1.c2w, v1.depth.shape)
        assert inside.mean() > 0.45, f"seed {seed}: context views overlap too little ({inside.mean():.2f})"
        rel = np.abs(z[inside] * sample_inverse_depth(v1.depth, u[inside], v[inside]) - 1.0)
        visible = rel < 0.05  # the rest is occluded in view 1 or on a depth edge
        assert visible.mean() > 0.6, f"seed {seed}: only {visible.mean():.2f} of projected pixels agree"
        # sphere tracing hits surfaces to well under a millimetre: the median error is tiny
        assert np.median(rel) < 0.002, f"seed {seed}: median relative depth error {np.median(rel):.4f}"
        # the co-visible surfaces carry the same labels
        ui, vi = u[inside].astype(int), v[inside].astype(int)
        same = v0.labels.ravel()[inside][visible] == v1.labels[vi, ui][visible]
        assert same.mean() > 0.9


def test_target_views_see_the_same_room(samples):
    for s in samples.values():
        t = s.target[0]
        world = unproject(t.depth, t.K, t.c2w)
        seen = np.zeros(len(world), bool)
        for c in s.context:
            seen |= project(world, c.K, c.c2w, c.depth.shape)[3]
        assert seen.mean() > 0.6


def test_classes_and_furniture_in_context_views(samples):
    present = set()
    for seed, s in samples.items():
        for v in s.views:
            present |= set(np.unique(v.labels).tolist())
        for v in s.context:
            frac = np.isin(v.labels, FURNITURE).mean()
            assert frac > 0.02, f"seed {seed}: context view shows almost no furniture ({frac:.3f})"
            assert np.isin(v.labels, [0, 1]).any()  # some room structure too
    assert len(present) >= 5, present
    assert len(present & set(FURNITURE)) >= 3, present


def test_images_are_not_degenerate(samples):
    for s in samples.values():
        for v in s.views:
            img = v.image.astype(np.float64)
            assert 25 < img.mean() < 235
            assert img.std() > 10


def test_no_code_from_the_training_generator():
    path = Path(independent.__file__)
    tree = ast.parse(path.read_text())
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append("." * node.level + (node.module or ""))
            imported += [a.name for a in node.names]
    assert not any("procedural" in name for name in imported), imported
    # project-internal imports are limited to the sample containers
    internal = [n for n in imported if n.startswith(".") or n.startswith("lsm")]
    assert set(internal) <= {".sample"}, internal
