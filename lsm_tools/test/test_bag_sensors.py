"""A robot's bag with its sensors, replayed offline: a rectified stereo rig's images with
their CameraInfo (the right one's P holds the baseline) and the rig's pose on /tf_static.
``lsm_bag run --lockstep --launch-node`` must give metric clouds in the world frame: the
CameraInfo messages play beside the images, and /tf_static is latched so that the node's
tf2 listener, which subscribes after the player starts, still receives it."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")
pytest.importorskip("lsm_ros_interfaces")

from bag_helpers import lsm_bag  # noqa: E402
from ros_harness import diagnostic_values, nearest_distances, stamp_of, world_points  # noqa: E402

from lsm_tools.bag_io import BagMessage, deserialize, latched_topics, read_bag, write_bag  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

BASELINE = 0.12


def _stereo_bag(path, frames=2):
    from rclpy.serialization import serialize_message

    from lsm_ros.messages import array_to_imgmsg, set_stamp
    from lsm_tools.robot_sim import camera_info, stereo_partner, tf_message
    from lsm_train.data.procedural import generate_room, generate_sample

    sample = generate_sample(5, size=(240, 320))
    left = sample.context[0]
    right = stereo_partner(generate_room(sample.meta["room_seed"]), left, BASELINE)
    shift = np.eye(4)
    shift[0, 3] = BASELINE
    start = 1_700_000_000 * 10**9  # ns; ROS Time keeps whole seconds in an int32
    messages = [BagMessage("/tf_static", "tf2_msgs/msg/TFMessage", start, serialize_message(
        tf_message("odom", "left_optical", left.c2w, 0.0)))]
    for i in range(frames):
        ns = start + (i + 1) * 200_000_000
        stamp = ns * 1e-9
        for cam, rgb, baseline in (("left", left.image, 0.0), ("right", right, BASELINE)):
            frame = f"{cam}_optical"
            img = array_to_imgmsg(np.ascontiguousarray(rgb), "rgb8")
            set_stamp(img, stamp)
            img.header.frame_id = frame
            info = camera_info(left.K, 320, 240, stamp, frame, baseline)
            # a driver logs the image first and its CameraInfo just after
            messages.append(BagMessage(f"/{cam}/image", "sensor_msgs/msg/Image", ns,
                                       serialize_message(img)))
            messages.append(BagMessage(f"/{cam}/camera_info", "sensor_msgs/msg/CameraInfo",
                                       ns + 1000, serialize_message(info)))
    return write_bag(path, messages), left


def test_stereo_bag_with_camera_info_and_tf_static_gives_metric_clouds_in_the_world_frame(
        tmp_path, params_file, rclpy_node):
    bag, left = _stereo_bag(tmp_path / "robot")
    assert latched_topics(bag) == ["/tf_static"]
    log = tmp_path / "lsm_node.log"
    node_args = [f"--node-arg={a}" for a in (
        "-p", "image_topics:=[/left/image, /right/image]", "-p", "world_frame:=odom",
        "-p", "qos:=reliable")]
    run = lsm_bag("run", bag, tmp_path / "out", "--lockstep", "--launch-node",
                  "--params-file", params_file, *node_args, "--node-log", log, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr + (log.read_text() if log.exists() else "")

    recorded = {}
    for m in read_bag(tmp_path / "out"):
        recorded.setdefault(m.topic, []).append(deserialize(m))
    clouds = sorted(recorded["/lsm_node/points"], key=lambda m: stamp_of(m.header))
    assert len(clouds) == 2, run.stdout  # lockstep: one answer per frame group
    from lsm_ros.messages import read_pointcloud

    truth = world_points([left])  # the left camera's pixels in odom, metres
    values = [diagnostic_values(m) for m in recorded["/diagnostics"]]
    why = [v.get("3-D output frame") for v in values if "3-D output frame" in v]
    for cloud in clouds:
        # on failure: what the node said about its output frame, and its log's end
        assert cloud.header.frame_id == "odom", (why, log.read_text()[-3000:] if log.exists() else "")
        d = nearest_distances(read_pointcloud(cloud)["points"], truth)
        print(f"bag stereo cloud vs truth in odom: median {1000 * np.median(d):.1f} mm")
        assert np.median(d) < 0.05  # metres: the CameraInfo baseline and /tf_static were used
    last = next(v for v in reversed(values) if "scale source" in v)
    assert last["units"] == "m" and last["3-D output frame"] == "odom", last
    assert last["scale source"].startswith("stereo"), last
