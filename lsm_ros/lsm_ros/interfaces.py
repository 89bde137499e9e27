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


UNITS_NOTE = ("metres when the scale is known (depth, stereo, odometry or fixed_scale: "
              "scale_source), else model units (metric up to an unknown global scale)")
FRAME_NOTE = ("in world_frame when set and found in TF at the image stamp, else the reference "
              "camera's optical frame")

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
             f"Labelled cloud of both views (x y z rgb label confidence), published as soon as "
             f"it exists. {UNITS_NOTE[0].upper()}{UNITS_NOTE[1:]}, {FRAME_NOTE}."),
    Endpoint("~/poses", "geometry_msgs/msg/PoseArray",
             "Both cameras, in the frame and units of ~/points (in the optical frame, pose 0 "
             "is the identity)."),
    Endpoint("~/camera_pose", "lsm_ros_interfaces/msg/CameraPose",
             "View 1's camera with a confidence in [0, 1] (1 = given by sensors; with depth "
             "images of both views, the pose refined on them and the share of points it "
             "explains; else the images' two-view pose, or the network's, judged by the "
             "matches' support and the two estimates' agreement: low = wrong or "
             "unverifiable), per pair, in the frame and units of ~/points."),
    Endpoint("~/camera_info", "sensor_msgs/msg/CameraInfo",
             "Pinhole intrinsics used for the reference view (its CameraInfo's when given, "
             "else estimated) at its original resolution."),
    Endpoint("~/labels", "sensor_msgs/msg/Image",
             "mono8 label ids (index into the labels parameter; 255 outside the model's crop); "
             "computed only while subscribed."),
    Endpoint("~/labels_color", "sensor_msgs/msg/Image",
             "rgb8 label colours; computed only while subscribed."),
    Endpoint("~/depth", "sensor_msgs/msg/Image",
             "32FC1 rendered z-depth in the units of ~/points, NaN where nothing was rendered; "
             "computed only while subscribed."),
    Endpoint("~/rendered", "sensor_msgs/msg/Image",
             "rgb8 rendering of the Gaussians at the reference view; computed only while "
             "subscribed."),
    Endpoint("~/detections", "vision_msgs/msg/Detection3DArray",
             "One axis-aligned box per label with >= 30 points, per reconstruction (classes, "
             "not instances). In the frame and units of ~/points; computed only while "
             "subscribed."),
    Endpoint("~/query_detections", "vision_msgs/msg/Detection3DArray",
             "Every answered /lsm/query as detections: the box of its 3-D points, or the "
             "oriented box of each map instance."),
    Endpoint("~/query_markers", "visualization_msgs/msg/MarkerArray",
             "Every answered /lsm/query as a box and a text label, for RViz."),
    Endpoint("~/map", "sensor_msgs/msg/PointCloud2",
             "The persistent voxel map (x y z rgb label confidence), at map_publish_rate while "
             "subscribed. In metres, in world_frame (or lsm_map when chained without TF)."),
    Endpoint("/tf", "tf2_msgs/msg/TFMessage",
             "Reference optical frame -> <frame>_lsm_view_1 (tf2_ros, or the tf2_msgs "
             "fallback on installs without it)."),
    Endpoint("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray",
             "Once a second: model state, rates, latency, queue drops, camera recovery, units."),
)

SERVICES: Tuple[Endpoint, ...] = (
    Endpoint("lsm/query", "lsm_ros_interfaces/srv/Query",
             "Where is <label>: mask and 3-D points in the latest reconstruction, or object "
             "instances in the map (scope). From the latest reconstruction: mask at the camera "
             "resolution, 3-D points, centroid, extent, score; from the map: instances, best "
             "first. Units and frame are in the answer."),
    Endpoint("~/save_scene", "std_srvs/srv/Trigger",
             "Writes the latest reconstruction to a new folder under save_directory and answers "
             "its path. Files: gaussians.ply, points.ply, cameras.json."),
    Endpoint("~/save_map", "std_srvs/srv/Trigger",
             "Writes the map to a new folder under save_directory and answers its path (for "
             "map_file). Files: map.ply with features, map.json (frame, units, voxel size, "
             "labels)."),
    Endpoint("~/clear_map", "std_srvs/srv/Trigger", "Empties the map."),
)


def endpoint(name: str) -> Endpoint:
    """The declared topic or service called ``name``."""
    for e in PUBLISHED + SERVICES + SUBSCRIBED:
        if e.name == name:
            return e
    raise KeyError(name)
