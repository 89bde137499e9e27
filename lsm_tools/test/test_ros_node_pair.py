"""lsm_node in pair mode, its own process over real DDS: a procedural image pair in,
cloud, poses, camera info, label/depth/rendered images and /lsm/query answers out.

The node runs the embedded model (set LSM_TEST_CHECKPOINT to test another checkpoint).
Quality tests (labels, pose, query IoU) hold for a reasonably trained model; they are
separate from the structural tests so a weak model is visible as exactly those failures.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("lsm_ros_interfaces")

from ros_harness import NodeClient, cohen_kappa, diagnostic_values, image_array, image_msg, pose_matrix, stamp_of  # noqa: E402

from lsm.specs import DEFAULT_LABELS  # noqa: E402
from lsm_tools.process import call_query, start_lsm_node, stop_process  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SEED = 1  # room with chair, table and sofa in view, no bed
SIZE = (240, 320)  # (H, W) camera images: not the model's square input
FURNITURE = ("chair", "table", "sofa", "bed")

CONFIDENCE_THRESHOLD = 1.05  # the embedded model's confidences lie in 1.0-1.3: filters some


def checkpoint_args():
    ckpt = os.environ.get("LSM_TEST_CHECKPOINT", "")
    args = ["-p", f"confidence_threshold:={CONFIDENCE_THRESHOLD}"]
    return args + (["-p", f"checkpoint:={ckpt}"] if ckpt else [])


@pytest.fixture(scope="module")
def scene():
    from lsm_train.data.procedural import generate_sample

    return generate_sample(SEED, size=SIZE)


@pytest.fixture(scope="module")
def session(rclpy_node, params_file, tmp_path_factory, scene):
    """Start the node, publish the pair until every output arrived; yields the state."""
    log = tmp_path_factory.mktemp("pair") / "lsm_node.log"
    proc = start_lsm_node(params_file, checkpoint_args(), log_path=log)
    client = NodeClient("lsm_test_pair", ["/image_0", "/image_1"])
    sent = []

    def publish_pair():
        if client.received["points"]:
            return
        t = time.time()
        sent.append(t)
        client.publish(0, image_msg(scene.context[0].image, t, "cam0_optical"))
        client.publish(1, image_msg(scene.context[1].image, t + 0.01, "cam1_optical",
                                    encoding="bgr8"))

    outputs = ("points", "poses", "camera_pose", "camera_info", "labels", "labels_color", "depth",
               "rendered")
    try:
        ok = client.spin_until(lambda: all(client.received[k] for k in outputs), timeout=180,
                               every=publish_pair, period=5.0, process=proc)
        assert ok, f"missing outputs {[k for k in outputs if not client.received[k]]}:\n" \
                   + log.read_text()
        yield dict(proc=proc, client=client, sent=sent, log=log)
    finally:
        client.destroy()
        code = stop_process(proc)
        assert code == 0, f"lsm_node exited with {code}:\n{log.read_text()}"


def _first(session, key):
    return session["client"].received[key][0]


def test_outputs_share_the_reference_stamp_and_frame(session):
    sent = session["sent"]
    for key in ("points", "poses", "camera_pose", "camera_info", "labels", "labels_color", "depth",
                "rendered"):
        msg = _first(session, key)
        assert msg.header.frame_id == "cam0_optical", key
        assert any(abs(stamp_of(msg.header) - t) < 1e-6 for t in sent), key


def test_point_cloud_layout(session):
    from lsm_ros.messages import read_pointcloud

    msg = _first(session, "points")
    fields = {f.name: (f.datatype, f.offset) for f in msg.fields}
    assert fields == {"x": (7, 0), "y": (7, 4), "z": (7, 8), "rgb": (7, 12),
                      "label": (6, 16), "confidence": (7, 20)}
    cloud = read_pointcloud(msg)
    n = len(cloud["points"])
    assert n > 100
    assert np.isfinite(cloud["points"]).all()
    assert cloud["labels"].max() < len(DEFAULT_LABELS)
    assert (cloud["confidence"] >= CONFIDENCE_THRESHOLD).all()
    assert n < 2 * 128 * 128 // 4  # the threshold dropped some of the stride-2 pixels
    assert cloud["colors"].std() > 5  # real image colours, not a constant


def test_images_are_at_the_camera_resolution(session):
    h, w = SIZE
    expected = {"labels": ("mono8", (h, w)), "labels_color": ("rgb8", (h, w, 3)),
                "depth": ("32FC1", (h, w)), "rendered": ("rgb8", (h, w, 3))}
    for key, (encoding, shape) in expected.items():
        msg = _first(session, key)
        assert msg.encoding == encoding
        assert image_array(msg).shape == shape
    labels = image_array(_first(session, "labels"))
    assert set(np.unique(labels)) <= set(range(len(DEFAULT_LABELS))) | {255}
    depth = image_array(_first(session, "depth"))
    assert np.isfinite(depth).mean() > 0.5 and (depth[np.isfinite(depth)] > 0).all()
    info = _first(session, "camera_info")
    assert (info.width, info.height) == (w, h)
    K = np.array(info.k).reshape(3, 3)
    assert K[0, 0] > 0 and K[1, 1] > 0 and 0 < K[0, 2] < w and 0 < K[1, 2] < h


def test_poses_hold_both_cameras_with_the_reference_at_identity(session):
    poses = _first(session, "poses")
    assert len(poses.poses) == 2
    assert np.allclose(pose_matrix(poses.poses[0]), np.eye(4), atol=1e-5)
    T1 = pose_matrix(poses.poses[1])
    assert np.allclose(T1[:3, :3] @ T1[:3, :3].T, np.eye(3), atol=1e-4)


def test_camera_pose_carries_view_1_and_a_checked_confidence(session):
    """~/camera_pose: the same camera as ~/poses' second pose, with a confidence in [0, 1]
    judged from the images (no sensors here), and the reason in words."""
    msg = _first(session, "camera_pose")
    assert np.allclose(pose_matrix(msg.pose), pose_matrix(_first(session, "poses").poses[1]),
                       atol=1e-5)
    assert 0.0 <= msg.confidence <= 1.0
    assert msg.units == "model units"
    assert ("matches" in msg.check or "inliers" in msg.check), msg.check
    assert msg.source.startswith("pnp") or "fallback" in msg.source, msg.source


def _true_labels_at_points(session, scene):
    from lsm_ros.messages import read_pointcloud

    cloud = read_pointcloud(_first(session, "points"))
    K = np.array(_first(session, "camera_info").k).reshape(3, 3)
    p = cloud["points"].astype(np.float64)
    front = p[:, 2] > 1e-6
    u = np.floor(K[0, 0] * p[front, 0] / p[front, 2] + K[0, 2]).astype(int)
    v = np.floor(K[1, 1] * p[front, 1] / p[front, 2] + K[1, 2]).astype(int)
    inside = (u >= 0) & (u < SIZE[1]) & (v >= 0) & (v < SIZE[0])
    truth = scene.context[0].labels[v[inside], u[inside]].astype(int)
    pred = cloud["labels"][front][inside].astype(int)
    valid = truth < len(DEFAULT_LABELS)
    return pred[valid], truth[valid]


def test_quality_point_labels_agree_with_true_classes(session, scene):
    """Points projected into the reference camera: labels agree well beyond chance."""
    pred, truth = _true_labels_at_points(session, scene)
    assert len(pred) > 100
    kappa = cohen_kappa(pred, truth, len(DEFAULT_LABELS))
    assert kappa > 0.3, f"Cohen's kappa {kappa:.2f} (accuracy {(pred == truth).mean():.2f})"


def test_quality_label_image_agrees_with_true_classes(session, scene):
    pred = image_array(_first(session, "labels")).astype(int)
    truth = scene.context[0].labels.astype(int)
    valid = (pred != 255) & (truth < len(DEFAULT_LABELS))
    kappa = cohen_kappa(pred[valid], truth[valid], len(DEFAULT_LABELS))
    assert kappa > 0.3, f"Cohen's kappa {kappa:.2f}"


def _pose_errors(session, scene):
    from lsm.geometry.pose_metrics import relative_pose_errors

    est = pose_matrix(_first(session, "poses").poses[1])
    gt = np.linalg.inv(scene.context[0].c2w) @ scene.context[1].c2w
    return tuple(float(np.asarray(e).reshape(-1)[0]) for e in relative_pose_errors(est, gt))


def test_quality_relative_rotation_is_near_the_truth(session, scene):
    rot_err, _ = _pose_errors(session, scene)
    print(f"rotation error {rot_err:.1f} deg")
    # one scene: 4.6 deg with the shipped model (4.7 with stage 14, 15.0 with stage 9); median
    # over 24 held-out pairs 3.5 deg (3.8, 7.2; asserted in test_embedded_model_quality.py).
    # Catches a broken pose path (wrong frame or axis order: errors of 90-180 deg) and a
    # clearly worse model.
    assert rot_err < 15.0, f"rotation error {rot_err:.1f} deg"


def test_quality_relative_translation_direction_is_near_the_truth(session, scene):
    _, dir_err = _pose_errors(session, scene)
    print(f"translation direction error {dir_err:.1f} deg")
    # one scene: 15.0 deg with the shipped model (14.0 with stage 14, a strict xfail before stage 12);
    # median over 24 held-out pairs 21 deg (22 with stage 14; asserted in test_embedded_model_quality.py)
    assert dir_err < 30.0, f"translation direction error {dir_err:.1f} deg (up to scale)"


def _query(session, label, **kw):
    return call_query(session["client"].node, label, server_process=session["proc"],
                      timeout=60.0, **kw)


def _present_and_absent(scene):
    both = np.concatenate([scene.context[0].labels.ravel(), scene.context[1].labels.ravel()])
    counts = {name: int((scene.context[0].labels == DEFAULT_LABELS.index(name)).sum())
              for name in FURNITURE}
    present = max(counts, key=counts.get)
    absent = [n for n in FURNITURE if not (both == DEFAULT_LABELS.index(n)).any()]
    return present, counts[present], absent


def test_query_answers_are_well_formed(session):
    """Any label is accepted (open vocabulary); answers are masks or clear 'no match'es."""
    h, w = SIZE
    for label, view in (("couch", -1), ("chair", 1), ("a wooden table", 0)):
        r = _query(session, label, view=view, threshold=0.3)
        if r.success:
            assert (r.mask.width, r.mask.height, r.mask.encoding) == (w, h, "mono8")
            assert r.mask.header.frame_id == ("cam1_optical" if view == 1 else "cam0_optical")
            assert r.header.frame_id == "cam0_optical"
            assert r.points.width > 0 and 0.0 < r.score <= 1.0
            assert all(np.isfinite([r.centroid.x, r.centroid.y, r.centroid.z]))
        else:
            assert r.message.startswith(f"no match for {label!r} above threshold"), r.message


def test_query_answers_carry_the_age_of_their_reconstruction(session):
    first = _query(session, "floor")
    time.sleep(1.0)
    second = _query(session, "floor")
    assert first.success and 0.0 < first.age and second.age >= first.age + 0.9


def test_fifty_concurrent_queries_from_five_clients_are_all_answered(session):
    """Planners retry and pile up: 5 clients send 10 requests each at once; every request
    gets an answer (more than the 10 a default service queue keeps: it used to lose all but
    11)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from lsm_ros_interfaces.srv import Query

    nodes = [rclpy.create_node(f"lsm_test_planner_{i}") for i in range(5)]
    executor = SingleThreadedExecutor()
    try:
        clients = [n.create_client(Query, "/lsm/query") for n in nodes]
        for n in nodes:
            executor.add_node(n)
        assert all(c.wait_for_service(timeout_sec=20) for c in clients)
        labels = ["floor", "wall", "chair", "table", "couch", "a red mug", "sofa", "bed",
                  "ceiling", "door"]
        futures = [c.call_async(Query.Request(label=label, threshold=0.0, view=-1))
                   for c in clients for label in labels]
        end = time.monotonic() + 240
        while not all(f.done() for f in futures) and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
        answered = [f.result() for f in futures if f.done()]
        print(f"{len(answered)} of {len(futures)} answered in {240 - (end - time.monotonic()):.1f} s")
        assert len(answered) == 50
        assert all(r.success or r.message for r in answered)
    finally:
        executor.shutdown()
        for n in nodes:
            n.destroy_node()


