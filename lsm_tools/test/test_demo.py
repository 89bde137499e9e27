"""The README's main-job command, shortened: lsm_demo over real DDS, then its output folder.

One stereo-rig pair in pair mode and one RGB-D keyframe pair in mono mode, at a small camera
resolution, with CameraInfo and odometry on /tf from its own process. Checks that the files
hold real content: labelled points, a 3DGS file with one Gaussian per input pixel, panels,
poses close to the true ones, metric depth, and query answers in odom for a synonym.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("lsm_ros_interfaces")

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    demo = Path(sys.executable).parent / "lsm_demo"
    run = subprocess.run([str(demo), "--out", str(out), "--pairs", "1", "--mono-frames", "5",
                          "--keyframe-interval", "4", "--size", "240x320",
                          "--query", "couch", "bed", "floor", "--map-keyframes", "5"],
                         capture_output=True, text=True, timeout=600)
    return run, out


def test_demo_exits_0_and_prints_the_summary(demo_run):
    run, _ = demo_run
    assert run.returncode == 0, run.stdout + run.stderr
    assert "==== lsm_demo summary ====" in run.stdout
    assert "reconstructions: 2 (1 pair mode, 1 mono mode)" in run.stdout
    assert "result: OK" in run.stdout
    assert "[lsm_demo" in run.stdout  # progress lines while it runs


def test_demo_writes_panels_and_labelled_clouds(demo_run):
    import cv2

    from lsm.io.ply import load_ply_vertices

    _, out = demo_run
    for name in ("pair_000", "mono_000"):
        panel = cv2.imread(str(out / f"{name}.png"))
        assert panel is not None and panel.shape[0] >= 480 and panel.std() > 10, name
        cloud = load_ply_vertices(out / f"{name}_points.ply")
        assert len(cloud) > 100
        assert {"x", "y", "z", "red", "label", "confidence"} <= set(cloud.dtype.names)
        assert np.isfinite(cloud["x"]).all() and cloud["label"].max() < 8
        assert len(np.unique(cloud["label"])) >= 2  # more than one class in a room


def test_demo_builds_queries_saves_and_draws_the_map(demo_run):
    import cv2

    run, out = demo_run
    summary = json.loads((out / "summary.json").read_text())
    labels = [q["label"] for q in summary["map_queries"]]
    assert labels[:5] == ["sofa", "couch", "bed", "table", "chair"] and labels[5] == "couch"
    assert sum(q["success"] for q in summary["map_queries"]) >= 3  # some objects are found
    assert "map query 'couch'" in run.stdout
    floor = summary["map_floor_query"]  # decided by geometry (floor_frame odom)
    assert floor["success"] and floor["on_floor"] > 0.9, floor
    assert "map query 'floor'" in run.stdout
    meta = json.loads((out / "map" / "map.json").read_text())
    assert meta["frame"] == "odom" and meta["units"] == "m" and meta["voxels"] > 1000
    picture = cv2.imread(str(out / "map_topdown.png"))
    assert picture is not None and picture.std() > 10


def test_demo_saves_the_scene_as_3dgs_ply(demo_run):
    from lsm.io.ply import load_ply_vertices

    _, out = demo_run
    g = load_ply_vertices(out / "scene" / "gaussians.ply")
    assert len(g) == 2 * 128 * 128  # one Gaussian per input pixel of the embedded model
    names = set(g.dtype.names)
    assert {"f_dc_0", "opacity", "scale_0", "rot_0", "semantic_0"} <= names
    assert np.isfinite(g["x"]).all()
    cams = json.loads((out / "scene" / "cameras.json").read_text())
    assert cams["frame_id"] == "odom" and cams["units"] == "m"  # placed in the world by TF
    R = np.asarray(cams["c2w"][0])[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-4)
    assert load_ply_vertices(out / "scene" / "points.ply").size > 100


def test_demo_poses_hold_the_relative_rotation(demo_run):
    _, out = demo_run
    poses = json.loads((out / "poses.json").read_text())
    assert [p["mode"] for p in poses] == ["pair", "mono"]
    for p in poses:
        assert p["rotation_error_deg"] < 10.0, p
        # the embedded model's focal estimate is ~25 % short on this scene; this catches a
        # gross failure (wrong units, resolution mapping), not the model's accuracy
        assert abs(p["estimated_focal_px"] / p["true_focal_px"] - 1) < 0.4, p


def test_demo_poses_move_the_camera_the_right_way(demo_run):
    """A gross-error check of the published pose convention on the demo's first pair.

    The camera moves 16 cm, mostly sideways; an inverted c2w/w2c gives ~120-180 deg, swapped
    axes ~90 deg.  The shipped model measures 67 deg on this pair (3-69 deg over the
    ``make demo`` run): a short baseline makes the direction ill-conditioned, and the
    model's accuracy is asserted as a median over held-out pairs in
    test_embedded_model_quality.py.  Here: the direction is within 80 deg and the motion
    along the dominant axis of the true translation has the right sign.
    """
    _, out = demo_run
    for p in json.loads((out / "poses.json").read_text()):
        assert p["translation_direction_error_deg"] < 80.0, p
        est = np.asarray(p["estimated_c2w"])[:3, 3]
        true = np.asarray(p["true_c2w"])[:3, 3]
        axis = int(np.argmax(np.abs(true)))
        assert np.sign(est[axis]) == np.sign(true[axis]), (est, true)


def test_demo_queries_include_a_synonym_and_a_present_class(demo_run):
    _, out = demo_run
    summary = json.loads((out / "summary.json").read_text())
    queries = summary["queries"]
    assert {q["label"] for q in queries} == {"couch", "bed", "floor"}
    floor = [q for q in queries if q["label"] == "floor"]
    # same bound as the pair-mode test (test_ros_node_pair); measured 0.56 on this scene with
    # the shipped model, 0.30 with the previous one
    assert all(q["success"] and q["iou"] > 0.25 for q in floor), floor
    couch = [q for q in queries if q["label"] == "couch"]
    assert all(q["true_class"] == "sofa" for q in couch)
    # the synonym finds the sofa (measured IoU 0.78-0.84 with the shipped model)
    assert all(q["success"] and q["iou"] > 0.3 for q in couch), couch
    assert summary["problems"] == []


def test_demo_outputs_are_metric_in_the_world_frame(demo_run):
    """Stereo (block matching on the rectified rig) and depth (RGB-D) give the scale: the
    published depth is within a few per cent of the truth, and the synonym's answer lies
    on the sofa in odom."""
    _, out = demo_run
    summary = json.loads((out / "summary.json").read_text())
    for d in summary["depth"]:
        assert d["units"] == "m", d
        assert abs(d["scale_error"]) < 0.05 and d["abs_rel"] < 0.15, d
    assert {d["scale_source"].split(":")[0] for d in summary["depth"]} == {"stereo", "depth"}
    couch = [q for q in summary["queries"] if q["label"] == "couch"]
    assert all(q["frame"] == "odom" and q["units"] == "m" for q in couch)
    assert all(q["centroid_error_m"] < 0.3 for q in couch), couch

