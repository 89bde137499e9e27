"""``lsm_node``: the ROS 2 node of the Large Spatial Model.

Interfaces (``~`` = the node's name, e.g. ``/lsm_node``; relative names resolve in the
node namespace):

* subscribes ``image_topics`` (sensor_msgs/Image rgb8, bgr8, rgba8, bgra8 or mono8) with
  the ``qos`` profile (default: sensor data, REP-2003).  Pair mode: two cameras paired by
  approximate time (``slop``); mono mode: one camera, keyframes paired with the previous.
* publishes, per reconstruction (lsm_ros.publishing; stamp = first view's stamp, frame =
  first view's camera optical frame, REP-103/105): ``~/points`` (PointCloud2 x y z rgb
  label confidence), ``~/poses`` (PoseArray of both cameras), ``~/camera_info`` (estimated
  intrinsics at the original resolution), ``~/labels`` (mono8 label ids),
  ``~/labels_color`` (rgb8), ``~/depth`` (32FC1, rendered), ``~/rendered`` (rgb8); the
  image outputs only while they have subscribers; ``/tf`` when tf2_ros is importable;
  ``/diagnostics`` once a second.
* service ``lsm/query`` (lsm_ros_interfaces/srv/Query) -> ``/lsm/query``.
* service ``~/save_scene`` (std_srvs/Trigger): writes the latest reconstruction under
  ``save_directory`` (gaussians.ply, points.ply, cameras.json; see lsm.io.scene).

All 3-D outputs are in model units: metric only up to an unknown global scale.

Threads: the image callback (the one way into this node per image) only converts and
pairs images and puts pairs in a bounded drop-oldest queue; a worker thread
(lsm_ros.worker) loads the model (lsm.perception.Perception), batches pairs through it and
hands the results to lsm_ros.publishing.  The query service answers from the latest
reconstruction while a forward pass runs.

Run: ``lsm_node --ros-args --params-file config/lsm.yaml [-r __ns:=/robot1]``.
Exit status: 0 after a normal shutdown (Ctrl-C / SIGTERM), 2 for invalid parameters or
command-line ROS arguments, 3 when the model cannot be loaded (missing, corrupt, unsafe or
non-fitting checkpoint: the reason is printed).
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions

from lsm.image_checks import image_problem, pair_problem
from lsm_ros import messages
from lsm_ros import query as query_logic
from lsm_ros.diagnostics import SCALE_NOTE, RateMeter, diagnostic_array
from lsm_ros.inputs import ApproximateTimePairer, InputProblems, MonoKeyframer, SensorInputs
from lsm_ros.interfaces import SUBSCRIBED, endpoint
from lsm_ros.messages import ImageConversionError, compressed_to_rgb, imgmsg_to_rgb, stamp_seconds
from lsm_ros.parameters import (
    SPECS_BY_NAME,
    LsmSettings,
    ParameterError,
    check_parameter_change,
    declare_parameters,
    read_settings,
)
from lsm_ros.publishing import LatestReconstruction, OutputPublisher, unless_stopping
from lsm_ros.worker import InferenceWorker, PairJob, PairQueue, perception_loader

NODE_NAME = "lsm_node"
QUERY_SERVICE = "lsm/query"
EXIT_BAD_PARAMETERS = 2
EXIT_MODEL_FAILED = 3


class LsmNode(LifecycleNode):
    """ROS front end: parameters, image pairing, the query and save services, diagnostics.

    A managed (lifecycle) node: *configure* loads the model (the transition waits for it and
    fails, with the reason logged, if it cannot load) and creates the publishers, *activate*
    subscribes to the images, *deactivate* unsubscribes (pairs still queued are dropped),
    *cleanup* / *shutdown* stop the worker. The services and /diagnostics exist in every
    state and say which state the node is in. ``lsm_node`` runs configure and activate
    itself; ``lsm_lifecycle_node`` waits for a lifecycle manager.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._worker: Optional[InferenceWorker] = None  # set before anything can fail:
        self._subscriptions_: list = []  # rclpy destroys a half-built node on shutdown
        super().__init__(NODE_NAME, **kwargs)
        declare_parameters(self)
        self._settings: LsmSettings = read_settings(
            lambda name: self.get_parameter(name).value)
        self._warn_unknown_overrides()
        self._images_received = self._pairs_formed = 0  # counters (rates: diagnostics)
        self._last_image = {}  # camera -> (monotonic time, stamp) of its last usable image
        self._last_pair_time = time.monotonic()  # (start-up counts: no warning before 2 s)
        self._last_rejection = (0.0, "")  # monotonic time, reason of the last refused pair
        self._input_rate, self._pair_rate, self._output_rate = (
            RateMeter(), RateMeter(), RateMeter())
        self._problems = InputProblems(self.get_logger())
        self._last_diag_drops = 0
        self._state = "unconfigured"
        self._pair_lock = threading.Lock()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        s = self._settings

        self._service_group = MutuallyExclusiveCallbackGroup()
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        # requests beyond query_queue_size waiting are dropped by DDS (keep-last history)
        self._query_service = self._service(QUERY_SERVICE, self._on_query, s.query_queue_size)
        self._save_service = self._service("~/save_scene", self._on_save_scene)
        self._map_services = [self._service("~/save_map", self._on_save_map),
                              self._service("~/clear_map", self._on_clear_map)]
        diagnostics = endpoint("/diagnostics")
        self._pub_diagnostics = self.create_publisher(diagnostics.message_class(),
                                                      diagnostics.name, 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics,
                                             callback_group=self._timer_group)
        # what configure uses to load the model (tests may substitute a loaded one)
        self._loader = perception_loader(s.weight_sources(), s.device, s.precision,
                                         s.cpu_threads)
        self._publisher: Optional[OutputPublisher] = None
        self._queue: Optional[PairQueue] = None
        self._sensors: Optional[SensorInputs] = None
        self._tf_lookup = None
        self.get_logger().info(
            f"started: service {self._query_service.service_name}, mode '{s.mode}', model "
            f"'{s.model_config}', device '{s.device}', images on "
            f"{', '.join(self.image_topic_names())} ({s.image_transport}, {s.qos} QoS)")

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        s = self._settings
        self._publisher = OutputPublisher(self, s.camera_frame, s.mode)
        self._sensors = SensorInputs(self, s, self.image_topic_names(), self._problems.note)
        self._tf_lookup = self._sensors.lookup
        if s.mode == "pair":
            self._pairer = ApproximateTimePairer(s.slop, s.queue_size)
        else:
            self._keyframer = MonoKeyframer(s.keyframe_interval, s.keyframe_min_seconds,
                                            s.keyframe_min_translation)
            self._keyframe_position = None
        # mono: a dropped keyframe pair's successor takes its partner, so the chain holds
        self._queue = PairQueue(s.pending_pairs, relink_chain=s.mode == "mono")
        self._worker = InferenceWorker(self._queue, self._loader, self._publisher,
                                       s.output_spec(), s.batch_size, self._worker_log,
                                       sensors=self._sensors, metric=s.metric_spec(),
                                       pose_check=s.pose_check, two_view_pose=s.two_view_pose)
        self._state = "configuring"
        self.get_logger().info("configuring: loading the model")
        self._worker.start()
        while self._worker.state in ("starting", "loading") and self.context.ok():
            time.sleep(0.05)
        if self._worker.state != "ready":
            self.get_logger().error(f"configure failed: the model could not be loaded: "
                                    f"{self._worker.error or 'interrupted'}")
            self._state = "unconfigured"
            return TransitionCallbackReturn.FAILURE
        if s.map:
            try:
                self._worker.map_fusion = self._make_map()
            except Exception as exc:  # an unreadable map_file: say so, do not start half-way
                self.get_logger().error(f"configure failed: map_file {s.map_file!r}: {exc}")
                self._teardown()
                self._state = "unconfigured"
                return TransitionCallbackReturn.FAILURE
            if s.map_publish_rate > 0:
                self._map_timer = self.create_timer(1.0 / s.map_publish_rate, self._publish_map,
                                                    callback_group=self._timer_group)
        self._state = "inactive"
        return super().on_configure(state)

    def _make_map(self):
        from lsm.mapping import MapFusion, VoxelMap

        s = self._settings
        if s.map_file:
            vmap = VoxelMap.load(s.map_file, s.max_voxels)
            self.get_logger().info(f"map loaded from {s.map_file}: {len(vmap)} voxels in "
                                   f"{vmap.frame!r}")
        else:
            dim = self._worker.perception.model.config.semantic.feature_dim
            vmap = VoxelMap(s.voxel_size, s.max_voxels, dim, s.world_frame)
        return MapFusion(vmap, chain=s.mode == "mono", free_space=s.map_free_space)

    @property
    def map(self):
        fusion = self._worker.map_fusion if self._worker is not None else None
        return fusion.map if fusion is not None else None

    def _publish_map(self) -> None:
        vmap = self.map
        if vmap is None or self._publisher is None or not self._publisher.map_wanted():
            return
        data = vmap.snapshot()
        labels = self._worker.perception.feature_labels(data["feature"], self._settings.labels,
                                                        data["floor"]) \
            if len(data["key"]) else np.zeros(0, np.int64)
        self._publisher.publish_map(data, labels, vmap.frame, self.get_clock().now().to_msg())

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subscriptions_ = self._subscribe_images()
        self._sensors.subscribe(self._image_qos())
        self._last_pair_time = time.monotonic()
        self._state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe_images()
        dropped = self._queue.clear()
        if dropped:
            self.get_logger().info(f"deactivated: {dropped} queued pair(s) dropped")
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._state = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._state = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._state = "unconfigured"
        return super().on_error(state)

    def _teardown(self, join_timeout: float = 5.0) -> None:
        self._unsubscribe_images()
        if getattr(self, "_map_timer", None) is not None:
            self.destroy_timer(self._map_timer)
            self._map_timer = None
        if self._worker is not None:
            self._worker.stop(timeout=join_timeout)
        if self._publisher is not None:
            self._publisher.destroy()
        self._publisher = None

    @property
    def lifecycle_state(self) -> str:
        """unconfigured | configuring | inactive | active | finalized."""
        return self._state

    # -- settings -----------------------------------------------------------------------
    @property
    def settings(self) -> LsmSettings:
        """Current validated parameter values (replaced atomically on a change)."""
        return self._settings

    def image_topic_names(self) -> List[str]:
        """Fully resolved image topic names (after namespace and remapping)."""
        s = self._settings
        topics = s.image_topics[:1] if s.mode == "mono" else s.image_topics[:2]
        return [self.resolve_topic_name(t) for t in topics]

    def _warn_unknown_overrides(self) -> None:
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        unknown = sorted(n for n in overrides if n not in SPECS_BY_NAME
                         and n not in ("use_sim_time", "start_type_description_service")
                         and not n.startswith("qos_overrides."))
        if unknown:
            self.get_logger().warning(
                f"ignoring unknown parameter(s) {unknown}; known: {sorted(SPECS_BY_NAME)}")

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        new, reason = check_parameter_change(
            self._settings, [(p.name, p.value) for p in parameters])
        if new is None:
            self.get_logger().warning(f"parameter change rejected: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        # Accepted: rclpy stores the values right after this callback returns.
        self._settings = new
        self._worker.configure(spec=new.output_spec(), batch_size=new.batch_size)
        return SetParametersResult(successful=True)

    # -- set-up ---------------------------------------------------------------------------
    def _image_qos(self) -> QoSProfile:
        depth = self._settings.queue_size
        if self._settings.qos == "reliable":
            return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                              history=HistoryPolicy.KEEP_LAST)
        qos = QoSProfile(**{k: getattr(qos_profile_sensor_data, k)
                            for k in ("reliability", "durability", "history")}, depth=depth)
        return qos

    def _service(self, name: str, callback, depth: int = 10):
        e = endpoint(name)  # as declared in lsm_ros.interfaces
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST)
        return self.create_service(e.message_class(), e.name, callback, qos_profile=qos,
                                   callback_group=self._service_group)

    def _subscribe_images(self):
        """Image subscriptions of the current mode: ``sensor_msgs/Image`` on each topic, or
        ``sensor_msgs/CompressedImage`` on ``<topic>/compressed`` (image_transport's naming)
        when ``image_transport`` is 'compressed'. Their QoS can be overridden with the
        ``qos_overrides.<topic>.subscription.*`` parameters."""
        compressed = self._settings.image_transport == "compressed"
        message = (_message_class("sensor_msgs/msg/CompressedImage") if compressed
                   else SUBSCRIBED[0].message_class())
        qos = self._image_qos()
        subs = []
        for camera, topic in enumerate(self.image_topic_names()):
            name = f"{topic}/compressed" if compressed else topic
            subs.append(self.create_subscription(
                message, name, lambda msg, c=camera, t=name: self._on_image(msg, c, t), qos,
                callback_group=self._image_group,
                qos_overriding_options=QoSOverridingOptions.with_default_policies()))
        return subs

    def _unsubscribe_images(self) -> None:
        for sub in self._subscriptions_:
            self.destroy_subscription(sub)
        self._subscriptions_ = []
        if self._sensors is not None:
            self._sensors.unsubscribe()

    # -- inputs ---------------------------------------------------------------------------
    def _on_image(self, msg, camera: int, topic: str) -> None:
        """Executor thread: convert, pair, enqueue. Never runs the model."""
        self._images_received += 1
        try:
            rgb = compressed_to_rgb(msg) if hasattr(msg, "format") else imgmsg_to_rgb(msg)
        except ImageConversionError as exc:
            self._problems.report(topic, str(exc))
            return
        problem = image_problem(rgb)
        if problem:
            self._problems.report(topic, problem)
            return
        stamp = stamp_seconds(msg.header)
        self._last_image[camera] = (time.monotonic(), stamp)
        with self._pair_lock:
            if self._settings.mode == "pair":
                pair = self._pairer.add(camera, stamp, (rgb, msg.header))
            else:
                position = self._camera_position(msg.header)  # one TF lookup per image
                motion = (math.dist(position, self._keyframe_position)
                          if position is not None and self._keyframe_position is not None
                          else None)
                pair = self._keyframer.add(stamp, (rgb, msg.header), motion)
                if pair is not None:
                    self._keyframe_position = position
        if pair is None:
            return
        (rgb0, header0), (rgb1, header1) = pair[0].item, pair[1].item
        problem = pair_problem(rgb0, rgb1)
        if problem:
            self._last_rejection = (time.monotonic(), problem)
            self._problems.report(" and ".join(self.image_topic_names()), problem)
            return
        self._pairs_formed += 1
        self._last_pair_time = time.monotonic()
        self._queue.put(PairJob(images=(rgb0, rgb1), headers=(header0, header1),
                                stamps=(pair[0].stamp, pair[1].stamp)))

    def _camera_position(self, header):
        """Camera position in odom_frame at the image stamp via TF, or None."""
        if self._tf_lookup is None or not self._settings.odom_frame:
            return None
        try:
            frame = self._settings.camera_frame or header.frame_id
            T = self._tf_lookup(self._settings.odom_frame, frame, stamp_seconds(header))
            return tuple(T[:3, 3])
        except Exception:
            return None

    def _worker_log(self, level: str, text: str) -> None:
        getattr(self.get_logger(), level)(text)

    # -- state ----------------------------------------------------------------------------
    def model_error(self) -> Optional[str]:
        """Why the model failed to load (missing/corrupt/unsafe/wrong checkpoint), or None."""
        w = self._worker
        return w.error if w is not None and w.state == "failed" else None

    def latest_reconstruction(self) -> Optional[LatestReconstruction]:
        return self._publisher.latest() if self._publisher is not None else None

    # -- services -------------------------------------------------------------------------
    def _on_query(self, request, response):
        settings = self._settings
        problem = query_logic.request_problem(request, settings)
        if problem:
            self.get_logger().info(f"query rejected: {problem}")
            return query_logic.reject(response, problem)
        if request.scope == request.SCOPE_MAP:
            return self._answer_from_map(request, response, settings)
        latest = self.latest_reconstruction()
        if latest is None:
            message = query_logic.no_reconstruction_message(
                self.image_topic_names(), settings.mode, self._images_received)
            if self._state != "active":
                message += f"; the node is {self._state} (lifecycle): it reconstructs when active"
            if self._worker is not None and self._worker.error:
                message += f"; model {self._worker.state}: {self._worker.error}"
            return query_logic.reject(response, message)
        view, problem = query_logic.requested_view(request)
        if problem:
            return query_logic.reject(response, problem)
        threshold = query_logic.effective_threshold(request, settings)
        try:
            result = self._worker.perception.query(
                latest.reconstruction, request.label.strip(), list(settings.labels), view=view,
                threshold=threshold, min_confidence=max(1.0, settings.confidence_threshold))
        except Exception as exc:
            self.get_logger().error(f"query {request.label!r} failed: {exc}")
            return query_logic.reject(response, f"query failed: {type(exc).__name__}: {exc}")
        age = time.monotonic() - latest.published_at
        rec = latest.reconstruction
        response.units, response.scale_source = rec.units, rec.scale_source
        if not result.found:
            response.header, response.age = latest.spatial, age
            return query_logic.reject(response, f"{result.message} (reconstruction {age:.1f} s old)")
        self._publisher.publish_query_answer(result, latest.spatial)
        return query_logic.fill_answer(response, result, latest.headers[view], latest.spatial, age)

    def _answer_from_map(self, request, response, settings):
        """SCOPE_MAP: the map's instances of the label, best first."""
        vmap = self.map
        if vmap is None:
            reason = ("the map is off (parameter map)" if not settings.map else
                      f"no map: the node is {self._state} (lifecycle)")
            return query_logic.reject(response, reason)
        if len(vmap) == 0:
            return query_logic.reject(response, f"the map is empty ({self._worker.map_fusion.note})")
        from lsm.geometry.floor import FLOOR_LABEL  # not at start: lsm.geometry loads torch

        label = request.label.strip()
        threshold = query_logic.effective_threshold(request, settings)
        perception = self._worker.perception
        try:
            found, best = vmap.instances(
                lambda f: perception.feature_relevance(f, label, list(settings.labels)),
                label, threshold, max_instances=int(request.max_instances),
                floor=label.lower() == FLOOR_LABEL)
        except Exception as exc:
            self.get_logger().error(f"map query {label!r} failed: {exc}")
            return query_logic.reject(response, f"query failed: {type(exc).__name__}: {exc}")
        header = messages.copy_header(_header_now(self), vmap.frame)
        response.header, response.units, response.scale_source = header, vmap.units, "map"
        if not found:
            response.score = float(best)
            return query_logic.reject(response, f"no instance of {label!r} in the map above "
                                                f"threshold {threshold:.2f} (best relevance {best:.2f})")
        self._publisher.publish_map_answer(found, header)
        return query_logic.fill_map_answer(response, found, header)

    def _on_save_map(self, request, response):
        from pathlib import Path

        vmap = self.map
        if vmap is None or len(vmap) == 0:
            response.success, response.message = False, "no map to save (empty, or map is off)"
            return response
        folder = Path(self._settings.save_directory).expanduser() / time.strftime("map_%Y%m%d_%H%M%S")
        try:
            data = vmap.snapshot()
            labels = self._worker.perception.feature_labels(data["feature"], self._settings.labels,
                                                            data["floor"])
            vmap.save(folder, list(self._settings.labels), labels)
        except Exception as exc:
            response.success, response.message = False, f"saving the map to {folder} failed: {exc}"
            return response
        response.success, response.message = True, str(folder.resolve())
        return response

    def _on_clear_map(self, request, response):
        vmap = self.map
        if vmap is None:
            response.success, response.message = False, "no map (map is off, or not configured)"
            return response
        vmap.clear()
        response.success, response.message = True, "map cleared"
        return response

    def _on_save_scene(self, request, response):
        """Write the latest reconstruction to a new folder under ``save_directory``."""
        from pathlib import Path

        from lsm.io.scene import save_scene

        latest = self.latest_reconstruction()
        if latest is None:
            response.success, response.message = False, "no reconstruction yet"
            return response
        header = latest.headers[0]
        stamp = stamp_seconds(header)
        parent = Path(self._settings.save_directory).expanduser()
        name = f"scene_{header.stamp.sec}_{header.stamp.nanosec:09d}"
        try:
            folder = save_scene(parent, name, latest.reconstruction, latest.cloud, stamp,
                                header.frame_id)
        except Exception as exc:  # disk full, permissions, ...: answer, keep running
            self.get_logger().error(f"save_scene to {parent / name} failed: {exc}")
            response.success, response.message = False, f"saving to {parent / name} failed: {exc}"
            return response
        response.success = True
        response.message = str(folder.resolve())
        self.get_logger().info(f"saved the scene of stamp {stamp:.3f} to {folder}")
        return response

    # -- diagnostics ----------------------------------------------------------------------
    def diagnostics_values(self) -> Dict[str, object]:
        w, q, out = self._worker, self._queue, self._publisher
        if w is None:  # unconfigured
            return {"lifecycle state": self._state, "model state": "not loaded",
                    "device": self._settings.device, "mode": self._settings.mode,
                    "images received": self._images_received, "units": SCALE_NOTE}
        perception = w.perception
        return {
            "lifecycle state": self._state,
            "model state": w.state + (f" ({w.error})" if w.error else ""),
            "device": perception.device if perception is not None else self._settings.device,
            "precision": (f"{perception.precision} ({perception.precision_note})"
                          if perception is not None and perception.precision_note
                          else perception.precision if perception is not None
                          else self._settings.precision),
            "mode": self._settings.mode,
            "images received": self._images_received,
            "input rate (images/s)": self._input_rate.rate(self._images_received),
            "pairs formed": self._pairs_formed,
            "pair rate (pairs/s)": self._pair_rate.rate(self._pairs_formed),
            "reconstructions": out.published,
            "processing rate (reconstructions/s)": self._output_rate.rate(out.published),
            "last batch time (s)": w.last_batch_seconds,
            "queue wait of the last pair (s)": w.last_queue_wait,
            "latency (s)": out.last_latency,
            "image outputs latency (s)": out.last_image_latency,
            "stamp age at output (s)": out.last_stamp_age,
            "queue depth": len(q),
            "queue size": q.maxsize,
            "queue drops": q.dropped,
            "queue drops relinked (mono chain)": q.relinked,
            "inputs dropped (malformed)": self._problems.total,
            "inference failures": w.failures,
            "camera recovery": out.last_camera_status,
            "pose confidence": out.last_pose_check[0],
            "pose check": out.last_pose_check[1],
            **self._metric_values(w.last_reconstruction),
        }

    def _metric_values(self, rec) -> Dict[str, object]:
        """Scale, units, frame and intrinsics of the last reconstruction, for /diagnostics."""
        sensors = self._sensors
        values: Dict[str, object] = {
            "camera_info topics": ", ".join(sensors.camera_info_topics) if sensors else "",
            "depth topics": ", ".join(t for t in sensors.depth_topics if t) if sensors else "",
            "tf": sensors.tf_kind if sensors else "",
            "scale_source (parameter)": self._settings.scale_source}
        fusion = self._worker.map_fusion if self._worker is not None else None
        if fusion is not None:
            values["map"] = (f"{len(fusion.map)} of {fusion.map.max_voxels} voxels, "
                             f"{fusion.map.evicted} evicted; {fusion.note}")
        if rec is None:
            return {**values, "units": SCALE_NOTE}
        values["units"] = "m" if rec.metric else SCALE_NOTE
        values["scale (m per model unit)"] = rec.scale if rec.scale is not None else "none"
        values["scale source"] = f"{rec.scale_source}: {rec.scale_detail}"
        tracker = self._worker.tracker if self._worker is not None else None
        values["scale estimates rejected as outliers"] = tracker.rejected if tracker else 0
        difference = 100.0 * (rec.focal_estimated / rec.focal - 1.0) if rec.focal else float("nan")
        values["focal (model px)"] = (f"{rec.focal:.1f} used, the pointmaps imply "
                                      f"{rec.focal_estimated:.1f} ({difference:+.1f} %)")
        values["depth fused (fraction of pixels, view 0, view 1)"] = \
            f"{rec.depth_fused[0]:.2f}, {rec.depth_fused[1]:.2f}"
        values["3-D output frame"] = rec.frame or "reference camera's optical frame"
        if self._settings.floor_frame:
            values["floor"] = rec.floor_detail or (f"floor_frame {self._settings.floor_frame} "
                                                   "not found in TF: the model's floor label")
        return values

    def _publish_diagnostics(self) -> None:
        values = self.diagnostics_values()
        pairing = self._pairing_problem()
        w = self._worker
        drops = self._queue.dropped if self._queue is not None else 0
        if w is None:
            level, message = "warn", f"{self._state}: not reconstructing (lifecycle)"
        elif w.state == "failed":
            level, message = "error", f"model failed to load: {w.error}"
        elif w.state != "ready":
            level, message = "warn", f"model {w.state}"
        elif drops > self._last_diag_drops and self._queue.maxsize > 1:
            level, message = "warn", (f"dropping pairs: inference slower than input "
                                      f"({drops} dropped so far)")
        elif self._state != "active":
            level, message = "warn", f"{self._state}: not subscribed to images (lifecycle)"
        elif pairing:
            level, message = "warn", pairing
        elif drops > self._last_diag_drops:  # pending_pairs 1: by design, not a fault
            level, message = "ok", (f"running on the newest pair ({drops} older pairs "
                                    "skipped so far: input faster than inference)")
        else:
            level, message = "ok", "running"
        self._last_diag_drops = drops
        with unless_stopping(self):
            self._pub_diagnostics.publish(diagnostic_array(
                self.get_clock().now().to_msg(),
                f"{self.get_fully_qualified_name()}: reconstruction",
                level, message, str(values["device"]), values))

    def _pairing_problem(self, window: float = 2.0) -> Optional[str]:
        """Pair mode: why images arrive but no pair formed in the last ``window`` s, or None."""
        if self._settings.mode != "pair":
            return None
        now = time.monotonic()
        if now - self._last_pair_time < window:
            return None
        recent = {c: v for c, v in self._last_image.items() if now - v[0] < window}
        topics = self.image_topic_names()
        if len(recent) == 2:
            if now - self._last_rejection[0] < window:
                return (f"images arrive on both cameras and match in time, but every pair of the "
                        f"last {window:g} s was refused: {self._last_rejection[1]}")
            gap = abs(recent[0][1] - recent[1][1])
            return (f"images arrive on both cameras but no pair formed for {window:g} s: their "
                    f"newest stamps differ by {gap:.3f} s ({topics[0]} {recent[0][1]:.3f} s, "
                    f"{topics[1]} {recent[1][1]:.3f} s), more than slop = "
                    f"{self._settings.slop:g} s")
        if len(recent) == 1:
            camera = next(iter(recent))
            return (f"images arrive only on {topics[camera]}; none on {topics[1 - camera]} "
                    f"for {window:g} s, so no pair can form")
        return None

    def inference_thread_alive(self) -> bool:
        """True while the inference thread runs (the model load or a forward pass)."""
        return self._worker is not None and self._worker.alive

    def destroy_node(self):
        if self._worker is not None:
            self._worker.stop(timeout=5.0)
        return super().destroy_node()


