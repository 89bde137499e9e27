"""Pose comparison helpers: angles between rotations/directions and similarity alignment."""
import math

import numpy as np
import pytest
import torch
import transforms3d

from lsm.geometry import direction_angle_deg, relative_pose_errors, rotation_angle_deg, umeyama_similarity


def rotation(axis, degrees):
    axis = np.asarray(axis, dtype=float)
    return transforms3d.axangles.axangle2mat(axis / np.linalg.norm(axis), math.radians(degrees))


def test_rotation_angle_of_known_rotations_batched_and_torch():
    R0 = rotation([0.3, -1.0, 0.2], 40.0)
    Ra = np.stack([R0, R0 @ rotation([1, 2, 3], 17.0), R0 @ rotation([0, 0, 1], 179.0)])
    angles = rotation_angle_deg(np.stack([R0] * 3), torch.from_numpy(Ra))
    assert angles == pytest.approx([0.0, 17.0, 179.0], abs=1e-6)


def test_relative_pose_errors_ignore_translation_scale():
    gt = np.eye(4)
    gt[:3, :3] = rotation([1, 1, 0], 25.0)
    gt[:3, 3] = [0.5, -0.2, 0.1]
    est = gt.copy()
    est[:3, 3] *= 3.7  # pointmap-based poses have an arbitrary scale
    rot_err, dir_err = relative_pose_errors(est, gt)
    assert rot_err == pytest.approx(0.0, abs=1e-6) and dir_err == pytest.approx(0.0, abs=1e-6)
    est[:3, :3] = gt[:3, :3] @ rotation([0, 1, 0], 2.0)
    est[:3, 3] = rotation([0, 0, 1], 10.0) @ gt[:3, 3]
    rot_err, dir_err = relative_pose_errors(torch.from_numpy(est), gt)
    assert rot_err == pytest.approx(2.0, abs=1e-6)
    assert 0.0 < dir_err <= 10.0 + 1e-9
    assert direction_angle_deg(np.array([1.0, 0, 0]), np.array([0, 2.0, 0])) == pytest.approx(90.0)


def test_umeyama_recovers_a_similarity_despite_noise():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(200, 3))
    R, s, t = rotation([2, -1, 0.5], 63.0), 2.5, np.array([1.0, -3.0, 0.5])
    dst = s * src @ R.T + t + rng.normal(scale=1e-3, size=src.shape)
    s_est, R_est, t_est = umeyama_similarity(src, torch.from_numpy(dst))
    assert s_est == pytest.approx(s, rel=1e-3)
    assert rotation_angle_deg(R_est, R) < 0.05
    assert np.allclose(t_est, t, atol=1e-2)
    # a reflection in the data never turns into a reflection in the result
    s1, R1, _ = umeyama_similarity(src, src * np.array([1, 1, -1]))
    assert np.linalg.det(R1) == pytest.approx(1.0)
    _, _, _ = umeyama_similarity(src, dst, with_scale=False)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="non-zero"):
        direction_angle_deg(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        rotation_angle_deg(np.eye(4), np.eye(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 4\)"):
        relative_pose_errors(np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="at least 3"):
        umeyama_similarity(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="identical"):
        umeyama_similarity(np.ones((5, 3)), np.random.default_rng(0).normal(size=(5, 3)))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        umeyama_similarity(np.ones((5, 3)), np.ones((4, 3)))
