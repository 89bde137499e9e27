"""Camera recovery from pointmaps of a synthetic room seen by a known camera pair.

The room is an axis-aligned box ray-cast from both cameras; the pair has a random focal
(0.8-1.5 W), a random relative rotation (5-30 deg) and a 0.3-1.0 m baseline.  The four
pointmaps a symmetrised DUSt3R/LSM pass predicts are built exactly, then corrupted.
"""
import math

import numpy as np
import pytest
import torch
import transforms3d

from lsm.geometry import (
    CameraRecoveryError,
    depth_to_pointmap,
    estimate_focal,
    estimate_relative_pose,
    intrinsics_from_focal,
    pixel_grid,
    recover_cameras,
    recover_cameras_batch,
    relative_pose_errors,
    transform_points,
)

ROOM_MIN = np.array([-3.0, -2.0, -2.0])
ROOM_MAX = np.array([3.0, 2.0, 6.0])
EQUAL_CONF, HIGH_CONF, LOW_CONF = 5.0, 5.0, 1.0


def room_depth(K, c2w, H, W):
    """Depth (H, W) of the inside walls of the room seen by a camera (K, c2w)."""
    grid = pixel_grid(H, W, dtype=torch.float64).numpy()
    rays = np.concatenate([(grid - K[:2, 2]) / K[0, 0], np.ones((H, W, 1))], axis=-1)  # z = 1
    dirs = rays @ c2w[:3, :3].T
    origin = c2w[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dirs > 0, (ROOM_MAX - origin) / dirs, (ROOM_MIN - origin) / dirs)
    return np.where(np.isfinite(t) & (t > 0), t, np.inf).min(axis=-1)


def make_pair(seed, size):
    rng = np.random.default_rng(seed)
    focal = rng.uniform(0.8, 1.5) * size
    K = intrinsics_from_focal(torch.tensor(focal, dtype=torch.float64), size, size).numpy()
    axis = rng.normal(size=3)
    R = transforms3d.axangles.axangle2mat(axis / np.linalg.norm(axis), math.radians(rng.uniform(5, 30)))
    t = rng.normal(size=3)
    c2w2 = np.eye(4)
    c2w2[:3, :3] = R
    c2w2[:3, 3] = t / np.linalg.norm(t) * rng.uniform(0.3, 1.0)
    K_t, T2 = torch.from_numpy(K), torch.from_numpy(c2w2)
    p11 = depth_to_pointmap(torch.from_numpy(room_depth(K, np.eye(4), size, size))[None], K_t)[0]
    p22 = depth_to_pointmap(torch.from_numpy(room_depth(K, c2w2, size, size))[None], K_t)[0]
    return dict(
        rng=rng, focal=focal, K=K, c2w2=c2w2, T2=T2,
        own1=p11, own2=p22,  # each view's points in its own camera frame
        p11=p11, p21=transform_points(T2, p22), p22=p22, p12=transform_points(torch.linalg.inv(T2), p11),
    )


def corrupt_in_frustum(own, rng, fraction=0.2):
    """Replace a random fraction of pixels by another pixel's point at a wrong depth (x0.5-2)."""
    H, W, _ = own.shape
    bad = rng.random((H, W)) < fraction
    n = int(bad.sum())
    source = torch.from_numpy(rng.integers(0, H * W, size=n))
    out = own.clone()
    out[torch.from_numpy(bad)] = own.reshape(-1, 3)[source] * torch.from_numpy(rng.uniform(0.5, 2.0, size=(n, 1)))
    return out, bad


def corrupted_predictions(s, fraction=0.2):
    """The four pair predictions, each with its own outliers (drawn in the predicting view's
    own frame, then expressed in the prediction's frame) and confidence masks of outliers."""
    rng, T2 = s["rng"], s["T2"]
    p11, b11 = corrupt_in_frustum(s["own1"], rng, fraction)
    q21, b21 = corrupt_in_frustum(s["own2"], rng, fraction)
    p22, b22 = corrupt_in_frustum(s["own2"], rng, fraction)
    q12, b12 = corrupt_in_frustum(s["own1"], rng, fraction)
    pts = dict(p11=p11, p21=transform_points(T2, q21), p22=p22, p12=transform_points(torch.linalg.inv(T2), q12))
    bad = dict(p11=b11, p21=b21, p22=b22, p12=b12)
    return pts, bad


def assert_cameras_match(est, s, focal_tol=0.01, rot_tol=0.5, dir_tol=2.0):
    assert abs(est.focal.item() - s["focal"]) / s["focal"] < focal_tol
    rot_err, dir_err = relative_pose_errors(est.c2w[1], s["c2w2"])
    assert rot_err < rot_tol, f"rotation error {rot_err:.3f} deg"
    assert dir_err < dir_tol, f"translation direction error {dir_err:.3f} deg"
    assert torch.equal(est.c2w[0], torch.eye(4))
    assert torch.allclose(est.K[0], torch.from_numpy(s["K"]).float(), rtol=focal_tol)
    assert est.K.shape == (2, 3, 3) and est.c2w.shape == (2, 4, 4)