def _header_now(node):
    from std_msgs.msg import Header

    return Header(stamp=node.get_clock().now().to_msg())


def _message_class(type_name: str):
    import importlib

    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def _parameter_failure(exc: BaseException) -> str:
    """One clear message for a rejected parameter (ours or rclpy's type/range checks)."""
    if isinstance(exc, ParameterError):
        name, detail = exc.name, exc.reason
    else:  # rclpy's ParameterException: "<message>: <parameter name>"
        detail, _, name = str(exc).rpartition(": ")
        detail = detail or str(exc)
    return (f"lsm_node: invalid parameter '{name}': {detail}\n"
            "lsm_node: check the params file (--params-file) and -p overrides; "
            "config/lsm.yaml lists every parameter with its type")


def make_executor():
    """The executor lsm_node spins: rclpy's events executor where available.

    The node's callbacks are short (image conversion, pairing, answering a query from kept
    renders); inference runs on its own worker thread.  Python's wait-set executors rebuild
    the wait set on every wake-up: under two 30 Hz VGA streams that loop took most of a
    core on a 2-core machine and starved inference and the service (queries waited 3-26 s,
    8 reconstructions in a 30 s burst); the events executor does the same work in C++
    (queries answered in < 0.4 s, 21 reconstructions; test_ros_node_inputs.py prints them).
    Falls back to a MultiThreadedExecutor on distributions without it (before Jazzy).
    """
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return MultiThreadedExecutor(num_threads=4)
    return EventsExecutor()


