"""Procedural scene generator: determinism, geometry consistency between views, content."""
import math

import numpy as np
import pytest

from lsm_train.data.procedural import (
    CHAIR,
    FLOOR,
    WALL,
    ProceduralRoom,
    RoomObject,
    _Materials,
    _occluded,
    generate_room,
    generate_sample,
    generate_sequence,
    intrinsics_from_fov,
    look_pose,
    render_view,
)
from lsm_train.data.sample import CLASS_NAMES

SIZE = 64


def unproject(depth, K, c2w):
    """World points (H*W, 3) of a z-depth map; pixel centres at +0.5."""
    h, w = depth.shape
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    pix = np.stack([uu.ravel(), vv.ravel(), np.ones(h * w)], 1)
    cam = (pix @ np.linalg.inv(K.astype(np.float64)).T) * depth.reshape(-1, 1)
    return cam @ c2w[:3, :3].T.astype(np.float64) + c2w[:3, 3]


def project(world, K, c2w, shape):
    """(pixel indices (u, v) int, z in the camera, inside mask)."""
    w2c = np.linalg.inv(c2w.astype(np.float64))
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    uv = (cam @ K.astype(np.float64).T)[:, :2] / np.maximum(z, 1e-9)[:, None]
    ui, vi = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    inside = (z > 1e-3) & (ui >= 0) & (ui < shape[1]) & (vi >= 0) & (vi < shape[0])
    return ui, vi, z, inside


def reprojection_stats(a, b):
    """Fraction of a's pixels landing in b with consistent depth (<2 %), fraction inside b, and the
    median world-frame distance between the pointmaps, in pixel footprints."""
    world = unproject(a.depth, a.K, a.c2w)
    ui, vi, z, inside = project(world, b.K, b.c2w, b.depth.shape)
    db = np.zeros_like(z)
    db[inside] = b.depth[vi[inside], ui[inside]]
    consistent = inside & (np.abs(db - z) < 0.02 * z)
    wb = unproject(b.depth, b.K, b.c2w).reshape(b.depth.shape + (3,))
    err = np.linalg.norm(wb[vi[inside], ui[inside]] - world[inside], axis=1)
    err_px = err / (z[inside] / b.K[0, 0])  # in units of the pixel footprint at that depth
    return consistent.mean(), inside.mean(), float(np.median(err_px)) if err.size else np.inf


def test_deterministic_per_seed_and_seeds_differ():
    a, b, c = generate_sample(11, SIZE), generate_sample(11, SIZE), generate_sample(12, SIZE)
    for va, vb in zip(a.views, b.views):
        np.testing.assert_array_equal(va.image, vb.image)
        np.testing.assert_array_equal(va.depth, vb.depth)
        np.testing.assert_array_equal(va.labels, vb.labels)
        np.testing.assert_array_equal(va.c2w, vb.c2w)
    assert not np.array_equal(a.context[0].image, c.context[0].image)
    assert not np.allclose(a.context[0].c2w, c.context[0].c2w)


def test_views_are_well_formed():
    s = generate_sample(3, (48, 64), num_targets=2)
    assert len(s.context) == 2 and len(s.target) == 2 and s.class_names == CLASS_NAMES
    for v in s.views:
        assert v.image.shape == (48, 64, 3) and v.image.dtype == np.uint8
        assert v.depth.dtype == np.float32 and np.all(np.isfinite(v.depth)) and np.all(v.depth > 0)
        assert v.labels.dtype == np.uint8 and v.labels.max() < len(CLASS_NAMES)
        np.testing.assert_allclose(v.K[:2, 2], [32, 24])
        fov = math.degrees(2 * math.atan(32 / v.K[0, 0]))
        assert 55 <= fov <= 75
        R = v.c2w[:3, :3].astype(np.float64)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-5)
        assert np.linalg.det(R) > 0.99
        assert np.all(v.c2w[3] == [0, 0, 0, 1])
    size = np.array(s.meta["room_size"])
    for v in s.context:
        pos = v.c2w[:3, 3]
        assert np.all(pos > 0) and np.all(pos < size)
        assert 0.79 <= pos[2] <= 1.81


def test_context_motion_is_a_plausible_small_move():
    for seed in range(6):
        s = generate_sample(seed, 32)
        c1, c2 = (v.c2w.astype(np.float64) for v in s.context)
        baseline = np.linalg.norm(c2[:3, 3] - c1[:3, 3])
        assert 0.05 <= baseline <= 0.65, baseline
        rel = c1[:3, :3].T @ c2[:3, :3]
        angle = math.degrees(math.acos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))
        assert 4 <= angle <= 32, angle


def test_context_views_overlap_with_consistent_depth_and_pointmaps():
    for seed in range(5):
        s = generate_sample(100 + seed, SIZE)
        c1, c2 = s.context
        consistent, inside, err = reprojection_stats(c1, c2)
        assert consistent >= 0.3, (seed, consistent, inside)
        assert err < 0.7, (seed, err)  # both pointmaps agree in the world frame to < 1 pixel footprint
        t_consistent, _, _ = reprojection_stats(s.target[0], c1)
        assert t_consistent >= 0.3, (seed, t_consistent)


def test_class_content():
    n, furniture, floor_wall = 10, 0, 0
    for seed in range(n):
        s = generate_sample(200 + seed, 48)
        labels = np.concatenate([v.labels.ravel() for v in s.views])
        counts = np.bincount(labels, minlength=8)
        floor_wall += counts[FLOOR] > 0 and counts[WALL] > 0
        furniture += counts[CHAIR:].sum() > 0.03 * labels.size
        assert 3 <= s.meta["num_objects"] <= 10
    assert floor_wall >= n - 1
    assert furniture >= 0.7 * n


