"""lsm.geometry.pose_check: the images' own two-view geometry, its pose and confidences.

Procedural 480x640 pairs with their true relative poses: the two-view geometry recovers
the true pose; the true pose is trusted, the same pose with its translation reversed or its
rotation off by 30 degrees is not, and images without texture give "not verifiable"
(confidence 0), never a confident guess. The refinement is checked on exact synthetic
matches with noise and outliers; a reconstruction publishes the two-view pose and keeps
the network's pointmaps.
"""
import numpy as np
import pytest
import torch

from lsm.geometry.pose_check import (
    MIN_ADOPT_INLIERS,
    PoseCheck,
    TwoViewGeometry,
    check_pose,
    estimate_two_view,
    refine_two_view,
)
from lsm.geometry.pose_metrics import relative_pose_errors, rotation_angle_deg

SEEDS = (300002, 300010)  # held-out procedural pairs with textured furniture in both views


@pytest.fixture(scope="module")
def pairs():
    from lsm_train.data.procedural import generate_sample

    out = []
    for seed in SEEDS:
        s = generate_sample(seed, size=(480, 640))
        a, b = s.context
        rel = np.linalg.inv(a.c2w.astype(np.float64)) @ b.c2w.astype(np.float64)
        out.append((a.image, b.image, a.K.astype(np.float64), b.K.astype(np.float64), rel))
    return out


def _rotated(c2w, degrees):
    t = np.radians(degrees)
    R = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    out = c2w.copy()
    out[:3, :3] = out[:3, :3] @ R
    return out


def test_the_true_pose_is_trusted(pairs):
    for a, b, Ka, Kb, rel in pairs:
        check = check_pose(a, b, Ka, Kb, rel)
        assert check.confidence > 0.5, check
        assert check.direction_deg < 15 and check.rotation_deg < 3, check
        assert check.inliers >= 30


def test_wrong_poses_are_not_trusted(pairs):
    for a, b, Ka, Kb, rel in pairs:
        reversed_t = rel.copy()
        reversed_t[:3, 3] *= -1
        assert check_pose(a, b, Ka, Kb, reversed_t).confidence < 0.05
        assert check_pose(a, b, Ka, Kb, _rotated(rel, 30)).confidence < 0.05
        # the confidence does not depend on the translation's length (no scale in a pair)
        longer = rel.copy()
        longer[:3, 3] *= 7.0
        assert check_pose(a, b, Ka, Kb, longer).confidence == pytest.approx(
            check_pose(a, b, Ka, Kb, rel).confidence, abs=1e-6)


def test_images_without_texture_are_unverifiable_not_confident():
    flat = np.full((240, 320, 3), 128, np.uint8)
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    pose = np.eye(4)
    pose[0, 3] = 0.1
    check = check_pose(flat, flat.copy(), K, K, pose)
    assert check.confidence == 0.0 and "not verifiable" in check.detail


def test_a_pose_without_translation_has_no_direction_to_check():
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    K = np.array([[150.0, 0, 80], [0, 150.0, 60], [0, 0, 1]])
    check = check_pose(img, img, K, K, np.eye(4))
    assert check == PoseCheck.unchecked(check.detail) and "no translation" in check.detail


def test_two_view_geometry_recovers_the_true_pose(pairs):
    for a, b, Ka, Kb, rel in pairs:
        g, why = estimate_two_view(a, b, Ka, Kb)
        assert g is not None, why
        r, d = relative_pose_errors(g.c2w(float(np.linalg.norm(rel[:3, 3]))), rel)
        assert r < 1.0 and d < 10.0, (r, d, g)
        assert g.inliers >= MIN_ADOPT_INLIERS and g.parallax_deg > 1.0
        assert 0 < g.rotation_sigma_deg < 1.0 and 0 < g.direction_sigma_deg < 10.0


def _yaw(degrees):
    t = np.radians(degrees)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])


def test_refinement_fits_all_matches_and_shrugs_off_outliers():
    """Exact matches of random points (0.5 px noise at f = 300, 20 % outliers); the start is
    2 deg off in rotation and 15 deg off in direction."""
    rng = np.random.default_rng(3)
    X = np.c_[rng.uniform(-2, 2, (600, 2)), rng.uniform(2, 6, 600)]
    R = _yaw(8.0)
    t = np.array([-0.5, 0.05, 0.1])
    t /= np.linalg.norm(t)
    n0 = X[:, :2] / X[:, 2:]
    X1 = X @ R.T + t
    n1 = X1[:, :2] / X1[:, 2:] + rng.normal(0, 0.5 / 300, (600, 2))
    n1[:120] = rng.uniform(-0.6, 0.6, (120, 2))
    t0 = t + np.array([0.0, 0.0, 0.27])
    R_ref, t_ref, cov = refine_two_view(_yaw(10.0), t0 / np.linalg.norm(t0), n0, n1, 0.5 / 300)
    assert rotation_angle_deg(R_ref, R) < 0.2
    assert np.degrees(np.arccos(np.clip(t_ref @ t, -1, 1))) < 2.0
    assert np.all(np.isfinite(cov)) and np.all(np.linalg.eigvalsh(cov) > 0)


def test_the_adopted_pose_keeps_the_network_length_and_its_direction_without_parallax():
    R, t = _yaw(5.0), np.array([1.0, 0.0, 0.0])
    network = np.eye(4)
    network[:3, 3] = [0.0, 0.0, 2.0]
    g = TwoViewGeometry(R=R, t=t, matches=100, inliers=80, parallax_deg=4.0,
                        rotation_sigma_deg=0.1, direction_sigma_deg=1.0)
    pose, used = g.adopted(network)
    assert used and np.allclose(pose[:3, :3], R.T) and np.allclose(pose[:3, 3], -R.T @ t * 2.0)
    flat = TwoViewGeometry(R=R, t=t, matches=100, inliers=80, parallax_deg=0.1,
                           rotation_sigma_deg=0.1, direction_sigma_deg=30.0)
    pose, used = flat.adopted(network)
    assert not used and np.allclose(pose[:3, :3], R.T) and np.allclose(pose[:3, 3], network[:3, 3])


def test_a_reconstruction_publishes_the_two_view_pose_and_keeps_the_points(pairs):
    from lsm.perception import Perception

    perception = Perception.load()
    errors = {True: [], False: []}
    for a, b, _, _, rel in pairs:
        net, two = (perception.reconstruct([(a, b)], two_view_pose=flag)[0] for flag in (False, True))
        assert "two-view" in two.camera_status and "two-view" not in net.camera_status
        assert "two-view pose" in two.pose_check and 0.0 <= two.pose_confidence <= 1.0
        # the pointmaps stay the network's joint prediction; the pair keeps its scale
        assert torch.equal(net.pointmaps, two.pointmaps)
        assert float(two.c2w[1, :3, 3].norm()) == pytest.approx(float(net.c2w[1, :3, 3].norm()), rel=1e-5)
        for flag, rec in ((False, net), (True, two)):
            errors[flag].append(relative_pose_errors(rec.c2w[1].double().numpy(), rel)[0])
    # the images fix the rotation better than the network's pointmaps do (input 256 px)
    assert np.mean(errors[True]) < np.mean(errors[False]), errors
