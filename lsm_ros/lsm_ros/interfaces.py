"""Every topic and service of ``lsm_node``, declared once.

The node creates its publishers, subscriptions and services from these tables, and the
README's interface tables are generated from them (``python -m lsm_tools.reference``), so
the documentation cannot drift from what the node does. Names are as the node resolves them:
``~/x`` is private (``/<namespace>/lsm_node/x``), ``x`` relative (``/<namespace>/x``),
``/x`` absolute. Types are ROS interface names (``package/msg/Type``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class Endpoint:
    name: str
    type: str
    description: str

    def message_class(self):
        """The Python class of :attr:`type` (imports its package)."""
        package, kind, name = self.type.split("/")
        return getattr(importlib.import_module(f"{package}.{kind}"), name)


UNITS_NOTE = "model units (metric only up to an unknown global scale)"

SUBSCRIBED: Tuple[Endpoint, ...] = (
    Endpoint("image_0, image_1 (parameter image_topics)", "sensor_msgs/msg/Image",
             "Camera images (rgb8, bgr8, rgba8, bgra8, mono8). Pair mode pairs the two "
             "cameras by stamp (slop); mono mode uses image_0 only and pairs keyframes. "
             "Subscribed while the node is active."),
    Endpoint("image_0/compressed, image_1/compressed", "sensor_msgs/msg/CompressedImage",
             "Instead of the raw images when image_transport is 'compressed' (JPEG, PNG)."),
)

PUBLISHED: Tuple[Endpoint, ...] = (
    Endpoint("~/points", "sensor_msgs/msg/PointCloud2",
             f"Labelled cloud of both views (x y z rgb label confidence), {UNITS_NOTE}, "
             "reference camera's optical frame; published as soon as it exists."),
    Endpoint("~/poses", "geometry_msgs/msg/PoseArray",
             f"Both cameras in the reference optical frame (pose 0 = identity), {UNITS_NOTE}."),
    Endpoint("~/camera_info", "sensor_msgs/msg/CameraInfo",
             "Estimated pinhole intrinsics of the reference view at its original resolution."),
    Endpoint("~/labels", "sensor_msgs/msg/Image",
             "mono8 label ids (index into the labels parameter; 255 outside the model's crop); "
             "computed only while subscribed."),
    Endpoint("~/labels_color", "sensor_msgs/msg/Image",
             "rgb8 label colours; computed only while subscribed."),
    Endpoint("~/depth", "sensor_msgs/msg/Image",
             f"32FC1 rendered z-depth, {UNITS_NOTE}, NaN where nothing was rendered; "
             "computed only while subscribed."),
    Endpoint("~/rendered", "sensor_msgs/msg/Image",
             "rgb8 rendering of the Gaussians at the reference view; computed only while "
             "subscribed."),
    Endpoint("~/detections", "vision_msgs/msg/Detection3DArray",
             f"Per reconstruction: one axis-aligned box per label with >= 30 points (classes, "
             f"not instances), {UNITS_NOTE}; computed only while subscribed."),
    Endpoint("~/query_detections", "vision_msgs/msg/Detection3DArray",
             "Every answered /lsm/query as a detection: the box of its 3-D points."),
    Endpoint("~/query_markers", "visualization_msgs/msg/MarkerArray",
             "Every answered /lsm/query as a box and a text label, for RViz."),
    Endpoint("/tf", "tf2_msgs/msg/TFMessage",
             "Reference optical frame -> <frame>_lsm_view_1 (tf2_ros, or the tf2_msgs "
             "fallback on installs without it)."),
    Endpoint("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray",
             "Once a second: model state, rates, latency, queue drops, camera recovery, units."),
)

SERVICES: Tuple[Endpoint, ...] = (
    Endpoint("lsm/query", "lsm_ros_interfaces/srv/Query",
             "Where is <label>? Mask at the camera resolution, 3-D points, centroid, extent "
             f"and score from the latest reconstruction ({UNITS_NOTE})."),
    Endpoint("~/save_scene", "std_srvs/srv/Trigger",
             "Writes the latest reconstruction (gaussians.ply, points.ply, cameras.json) to a "
             "new folder under save_directory; answers its path."),
)


def endpoint(name: str) -> Endpoint:
    """The declared topic or service called ``name``."""
    for e in PUBLISHED + SERVICES + SUBSCRIBED:
        if e.name == name:
            return e
    raise KeyError(name)
