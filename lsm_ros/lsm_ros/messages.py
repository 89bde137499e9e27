"""ROS messages from :class:`lsm_ros.outputs.ReconstructionOutputs`.

Header of every output: stamp = first (reference) view's stamp, frame_id = the reference
view's camera optical frame (REP-103).  PoseArray: pose i = camera i in that frame
(pose 0 is the identity); positions are in model units (up to scale).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from lsm_ros.image_conversion import array_to_imgmsg
from lsm_ros.outputs import ReconstructionOutputs, quaternion_to_rotation, rotation_to_quaternion
from lsm_ros.pointcloud import make_pointcloud


def stamp_seconds(header) -> float:
    """A header's stamp in seconds (float)."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def set_stamp(msg, seconds: float) -> None:
    """Set ``msg.header.stamp`` to ``seconds`` (rounded to the nanosecond)."""
    sec, nanosec = divmod(int(round(seconds * 1e9)), 1_000_000_000)
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec


def pose_matrix(pose) -> np.ndarray:
    """geometry_msgs/Pose -> 4x4 homogeneous matrix (inverse of :func:`pose_msg`)."""
    o, t = pose.orientation, pose.position
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation([o.x, o.y, o.z, o.w])
    T[:3, 3] = [t.x, t.y, t.z]
    return T


def copy_header(header, frame_id: Optional[str] = None):
    from std_msgs.msg import Header

    out = Header()
    out.stamp = header.stamp
    out.frame_id = header.frame_id if frame_id is None else frame_id
    return out


def pose_msg(c2w: np.ndarray):
    from geometry_msgs.msg import Pose

    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in c2w[:3, 3])
    q = rotation_to_quaternion(c2w[:3, :3])
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in q)
    return p


def pose_array_msg(outputs: ReconstructionOutputs, header):
    from geometry_msgs.msg import PoseArray

    msg = PoseArray()
    msg.header = header
    msg.poses = [pose_msg(c2w) for c2w in outputs.c2w]
    return msg


def camera_info_msg(K: np.ndarray, width: int, height: int, header):
    """Pinhole CameraInfo without distortion for intrinsics ``K`` (3x3, pixels)."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in np.asarray(K, dtype=np.float64).reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = [float(v) for v in P.reshape(12)]
    return msg


def cloud_msg(outputs: ReconstructionOutputs, header):
    c = outputs.cloud
    return make_pointcloud(c.points, colors=c.colors, labels=c.labels,
                           confidence=c.confidence, header=header)


def image_msgs(outputs: ReconstructionOutputs, header) -> dict:
    """``labels`` (mono8 ids), ``labels_color`` (rgb8), ``depth`` (32FC1), ``rendered`` (rgb8)."""
    return {
        "labels": array_to_imgmsg(np.ascontiguousarray(outputs.label_ids), "mono8", header),
        "labels_color": array_to_imgmsg(np.ascontiguousarray(outputs.label_color), "rgb8",
                                        header),
        "depth": array_to_imgmsg(np.ascontiguousarray(outputs.depth, dtype=np.float32),
                                 "32FC1", header),
        "rendered": array_to_imgmsg(np.ascontiguousarray(outputs.rendered), "rgb8", header),
    }


def transform_msgs(outputs: ReconstructionOutputs, header, child_frames: List[str]):
    """TransformStamped reference frame -> each non-reference view (needs geometry_msgs)."""
    from geometry_msgs.msg import TransformStamped

    out = []
    for v in range(1, len(outputs.c2w)):
        t = TransformStamped()
        t.header = header
        t.child_frame_id = child_frames[v]
        c2w = outputs.c2w[v]
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
            float(x) for x in c2w[:3, 3])
        q = rotation_to_quaternion(c2w[:3, :3])
        (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
         t.transform.rotation.w) = (float(x) for x in q)
        out.append(t)
    return out