@pytest.mark.parametrize("seed,size", [(0, 64), (1, 96), (2, 128), (3, 64), (4, 80)])
def test_exact_pointmaps_give_exact_cameras(seed, size):
    s = make_pair(seed, size)
    est = recover_cameras(s["p11"], s["p21"], pts2_in_2=s["p22"], pts1_in_2=s["p12"])
    assert_cameras_match(est, s, focal_tol=1e-5, rot_tol=0.05, dir_tol=0.05)
    assert est.num_inliers == est.num_points == size * size
    # one direction only (no symmetric prediction)
    est = recover_cameras(s["p11"], s["p21"])
    assert est.direction == "2_in_1"
    assert_cameras_match(est, s, focal_tol=1e-5, rot_tol=0.05, dir_tol=0.05)


@pytest.mark.parametrize("seed,size", [(10, 64), (11, 96), (12, 128), (13, 64), (14, 96), (15, 128)])
def test_twenty_percent_outliers_with_equal_confidence(seed, size):
    s = make_pair(seed, size)
    pts, bad = corrupted_predictions(s)
    conf = {k: np.full(b.shape, EQUAL_CONF) for k, b in bad.items()}
    est = recover_cameras(
        pts["p11"], pts["p21"], conf["p11"], conf["p21"], pts["p22"], pts["p12"], conf["p22"], conf["p12"]
    )
    assert_cameras_match(est, s)
    assert 0.7 < est.inlier_ratio < 0.9  # RANSAC set the ~20 % outliers aside
    # the LM polish on a re-selected inlier set removes the pull of outliers that land
    # within the 5 px RANSAC threshold: far better than the required accuracy
    assert_cameras_match(est, s, focal_tol=1e-4, rot_tol=0.05, dir_tol=0.1)


