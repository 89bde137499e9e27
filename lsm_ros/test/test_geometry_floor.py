"""lsm.geometry.floor: floor pixels from metric points and the robot's floor frame.

A camera 1.2 m above the floor looks 30 deg down at it and at a table top 0.3 m high; its
depth is ray-cast exactly. The floor test must find the floor and never the table top (also
up-facing, but 0.3 m above), for each view in its own frame, also when the floor frame is a few
degrees and centimetres off (the plane is refitted), and nothing when it is far off.
"""
import math

import numpy as np
import pytest
import transforms3d

from lsm.geometry import depth_to_pointmap
from lsm.geometry.floor import FLOOR_TOLERANCE_M, floor_mask

H, W = 60, 80
K = np.array([[70.0, 0.0, W / 2], [0.0, 70.0, H / 2], [0.0, 0.0, 1.0]])
TABLE = (0.3, (-0.6, 0.6), (1.2, 2.2))  # height, x range, y range (floor frame, metres)


def camera(x: float, yaw_deg: float, height: float = 1.2, pitch_deg: float = 30.0) -> np.ndarray:
    """floor_T_camera: OpenCV optical axes, looking along +y turned by ``yaw`` and down."""
    p = math.radians(pitch_deg)
    R = np.stack([[1.0, 0.0, 0.0], [0.0, -math.sin(p), -math.cos(p)],
                  [0.0, math.cos(p), -math.sin(p)]], axis=1)  # columns: camera x, y, z
    T = np.eye(4)
    T[:3, :3] = transforms3d.axangles.axangle2mat([0, 0, 1], math.radians(yaw_deg)) @ R
    T[:3, 3] = [x, 0.0, height]
    return T


def render(T: np.ndarray):
    """(depth (H, W), is_floor (H, W)) seen from floor_T_camera ``T``."""
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T @ T[:3, :3].T
    origin = T[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[..., 2] < 0, -origin[2] / rays[..., 2], np.inf)
        top, (x0, x1), (y0, y1) = TABLE
        t_table = np.where(rays[..., 2] < 0, (top - origin[2]) / rays[..., 2], np.inf)
    hit = origin + t_table[..., None] * rays
    on_table = (hit[..., 0] > x0) & (hit[..., 0] < x1) & (hit[..., 1] > y0) & (hit[..., 1] < y1)
    t = np.where(on_table, t_table, t_floor)
    assert np.isfinite(t).all(), "every ray must hit the floor or the table"
    return t, ~on_table


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is all ``mask`` (normals there see one surface)."""
    m = np.zeros_like(mask)
    m[1:-1, 1:-1] = np.all([np.roll(np.roll(mask, a, 0), b, 1)[1:-1, 1:-1]
                            for a in (-1, 0, 1) for b in (-1, 0, 1)], axis=0)
    return m


def test_the_floor_is_found_and_a_table_top_is_not():
    T = camera(0.0, 0.0)
    depth, is_floor = render(T)
    assert 0.1 < (~is_floor).mean() < 0.6  # the table fills a good part of the view
    points = depth_to_pointmap(depth[None], K)[None, 0].numpy()
    mask = floor_mask(points, T)[0]
    assert mask[interior(is_floor)].all()
    assert not mask[~is_floor].any()  # the table top faces up too, but 0.3 m high


def test_each_view_is_judged_in_its_own_floor_pose():
    """View 1's points are given in view 0's frame (as in a Reconstruction); its own floor
    pose maps them, composed with the pair's pose."""
    T0, T1 = camera(0.0, 0.0), camera(0.5, -20.0)
    views = [render(T0), render(T1)]
    ref_T1 = np.linalg.inv(T0) @ T1
    p0 = depth_to_pointmap(views[0][0][None], K)[0].numpy()
    p1 = depth_to_pointmap(views[1][0][None], K, ref_T1)[0].numpy()  # in view 0's frame
    floor_T_ref = np.stack([T0, T1 @ np.linalg.inv(ref_T1)])
    mask = floor_mask(np.stack([p0, p1]), floor_T_ref)
    for v, (_, is_floor) in enumerate(views):
        assert mask[v][interior(is_floor)].all(), v
        assert not mask[v][~is_floor].any(), v


def test_a_floor_frame_a_little_off_is_refitted_one_far_off_finds_nothing():
    T = camera(0.0, 0.0)
    depth, is_floor = render(T)
    points = depth_to_pointmap(depth[None], K).numpy()
    off = np.eye(4)
    off[:3, :3] = transforms3d.axangles.axangle2mat([1, 0, 0], math.radians(2.0))
    off[2, 3] = 1.2 * FLOOR_TOLERANCE_M  # 2 deg off level and 6 cm too low
    refitted = floor_mask(points, off @ T)[0]
    assert refitted[interior(is_floor)].mean() > 0.95
    assert not refitted[~is_floor].any()
    assert not floor_mask(points, off @ T, search=0.0).any()  # the frame as given: nothing
    far = T.copy()
    far[2, 3] += 0.4  # beyond the search window (and the table top 0.7 m above z = 0)
    assert not floor_mask(points, far).any()


def test_bad_shapes_and_transforms_are_refused():
    points = np.zeros((1, 4, 4, 3))
    with pytest.raises(ValueError, match="pointmaps"):
        floor_mask(points[0], np.eye(4))
    with pytest.raises(ValueError, match="floor_T_ref"):
        floor_mask(points, np.eye(3))
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="floor_T_ref"):
        floor_mask(points, bad)
