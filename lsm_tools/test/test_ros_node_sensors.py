"""lsm_node with the robot's sensors, three processes over real DDS: the node, a simulated
robot in this process (images, CameraInfo, depth: lsm_tools.robot_sim) and, where TF is
used, a separate odometry process publishing odom -> camera on /tf.

* an RGB-D camera moving through a procedural room, world_frame odom: the cloud and the
  query answers are metric, in odom, within 2 cm of the true world coordinates; with
  floor_frame odom (the room's floor is its z = 0) the floor query, of the latest pair
  and of the map, is the floor plane;
* the same camera without TF: each pair's pose comes from its two depth images
  (depth_pose), within millimetres of the truth on ~/camera_pose;
* a rectified stereo rig (the right CameraInfo's P holds the baseline): metric by block
  matching, without depth or TF;
* bad sensor input (CameraInfo of another size, a zero K, depth of another size or
  encoding, TF that never comes): each reported once with its reason, the node falls back
  and keeps serving.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("lsm_ros_interfaces")
pytest.importorskip("tf2_msgs")

from ros_harness import NodeClient, diagnostic_values, nearest_distances, world_points  # noqa: E402

from lsm_tools.process import call_query, start_lsm_node, stop_process  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SIZE = (240, 320)


def _wait_active(client, proc, log, timeout=120):
    assert client.spin_until(lambda: any(
        diagnostic_values(m).get("lifecycle state") == "active"
        and diagnostic_values(m).get("model state", "").startswith("ready")
        for m in client.received["diagnostics"]), timeout=timeout, process=proc), \
        log.read_text()[-3000:]


def test_rgbd_camera_with_odometry_gives_metric_outputs_in_the_world_frame(params_file, tmp_path,
                                                                            rclpy_node):
    from lsm_ros.messages import read_pointcloud, stamp_seconds
    from lsm_tools.robot_sim import CameraPublisher, save_poses
    from lsm_train.data.procedural import generate_sequence

    frames = generate_sequence(7, 9, size=SIZE)
    stamps = [3000.0 + 0.5 * i for i in range(len(frames))]
    save_poses(tmp_path / "poses.npz", stamps, [f.c2w for f in frames], "odom", "rgbd_optical")
    odometry = subprocess.Popen([sys.executable, "-m", "lsm_tools.robot_sim", "tf",
                                 str(tmp_path / "poses.npz")])
    log = tmp_path / "node.log"
    proc = start_lsm_node(params_file, [
        "-r", "__ns:=/rgbd_robot", "-p", "mode:=mono", "-p", "image_topics:=[/rgbd/image]",
        "-p", "camera_info_topics:=[/rgbd/camera_info]", "-p", "depth_topics:=[/rgbd/depth]",
        "-p", "odom_frame:=odom", "-p", "world_frame:=odom", "-p", "floor_frame:=odom",
        "-p", "keyframe_interval:=4",
        "-p", "keyframe_min_seconds:=0.0", "-p", "keyframe_min_translation:=0.0",
        "-p", "qos:=reliable", "-p", "pending_pairs:=4"], log_path=log)
    client = NodeClient("lsm_test_rgbd", [], namespace_node="/rgbd_robot/lsm_node")
    camera = CameraPublisher(client.node, "/rgbd", depth=True)
    try:
        _wait_active(client, proc, log)
        assert client.spin_until(camera.subscribed, timeout=30)
        client.spin_for(2.0)  # the node's TF buffer gets the odometry
        for frame, stamp in zip(frames, stamps):
            camera.publish(frame.image, frame.K, stamp, "rgbd_optical", depth=frame.depth)
            client.spin_for(0.25)
        want = {stamps[4], stamps[8]}  # keyframes 4 and 8 pair with 0 and 4
        assert client.spin_until(lambda: want <= {round(stamp_seconds(m.header), 6)
                                                  for m in client.received["points"]},
                                 timeout=120, process=proc), log.read_text()[-3000:]
        cloud_msg = next(m for m in client.received["points"]
                         if abs(stamp_seconds(m.header) - stamps[8]) < 1e-6)
        assert cloud_msg.header.frame_id == "odom"
        truth = world_points([frames[4], frames[8]])
        d = nearest_distances(read_pointcloud(cloud_msg)["points"], truth)
        print(f"cloud vs true world points: median {1000 * np.median(d):.1f} mm, "
              f"95 % {1000 * np.percentile(d, 95):.1f} mm")
        assert np.percentile(d, 95) < 0.02
        answer = call_query(client.node, "floor", service="/rgbd_robot/lsm/query",
                            server_process=proc)
        assert answer.success and answer.units == "m" and answer.scale_source == "depth"
        assert answer.header.frame_id == "odom"
        floor_points = read_pointcloud(answer.points)["points"]
        qd = nearest_distances(floor_points, truth)
        assert np.percentile(qd, 95) < 0.02
        # floor_frame odom (z up, the room's floor at z = 0): the answer is the floor plane
        assert "floor from geometry" in answer.message, answer.message
        assert np.percentile(np.abs(floor_points[:, 2]), 95) < 0.05, floor_points[:, 2]
        # ... and the map remembers it: its floor instances lie on z = 0 too
        mapped = None
        for _ in range(20):  # the map fuses each pair right after it is published
            mapped = call_query(client.node, "floor", service="/rgbd_robot/lsm/query",
                                scope=1, server_process=proc)
            if mapped.success and len(mapped.instances) > 0:
                break
            client.spin_for(0.5)
        assert mapped.success, mapped.message
        map_z = read_pointcloud(mapped.points)["points"][:, 2]
        assert np.percentile(np.abs(map_z), 95) < 0.05, map_z
        values = diagnostic_values(client.received["diagnostics"][-1])
        assert values["units"] == "m" and values["3-D output frame"] == "odom", values
        assert values["scale source"].startswith("depth"), values
        assert values["floor"].startswith("floor from geometry"), values
    finally:
        client.destroy()
        odometry.kill()
        odometry.wait()
        assert stop_process(proc) == 0, log.read_text()[-3000:]


def test_rgbd_camera_without_tf_takes_its_pose_from_the_depth_images(params_file, tmp_path,
                                                                     rclpy_node):
    """Mono mode, depth and CameraInfo, no TF at all: each keyframe pair's pose is refined
    on the two depth images (depth_pose). On these frames the image pose made metric is
    0.4-0.7 m off in translation (the network's length); the depth gives 1 mm."""
    import transforms3d

    from lsm_ros.messages import stamp_seconds
    from lsm_tools.robot_sim import CameraPublisher
    from lsm_train.data.procedural import generate_sequence

    frames = generate_sequence(7, 9, size=SIZE)
    stamps = [5000.0 + 0.5 * i for i in range(len(frames))]
    log = tmp_path / "node.log"
    proc = start_lsm_node(params_file, [
        "-r", "__ns:=/handheld", "-p", "mode:=mono", "-p", "image_topics:=[/rgbd/image]",
        "-p", "camera_info_topics:=[/rgbd/camera_info]", "-p", "depth_topics:=[/rgbd/depth]",
        "-p", "keyframe_interval:=4", "-p", "keyframe_min_seconds:=0.0",
        "-p", "keyframe_min_translation:=0.0", "-p", "qos:=reliable", "-p", "pending_pairs:=4"],
        log_path=log)
    client = NodeClient("lsm_test_handheld", [], namespace_node="/handheld/lsm_node")
    camera = CameraPublisher(client.node, "/rgbd", depth=True)
    try:
        _wait_active(client, proc, log)
        assert client.spin_until(camera.subscribed, timeout=30)
        for frame, stamp in zip(frames, stamps):
            camera.publish(frame.image, frame.K, stamp, "rgbd_optical", depth=frame.depth)
            client.spin_for(0.25)
        pairs = {stamps[4]: (4, 0), stamps[8]: (8, 4)}  # keyframe -> (reference, view 1)

        def seen():
            return {round(stamp_seconds(m.header), 6) for m in client.received["camera_pose"]}
        assert client.spin_until(lambda: set(pairs) <= seen(), timeout=120, process=proc), \
            log.read_text()[-3000:]
        for msg in client.received["camera_pose"]:
            ref, other = pairs[round(stamp_seconds(msg.header), 6)]
            truth = np.linalg.inv(frames[ref].c2w) @ frames[other].c2w  # view 1 in view 0's camera
            q = msg.pose.orientation
            R = transforms3d.quaternions.quat2mat([q.w, q.x, q.y, q.z])
            t = np.array([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z])
            angle = np.degrees(np.arccos(np.clip((np.trace(R.T @ truth[:3, :3]) - 1) / 2, -1, 1)))
            offset = np.linalg.norm(t - truth[:3, 3])
            print(f"pair {ref}-{other}: rotation {angle:.2f} deg, translation {1000 * offset:.1f} mm "
                  f"(moved {1000 * np.linalg.norm(truth[:3, 3]):.0f} mm), confidence {msg.confidence:.2f}")
            assert msg.header.frame_id == "rgbd_optical" and msg.units == "m"
            assert "pose from the depth images" in msg.source, msg.source
            assert msg.check.startswith("depth ICP"), msg.check
            assert angle < 0.5 and offset < 0.02 and msg.confidence > 0.8
    finally:
        client.destroy()
        assert stop_process(proc) == 0, log.read_text()[-3000:]


def test_rectified_stereo_rig_gives_metric_outputs_without_depth_or_tf(params_file, tmp_path,
                                                                        rclpy_node):
    from lsm_ros.messages import read_pointcloud, stamp_seconds
    from lsm_tools.robot_sim import CameraPublisher, stereo_partner
    from lsm_train.data.procedural import generate_room, generate_sample

    sample = generate_sample(5, size=SIZE)
    left = sample.context[0]
    baseline = 0.12
    right = stereo_partner(generate_room(sample.meta["room_seed"]), left, baseline)
    log = tmp_path / "node.log"
    proc = start_lsm_node(params_file, [
        "-r", "__ns:=/stereo_robot", "-p", "image_topics:=[/left/image, /right/image]",
        "-p", "qos:=reliable"], log_path=log)
    client = NodeClient("lsm_test_stereo", [], namespace_node="/stereo_robot/lsm_node")
    cams = [CameraPublisher(client.node, "/left"), CameraPublisher(client.node, "/right")]
    stamp = 4000.0
    try:
        _wait_active(client, proc, log)
        assert client.spin_until(lambda: all(c.subscribed() for c in cams), timeout=30)

        def publish():
            cams[0].publish(left.image, left.K, stamp, "left_optical")
            cams[1].publish(right, left.K, stamp, "right_optical", baseline=baseline)

        assert client.spin_until(lambda: any(abs(stamp_seconds(m.header) - stamp) < 1e-6
                                             for m in client.received["points"]),
                                 timeout=120, every=publish, period=3.0, process=proc), \
            log.read_text()[-3000:]
        cloud = next(m for m in client.received["points"] if abs(stamp_seconds(m.header) - stamp) < 1e-6)
        assert cloud.header.frame_id == "left_optical"
        left_cam = left.__class__(**{**left.__dict__, "c2w": np.eye(4)})  # truth in left's frame
        d = nearest_distances(read_pointcloud(cloud)["points"], world_points([left_cam]))
        print(f"stereo cloud vs truth: median {1000 * np.median(d):.1f} mm")
        assert np.median(d) < 0.05
        answer = call_query(client.node, "floor", service="/stereo_robot/lsm/query",
                            server_process=proc)
        assert answer.units == "m" and answer.scale_source == "stereo", answer.message
    finally:
        client.destroy()
        assert stop_process(proc) == 0, log.read_text()[-3000:]


def test_bad_sensor_input_is_reported_once_and_the_node_falls_back(params_file, tmp_path,
                                                                  rclpy_node):
    from lsm_ros.messages import array_to_imgmsg, set_stamp, stamp_seconds
    from lsm_tools.robot_sim import camera_info
    from lsm_train.data.procedural import generate_sample

    sample = generate_sample(6, size=SIZE)
    a, b = sample.context
    log = tmp_path / "node.log"
    proc = start_lsm_node(params_file, [
        "-r", "__ns:=/bad_robot", "-p", "image_topics:=[/a/image, /b/image]",
        "-p", "depth_topics:=[/a/depth, /b/depth]", "-p", "world_frame:=map",
        "-p", "qos:=reliable"], log_path=log)
    client = NodeClient("lsm_test_bad_sensors", ["/a/image", "/b/image"],
                        namespace_node="/bad_robot/lsm_node", reliable=True)
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    info = [client.node.create_publisher(CameraInfo, f"/{c}/camera_info", qos) for c in "ab"]
    depth = [client.node.create_publisher(Image, f"/{c}/depth", qos) for c in "ab"]
    try:
        _wait_active(client, proc, log)
        assert client.spin_until(lambda: all(p.get_subscription_count() > 0
                                             for p in client.image_pubs + info + depth), timeout=30)
        for k in range(3):
            stamp = 5000.0 + k
            wrong_size = camera_info(a.K, 640, 480, stamp, "a_optical")  # images are 320x240
            zero_k = camera_info(np.zeros((3, 3)), 320, 240, stamp, "b_optical")
            info[0].publish(wrong_size)
            info[1].publish(zero_k)
            small = array_to_imgmsg(np.ones((120, 160), np.float32), "32FC1")
            colour = array_to_imgmsg(np.zeros((240, 320, 3), np.uint8), "rgb8")
            for msg, pub in ((small, depth[0]), (colour, depth[1])):
                set_stamp(msg, stamp)
                pub.publish(msg)
            for cam, view in enumerate((a, b)):
                msg = array_to_imgmsg(view.image, "rgb8")
                set_stamp(msg, stamp)
                msg.header.frame_id = f"{'ab'[cam]}_optical"
                client.publish(cam, msg)
            client.spin_for(0.5)
        assert client.spin_until(lambda: sum(1 for m in client.received["points"]
                                             if stamp_seconds(m.header) >= 5000.0) >= 2,
                                 timeout=120, process=proc), log.read_text()[-3000:]
        client.spin_for(1.0)
        text = log.read_text()
        for reason in ("CameraInfo is for 640x480 images, the images are 320x240",
                       "CameraInfo K is not a valid camera matrix",
                       "depth image is 160x120, the colour image 320x240",
                       "depth image encoding 'rgb8' is not 16UC1 (mm) or 32FC1 (m)",
                       "map <- a_optical"):
            assert text.count(reason) == 1, (reason, text[-4000:])
        cloud = client.received["points"][-1]
        assert cloud.header.frame_id == "a_optical"  # no TF to map: stays in the camera frame
        answer = call_query(client.node, "floor", service="/bad_robot/lsm/query",
                            server_process=proc)
        assert answer.units == "model units" and answer.scale_source == "none"
    finally:
        client.destroy()
        assert stop_process(proc) == 0, log.read_text()[-3000:]
