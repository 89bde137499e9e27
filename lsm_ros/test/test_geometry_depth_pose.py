"""lsm.geometry.depth_pose: a pair's pose from two ray-cast depth images of a known room."""
import numpy as np
import pytest
import transforms3d

from lsm.geometry.depth_pose import align_depth
from lsm.geometry.pose_metrics import relative_pose_errors

S = 128
K = np.array([[110.0, 0.0, 64.0], [0.0, 110.0, 64.0], [0.0, 0.0, 1.0]])


def _scaled_K(size: int) -> np.ndarray:
    return np.diag([size / S, size / S, 1.0]) @ K


def _pose(axis, degrees, t):
    T = np.eye(4)
    T[:3, :3] = transforms3d.axangles.axangle2mat(axis, np.radians(degrees))
    T[:3, 3] = t
    return T


def _raycast(c2w: np.ndarray, planes, boxes=(), size: int = S) -> np.ndarray:
    """z-depth (size, size) of a camera (OpenCV axes, pose c2w in the world, K scaled to
    ``size``) seeing planes (normal n, offset d: n.x = d) and axis-aligned boxes (lo, hi);
    NaN where nothing is hit."""
    k = _scaled_K(size)
    u, v = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    rays_cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    rays = rays_cam @ c2w[:3, :3].T  # unit z in the camera: t along it is the z-depth
    origin = c2w[:3, 3]
    best = np.full(u.shape, np.inf)
    for n, d in planes:
        n = np.asarray(n, np.float64)
        denom = rays @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (d - origin @ n) / denom
        best = np.where((t > 0.05) & (t < best), t, best)
    for lo, hi in boxes:
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (np.asarray(lo) - origin) / rays
            t2 = (np.asarray(hi) - origin) / rays
        near = np.nanmax(np.minimum(t1, t2), -1)
        far = np.nanmin(np.maximum(t1, t2), -1)
        hit = (near <= far) & (near > 0.05)
        best = np.where(hit & (near < best), near, best)
    return np.where(np.isfinite(best), best, np.nan)


ROOM = [((0, 1, 0), 1.0), ((0, 0, 1), 3.5), ((1, 0, 0), -1.2), ((1, 0, 0), 1.5)]  # floor 1 m below, walls
BOX = [((0.2, 0.4, 1.8), (0.9, 1.0, 2.4))]  # a cabinet on the floor, its left side in view


@pytest.mark.parametrize("size", [S, 4 * S])
def test_recovers_a_pair_pose_from_a_poor_start(size):
    """Camera 1 yawed 8 deg, pitched 3 deg and 17 cm away; the start is 4 deg off in
    rotation with no translation (as when an image pose has no metric length). A 512-pixel
    pair (the paper model's size) is aligned on a subsampled grid, with its K scaled."""
    c2w1 = _pose([0.2, 1.0, 0.1], 8.5, [0.15, -0.02, 0.06])
    d0 = _raycast(np.eye(4), ROOM, BOX, size)
    d1 = _raycast(c2w1, ROOM, BOX, size)
    start = _pose([1.0, 0.3, 0.0], 4.0, [0.0, 0.0, 0.0]) @ c2w1
    start[:3, 3] = 0.0
    fit = align_depth(d0, d1, _scaled_K(size), _scaled_K(size), start)
    assert fit.points <= 160 * 160
    assert fit is not None
    rot, direction = relative_pose_errors(fit.c2w1, c2w1)
    offset = np.linalg.norm(fit.c2w1[:3, 3] - c2w1[:3, 3])
    assert rot < 0.2 and direction < 2.0 and offset < 0.005, (rot, direction, offset)
    # a quarter of view 1's points leave view 0's image or lie on edges (no normal)
    assert fit.inlier_fraction > 0.6 and fit.confidence > 0.7, fit
    assert "within 3 cm" in fit.detail()


