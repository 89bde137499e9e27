"""The persistent map finds objects (lsm-eval-map): the embedded model, a 30-keyframe RGB-D
sweep of held-out procedural room 300013 with poses from the truth (what TF gives the node),
fused into a 5 cm voxel map and queried by text. Target of the map work: for at least 2 of
sofa, bed and table an instance within 0.20 m of the true object's centre, each figure
beside its trivial baseline (the centre of the whole map as a guess).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summary():
    from lsm.perception import Perception
    from lsm_train.evaluation.map import evaluate, report

    s = evaluate(Perception.load(device="cpu"), log=lambda m: None)
    print(report(s))
    return s


def test_two_of_sofa_bed_table_are_found_within_20_cm(summary):
    q = summary["queries"]
    errors = {c: q[c].get("nearest_instance_error_m") for c in ("sofa", "bed", "table")}
    assert sum(e is not None and e <= 0.20 for e in errors.values()) >= 2, errors
    for c, e in errors.items():  # every class found beats guessing the map's centre
        assert e is not None and e < 0.5 * q[c]["map_centre_error_m"], (c, q[c])


def test_a_synonym_finds_the_same_object(summary):
    q = summary["queries"]
    assert q["couch"]["instances"] >= 1
    assert q["couch"]["nearest_instance_error_m"] == pytest.approx(
        q["sofa"]["nearest_instance_error_m"], abs=0.05)


def test_the_map_stays_within_its_room_sized_budget(summary):
    assert 10_000 < summary["voxels"] < 200_000


def test_a_handheld_rgbd_camera_without_odometry_maps_the_room_from_its_depth():
    """No TF: the keyframes are chained through each pair's pose, refined on the two depth
    images (depth_pose). Measured on this room: sofa 0.11, bed 0.23, table 0.23 m and a map
    of 30,947 voxels, where the image pose made metric put the sofa 2.19 m and the bed 4.30 m
    off and smeared the room over 147,659 voxels. Every object must beat the map-centre
    guess by 3x and the map must stay about the size the true poses give (32,851 voxels)."""
    from lsm.perception import Perception
    from lsm_train.evaluation.map import evaluate, report

    s = evaluate(Perception.load(device="cpu"), log=lambda m: None, odometry=False)
    print(report(s))
    q = s["queries"]
    for c in ("sofa", "bed", "table"):
        e = q[c].get("nearest_instance_error_m")
        assert e is not None and e < min(0.35, q[c]["map_centre_error_m"] / 3), (c, q[c])
    assert s["voxels"] < 40_000 and "chained" in s["poses"]
