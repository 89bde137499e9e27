"""The inputs of a pair: images paired by time, and what the robot knows about them.

Pairing (pure Python, no ROS types):

* :class:`ApproximateTimePairer` (pair mode): two cameras; an image of one camera is
  paired with the unused image of the other camera whose stamp is nearest, if the stamps
  differ by at most ``slop`` seconds.  Each image is used at most once; per camera at most
  ``buffer_size`` unpaired images are kept (oldest dropped first).
* :class:`MonoKeyframer` (mono mode): one camera; a frame becomes a new keyframe when at
  least ``min_frames`` frames and ``min_seconds`` seconds passed since the last keyframe
  (and, when the caller knows the camera motion, at least ``min_translation`` of it).
  Each new keyframe is paired with the previous one; the NEW keyframe is the pair's first
  (reference) view, so outputs describe the current camera.

Sensors (:class:`SensorInputs`): while the node is active it subscribes to each camera's
CameraInfo and, when configured, its aligned depth image, keeping the latest CameraInfo and
a few recent depth images per camera. For each pair, in the worker thread,
:meth:`SensorInputs.resolve` returns the :class:`lsm.metric.PairSensors` (known intrinsics,
depth in metres, stereo baseline, odometry motion) and the world transform of the
reference camera, reporting every problem once with its reason (a CameraInfo whose size
disagrees with the image, a zero or NaN K, a depth image of another size or encoding, TF
missing or too old) and leaving that input out, so the scale falls back to the next source.

Stamps are float seconds; pairing items are opaque to this module.
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import numpy as np

from lsm.metric import PairSensors
from lsm_ros import messages
from lsm_ros.tf_buffer import PatientLookup, TransformError, make_tf_lookup


@dataclass(frozen=True)
class StampedItem:
    stamp: float  # seconds
    item: Any


class ApproximateTimePairer:
    """Pairs images of camera 0 and camera 1 whose stamps differ by at most ``slop`` s."""

    def __init__(self, slop: float, buffer_size: int = 10) -> None:
        if slop < 0:
            raise ValueError(f"slop must be >= 0, got {slop}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        self.slop = float(slop)
        self._buffers: Tuple[Deque[StampedItem], Deque[StampedItem]] = (
            deque(maxlen=buffer_size), deque(maxlen=buffer_size))

    def add(self, camera: int, stamp: float, item: Any) -> Optional[Tuple[StampedItem,
                                                                           StampedItem]]:
        """Add an image of ``camera`` (0 or 1); returns ``(view0, view1)`` when it pairs."""
        if camera not in (0, 1):
            raise ValueError(f"camera must be 0 or 1, got {camera}")
        other = self._buffers[1 - camera]
        best, best_dt = None, None
        for candidate in other:
            dt = abs(candidate.stamp - stamp)
            if dt <= self.slop and (best_dt is None or dt < best_dt):
                best, best_dt = candidate, dt
        new = StampedItem(float(stamp), item)
        if best is None:
            self._buffers[camera].append(new)
            return None
        other.remove(best)
        # Images older than the matched one can no longer pair with anything newer.
        while other and other[0].stamp < best.stamp:
            other.popleft()
        return (new, best) if camera == 0 else (best, new)

    def pending(self) -> Tuple[int, int]:
        """Unpaired images held per camera."""
        return len(self._buffers[0]), len(self._buffers[1])


class MonoKeyframer:
    """Selects keyframes from one camera and pairs each new keyframe with the previous one."""

    def __init__(self, min_frames: int = 1, min_seconds: float = 0.0,
                 min_translation: float = 0.0) -> None:
        if min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        if min_seconds < 0 or min_translation < 0:
            raise ValueError("min_seconds and min_translation must be >= 0")
        self.min_frames = int(min_frames)
        self.min_seconds = float(min_seconds)
        self.min_translation = float(min_translation)
        self._keyframe: Optional[StampedItem] = None
        self._frames_since = 0

    def add(self, stamp: float, item: Any, translation: Optional[float] = None
            ) -> Optional[Tuple[StampedItem, StampedItem]]:
        """Add a frame; returns ``(new_keyframe, previous_keyframe)`` when it is a keyframe.

        ``translation``: camera motion (metres) since the last keyframe when known (e.g.
        from odometry TF), else None (motion is then not required).
        """
        new = StampedItem(float(stamp), item)
        if self._keyframe is None:
            self._keyframe, self._frames_since = new, 0
            return None
        self._frames_since += 1
        if stamp < self._keyframe.stamp:  # time jumped back (bag loop, sim reset): restart
            self._keyframe, self._frames_since = new, 0
            return None
        if self._frames_since < self.min_frames:
            return None
        if stamp - self._keyframe.stamp < self.min_seconds:
            return None
        if translation is not None and translation < self.min_translation:
            return None
        previous = self._keyframe
        self._keyframe, self._frames_since = new, 0
        return new, previous


# ----------------------------------------------------------------------------- problems
class InputProblems:
    """Counts dropped inputs; logs each kind of problem once, with its reason."""

    def __init__(self, logger) -> None:
        self._logger = logger
        self._seen: Dict[str, int] = {}
        self._lock = threading.Lock()
        self.total = 0

    @staticmethod
    def kind(reason: str) -> str:
        return re.sub(r"\d+", "#", reason)

    def note(self, where: str, reason: str) -> None:
        """A sensor input that cannot be used (CameraInfo, depth, TF): logged once per kind,
        not counted as a dropped image."""
        key = f"note|{where}|{self.kind(reason)}"
        with self._lock:
            first = key not in self._seen
            self._seen[key] = self._seen.get(key, 0) + 1
        if first:
            self._logger.warning(f"not using {where}: {reason} (logged once per kind)")

    def report(self, where: str, reason: str) -> None:
        key = f"{where}|{self.kind(reason)}"
        with self._lock:
            self.total += 1
            first = key not in self._seen
            self._seen[key] = self._seen.get(key, 0) + 1
        if first:
            self._logger.warning(
                f"dropping input on {where}: {reason} (logged once per kind of problem; "
                "later drops are counted in /diagnostics)")


# ----------------------------------------------------------------------------- sensors
# seconds the worker waits for a camera's first CameraInfo (on its first pair) or for its
# depth image of this stamp, when their topic has a publisher: drivers and bags deliver them
# just after the colour image, and the worker may start on a pair before they arrive; a
# camera without CameraInfo costs no graph query after its first pair
SENSOR_WAIT = 0.2



@dataclass
class _Info:
    K: np.ndarray
    P: np.ndarray
    width: int
    height: int
    frame_id: str


def camera_info_problem(msg) -> Optional[str]:
    """Why a CameraInfo cannot give intrinsics, or None."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if msg.width <= 0 or msg.height <= 0:
        return f"CameraInfo has no image size ({msg.width}x{msg.height})"
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
        return f"CameraInfo K is not a valid camera matrix: {K.ravel().tolist()}"
    return None