def test_tf_of_the_estimated_cameras_reaches_another_process(session):
    """/tf from the node (tf2_ros, or its tf2_msgs fallback on this PyPI install) holds the
    second camera in the reference optical frame, as ~/poses does."""
    from lsm_ros.messages import quaternion_to_rotation

    client = session["client"]
    assert client.spin_until(lambda: client.received["tf"], timeout=30, process=session["proc"])
    t = next(t for m in client.received["tf"] for t in m.transforms
             if t.child_frame_id == "cam0_optical_lsm_view_1")
    assert t.header.frame_id == "cam0_optical"
    pose = pose_matrix(_first(session, "poses").poses[1])
    v, q = t.transform.translation, t.transform.rotation
    np.testing.assert_allclose([v.x, v.y, v.z], pose[:3, 3], atol=1e-6)
    np.testing.assert_allclose(quaternion_to_rotation([q.x, q.y, q.z, q.w]), pose[:3, :3],
                               atol=1e-6)


def test_detections_box_the_points_of_each_label(session):
    from lsm_ros.messages import read_pointcloud

    client = session["client"]
    assert client.spin_until(lambda: client.received["detections"], timeout=30,
                             process=session["proc"])
    msg = client.received["detections"][0]
    cloud = read_pointcloud(_first(session, "points"))
    assert msg.header.frame_id == "cam0_optical" and msg.detections
    for det in msg.detections:
        label = det.results[0].hypothesis.class_id
        points = cloud["points"][cloud["labels"] == DEFAULT_LABELS.index(label)]
        assert len(points) >= 30 and 0.0 <= det.results[0].hypothesis.score <= 1.0
        c = det.bbox.center.position
        np.testing.assert_allclose([c.x, c.y, c.z], np.median(points, axis=0), rtol=1e-5, atol=1e-5)
        lo, hi = np.percentile(points, [2, 98], axis=0)
        np.testing.assert_allclose([det.bbox.size.x, det.bbox.size.y, det.bbox.size.z], hi - lo,
                                   rtol=1e-5, atol=1e-5)


