"""Approximate-time pairing (pair mode) and keyframe selection (mono mode)."""
from __future__ import annotations

import pytest

from lsm_ros.inputs import ApproximateTimePairer, MonoKeyframer


def test_pairs_images_within_slop_and_uses_each_once():
    p = ApproximateTimePairer(slop=0.02, buffer_size=5)
    assert p.add(0, 1.000, "a0") is None
    pair = p.add(1, 1.015, "b0")
    assert (pair[0].item, pair[1].item) == ("a0", "b0")  # camera 0 is always first
    assert p.add(1, 1.016, "b1") is None  # a0 is used up
    assert p.pending() == (0, 1)


def test_nearest_stamp_wins_and_outside_slop_never_pairs():
    p = ApproximateTimePairer(slop=0.05, buffer_size=10)
    p.add(1, 0.96, "far")
    p.add(1, 1.01, "near")
    p.add(1, 1.20, "outside")
    pair = p.add(0, 1.00, "ref")
    assert pair[1].item == "near"
    assert p.add(0, 1.5, "late") is None  # 'outside' is 0.3 s away


def test_stale_images_older_than_a_match_are_discarded():
    p = ApproximateTimePairer(slop=0.01, buffer_size=10)
    for i in range(3):
        p.add(1, float(i), f"b{i}")
    assert p.add(0, 2.0, "a2")[1].item == "b2"
    assert p.pending() == (0, 0)  # b0, b1 can no longer pair with newer images


def test_buffer_is_bounded():
    p = ApproximateTimePairer(slop=0.0, buffer_size=3)
    for i in range(100):
        p.add(0, float(i), i)
    assert p.pending() == (3, 0)


def test_pairer_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ApproximateTimePairer(slop=-1)
    with pytest.raises(ValueError):
        ApproximateTimePairer(slop=0.1).add(2, 0.0, None)


def test_keyframes_need_frames_and_time_and_pair_with_the_previous_one():
    k = MonoKeyframer(min_frames=2, min_seconds=0.5)
    assert k.add(0.0, "f0") is None  # first keyframe
    assert k.add(0.1, "f1") is None  # one frame only
    assert k.add(0.2, "f2") is None  # two frames, but only 0.2 s
    new, prev = k.add(0.6, "f3")
    assert (new.item, prev.item) == ("f3", "f0")  # new keyframe is the reference view
    assert k.add(0.7, "f4") is None
    new, prev = k.add(1.2, "f5")
    assert (new.item, prev.item) == ("f5", "f3")


def test_keyframe_motion_is_required_only_when_known():
    k = MonoKeyframer(min_frames=1, min_seconds=0.0, min_translation=0.2)
    k.add(0.0, "f0")
    assert k.add(1.0, "still", translation=0.05) is None
    assert k.add(2.0, "moved", translation=0.3)[0].item == "moved"
    assert k.add(3.0, "unknown", translation=None)[0].item == "unknown"


def test_time_going_back_restarts_keyframes():
    k = MonoKeyframer(min_frames=1, min_seconds=0.1)
    k.add(10.0, "a")
    assert k.add(1.0, "after reset") is None
    assert k.add(1.5, "b")[1].item == "after reset"
