"""Pose conversions of the published messages: ROS quaternion order (x, y, z, w), w >= 0."""
from __future__ import annotations

import numpy as np
import pytest

from lsm_ros.messages import quaternion_to_rotation, rotation_to_quaternion


@pytest.mark.parametrize("angles", [(0, 0, 0), (0.3, -1.2, 2.9), (3.1, 0.1, -0.2), (0, np.pi, 0)])
def test_rotation_quaternion_round_trip_in_ros_order(angles):
    from transforms3d.euler import euler2mat

    R = euler2mat(*angles)
    q = rotation_to_quaternion(R)
    assert q.shape == (4,) and np.isclose(np.linalg.norm(q), 1) and q[3] >= 0
    np.testing.assert_allclose(quaternion_to_rotation(q), R, atol=1e-12)


def test_quarter_turn_about_z_has_the_expected_components():
    R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    s = np.sqrt(0.5)
    np.testing.assert_allclose(rotation_to_quaternion(R), [0, 0, s, s], atol=1e-12)
    np.testing.assert_allclose(quaternion_to_rotation([0, 0, 2, 2]), R, atol=1e-12)  # any norm
