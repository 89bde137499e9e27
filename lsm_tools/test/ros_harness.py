"""Test helpers: talk to an lsm_node process over real DDS (publish images, collect outputs).

Imported by the test_ros_node_*.py files (pytest puts test/ on sys.path).
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional

import numpy as np

from lsm_ros.diagnostics import diagnostic_values  # noqa: F401  (re-exported for the tests)
from lsm_ros.messages import pose_matrix, set_stamp  # noqa: F401  (re-exported)
from lsm_ros.messages import stamp_seconds as stamp_of  # noqa: F401  (re-exported)

NODE = "/lsm_node"
OUTPUTS = {  # topic suffix -> message module and type
    "points": ("sensor_msgs.msg", "PointCloud2"),
    "detections": ("vision_msgs.msg", "Detection3DArray"),
    "query_detections": ("vision_msgs.msg", "Detection3DArray"),
    "query_markers": ("visualization_msgs.msg", "MarkerArray"),
    "poses": ("geometry_msgs.msg", "PoseArray"),
    "camera_pose": ("lsm_ros_interfaces.msg", "CameraPose"),
    "camera_info": ("sensor_msgs.msg", "CameraInfo"),
    "labels": ("sensor_msgs.msg", "Image"),
    "labels_color": ("sensor_msgs.msg", "Image"),
    "depth": ("sensor_msgs.msg", "Image"),
    "rendered": ("sensor_msgs.msg", "Image"),
}


def _type(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


class NodeClient:
    """An rclpy node in the test process: image publishers and output subscriptions."""

    def __init__(self, name: str, image_topics: List[str], namespace_node: str = NODE,
                 reliable: bool = False) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image

        self.node = rclpy.create_node(name)
        qos = (QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE) if reliable
               else qos_profile_sensor_data)
        self.image_pubs = [self.node.create_publisher(Image, t, qos) for t in image_topics]
        self.received: Dict[str, list] = defaultdict(list)
        self._subs = []
        for suffix, (module, tname) in OUTPUTS.items():
            self._subs.append(self.node.create_subscription(
                _type(module, tname), f"{namespace_node}/{suffix}",
                lambda msg, s=suffix: self._keep(s, msg), 10))
        self._subs.append(self.node.create_subscription(
            DiagnosticArray, "/diagnostics", lambda msg: self._keep("diagnostics", msg), 10))
        self._subs.append(self.node.create_subscription(
            _type("tf2_msgs.msg", "TFMessage"), "/tf", lambda msg: self._keep("tf", msg), 100))

    def _keep(self, key: str, msg, limit: int = 20) -> None:
        box = self.received[key]
        box.append(msg)
        del box[:-limit]  # bounded: large images

    def spin_for(self, seconds: float) -> None:
        import rclpy

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def spin_until(self, condition: Callable[[], bool], timeout: float,
                   every: Optional[Callable[[], None]] = None, period: float = 2.0,
                   process=None) -> bool:
        """Spin until ``condition()``; calls ``every()`` each ``period`` s (e.g. republish)."""
        import rclpy

        end = time.monotonic() + timeout
        next_call = time.monotonic()
        while time.monotonic() < end:
            if condition():
                return True
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"lsm_node exited with status {process.returncode}")
            if every is not None and time.monotonic() >= next_call:
                every()
                next_call = time.monotonic() + period
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def publish(self, camera: int, msg) -> None:
        self.image_pubs[camera].publish(msg)

    def destroy(self) -> None:
        self.node.destroy_node()


def image_msg(rgb: np.ndarray, stamp: float, frame_id: str, encoding: str = "rgb8"):
    """RGB uint8 (H, W, 3) -> Image in ``encoding`` with the given stamp (seconds)."""
    from lsm_ros.messages import array_to_imgmsg

    arr = rgb
    if encoding == "bgr8":
        arr = rgb[:, :, ::-1]
    elif encoding == "mono8":
        arr = rgb.mean(axis=2).astype(np.uint8)
    elif encoding in ("rgba8", "bgra8"):
        base = rgb if encoding == "rgba8" else rgb[:, :, ::-1]
        arr = np.concatenate([base, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    msg = array_to_imgmsg(np.ascontiguousarray(arr), encoding)
    set_stamp(msg, stamp)
    msg.header.frame_id = frame_id
    return msg


def image_array(msg) -> np.ndarray:
    from lsm_ros.messages import imgmsg_to_array

    return imgmsg_to_array(msg)


def cohen_kappa(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """Agreement beyond chance: (acc - chance) / (1 - chance), chance from the marginals."""
    pred, truth = np.asarray(pred).ravel(), np.asarray(truth).ravel()
    acc = float((pred == truth).mean())
    p_pred = np.bincount(pred, minlength=num_classes)[:num_classes] / pred.size
    p_true = np.bincount(truth, minlength=num_classes)[:num_classes] / truth.size
    chance = float((p_pred * p_true).sum())
    return (acc - chance) / max(1e-9, 1.0 - chance)


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (from /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def world_points(views) -> np.ndarray:
    """True world points of every pixel of ``views`` (procedural truth: K, c2w, depth)."""
    out = []
    for view in views:
        h, w = view.depth.shape
        v, u = np.mgrid[0:h, 0:w] + 0.5
        z = view.depth
        cam = np.stack([(u - view.K[0, 2]) / view.K[0, 0] * z, (v - view.K[1, 2]) / view.K[1, 1] * z,
                        z, np.ones_like(z)], -1).reshape(-1, 4)
        out.append((cam @ view.c2w.T)[:, :3])
    return np.concatenate(out)


def nearest_distances(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance of each of ``points`` to the nearest point of ``truth``."""
    from scipy.spatial import cKDTree

    return cKDTree(truth).query(points)[0]
