"""The ROS side of ``lsm-benchmark``: what lsm_node adds around the model, timed.

Runs the node's own code paths in the benchmark process: ``imgmsg_to_rgb`` on rgb8 Image
messages (image conversion), :func:`lsm_ros.outputs.reconstruction_outputs` plus
:mod:`lsm_ros.messages` (message building; the rendering and label passes it makes are
reported as their own stages), and publishing every output message once from an rclpy node
(on loopback-only DDS with one matched raw subscriber per topic, as with a consumer such as
RViz; the subscriber is not spun, so only the publisher's side is timed).

Imported lazily by :mod:`lsm.benchmark` so that ``lsm`` never imports ROS.
"""
from __future__ import annotations

import os
import time
from typing import Dict, Sequence, Tuple

import numpy as np

from lsm_ros import messages
from lsm_ros.image_conversion import imgmsg_to_rgb, rgb_to_imgmsg
from lsm_ros.outputs import reconstruction_outputs

CONFIDENCE_THRESHOLD = 1.5  # the node's defaults (config/lsm.yaml)
POINT_STRIDE = 2
MAX_POINTS = 200000

_state: Dict[str, object] = {}


def convert_images(pair: Tuple[np.ndarray, np.ndarray], timings: Dict[str, float]):
    """rgb8 Image messages of ``pair`` -> RGB arrays as the node's callback does; adds
    ``image_conversion`` seconds (message construction itself is not timed)."""
    msgs = [rgb_to_imgmsg(img) for img in pair]
    t0 = time.perf_counter()
    out = tuple(imgmsg_to_rgb(m) for m in msgs)
    timings["image_conversion"] = timings.get("image_conversion", 0.0) + time.perf_counter() - t0
    return out


def _timed_method(obj, name: str, key: str, timings: Dict[str, float], active: list) -> None:
    """Wrap ``obj.name`` so its time adds to ``timings[key]``. A wrapped call made from
    inside another (the render inside the label map) counts for its own key, and the outer
    key gets its time minus the nested one (``active`` holds the nested time per level)."""
    fn = getattr(obj, name)

    def timed(*args, **kwargs):
        active.append(0.0)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - t0
            nested = active.pop()
            timings[key] = timings.get(key, 0.0) + elapsed - nested
            if active:
                active[-1] += elapsed

    object.__setattr__(obj, name, timed)


def _publishers():
    if "node" in _state:
        return _state["node"], _state["publishers"]
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray  # noqa: F401  (same imports as the node)
    from geometry_msgs.msg import PoseArray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from lsm_ros.dds_env import loopback_dds_environment

    if not rclpy.ok():
        os.environ.update({k: v for k, v in loopback_dds_environment().items()
                           if k.startswith(("ROS_", "RMW_", "FASTDDS_"))})
        rclpy.init(args=[])
        _state["owns_context"] = True
    node = rclpy.create_node("lsm_benchmark")
    types = {"points": PointCloud2, "poses": PoseArray, "camera_info": CameraInfo,
             "labels": Image, "labels_color": Image, "depth": Image, "rendered": Image}
    pubs, subs = {}, []
    for name, cls in types.items():
        pubs[name] = node.create_publisher(cls, f"~/{name}", 2)
        subs.append(node.create_subscription(cls, f"~/{name}", lambda _m: None, 2, raw=True))
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and not all(p.get_subscription_count() for p in pubs.values()):
        time.sleep(0.02)
    _state.update(node=node, publishers=pubs, subscriptions=subs)
    return node, pubs


def build_and_publish(rec, labels: Sequence[str], timings: Dict[str, float]) -> Dict[str, object]:
    """The node's output path for one reconstruction; adds ``rendering``, ``labels``,
    ``messages`` and ``publishing`` seconds to ``timings``; returns the cloud size and the
    payload bytes of each message."""
    from std_msgs.msg import Header

    _, pubs = _publishers()
    inner: Dict[str, float] = {}
    active: list = []
    _timed_method(rec, "render_view", "rendering", inner, active)
    _timed_method(rec, "label_map", "labels", inner, active)
    _timed_method(rec, "point_labels", "labels", inner, active)
    try:
        t0 = time.perf_counter()
        outputs = reconstruction_outputs(rec, labels, CONFIDENCE_THRESHOLD, POINT_STRIDE, MAX_POINTS)
        header = Header(frame_id="camera_0_optical_frame")
        msgs = {"points": messages.cloud_msg(outputs, header),
                "poses": messages.pose_array_msg(outputs, header),
                "camera_info": messages.camera_info_msg(outputs.intrinsics[0],
                                                        *outputs.image_sizes[0], header)}
        msgs.update(messages.image_msgs(outputs, header))
        t1 = time.perf_counter()
        for name, msg in msgs.items():
            pubs[name].publish(msg)
        t2 = time.perf_counter()
    finally:
        for name in ("render_view", "label_map", "point_labels"):
            rec.__dict__.pop(name, None)
    for key, value in inner.items():
        timings[key] = timings.get(key, 0.0) + value
    timings["messages"] = timings.get("messages", 0.0) + (t1 - t0) - sum(inner.values())
    timings["publishing"] = timings.get("publishing", 0.0) + (t2 - t1)
    return {"cloud_points": int(len(outputs.cloud.points)),
            "message_bytes": {k: _size(m) for k, m in msgs.items()}}


def _size(msg) -> int:
    data = getattr(msg, "data", None)
    return len(data) if data is not None else 0


def shutdown() -> None:
    """Destroy the benchmark node (and shut rclpy down if this module started it)."""
    import rclpy

    node = _state.pop("node", None)
    owns = _state.pop("owns_context", False)
    if node is not None:
        node.destroy_node()
    _state.clear()
    if owns and rclpy.ok():
        rclpy.shutdown()
