"""A simulated robot on procedural rooms, for the demo and the system tests: what a real
camera driver and odometry publish.

* :class:`CameraPublisher`: ``<camera>/image`` (rgb8), ``<camera>/camera_info`` (pinhole K;
  for the right camera of a rectified rig P[0][3] = -fx * B) and optionally
  ``<camera>/depth`` (32FC1 metres, REP-118, aligned with the image, invalid pixels NaN).
* :func:`stereo_partner`: the image a second camera ``baseline`` metres to the right of a
  procedural view sees (a rectified rig: same intrinsics and orientation).
* ``python -m lsm_tools.robot_sim tf POSES.npz``: a separate process that publishes the
  camera's pose on /tf (``odom`` -> camera optical frame) for every stamp in the file,
  then again every 0.5 s (volatile /tf: late subscribers still get them) until killed.

The procedural world frame is ``odom`` here: metres, z up; poses are camera-to-world.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

import numpy as np

from lsm_ros.messages import array_to_imgmsg, rotation_to_quaternion, set_stamp


def camera_info(K: np.ndarray, width: int, height: int, stamp: float, frame_id: str,
                baseline: float = 0.0):
    """sensor_msgs/CameraInfo of a pinhole camera (no distortion). ``baseline`` > 0: the
    right camera of a rectified rig, P[0][3] = -fx * baseline."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    set_stamp(msg, stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in np.asarray(K, np.float64).reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = K
    P[0, 3] = -K[0, 0] * baseline
    msg.p = [float(v) for v in P.reshape(12)]
    return msg


class CameraPublisher:
    """Publishes one simulated camera's image, CameraInfo and (optionally) depth."""

    def __init__(self, node, camera: str, depth: bool = False, qos=None) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        qos = qos or QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        self.image = node.create_publisher(Image, f"{camera}/image", qos)
        self.info = node.create_publisher(CameraInfo, f"{camera}/camera_info", qos)
        self.depth = node.create_publisher(Image, f"{camera}/depth", qos) if depth else None

    def publish(self, rgb: np.ndarray, K: np.ndarray, stamp: float, frame_id: str,
                depth: Optional[np.ndarray] = None, baseline: float = 0.0) -> None:
        h, w = rgb.shape[:2]
        self.info.publish(camera_info(K, w, h, stamp, frame_id, baseline))
        if self.depth is not None and depth is not None:
            d = array_to_imgmsg(np.ascontiguousarray(depth, dtype=np.float32), "32FC1")
            set_stamp(d, stamp)
            d.header.frame_id = frame_id
            self.depth.publish(d)
        msg = array_to_imgmsg(np.ascontiguousarray(rgb), "rgb8")
        set_stamp(msg, stamp)
        msg.header.frame_id = frame_id
        self.image.publish(msg)

    def subscribed(self) -> bool:
        pubs = [self.image, self.info] + ([self.depth] if self.depth is not None else [])
        return all(p.get_subscription_count() > 0 for p in pubs)


def stereo_partner(room, view, baseline: float) -> np.ndarray:
    """RGB image of a camera ``baseline`` m to the right of ``view`` (same K, orientation)."""
    from lsm_train.data.procedural import render_view

    shift = np.eye(4)
    shift[0, 3] = baseline
    return render_view(room, view.K, view.c2w @ shift, view.image.shape[:2]).rgb


def tf_message(parent: str, child: str, pose: np.ndarray, stamp: float):
    """tf2_msgs/TFMessage with one transform: ``pose`` (4x4, child in parent)."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    t = TransformStamped()
    set_stamp(t, stamp)
    t.header.frame_id, t.child_frame_id = parent, child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
        float(v) for v in pose[:3, 3])
    q = rotation_to_quaternion(pose[:3, :3])
    (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
     t.transform.rotation.w) = (float(v) for v in q)
    return TFMessage(transforms=[t])


def save_poses(path, stamps: Sequence[float], poses: Sequence[np.ndarray], parent: str,
               child: str) -> None:
    np.savez(path, stamps=np.asarray(stamps, np.float64), poses=np.asarray(poses, np.float64),
             parent=parent, child=child)


def publish_tf(path: str, period: float = 0.5, duration: float = 600.0) -> None:
    """The ``tf`` command: every pose of ``path`` on /tf, repeated every ``period`` s."""
    import rclpy

    data = np.load(path)
    parent, child = str(data["parent"]), str(data["child"])
    rclpy.init()
    node = rclpy.create_node("lsm_sim_odometry")
    pub = node.create_publisher(__import__("tf2_msgs.msg", fromlist=["TFMessage"]).TFMessage,
                                "/tf", 100)
    end = time.monotonic() + duration
    try:
        while time.monotonic() < end:
            for stamp, pose in zip(data["stamps"], data["poses"]):
                pub.publish(tf_message(parent, child, pose, float(stamp)))
            rclpy.spin_once(node, timeout_sec=period)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsm_tools.robot_sim",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tf = sub.add_parser("tf", help="publish the poses of an .npz file on /tf (odometry)")
    tf.add_argument("poses")
    tf.add_argument("--period", type=float, default=0.5)
    tf.add_argument("--duration", type=float, default=600.0)
    a = parser.parse_args(argv)
    publish_tf(a.poses, a.period, a.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
