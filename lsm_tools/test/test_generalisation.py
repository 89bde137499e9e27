"""lsm-eval --suite: real RGB-D frames, geometric floor truth, the pose confidence's AUC.

The committed real frames (TUM RGB-D, CC BY 4.0; data/real_rgbd/README.md) are checked for
what the evaluation relies on: depth and motion-capture poses agree, a floor plane is found
from geometry alone. On the held-out real pairs, with the embedded model as it ships, the
published pose (the images' two-view pose where enough matches support it) must meet the
issue's rotation bar, and its confidence must rank good poses above bad ones: measured AUC
0.73 against "direction error > 30 deg" (0.77 on the tuning pairs). The issue asks for 0.8:
NOT met; the bound below guards what is reached against regressions. With what an RGB-D
robot adds (depth images, CameraInfo) the pose is refined on the measured depth and must be
far better.
"""
import os

import numpy as np
import pytest

from lsm_train.evaluation import generalisation as g

AUC_FLOOR = 0.70


@pytest.fixture(scope="module")
def held_out():
    return g.split_pairs("real held-out")


@pytest.fixture(scope="module")
def held_out_floor(held_out):
    """The held-out pairs with up = the floor's normal, and the floor's height."""
    return g.floor_plane(held_out)


def test_auc_counts_ranks_and_ties():
    assert g.auc([0.9, 0.8, 0.1], [False, False, True]) == 1.0
    assert g.auc([0.1, 0.9], [False, True]) == 0.0
    assert g.auc([0.5, 0.5], [False, True]) == 0.5
    assert g.auc([0.5, 0.4], [False, False]) is None


@pytest.mark.parametrize("split", sorted(g.REAL_SPLITS))
def test_real_depth_and_poses_agree(split):
    """View 0's depth carried into view 1 by the true poses meets view 1's depth."""
    errors = []
    for p in g.split_pairs(split):
        cam0 = g._unproject(p.depth[0], np.asarray(p.K[0], np.float64))[p.depth[0] > 0]
        T = np.linalg.inv(p.c2w[1]) @ p.c2w[0]
        cam1 = cam0 @ T[:3, :3].T + T[:3, 3]
        uv = (cam1 @ np.asarray(p.K[1], np.float64).T)[:, :2] / cam1[:, 2:3]
        h, w = p.depth[1].shape
        u, v = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        ok = (cam1[:, 2] > 0.1) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        d1 = p.depth[1][v[ok], u[ok]]
        rel = np.abs(d1 - cam1[ok, 2])[d1 > 0] / d1[d1 > 0]
        errors.append(np.median(rel))
    assert len(errors) >= 20
    assert np.median(errors) < 0.03, errors


def test_the_floor_is_found_from_geometry(held_out):
    """The cabinet stands on a plain floor: the lowest large upward-facing plane, found
    with gravity from the camera poses, covers a good part of most frames."""
    height = g.floor_height(held_out)
    assert height is not None
    fractions = [g.floor_truth(p.depth[0], np.asarray(p.K[0], np.float64), p.c2w[0], p.up,
                               height).mean() for p in held_out]
    assert np.median(fractions) > 0.15, fractions
    # the up vector from the poses is a unit vector and the cameras look roughly level
    assert abs(np.linalg.norm(held_out[0].up) - 1) < 1e-9


def test_chained_poses_are_scored_against_the_true_chain():
    """chain_errors composes the pairs' relative poses as the mono-mode map does: exact
    poses give no error, one wrong link moves every later camera."""
    step = np.eye(4)
    step[:3, 3] = [0.1, 0.0, 0.0]
    rows = [{"_pose": step.copy(), "_true_pose": step.copy()} for _ in range(4)]
    g.chain_errors(rows)
    assert all(r["sensor_chain_error_m"] < 1e-12 for r in rows)
    assert np.allclose([r["no_motion_chain_error_m"] for r in rows], [0.1, 0.2, 0.3, 0.4])
    wrong = step.copy()
    wrong[:3, 3] = [0.1, 0.05, 0.0]
    rows = [{"_pose": p, "_true_pose": step.copy()} for p in (step.copy(), wrong, step.copy())]
    g.chain_errors(rows)
    assert np.allclose([r["sensor_chain_error_m"] for r in rows], [0.0, 0.05, 0.05])
    assert all("_pose" not in r for r in rows)


@pytest.fixture(scope="module")
def held_out_rows(held_out):
    from lsm.perception import Perception

    return g.pose_rows(Perception.load(), held_out)