@pytest.mark.parametrize("seed,size", [(20, 64), (21, 96), (22, 128)])
def test_twenty_percent_low_confidence_outliers_are_skipped(seed, size):
    s = make_pair(seed, size)
    pts, bad = corrupted_predictions(s)
    conf = {k: np.where(b, LOW_CONF, HIGH_CONF) for k, b in bad.items()}
    # in-frustum outliers: confidence-weighted focal and PnP on the most confident half
    args = (pts["p11"], pts["p21"], conf["p11"], conf["p21"], pts["p22"], pts["p12"], conf["p22"], conf["p12"])
    est = recover_cameras(*args, weight_focal_by_conf=True, max_points=size * size // 2)
    assert_cameras_match(est, s, focal_tol=1e-4, rot_tol=0.1, dir_tol=0.5)
    assert est.num_points == size * size // 2 and est.num_inliers == est.num_points
    # gross outliers anywhere in the room (some close to the camera plane, whose huge x/z
    # outweighs every inlier in the L1 focal fit): the confidence threshold keeps them out
    for key, mask in bad.items():
        n = int(mask.sum())
        pts[key][torch.from_numpy(mask)] = torch.from_numpy(s["rng"].uniform(ROOM_MIN, ROOM_MAX, size=(n, 3)))
    args = (pts["p11"], pts["p21"], conf["p11"], conf["p21"], pts["p22"], pts["p12"], conf["p22"], conf["p12"])
    est = recover_cameras(*args, min_conf=2.0)
    assert_cameras_match(est, s, focal_tol=1e-4, rot_tol=0.1, dir_tol=0.5)
    used = bad["p21"] if est.direction == "2_in_1" else bad["p12"]
    assert est.num_inliers == est.num_points == int((~used).sum())


def test_more_confident_direction_is_kept():
    s = make_pair(30, 64)
    garbage = torch.from_numpy(s["rng"].uniform(ROOM_MIN, ROOM_MAX, size=s["p12"].shape))
    high, low = np.full((64, 64), 5.0), np.full((64, 64), 1.5)
    # pair (2,1) is garbage and less confident: pair (1,2) wins
    est = recover_cameras(s["p11"], s["p21"], high, high, s["p22"], garbage, low, low)
    assert est.direction == "2_in_1"
    assert est.edge_confidence == pytest.approx(25.0)
    assert_cameras_match(est, s)
    # pair (1,2) is less confident: the inverted pair (2,1) pose is used
    est = recover_cameras(s["p11"], garbage, low, low, s["p22"], s["p12"], high, high)
    assert est.direction == "1_in_2"
    assert_cameras_match(est, s)
    # a direction whose PnP cannot succeed (too few finite points) falls back to the other
    hopeless = torch.full_like(s["p21"], float("nan"))
    est = recover_cameras(s["p11"], hopeless, high, high, s["p22"], s["p12"], low, low)
    assert est.direction == "1_in_2"
    assert_cameras_match(est, s)


def test_shared_focal_uses_both_views_and_matches_dust3r_grid_option():
    s = make_pair(40, 64)
    own = torch.stack([s["own1"], s["own2"]])
    per_view = estimate_focal(own)
    assert per_view.shape == (2,)
    assert torch.allclose(per_view.double(), torch.tensor(s["focal"], dtype=torch.float64), rtol=1e-6)
    shared = estimate_focal([s["own1"][None], s["own2"][None].numpy()])
    assert shared.shape == (1,) and shared.item() == pytest.approx(s["focal"], rel=1e-6)
    # DUSt3R's integer pixel grid (pixel_center=0) with the same (W/2, H/2) principal point
    # shifts every pixel by half a pixel; over a centred image this barely moves the focal
    shifted = estimate_focal(own, pixel_center=0.0)
    assert torch.allclose(shifted, per_view, rtol=1e-3)
    # a crop keeps the focal but moves the principal point off the crop's centre
    crop = own[:, :40, :40]
    exact = estimate_focal(crop, principal_point=torch.tensor([32.0, 32.0]))
    assert torch.allclose(exact.double(), torch.tensor(s["focal"], dtype=torch.float64), rtol=1e-6)
    centred = estimate_focal(crop)  # assumes (20, 20)
    assert ((centred - s["focal"]).abs() / s["focal"] > 0.05).all()


def test_estimate_relative_pose_direct_and_numpy_input():
    s = make_pair(50, 64)
    rel = estimate_relative_pose(s["p21"].numpy(), s["K"], np.ones((64, 64)), max_points=500)
    assert rel.num_points == 500 and rel.inlier_ratio == 1.0
    rot_err, dir_err = relative_pose_errors(rel.c2w, s["c2w2"])
    assert rot_err < 0.05 and dir_err < 0.05
    # the official unrefined RANSAC path agrees on exact data
    raw = estimate_relative_pose(s["p21"], s["K"], refine=False)
    assert relative_pose_errors(raw.c2w, s["c2w2"])[0] < 0.05


def test_batch_wrapper_matches_single_pairs():
    a, b = make_pair(60, 64), make_pair(61, 64)

    def stack(key):
        return torch.stack([a[key], b[key]])

    ests = recover_cameras_batch(stack("p11"), stack("p21"), pts2_in_2=stack("p22"), pts1_in_2=stack("p12"))
    assert len(ests) == 2
    for est, s in zip(ests, (a, b)):
        assert_cameras_match(est, s, focal_tol=1e-5, rot_tol=0.05, dir_tol=0.05)


def test_bad_input_raises_clear_errors():
    s = make_pair(70, 32)
    with pytest.raises(CameraRecoveryError, match=r"pts1_in_1 must have shape \(H, W, 3\)"):
        recover_cameras(s["p11"][None], s["p21"])
    with pytest.raises(CameraRecoveryError, match="conf2 must have shape"):
        recover_cameras(s["p11"], s["p21"], np.ones((32, 32)), np.ones((16, 16)))
    with pytest.raises(CameraRecoveryError, match="pts1_in_2 must have shape"):
        recover_cameras(s["p11"], s["p21"], pts1_in_2=s["p12"][:16])
    nan = torch.full_like(s["p11"], float("nan"))
    with pytest.raises(CameraRecoveryError, match="usable points"):
        recover_cameras(nan, s["p21"])
    with pytest.raises(CameraRecoveryError, match="no relative pose"):
        recover_cameras(s["p11"], nan)
    behind = s["p11"].clone()
    behind[..., 2] *= -1  # every point behind the camera: no focal can be fitted
    with pytest.raises(CameraRecoveryError, match="z > 0"):
        estimate_focal(behind[None])
    few = torch.full_like(s["p21"], float("nan"))
    few[0, :10] = s["p21"][0, :10]
    with pytest.raises(CameraRecoveryError, match="only 10 usable points"):
        estimate_relative_pose(few, s["K"])
    with pytest.raises(CameraRecoveryError, match="K must be"):
        estimate_relative_pose(s["p21"], np.eye(4))
    with pytest.raises(CameraRecoveryError, match="non-negative"):
        estimate_focal(s["p11"][None], -torch.ones(1, 32, 32))
    with pytest.raises(ValueError, match="torch.Tensor or numpy"):
        recover_cameras(s["p11"].tolist(), s["p21"])
    with pytest.raises(CameraRecoveryError, match="batch size"):
        recover_cameras_batch(torch.stack([s["p11"]] * 2), s["p21"][None])
