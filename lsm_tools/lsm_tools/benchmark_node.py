"""The ROS side of ``lsm-benchmark``: what lsm_node adds around the model, timed.

Runs the node's own code paths in the benchmark process: ``imgmsg_to_rgb`` on rgb8 Image
messages (image conversion), :meth:`lsm.perception.Perception.point_cloud` and
:meth:`~lsm.perception.Perception.view_images` with the node's default
:class:`lsm.specs.OutputSpec` plus :mod:`lsm_ros.messages` (message building; the rendering
and label passes they make are reported as their own stages), and publishing every output
message once from an rclpy node (on loopback-only DDS with one matched raw subscriber per
topic, as with a consumer such as RViz that shows every output; the subscriber is not spun,
so only the publisher's side is timed).

Imported lazily by :mod:`lsm_tools.benchmark`, which also runs without ROS.
"""
from __future__ import annotations

import os
import time
from typing import Dict, Tuple

import numpy as np

from lsm.specs import IMAGE_OUTPUTS, OutputSpec
from lsm_ros import messages
from lsm_ros.messages import imgmsg_to_rgb, rgb_to_imgmsg

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

    from lsm_tools.dds_env import loopback_dds_environment

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


def build_and_publish(perception, rec, timings: Dict[str, float],
                      spec: OutputSpec = OutputSpec()) -> Dict[str, object]:
    """The node's output path for one reconstruction, every output wanted; adds
    ``rendering``, ``labels``, ``messages`` and ``publishing`` seconds to ``timings``;
    returns the cloud size and the payload bytes of each message."""
    from std_msgs.msg import Header

    _, pubs = _publishers()
    inner: Dict[str, float] = {}
    active: list = []
    _timed_method(perception, "render_view", "rendering", inner, active)
    _timed_method(perception, "label_map", "labels", inner, active)
    _timed_method(perception, "point_labels", "labels", inner, active)
    try:
        t0 = time.perf_counter()
        header = Header(frame_id="camera_0_optical_frame")
        cloud = perception.point_cloud(rec, spec)
        msgs = {"points": messages.cloud_msg(cloud, header),
                "poses": messages.pose_array_msg(rec.c2w.numpy().astype(np.float64), header),
                "camera_info": messages.camera_info_msg(rec.intrinsics_original()[0],
                                                        *rec.image_sizes()[0], header)}
        images = perception.view_images(rec, spec.labels, 0, IMAGE_OUTPUTS)
        msgs.update(messages.image_msgs(images, header))
        t1 = time.perf_counter()
        for name, msg in msgs.items():
            pubs[name].publish(msg)
        t2 = time.perf_counter()
    finally:
        for name in ("render_view", "label_map", "point_labels"):
            perception.__dict__.pop(name, None)
    for key, value in inner.items():
        timings[key] = timings.get(key, 0.0) + value
    timings["messages"] = timings.get("messages", 0.0) + (t1 - t0) - sum(inner.values())
    timings["publishing"] = timings.get("publishing", 0.0) + (t2 - t1)
    return {"cloud_points": int(len(cloud.points)),
            "message_bytes": {k: _size(m) for k, m in msgs.items()}}


def cloud_only_path(perception, rec, spec: OutputSpec = OutputSpec()) -> float:
    """Seconds of the node's output path when no image output has a subscriber (the node
    then computes none): the labelled cloud, its poses and camera info, built and published."""
    from std_msgs.msg import Header

    _, pubs = _publishers()
    t0 = time.perf_counter()
    header = Header(frame_id="camera_0_optical_frame")
    cloud = perception.point_cloud(rec, spec)
    pubs["points"].publish(messages.cloud_msg(cloud, header))
    pubs["poses"].publish(messages.pose_array_msg(rec.c2w.numpy().astype(np.float64), header))
    pubs["camera_info"].publish(messages.camera_info_msg(rec.intrinsics_original()[0],
                                                         *rec.image_sizes()[0], header))
    return time.perf_counter() - t0


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