def test_an_answered_query_is_published_as_a_detection_and_markers(session):
    client = session["client"]
    before = len(client.received["query_markers"])
    r = _query(session, "floor", threshold=0.3)
    assert r.success, r.message
    assert client.spin_until(lambda: len(client.received["query_markers"]) > before,
                             timeout=20, process=session["proc"])
    det = client.received["query_detections"][-1].detections[0]
    assert det.results[0].hypothesis.class_id == "floor"
    c = det.bbox.center.position
    np.testing.assert_allclose([c.x, c.y, c.z], [r.centroid.x, r.centroid.y, r.centroid.z],
                               rtol=1e-5, atol=1e-5)
    cube, text = client.received["query_markers"][-1].markers
    assert cube.type == cube.CUBE and text.text.startswith("floor")
    assert cube.header.frame_id == "cam0_optical"


def test_query_unknown_view_is_a_clear_failure(session):
    r = _query(session, "chair", view=2)
    assert not r.success and r.message.startswith("unknown view 2")


def _mask_iou(response, truth) -> float:
    mask = image_array(response.mask) > 0
    return float((mask & truth).sum() / max(1, (mask | truth).sum()))


@pytest.mark.parametrize("label", ["floor", "wall"])
def test_query_mask_overlaps_a_large_class_in_view(session, scene, label):
    """The room's floor and walls: classes the embedded model already segments."""
    truth = scene.context[0].labels == DEFAULT_LABELS.index(label)
    assert truth.mean() > 0.05, f"the test scene shows too little {label}"
    r = _query(session, label)
    assert r.success, r.message
    iou = _mask_iou(r, truth)
    print(f"{label!r}: IoU {iou:.2f}, score {r.score:.2f}")
    assert iou > 0.25, f"IoU of the {label!r} mask: {iou:.2f}"
    # its 3-D points lie in the reference camera's view, in front of it (REP-103 optical: z forward)
    from lsm_ros.messages import read_pointcloud
    pts = read_pointcloud(r.points)["points"]
    assert len(pts) > 100 and np.median(pts[:, 2]) > 0


