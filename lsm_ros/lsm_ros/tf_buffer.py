"""TF lookups for lsm_node: tf2_ros where it is importable, a small buffer of our own where it
is not (tf2_ros is not on PyPI; tf2_msgs is built from compat_msgs there).

:class:`TransformCache` is the fallback, pure numpy: transforms from /tf (kept for
``cache_seconds``) and /tf_static (forever), chained through the frame tree, interpolated
in time (linear translation, spherical rotation), and a clear :class:`TransformError` when
a frame is unknown, the tree is not connected, or the stamp is outside the buffered time
(extrapolation). :func:`make_tf_lookup` subscribes it (or tf2_ros) on a node and returns
a ``lookup(target, source, stamp_seconds) -> 4x4`` function: ``target_T_source``, the pose
of ``source`` in ``target``, so that ``p_target = T @ p_source``.
"""
from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

LookupFn = Callable[[str, str, float], np.ndarray]


class TransformError(LookupError):
    """A transform is not available (the message says why). ``future``: the stamp is newer
    than what is buffered, so waiting a little may help (TF often lags the images)."""

    def __init__(self, message: str, future: bool = False) -> None:
        super().__init__(message)
        self.future = future


def quaternion_matrix(q) -> np.ndarray:
    """(x, y, z, w) -> 3x3 rotation (ROS order, any norm)."""
    from lsm_ros.messages import quaternion_to_rotation

    return quaternion_to_rotation(q)


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    q0, q1 = q0 / np.linalg.norm(q0), q1 / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    return (np.sin((1 - a) * theta) * q0 + np.sin(a * theta) * q1) / np.sin(theta)


