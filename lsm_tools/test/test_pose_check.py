"""lsm.geometry.pose_check: a pose confidence from the images' own two-view geometry.

Procedural 480x640 pairs with their true relative poses: the true pose is trusted, the same
pose with its translation reversed or its rotation off by 30 degrees is not, and images
without texture give "not verifiable" (confidence 0), never a confident guess.
"""
import numpy as np
import pytest

from lsm.geometry.pose_check import PoseCheck, check_pose

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