def test_quality_query_mask_overlaps_the_true_object(session, scene):
    present, pixels, absent = _present_and_absent(scene)
    assert pixels > 0.03 * SIZE[0] * SIZE[1]
    r = _query(session, present)
    assert r.success, r.message
    iou = _mask_iou(r, scene.context[0].labels == DEFAULT_LABELS.index(present))
    assert iou > 0.25, f"IoU of the {present!r} mask: {iou:.2f}"
    for label in absent:
        other = _query(session, label)
        assert not other.success or other.score < r.score, (label, other.score, r.score)


def test_diagnostics_report_rates_drops_device_and_units(session):
    client = session["client"]
    assert client.spin_until(lambda: any(
        diagnostic_values(m).get("reconstructions", "0") != "0"
        for m in client.received["diagnostics"]), timeout=10)
    values = diagnostic_values(client.received["diagnostics"][-1])
    for key in ("input rate (images/s)", "processing rate (reconstructions/s)", "latency (s)",
                "queue drops", "device", "inputs dropped (malformed)", "stamp age at output (s)",
                "pose confidence", "pose check"):
        assert key in values
    # latency = pair formed -> outputs published, on the node's monotonic clock: a few
    # seconds on CPU whatever the image stamps are (this test's stamps are not wall time)
    assert 0.0 < float(values["latency (s)"]) < 120.0, values
    assert values["device"] == "cpu" and values["model state"] == "ready"
    assert "up to an unknown global scale" in values["units"]


def test_labels_changed_at_run_time_apply_to_the_next_cloud(session, scene):
    from rclpy.parameter import Parameter
    from test_ros_node import _set_parameters

    from lsm_ros.messages import read_pointcloud

    client = session["client"]
    result = _set_parameters(client.node, "/lsm_node",
                             [Parameter("labels", value=["floor", "wall", "chair"])])
    assert result[0].successful, result[0].reason
    try:
        client.received["points"].clear()
        t = time.time()

        def publish():
            client.publish(0, image_msg(scene.context[0].image, t, "cam0_optical"))
            client.publish(1, image_msg(scene.context[1].image, t, "cam1_optical"))

        assert client.spin_until(
            lambda: any(abs(stamp_of(m.header) - t) < 1e-6 for m in client.received["points"]),
            timeout=90, every=publish, period=10.0, process=session["proc"])
        msg = [m for m in client.received["points"] if abs(stamp_of(m.header) - t) < 1e-6][0]
        labels = read_pointcloud(msg)["labels"]
        assert labels.max() < 3 and len(np.unique(labels)) >= 1
    finally:
        _set_parameters(client.node, "/lsm_node",
                        [Parameter("labels", value=list(DEFAULT_LABELS))])