@pytest.mark.slow
def test_published_rotation_is_within_half_the_identity_on_held_out_real_pairs(held_out_rows):
    """The issue's bar: rotation error at most half the identity's. The network alone (PnP
    on its pointmaps) missed it, 7.0 deg against 6.3; the two-view pose meets it."""
    rotation = np.median([r["rotation_deg"] for r in held_out_rows])
    identity = np.median([r["identity_rotation_deg"] for r in held_out_rows])
    assert rotation <= 0.5 * identity, (rotation, identity)


@pytest.mark.slow
def test_pose_confidence_separates_good_from_bad_poses_on_held_out_real_pairs(held_out_rows):
    rows = held_out_rows
    bad = [r["direction_deg"] > g.BAD_DIRECTION_DEG for r in rows]
    assert 0 < sum(bad) < len(bad)  # both kinds exist, or the AUC means nothing
    area = g.auc([r["pose_confidence"] for r in rows], bad)
    assert area >= AUC_FLOOR, (area, [(round(r["pose_confidence"], 2), round(r["direction_deg"])) for r in rows])


@pytest.fixture(scope="module")
def held_out_with_depth(held_out):
    """The held-out pairs as an RGB-D robot gives them: both depth images and CameraInfo,
    no pose from TF, so the pose is refined on the measured depth (lsm.geometry.depth_pose)."""
    from lsm.perception import Perception

    perception = Perception.load()
    return [g.with_sensors(perception, p) for p in held_out]


@pytest.mark.slow
def test_the_robots_depth_images_fix_the_pose_on_held_out_real_pairs(held_out_with_depth):
    """On the plain cabinet the images alone leave the direction 41 deg off (median), 48 %
    within 30 deg; the depth images pin it down (measured: rotation 0.8 deg, direction
    6 deg, 85 % within 30 deg, translation 29 mm off). The confidence's AUC, 0.74 here (four
    bad pairs of 27; 0.86 on the tuning pairs it was chosen on), is guarded, not the bar."""
    rows = held_out_with_depth
    rotation = np.median([r["sensor_rotation_deg"] for r in rows])
    within = np.mean([r["sensor_direction_deg"] <= g.BAD_DIRECTION_DEG for r in rows])
    offset = np.median([r["sensor_translation_error_m"] for r in rows])
    bad = [r["sensor_direction_deg"] > g.BAD_DIRECTION_DEG for r in rows]
    area = g.auc([r["sensor_pose_confidence"] for r in rows], bad)
    print(f"with depth: rotation {rotation:.2f} deg, {within:.0%} within 30 deg, translation "
          f"{offset * 1000:.0f} mm, confidence AUC {area}")
    assert rotation < 1.5 and within >= 0.75 and offset < 0.05, (rotation, within, offset)
    assert area is not None and area >= 0.65, area
    assert all(0.0 <= r["sensor_pose_confidence"] <= 1.0 for r in rows)


@pytest.mark.slow
def test_every_source_reports_its_figures_beside_baselines():
    """One pair per source through the suite's code: every figure the report promises is
    computed (labels only where the truth has them, the floor only on real frames)."""
    from lsm.perception import Perception

    perception = Perception.load()
    sources = {"procedural": g.synthetic_pairs("procedural", [100000]),
               "independent": g.synthetic_pairs("independent", [0]),
               "real": g.real_pairs(os.path.join(g.REAL_DATA, "tum_fr3_cabinet"), frames=(40, 42))}
    summaries = {name: g.evaluate_source(perception, pairs, log=lambda s: None, floor=name == "real")
                 for name, pairs in sources.items()}
    for name, s in summaries.items():
        for key in ("abs_rel", "constant_abs_rel", "rotation_deg", "identity_rotation_deg", "consistency"):
            assert s[key] is not None and np.isfinite(s[key]), (name, key)
    assert summaries["independent"]["miou"] is not None and "floor_iou" not in summaries["independent"]
    assert summaries["real"].get("miou") is None and summaries["real"]["floor_iou"] is not None
    for key in ("sensor_rotation_deg", "sensor_translation_error_m", "sensor_chain_error_m",
                "no_motion_chain_error_m"):  # what the robot's depth images give
        assert np.isfinite(summaries["real"][key]), key
    assert "sensor_rotation_deg" not in summaries["independent"]
    assert not any(k.startswith("_") for r in summaries["real"]["rows"] for k in r)
    text = g.report(summaries)
    assert "best constant depth" in text and "identity" in text and "chance" in text


