"""The TF fallback buffer (lsm_ros.tf_buffer.TransformCache): chains, time interpolation,
static transforms and clear errors, checked against transforms3d."""
from __future__ import annotations

import numpy as np
import pytest
from transforms3d.euler import euler2quat
from transforms3d.quaternions import quat2mat

from lsm_ros.tf_buffer import TransformCache, TransformError


def _xyzw(yaw):
    w, x, y, z = euler2quat(0, 0, yaw)
    return (x, y, z, w)


def _T(t, yaw):
    T = np.eye(4)
    T[:3, :3] = quat2mat(euler2quat(0, 0, yaw))
    T[:3, 3] = t
    return T


@pytest.fixture
def cache():
    c = TransformCache(cache_seconds=10.0)
    # odom -> base_link moves 1 m along x per second and turns 0.2 rad/s
    for k in range(5):
        c.add("odom", "base_link", 100.0 + k, (1.0 * k, 0, 0), _xyzw(0.2 * k))
    c.add("base_link", "camera_optical", 0.0, (0.1, 0.0, 0.5), _xyzw(-0.5), static=True)
    c.add("map", "odom", 0.0, (5.0, 2.0, 0.0), _xyzw(0.3), static=True)
    return c


def test_chains_through_the_tree_at_sample_times(cache):
    got = cache.lookup("map", "camera_optical", 102.0)
    want = _T((5, 2, 0), 0.3) @ _T((2, 0, 0), 0.4) @ _T((0.1, 0, 0.5), -0.5)
    np.testing.assert_allclose(got, want, atol=1e-9)
    inverse = cache.lookup("camera_optical", "map", 102.0)
    np.testing.assert_allclose(inverse, np.linalg.inv(want), atol=1e-9)
    np.testing.assert_allclose(cache.lookup("odom", "odom", 5.0), np.eye(4))


def test_interpolates_between_samples(cache):
    got = cache.lookup("odom", "base_link", 101.5)
    np.testing.assert_allclose(got, _T((1.5, 0, 0), 0.3), atol=1e-9)  # halfway, slerp


def test_clear_errors_for_extrapolation_unknown_frames_and_disconnected_trees(cache):
    with pytest.raises(TransformError, match="would extrapolate 1.500 s"):
        cache.lookup("odom", "base_link", 105.5)
    with pytest.raises(TransformError, match="not at 99.000"):
        cache.lookup("map", "camera_optical", 99.0)
    with pytest.raises(TransformError, match="'gripper' is not in the TF tree"):
        cache.lookup("odom", "gripper", 101.0)
    cache.add("world", "elsewhere", 101.0, (0, 0, 0), (0, 0, 0, 1))
    with pytest.raises(TransformError, match="not connected"):
        cache.lookup("odom", "elsewhere", 101.0)


def test_old_samples_leave_the_cache(cache):
    cache.add("odom", "base_link", 120.0, (20.0, 0, 0), _xyzw(0.0))
    with pytest.raises(TransformError, match="extrapolate"):
        cache.lookup("odom", "base_link", 101.0)  # older than 10 s before the newest
    np.testing.assert_allclose(cache.lookup("odom", "base_link", 120.0)[:3, 3], [20, 0, 0])


def test_a_sample_sent_again_replaces_itself(cache):
    for _ in range(50):  # a publisher that repeats its samples (volatile /tf, late joiners)
        cache.add("odom", "base_link", 102.0, (2.0, 0, 0), _xyzw(0.4))
    stamps, samples = cache._dynamic["base_link"]
    assert stamps == sorted(set(stamps)) and len(stamps) == 5


def test_a_patient_lookup_waits_for_late_static_frames_once():
    """At start-up a latched /tf_static can arrive after the first images: a frame pair
    never resolved may wait (up to first_wait) for it. Once resolved, or for a frame that
    never comes after its grace, the lookup fails at once."""
    import threading
    import time

    from lsm_ros.tf_buffer import PatientLookup

    cache = TransformCache(cache_seconds=10.0)
    patient = PatientLookup(cache.lookup, wait=0.05, first_wait=2.0)
    late = threading.Timer(0.3, lambda: cache.add("odom", "camera", 0.0, (1, 2, 3), (0, 0, 0, 1),
                                                   static=True))
    late.start()
    t0 = time.monotonic()
    T = patient("odom", "camera", 5.0)
    waited = time.monotonic() - t0
    assert np.allclose(T[:3, 3], [1, 2, 3]) and 0.25 < waited < 1.5, waited
    # resolved once: a frame that disappears is not waited for again
    t0 = time.monotonic()
    with pytest.raises(TransformError):
        patient("odom", "nowhere", 5.0)  # a new pair: waits its grace ...
    assert time.monotonic() - t0 >= 1.9
    t0 = time.monotonic()
    with pytest.raises(TransformError):
        patient("odom", "nowhere", 6.0)  # ... once
    assert time.monotonic() - t0 < 0.1