def test_render_matches_analytic_geometry():
    mats = _Materials()
    for label in (1, 2, 0, 0, 0, 0):  # floor, ceiling, 4 walls
        mats.add(np.full(3, 0.5), np.full(3, 0.4), 0, 0.2, False, label, 0)
    box_surface = mats.add(np.full(3, 0.7), np.full(3, 0.6), 0, 0.2, False, CHAIR, 1)
    box = RoomObject(label=CHAIR, origin=np.array([2.5, 2.0, 0.0]), yaw=0.0,
                     part_lo=np.array([[-0.2, -0.3, 0.0]], np.float32), part_hi=np.array([[0.2, 0.3, 1.5]], np.float32),
                     part_surface=np.array([box_surface]), instance=1)
    room = ProceduralRoom(size=np.array([4.0, 4.0, 3.0]), objects=[box], materials=mats,
                          light_pos=np.array([2.0, 2.0, 2.7]), light_color=np.ones(3, np.float32),
                          sun_dir=np.array([0.0, 0.0, -1.0]), ambient=0.4)
    K = intrinsics_from_fov(60.0, (40, 40))
    c2w = look_pose([1.0, 2.0, 1.2], yaw=0.0, pitch=0.0)  # looking along +x
    out = render_view(room, K, c2w, 40)
    # The box front face (x = 2.3) is perpendicular to the optical axis: constant z-depth 1.3.
    box_px = out.labels == CHAIR
    assert box_px.sum() > 50
    np.testing.assert_allclose(out.depth[box_px], 1.3, atol=1e-4)
    assert np.all(out.instance[box_px] == 1)
    np.testing.assert_allclose(out.normals[box_px], np.tile([-1.0, 0, 0], (box_px.sum(), 1)), atol=1e-6)
    # Far wall x = 4: depth 3.0 wherever it is seen.
    far = (out.labels == WALL) & (np.abs(out.normals[..., 0] + 1) < 1e-6)
    assert far.sum() > 50
    np.testing.assert_allclose(out.depth[far], 3.0, atol=1e-4)
    # Floor: points unprojected from depth lie on z = 0.
    floor = out.labels == FLOOR
    pts = unproject(out.depth, K, c2w)[floor.ravel()]
    np.testing.assert_allclose(pts[:, 2], 0.0, atol=1e-4)


def test_room_layout_is_plausible():
    for seed in range(8):
        room = generate_room(seed)
        W, D, H = room.size
        assert 3 <= W <= 7 and 3 <= D <= 7 and 2.4 <= H <= 3.2
        boxes = [o.footprint_aabb() for o in room.objects if o.origin[2] < 0.05]
        for b in boxes:
            assert b[0] >= 0 and b[1] >= 0 and b[2] <= W and b[3] <= D
        for i in range(len(boxes)):  # no two floor objects overlap in plan view
            for j in range(i):
                a, b = boxes[i], boxes[j]
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def test_sequence_is_smooth_and_non_square_sizes_work():
    frames = generate_sequence(4, 5, (30, 40))
    assert len(frames) == 5
    centres = np.stack([f.c2w[:3, 3] for f in frames])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert np.all(steps > 0.005) and np.all(steps < 0.1)
    for f in frames:
        assert f.image.shape == (30, 40, 3) and np.all(f.depth > 0)
        np.testing.assert_allclose(f.K[:2, 2], [20, 15])
    again = generate_sequence(4, 5, (30, 40))
    np.testing.assert_array_equal(frames[-1].image, again[-1].image)
    consistent, _, _ = reprojection_stats(frames[0], frames[1])
    assert consistent > 0.5


def test_bad_inputs_raise():
    room = generate_room(0)
    K = intrinsics_from_fov(60, 16)
    with pytest.raises(ValueError):
        render_view(room, K, look_pose([-1.0, 1.0, 1.0], 0.0, 0.0), 16)
    with pytest.raises(ValueError):
        render_view(room, K[:2], look_pose([1.0, 1.0, 1.0], 0.0, 0.0), 16)
    with pytest.raises(ValueError):
        generate_sample(0, (16, 16, 3))
    with pytest.raises(ValueError):
        generate_sample(0, 16, num_targets=-1)
    with pytest.raises(ValueError):
        intrinsics_from_fov(190, 16)


def test_appearance_is_view_consistent():
    """Lambertian shading + surface-attached textures: a point has the same colour in both views."""
    s = generate_sample(31, 96)
    a, b = s.context
    world = unproject(a.depth, a.K, a.c2w)
    ui, vi, z, inside = project(world, b.K, b.c2w, b.depth.shape)
    db = np.zeros_like(z)
    db[inside] = b.depth[vi[inside], ui[inside]]
    ok = inside & (np.abs(db - z) < 0.01 * z)
    assert ok.mean() > 0.3
    ca = a.image.reshape(-1, 3)[ok].astype(int)
    cb = b.image[vi[ok], ui[ok]].astype(int)
    assert np.median(np.abs(ca - cb)) <= 12
    # Shuffled correspondences differ much more: the texture carries information.
    rng = np.random.default_rng(0)
    assert np.median(np.abs(ca - cb[rng.permutation(len(cb))])) > np.median(np.abs(ca - cb)) + 5


def test_furniture_casts_shadows():
    room = generate_room(3)
    table = next((o for o in room.objects if o.height > 0.3 and o.origin[2] < 0.05), None)
    assert table is not None
    below = np.array([[table.origin[0], table.origin[1], 0.01]], np.float32)
    assert _occluded(room, below, np.array([table.origin[0], table.origin[1], room.size[2] - 0.1], np.float32))[0]
    light_at_floor_corner = np.array([0.05, 0.05, 0.02], np.float32)
    assert not _occluded(room, np.array([[0.06, 0.06, 0.01]], np.float32), light_at_floor_corner)[0]