def main(args: Optional[List[str]] = None) -> int:
    """Console script ``lsm_node``: configures and activates itself. Returns the exit status."""
    return _run(args, autostart=True)


def main_lifecycle(args: Optional[List[str]] = None) -> int:
    """Console script ``lsm_lifecycle_node``: waits in 'unconfigured' for a lifecycle manager
    (``ros2 lifecycle set /lsm_node configure``, then ``activate``); exits after shutdown."""
    return _run(args, autostart=False)


def _run(args: Optional[List[str]], autostart: bool) -> int:
    _quiet_stop_signals()
    try:
        rclpy.init(args=args)
    except Exception as exc:  # e.g. a missing or malformed --params-file
        print(f"lsm_node: cannot initialise ROS 2 with the given arguments: {exc}",
              file=sys.stderr)
        return EXIT_BAD_PARAMETERS
    node = None
    executor = None
    try:
        try:
            node = LsmNode()
        except (ParameterError, ParameterException) as exc:
            print(_parameter_failure(exc), file=sys.stderr)
            return EXIT_BAD_PARAMETERS
        except Exception:
            if not rclpy.ok():  # Ctrl-C / SIGTERM arrived while the node was starting
                return 0
            raise
        executor = make_executor()
        executor.add_node(node)
        if autostart:  # in the executor, so the services answer while the model loads
            def start() -> None:
                starter.cancel()
                if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                    node.trigger_activate()

            starter = node.create_timer(0.0, start)
        while rclpy.ok() and not _STOP and node.lifecycle_state != "finalized":
            try:
                executor.spin_once(timeout_sec=0.2)
            except Exception:  # a callback that raced the shutdown: stop as asked
                if rclpy.ok() and not _STOP:
                    raise
                break
            if autostart and node.model_error() is not None:
                print(f"lsm_node: cannot start: the model could not be loaded: "
                      f"{node.model_error()}", file=sys.stderr)
                return EXIT_MODEL_FAILED
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:  # join its callback threads before the node goes away
            executor.shutdown(timeout_sec=5.0)
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        # Python puts SIG_DFL back for its own handlers when the interpreter finalises: a
        # late SIGINT (the one ros2 launch forwards) would then kill us with status -2.
        _quiet_stop_signals(ignore=True)
        if node is not None and node.inference_thread_alive():
            # The model load or a forward pass (seconds for the paper model on a CPU) could
            # not be interrupted within the join timeout: finalising the interpreter under
            # a running torch thread aborts the process ("terminate called without an
            # active exception"), so leave at once with the status of a normal stop.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    return 0


_STOP: List[int] = []  # stop signals received by this process (see _quiet_stop_signals)


def _quiet_stop_signals(ignore: bool = False) -> None:
    """Make SIGINT and SIGTERM stop the node only through rclpy, never as KeyboardInterrupt.

    rclpy.init installs its own handlers (which shut the context down, ending the spin
    loop) and hands signals on to the ones it found; shutting down puts those back. Ctrl-C
    at a terminal sends SIGINT to the whole process group and ros2 launch forwards another
    one at once: with Python's default handler that second signal raised KeyboardInterrupt
    at whatever line the teardown had reached (a traceback and exit -2, seen in CI). These
    only note the request (`_STOP`), which also covers a signal that arrives before
    rclpy.init has installed its handlers. Must run before rclpy.init. ``ignore``: ignore
    them from now on (for the end of the teardown).
    """
    import signal

    def stopping(signum, frame) -> None:
        del frame
        _STOP.append(signum)

    if not ignore:  # a fresh start (embedded use may run the node twice)
        _STOP.clear()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN if ignore else stopping)
        except (ValueError, OSError):  # not the main thread (embedded use)
            pass


if __name__ == "__main__":
    sys.exit(main())