def _matrix(t: np.ndarray, q: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quaternion_matrix(q)
    T[:3, 3] = t
    return T


class TransformCache:
    """Parent -> child transforms over time, as tf2's buffer keeps them (see module doc)."""

    def __init__(self, cache_seconds: float = 10.0, tolerance: float = 0.0) -> None:
        self.cache_seconds = float(cache_seconds)
        self.tolerance = float(tolerance)  # seconds of extrapolation accepted at either end
        self._lock = threading.Lock()
        self._parent: Dict[str, str] = {}  # child -> parent (a tree, as TF requires)
        self._dynamic: Dict[str, Tuple[List[float], deque]] = {}  # child -> (stamps, samples)
        self._static: Dict[str, np.ndarray] = {}  # child -> 4x4

    def add(self, parent: str, child: str, stamp: float, translation, rotation_xyzw,
            static: bool = False) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        t = np.asarray(translation, dtype=np.float64)
        q = np.asarray(rotation_xyzw, dtype=np.float64)
        with self._lock:
            self._parent[child] = parent
            if static:
                self._static[child] = _matrix(t, q)
                self._dynamic.pop(child, None)
                return
            stamps, samples = self._dynamic.setdefault(child, ([], deque()))
            i = bisect.bisect(stamps, stamp)
            if i > 0 and stamps[i - 1] == stamp:  # the same sample again: keep the newest
                samples[i - 1] = (t, q)
            elif i == len(stamps):
                stamps.append(stamp)
                samples.append((t, q))
            else:  # out of order: rare, rebuild
                stamps.insert(i, stamp)
                samples.insert(i, (t, q))
            while stamps and stamps[-1] - stamps[0] > self.cache_seconds:
                stamps.pop(0)
                samples.popleft()

    def add_message(self, msg, static: bool = False) -> None:
        """Every TransformStamped of a tf2_msgs/TFMessage."""
        for t in msg.transforms:
            s = t.header.stamp.sec + t.header.stamp.nanosec * 1e-9
            v, r = t.transform.translation, t.transform.rotation
            self.add(t.header.frame_id, t.child_frame_id, s, (v.x, v.y, v.z),
                     (r.x, r.y, r.z, r.w), static)

    def _edge(self, child: str, stamp: float) -> np.ndarray:
        """parent_T_child at ``stamp``."""
        if child in self._static:
            return self._static[child]
        stamps, samples = self._dynamic[child]
        if not stamps:
            raise TransformError(f"no transform to {child!r} is buffered")
        lo, hi = stamps[0] - self.tolerance, stamps[-1] + self.tolerance
        if stamp < lo or stamp > hi:
            raise TransformError(
                f"transform {self._parent[child]!r} -> {child!r} is known from {stamps[0]:.3f} to "
                f"{stamps[-1]:.3f} s, not at {stamp:.3f} s (would extrapolate "
                f"{stamp - stamps[-1] if stamp > hi else stamps[0] - stamp:.3f} s)", future=stamp > hi)
        i = bisect.bisect_left(stamps, stamp)
        if i < len(stamps) and stamps[i] == stamp or len(stamps) == 1:
            t, q = samples[min(i, len(stamps) - 1)]
            return _matrix(t, q)
        i = min(max(i, 1), len(stamps) - 1)
        (t0, q0), (t1, q1) = samples[i - 1], samples[i]
        a = float(np.clip((stamp - stamps[i - 1]) / (stamps[i] - stamps[i - 1]), 0.0, 1.0))
        return _matrix(t0 + a * (t1 - t0), _slerp(q0, q1, a))

    def _chain(self, frame: str) -> List[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
            if len(chain) > 100:
                raise TransformError(f"the TF tree has a loop at {frame!r}")
        return chain

    def lookup(self, target: str, source: str, stamp: float) -> np.ndarray:
        """target_T_source at ``stamp`` (seconds); raises :class:`TransformError`."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        with self._lock:
            known = set(self._parent) | set(self._parent.values())
            for frame in (target, source):
                if frame not in known:
                    raise TransformError(f"frame {frame!r} is not in the TF tree "
                                         f"({len(known)} frames known)")
            up_s, up_t = self._chain(source), self._chain(target)
            common = next((f for f in up_s if f in set(up_t)), None)
            if common is None:
                raise TransformError(f"{source!r} and {target!r} are not connected in TF")
            root_T_source = np.eye(4)
            for child in up_s[:up_s.index(common)]:
                root_T_source = self._edge(child, stamp) @ root_T_source
            root_T_target = np.eye(4)
            for child in up_t[:up_t.index(common)]:
                root_T_target = self._edge(child, stamp) @ root_T_target
        return np.linalg.inv(root_T_target) @ root_T_source


TF_WAIT = 0.2  # seconds a lookup waits for TF to reach a stamp it has not yet
# seconds a pair of frames never resolved may wait to appear at all: at start-up a latched
# /tf_static (a bag's, a robot_state_publisher's) can arrive after the first images; once
# resolved, or past this, an unknown frame fails at once (a wrong frame name costs nothing)
TF_FIRST_WAIT = 2.0


class PatientLookup:
    """A TF lookup (target, source, stamp) -> 4x4 that waits a little before giving up:
    up to ``wait`` s when the stamp is newer than the buffer (TF often lags the images), and
    while a pair of frames has never been resolved, up to ``first_wait`` s from its first
    request for the frames to appear. Raises the last :class:`TransformError`. For the
    worker thread: it sleeps, so never call it on the executor."""

    def __init__(self, lookup: LookupFn, wait: float = TF_WAIT, first_wait: float = TF_FIRST_WAIT) -> None:
        self.lookup, self.wait, self.first_wait = lookup, float(wait), float(first_wait)
        self._first_deadline: Dict[Tuple[str, str], float] = {}
        self._resolved: set = set()
        self._lock = threading.Lock()

    def __call__(self, target: str, source: str, stamp: float) -> np.ndarray:
        start = time.monotonic()
        key = (target, source)
        with self._lock:
            first_end = (start if key in self._resolved
                         else self._first_deadline.setdefault(key, start + self.first_wait))
        while True:
            try:
                T = self.lookup(target, source, stamp)
            except TransformError as exc:
                now = time.monotonic()
                if not math.isfinite(stamp) or not ((exc.future and now < start + self.wait)
                                                    or now < first_end):
                    raise
                time.sleep(0.01)
                continue
            with self._lock:
                self._resolved.add(key)
            return T


def make_tf_lookup(node, cache_seconds: float = 10.0) -> Tuple[Optional[LookupFn], str]:
    """A TF lookup on ``node``: tf2_ros's buffer and listener when importable, else a
    :class:`TransformCache` fed by /tf and /tf_static. Returns (lookup, which); lookup is None
    when neither tf2_ros nor tf2_msgs is importable."""
    try:
        import rclpy
        from tf2_ros import Buffer, TransformListener
    except ImportError:
        pass
    else:
        buffer = Buffer(cache_time=rclpy.duration.Duration(seconds=cache_seconds))
        node._tf_listener = TransformListener(buffer, node)

        def lookup(target: str, source: str, stamp: float) -> np.ndarray:
            try:
                t = buffer.lookup_transform(target, source,
                                            rclpy.time.Time(nanoseconds=int(round(stamp * 1e9))))
            except Exception as exc:  # tf2's LookupException, ExtrapolationException, ...
                raise TransformError(f"{type(exc).__name__}: {exc}",
                                     future="future" in str(exc)) from exc
            v, r = t.transform.translation, t.transform.rotation
            return _matrix(np.array([v.x, v.y, v.z]), np.array([r.x, r.y, r.z, r.w]))
        return lookup, "tf2_ros"
    try:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from tf2_msgs.msg import TFMessage
    except ImportError:
        return None, "none (neither tf2_ros nor tf2_msgs is importable)"
    cache = TransformCache(cache_seconds)
    static_qos = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                            reliability=ReliabilityPolicy.RELIABLE)
    node._tf_subscriptions = [
        node.create_subscription(TFMessage, "/tf", cache.add_message, 100),
        node.create_subscription(TFMessage, "/tf_static",
                                 lambda m: cache.add_message(m, static=True), static_qos),
    ]
    return cache.lookup, "lsm_ros.tf_buffer (tf2_ros not importable)"