def _tilted(T: np.ndarray, degrees: float, lift: float) -> np.ndarray:
    """A floor frame ``degrees`` off level (about its x axis) and ``lift`` metres too low."""
    import transforms3d

    E = np.eye(4)
    E[:3, :3] = transforms3d.axangles.axangle2mat([1, 0, 0], np.radians(degrees))
    E[2, 3] = lift
    return E @ T


@pytest.mark.slow
def test_the_robots_depth_and_floor_frame_decide_the_floor_label(held_out_floor):
    """On the real held-out pairs the model's own floor label scores IoU 0.10 against the
    geometric floor (lsm-eval --suite). With what a robot has (both depth images,
    CameraInfo, the floor frame from TF) the floor is decided by lsm.geometry.floor. The truth is built from the same
    depth images, so the exact floor frame only checks that depth fusion, the per-view
    floor poses and the labels carry the floor through; a floor frame 2 deg off level and
    2 cm too low (a robot's calibration error) must still find most of it."""
    from lsm.perception import Perception

    perception = Perception.load()
    pairs, height = held_out_floor
    pairs = pairs[::3]
    scores = {}
    for name, change in (("exact", lambda T: T), ("off", lambda T: _tilted(T, 2.0, 0.02))):
        inter = union = 0
        for p in pairs:  # (raises where the floor was not decided)
            poses = tuple(change(g.floor_frame_pose(p, height, v)) for v in range(2))
            i, u = g.floor_with_sensors(perception, p, height, floor_poses=poses)
            inter, union = inter + i, union + u
        scores[name] = inter / union
    print(f"floor IoU with depth + floor frame: exact {scores['exact']:.2f}, "
          f"2 deg / 2 cm off {scores['off']:.2f} (the model's labels alone: 0.10)")
    assert scores["exact"] > 0.9 and scores["off"] > 0.5, scores


@pytest.mark.slow
def test_the_geometric_floor_answers_queries_and_labels_points(held_out_floor):
    """The floor query and the cloud's labels use the same decision; without the label
    'floor' or without a metric scale nothing changes, and the result says why."""
    from lsm.metric import PairSensors
    from lsm.perception import Perception

    perception = Perception.load()
    pairs, height = held_out_floor
    p = pairs[10]
    poses = tuple(g.floor_frame_pose(p, height, v) for v in range(2))
    rec = perception.reconstruct([(p.images[0], p.images[1])], sensors=[PairSensors(
        K=tuple(p.K), depth=tuple(p.depth), floor_pose=poses)])[0]
    names = list(g.CLASS_NAMES)
    assert rec.floor.any() and rec.floor_detail.startswith("floor from geometry")
    answer = perception.query(rec, "Floor", names)
    assert answer.found and np.array_equal(answer.mask, rec.floor[0].numpy())
    assert "floor from geometry" in answer.message
    # the answer's points lie on the floor plane, in the reconstruction's (camera) frame;
    # view 1's are placed by the pair's (estimated) pose, so they are only reported
    heights = np.abs(answer.points.astype(np.float64) @ poses[0][2, :3] + poses[0][2, 3])
    view0 = int(rec.floor[0].sum())  # the answer's first points are view 0's
    print(f"floor answer heights: view 0 max {heights[:view0].max():.3f} m, "
          f"view 1 (placed by the pair's pose) 95 % {np.percentile(heights[view0:], 95):.3f} m")
    # within 5 cm of the refitted plane, which lies within a few cm of the given one
    assert heights[:view0].max() < 0.08
    ids, scores = perception.point_labels(rec, names)
    assert np.array_equal(ids.cpu().numpy() == g.FLOOR, rec.floor.reshape(-1).numpy())
    assert np.all(scores.cpu().numpy()[rec.floor.reshape(-1).numpy()] == 1.0)
    # without the label, the model's labels stand as they are
    other = [n for n in names if n != "floor"]
    ids_model = perception.point_labels(
        rec, other)[0]
    plain = perception.reconstruct([(p.images[0], p.images[1])], sensors=[PairSensors(
        K=tuple(p.K), depth=tuple(p.depth))])[0]
    assert torch_equal(ids_model, perception.point_labels(plain, other)[0])
    # without a metric scale (no depth), the floor stays the model's, and it says why
    unscaled = perception.reconstruct([(p.images[0], p.images[1])], sensors=[PairSensors(
        K=tuple(p.K), floor_pose=poses)])[0]
    assert unscaled.floor is None and "no metric scale" in unscaled.floor_detail


def torch_equal(a, b) -> bool:
    return bool((a.cpu() == b.cpu()).all())