def test_a_single_plane_is_reported_as_unconstrained():
    """A camera looking down at a bare floor: sliding along it and turning about its normal
    change nothing the depth sees, so the alignment may fit every point and still not know
    the pose: the confidence says so."""
    down = _pose([1.0, 0.0, 0.0], -60.0, [0.0, 0.0, 0.0])  # optical axis tilted towards the floor
    floor = [((0, 1, 0), 1.0)]
    c2w1 = down @ _pose([0.0, 1.0, 0.0], 3.0, [0.1, 0.0, 0.05])
    d0 = _raycast(down, floor)
    d1 = _raycast(c2w1, floor)
    assert np.isfinite(d0).mean() > 0.9  # the floor fills the image
    fit = align_depth(d0, d1, K, K, np.linalg.inv(down) @ c2w1)
    assert fit is not None
    assert fit.inlier_fraction > 0.8  # every point fits ...
    assert fit.constraint < 1e-3 and fit.confidence < 0.1, fit  # ... and nothing is pinned down


def test_no_overlap_gives_no_alignment():
    d0 = _raycast(np.eye(4), ROOM, BOX)
    empty = np.full_like(d0, np.nan)
    assert align_depth(d0, empty, K, K, np.eye(4)) is None
    # a second view facing away from everything the first sees
    away = _pose([0.0, 1.0, 0.0], 180.0, [0.0, 0.0, 0.0])
    assert align_depth(d0, _raycast(away, ROOM, BOX), K, K, away) is None


@pytest.mark.parametrize("holes", [15, 40])
def test_holes_in_the_depth_images_are_ignored(holes):
    """Depth cameras leave holes (NaN or 0; dark, shiny or too near surfaces): they are
    skipped, not read as surfaces."""
    rng = np.random.default_rng(3)
    c2w1 = _pose([0.0, 1.0, 0.0], 5.0, [0.1, 0.0, 0.0])
    d0 = _raycast(np.eye(4), ROOM, BOX)
    d1 = _raycast(c2w1, ROOM, BOX)
    for depth, invalid in ((d0, np.nan), (d1, 0.0)):
        for _ in range(holes):
            r, c = rng.integers(0, S - 12, 2)
            depth[r:r + 12, c:c + 12] = invalid
    assert np.mean(~(d1 > 0)) > 0.1
    start = c2w1.copy()
    start[:3, 3] *= 2.0  # a translation length twice too long
    fit = align_depth(d0, d1, K, K, start)
    rot, direction = relative_pose_errors(fit.c2w1, c2w1)
    assert rot < 0.3 and np.linalg.norm(fit.c2w1[:3, 3] - c2w1[:3, 3]) < 0.01, (rot, fit.c2w1)


def test_a_free_motion_is_fixed_by_the_start_direction():
    """Floor and one wall: sliding along their corner (camera z) changes nothing the depth
    sees. The start's direction (from the images) is right but its length twice too long;
    the depth fixes the length through the motion's sideways part (the wall)."""
    from lsm.geometry.depth_pose import DEGENERATE, _align_from, _pyramid

    corner = [((0, 1, 0), 1.0), ((1, 0, 0), -1.2)]
    c2w1 = _pose([0.0, 1.0, 0.0], 2.0, [0.06, 0.0, 0.25])
    d0, d1 = _raycast(np.eye(4), corner), _raycast(c2w1, corner)
    start = _pose([1.0, 0.0, 0.0], 1.0, [0.0, 0.0, 0.0]) @ c2w1
    start[:3, 3] = 2.0 * c2w1[:3, 3]
    free = _align_from(_pyramid(d0, d1, K, K), start)  # six motions: the corner's direction stays as started
    assert free.constraint < DEGENERATE
    assert np.linalg.norm(free.c2w1[:3, 3] - c2w1[:3, 3]) > 0.05
    fit = align_depth(d0, d1, K, K, start)
    rot, _ = relative_pose_errors(fit.c2w1, c2w1)
    offset = np.linalg.norm(fit.c2w1[:3, 3] - c2w1[:3, 3])
    assert rot < 0.2 and offset < 0.01, (rot, offset, fit.c2w1)
