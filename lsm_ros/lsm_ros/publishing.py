"""The node's outputs: what the inference worker hands over, published as ROS messages.

:class:`OutputPublisher` is the worker's :class:`~lsm_ros.worker.OutputSink`. It runs in the
worker thread: the cloud, poses, camera info and TF go out as soon as the cloud exists; the
image outputs are computed only for topics that have subscribers. It keeps the latest
reconstruction (with its cloud and headers) for the query and save services.

Headers: stamp = the reference (first) view's image stamp; frame_id = ``camera_frame`` or
the reference image's frame_id (REP-103 optical frame). 3-D outputs are in model units.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Collection, Iterator, Optional, Sequence, Tuple

import numpy as np

from lsm.results import ObjectBox, box_of, class_boxes
from lsm.specs import IMAGE_OUTPUTS
from lsm_ros import messages
from lsm_ros.interfaces import endpoint


@contextmanager
def unless_stopping(node) -> Iterator[None]:
    """Publish from a timer or the worker while Ctrl-C may be shutting the context down: a
    publisher whose context is gone raises; that is dropped, every other error raises.
    The one rule for every publishing path of the node."""
    try:
        yield
    except Exception:
        if node.context.ok():
            raise

DEFAULT_OPTICAL_FRAME = "camera_optical_frame"


@dataclass
class LatestReconstruction:
    """The reconstruction queries answer from, with its published cloud and headers."""

    reconstruction: Any  # lsm.results.Reconstruction
    cloud: Any  # lsm.results.PointCloud as published
    headers: Sequence[Any]  # output headers of view 0 and 1 (their optical frames)
    published_at: float = 0.0  # time.monotonic() when its cloud was published
    spatial: Any = None  # header of the 3-D outputs: the reference stamp, the result's frame

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cloud.label_names)


class OutputPublisher:
    """Publishers of one lsm_node and the latest published reconstruction (thread-safe)."""

    def __init__(self, node, camera_frame: str = "", mode: str = "pair", depth: int = 2) -> None:
        # lifecycle publishers where the node is managed: silent while it is not active
        create = getattr(node, "create_lifecycle_publisher", node.create_publisher)

        def publisher(name):  # as declared in lsm_ros.interfaces
            e = endpoint(name)
            made = create(e.message_class(), e.name, depth)
            self._all.append(made)
            return made

        self._all: list = []
        self._node = node
        self._camera_frame, self._mode = camera_frame, mode
        self._points = publisher("~/points")
        self._poses = publisher("~/poses")
        self._camera_pose = publisher("~/camera_pose")
        self._camera_info = publisher("~/camera_info")
        self._images = {name: publisher(f"~/{name}") for name in IMAGE_OUTPUTS}
        self._detections = publisher("~/detections")
        self._query_detections = publisher("~/query_detections")
        self._query_markers = publisher("~/query_markers")
        self._map = publisher("~/map")
        self._marker_ids: dict = {}  # query label -> marker id (a new answer replaces it)
        self._tf = self._tf_broadcaster(node)
        self._lock = threading.Lock()
        self._latest: Optional[LatestReconstruction] = None
        self.published = 0  # reconstructions whose cloud went out
        self.last_latency = float("nan")  # pair formed -> cloud published (monotonic clock)
        self.last_image_latency = float("nan")  # pair formed -> image outputs published
        self.last_stamp_age = float("nan")  # node clock at publication - image stamp
        self.last_camera_status = ""
        self.last_pose_check = (float("nan"), "")

    @staticmethod
    def _tf_broadcaster(node):
        try:
            from tf2_ros import TransformBroadcaster
        except ImportError:
            try:
                return messages.TFPublisher(node)  # tf2_msgs alone (pip installs)
            except ImportError:
                node.get_logger().warning(
                    "neither tf2_ros nor tf2_msgs is importable: camera transforms are not "
                    "broadcast on /tf (both camera poses are on ~/poses)")
                return None
        return TransformBroadcaster(node)

    def destroy(self) -> None:
        """Destroy every publisher (lifecycle cleanup); the latest result is forgotten."""
        for pub in self._all:
            self._node.destroy_publisher(pub)
        self._all = []
        with self._lock:
            self._latest = None

    def latest(self) -> Optional[LatestReconstruction]:
        with self._lock:
            return self._latest

    def output_headers(self, headers):
        """Headers of the outputs of views 0 and 1, from the two input image headers."""
        ref_frame = self._camera_frame or headers[0].frame_id or DEFAULT_OPTICAL_FRAME
        view1_frame = (headers[1].frame_id if self._mode == "pair" and headers[1].frame_id
                       and not self._camera_frame else ref_frame)
        return (messages.copy_header(headers[0], ref_frame),
                messages.copy_header(headers[1], view1_frame))

    # -- OutputSink -------------------------------------------------------------------
    def wanted_images(self) -> Collection[str]:
        return [name for name, pub in self._images.items() if pub.get_subscription_count() > 0]

    def publish_cloud(self, job, rec, cloud) -> None:
        if not self._node.context.ok():  # shutting down: the publishers are gone
            return
        header0, header1 = self.output_headers(job.headers)
        # 3-D outputs: in the result's frame (world_frame through TF) or view 0's optical one
        spatial = messages.copy_header(header0, rec.frame) if rec.frame else header0
        c2w = rec.c2w.cpu().numpy().astype("float64")
        with unless_stopping(self._node):
            self._points.publish(messages.cloud_msg(cloud, spatial))
            self._poses.publish(messages.pose_array_msg(c2w, spatial))
            self._camera_pose.publish(messages.camera_pose_msg(rec, c2w[1], spatial))
            w, h = rec.image_sizes()[0]
            self._camera_info.publish(
                messages.camera_info_msg(rec.intrinsics_original()[0], w, h, header0))
            if self._tf is not None:  # our own frame, relative to the camera: never the robot's
                child = [header0.frame_id, f"{header0.frame_id}_lsm_view_1"]
                relative = np.linalg.inv(c2w[0]) @ c2w
                self._tf.sendTransform(messages.transform_msgs(relative, header0, child))
            if self._detections.get_subscription_count() > 0:
                self._detections.publish(messages.detection_array_msg(class_boxes(cloud), spatial))
        if not self._node.context.ok():  # stopped while publishing
            return
        with self._lock:
            self._latest = LatestReconstruction(rec, cloud, (header0, header1), time.monotonic(),
                                                spatial)
        self.published += 1
        # latency on the monotonic clock: meaningful whatever the image stamps are (bag
        # replay, simulated or unsynchronised camera clocks); the stamp age adds transport
        # and camera delays where the clocks agree
        self.last_latency = time.monotonic() - job.enqueued
        now = self._node.get_clock().now().nanoseconds * 1e-9
        self.last_stamp_age = now - messages.stamp_seconds(job.headers[0])
        self.last_camera_status = rec.camera_status
        self.last_pose_check = (rec.pose_confidence, rec.pose_check)

    def publish_images(self, job, rec, images) -> None:
        if not self._node.context.ok():
            return
        header0, _ = self.output_headers(job.headers)
        with unless_stopping(self._node):
            for name, msg in messages.image_msgs(images, header0).items():
                self._images[name].publish(msg)
        if not self._node.context.ok():  # stopped while publishing
            return
        self.last_image_latency = time.monotonic() - job.enqueued

    def publish_query_answer(self, result, header) -> None:
        """An answered query as a detection and as RViz markers (executor thread)."""
        box = box_of(result.label, result.score, result.points)
        self._query_detections.publish(messages.detection_array_msg([box], header))
        marker_id = self._marker_ids.setdefault(result.label, len(self._marker_ids))
        self._query_markers.publish(messages.marker_array_msg(
            messages.box_markers(box, header, marker_id)))

    # -- the map ------------------------------------------------------------------------
    def map_wanted(self) -> bool:
        return self._map.get_subscription_count() > 0

    def publish_map(self, data, labels, frame: str, stamp) -> None:
        """~/map: one point per voxel (its mean position, colour, best label of the node's
        labels, summed confidence) in the map's ``frame``, stamped ``stamp`` (now)."""
        from std_msgs.msg import Header

        header = Header(stamp=stamp, frame_id=frame)
        colors = np.clip(np.round(data["color"]), 0, 255).astype(np.uint8)
        with unless_stopping(self._node):
            self._map.publish(messages.make_pointcloud(
                data["position"], colors=colors, labels=np.asarray(labels, np.int64),
                confidence=data["weight"], header=header))

    def publish_map_answer(self, instances, header) -> None:
        """The instances of a map query as oriented detections and RViz boxes (executor)."""
        boxes = [map_box(inst) for inst in instances]
        self._query_detections.publish(messages.detection_array_msg(boxes, header))
        markers = []
        for k, box in enumerate(boxes):
            marker_id = self._marker_ids.setdefault(f"{box.label}#{k}", len(self._marker_ids))
            markers += messages.box_markers(box, header, marker_id, "lsm_map_query",
                                            up=(0.0, 0.0, 1.0))
        self._query_markers.publish(messages.marker_array_msg(markers))


def map_box(instance) -> ObjectBox:
    """The oriented box of an lsm.mapping.MapInstance."""
    return ObjectBox(instance.label, instance.score, instance.box_center, instance.box_size,
                     instance.voxel_count, rotation=instance.box_rotation)