def depth_metres(msg) -> np.ndarray:
    """REP-118 depth image -> (H, W) float32 metres, NaN where invalid (0, NaN, inf)."""
    if msg.encoding == "16UC1":
        d = messages.imgmsg_to_array(msg).astype(np.float32) / 1000.0
    elif msg.encoding == "32FC1":
        d = messages.imgmsg_to_array(msg).astype(np.float32)
    else:
        raise messages.ImageConversionError(
            f"depth image encoding {msg.encoding!r} is not 16UC1 (mm) or 32FC1 (m)")
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return d


def sibling_camera_info(image_topic: str) -> str:
    """image_transport's CameraInfo topic of an image topic: ``/a/b/image`` -> ``/a/b/camera_info``."""
    parent = image_topic.rsplit("/", 1)[0]
    return f"{parent}/camera_info" if parent else "/camera_info"


class SensorInputs:
    """CameraInfo, depth and TF for lsm_node (see the module docstring)."""

    def __init__(self, node, settings, image_topics: List[str], report: Callable[[str, str], None]):
        self._node, self._s, self._report = node, settings, report
        self.report = report
        n = len(image_topics)
        info = [settings.camera_info_topics[c] if c < len(settings.camera_info_topics) else ""
                for c in range(n)]
        derived = [sibling_camera_info(t) for t in image_topics]
        if n == 2 and derived[0] == derived[1]:  # e.g. /image_0 and /image_1: no shared info
            derived = [f"{t}/camera_info" for t in image_topics]
        self.camera_info_topics = [node.resolve_topic_name(t) if t else d
                                   for t, d in zip(info, derived)]
        self.depth_topics = [node.resolve_topic_name(settings.depth_topics[c])
                             if c < len(settings.depth_topics) and settings.depth_topics[c] else ""
                             for c in range(n)]
        self._lock = threading.Lock()
        self._info: Dict[int, _Info] = {}
        self._depth: Dict[int, deque] = {c: deque(maxlen=8) for c in range(n)}
        self._subscriptions: list = []
        needs_tf = bool(settings.world_frame or settings.odom_frame or settings.floor_frame
                        or (settings.mode == "pair" and settings.scale_source in ("auto", "stereo")))
        self.lookup, self.tf_kind = make_tf_lookup(node) if needs_tf else (None, "not needed")
        self._patient = PatientLookup(self.lookup) if self.lookup is not None else None
        self._info_awaited: set = set()  # cameras whose first CameraInfo was waited for
        self.world_frame = settings.world_frame
        self.last_notes: Dict[str, str] = {}

    # -- subscriptions (while active) -------------------------------------------------------
    def subscribe(self, qos) -> None:
        from sensor_msgs.msg import CameraInfo, Image

        for c, topic in enumerate(self.camera_info_topics):
            self._subscriptions.append(self._node.create_subscription(
                CameraInfo, topic, lambda m, c=c: self._on_info(m, c), 10))
        for c, topic in enumerate(self.depth_topics):
            if topic:
                self._subscriptions.append(self._node.create_subscription(
                    Image, topic, lambda m, c=c: self._on_depth(m, c), qos))

    def unsubscribe(self) -> None:
        for sub in self._subscriptions:
            self._node.destroy_subscription(sub)
        self._subscriptions = []

    def _on_info(self, msg, camera: int) -> None:
        problem = camera_info_problem(msg)
        if problem:
            self._report(self.camera_info_topics[camera], problem)
            return
        info = _Info(np.asarray(msg.k, np.float64).reshape(3, 3),
                     np.asarray(msg.p, np.float64).reshape(3, 4), int(msg.width), int(msg.height),
                     msg.header.frame_id)
        with self._lock:
            self._info[camera] = info

    def _on_depth(self, msg, camera: int) -> None:
        with self._lock:
            self._depth[camera].append((messages.stamp_seconds(msg.header), msg))

    def camera_info(self, camera: int) -> Optional[_Info]:
        with self._lock:
            return self._info.get(camera)

    # -- per pair (worker thread) -----------------------------------------------------------
    def resolve(self, job) -> Tuple[PairSensors, Optional[np.ndarray]]:
        """The pair's sensors and world_T_reference (None without world_frame or TF)."""
        stamps = [messages.stamp_seconds(h) for h in job.headers]
        frames = [self._s.camera_frame or h.frame_id for h in job.headers]
        for v in range(2):
            camera = v if self._s.mode == "pair" else 0
            if camera not in self._info_awaited:  # the first CameraInfo only: once per camera
                self._info_awaited.add(camera)
                self._await(lambda c=camera: self.camera_info(c) is not None,
                            self.camera_info_topics[camera])
            if self.depth_topics[camera]:
                self._await(lambda c=camera, t=stamps[v]: self._depth_near(c, t),
                            self.depth_topics[camera])
        # a rectified rig's images are described by P, not by the raw camera's K
        rectified = self._rectified_baseline() if self._s.mode == "pair" else None
        Ks, depths = [], []
        for v in range(2):
            camera = v if self._s.mode == "pair" else 0
            h, w = job.images[v].shape[:2]
            Ks.append(self._intrinsics(camera, w, h, rectified is not None))
            depths.append(self._depth_for(camera, stamps[v], w, h))
        pose = None
        source = ""
        if self._s.mode == "pair":
            if rectified is None and self.lookup is not None and frames[0] != frames[1]:
                pose, source = self._tf(frames[0], frames[1], stamps[0]), "stereo"
        elif self._s.odom_frame:  # camera 1 (the previous keyframe) in camera 0 via odometry
            a = self._tf(self._s.odom_frame, frames[0], stamps[0])
            b = self._tf(self._s.odom_frame, frames[1], stamps[1])
            if a is not None and b is not None:
                pose, source = np.linalg.inv(a) @ b, "odometry"
        world = None
        if self._s.world_frame:
            world = self._tf(self._s.world_frame, frames[0], stamps[0])
        floor = (None, None)
        if self._s.floor_frame:
            floor = tuple(self._tf(self._s.floor_frame, frames[v], stamps[v]) for v in range(2))
        sensors = PairSensors(K=tuple(Ks) if all(k is not None for k in Ks) else (None, None),
                              depth=tuple(depths), rectified_baseline=rectified,
                              relative_pose=pose, pose_source=source if pose is not None else "",
                              floor_pose=floor)
        return sensors, world

    def _intrinsics(self, camera: int, width: int, height: int,
                    rectified: bool = False) -> Optional[np.ndarray]:
        info = self.camera_info(camera)
        if info is None:
            return None
        if (info.width, info.height) != (width, height):
            self._report(self.camera_info_topics[camera],
                         f"CameraInfo is for {info.width}x{info.height} images, the images are "
                         f"{width}x{height}: intrinsics not used")
            return None
        return info.P[:, :3].copy() if rectified else info.K

    def _await(self, ready: Callable[[], bool], topic: str) -> None:
        """Wait (worker thread only) up to SENSOR_WAIT for ``ready()``, if ``topic`` has a
        publisher: a camera without CameraInfo or depth costs nothing."""
        if ready():
            return
        try:
            if self._node.count_publishers(topic) == 0:
                return
        except Exception:  # the node is shutting down: nothing to wait for
            return
        end = time.monotonic() + SENSOR_WAIT
        while time.monotonic() < end:
            time.sleep(0.005)
            if ready():
                return

    def _depth_near(self, camera: int, stamp: float) -> bool:
        with self._lock:
            return any(abs(s - stamp) <= self._s.slop for s, _ in self._depth[camera])

    def _depth_for(self, camera: int, stamp: float, width: int, height: int):
        if not self.depth_topics[camera]:
            return None
        with self._lock:
            candidates = list(self._depth[camera])
        near = [(abs(s - stamp), m) for s, m in candidates if abs(s - stamp) <= self._s.slop]
        if not near:
            self._report(self.depth_topics[camera], f"no depth image within slop = "
                                                    f"{self._s.slop:g} s of the colour image")
            return None
        msg = min(near, key=lambda x: x[0])[1]
        if (msg.width, msg.height) != (width, height):
            self._report(self.depth_topics[camera],
                         f"depth image is {msg.width}x{msg.height}, the colour image {width}x"
                         f"{height}: it must be aligned with it (same size)")
            return None
        try:
            return depth_metres(msg)
        except messages.ImageConversionError as exc:
            self._report(self.depth_topics[camera], str(exc))
            return None

    def _rectified_baseline(self) -> Optional[float]:
        """A rectified rig's signed baseline from the right camera's P (P[0][3] = -fx * B),
        or None."""
        right = self.camera_info(1)
        if right is None or right.P[0, 0] <= 0 or right.P[0, 3] == 0:
            return None
        return -right.P[0, 3] / right.P[0, 0]

    def _tf(self, target: str, source: str, stamp: float) -> Optional[np.ndarray]:
        """target_T_source at ``stamp``, waiting a little for it to arrive
        (:class:`lsm_ros.tf_buffer.PatientLookup`); None (and a report) when it cannot be had."""
        if self.lookup is None:
            self._report("TF", f"no TF available ({self.tf_kind}): {target} <- {source} unknown")
            return None
        try:
            return self._patient(target, source, stamp)
        except TransformError as exc:
            self._report("TF", f"{target} <- {source} at {stamp:.3f} s: {exc}")
            return None
