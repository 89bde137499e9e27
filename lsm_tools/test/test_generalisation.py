"""lsm-eval --suite: real RGB-D frames, geometric floor truth, the pose confidence's AUC.

The committed real frames (TUM RGB-D, CC BY 4.0; data/real_rgbd/README.md) are checked for
what the evaluation relies on: depth and motion-capture poses agree, a floor plane is found
from geometry alone. On the held-out real pairs, with the embedded model as it ships, the
published pose (the images' two-view pose where enough matches support it) must meet the
issue's rotation bar, and its confidence must rank good poses above bad ones: measured AUC
0.73 against "direction error > 30 deg" (0.77 on the tuning pairs). The issue asks for 0.8:
NOT met; the bound below guards what is reached against regressions.
"""
import os

import numpy as np
import pytest

from lsm_train.evaluation import generalisation as g

AUC_FLOOR = 0.70


@pytest.fixture(scope="module")
def held_out():
    return g.split_pairs("real held-out")


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
    text = g.report(summaries)
    assert "best constant depth" in text and "identity" in text and "chance" in text
