"""Metric scale from the robot's sensors, and measured depth fused into the reconstruction.

An image pair alone fixes geometry only up to a global scale. A robot usually knows more:

* ``depth``: an aligned depth image (RGB-D); scale = robust median of measured depth over
  predicted depth on confident pixels;
* ``stereo``: two calibrated cameras. A rectified rig (the right camera's CameraInfo P
  holds the baseline) gives dense metric depth by block matching; two cameras whose metric
  relative pose TF knows give sparse metric depth by triangulating feature matches; either
  then scales like ``depth``. With only the baseline length known: true baseline /
  estimated camera distance (the network's own translation; biased for the embedded
  model, see the README);
* ``odometry``: one moving camera whose motion TF knows (odometry): triangulated matches
  between the two keyframes as above, or travelled distance / estimated distance when only
  the distance is known; refused for too little motion or nearly pure rotation;
* ``fixed``: a factor the user gives; ``none``: model units.

"Scale" is always **metres per model unit**. :class:`ScaleTracker` smooths the per-pair
estimates of each source over time (a running median, outliers rejected). With a known
scale, :func:`fuse_depth` replaces the predicted depth by the measured one where it is valid
(the model fills the holes), so the published cloud carries the sensor's accuracy.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Optional, Sequence, Tuple

import numpy as np

from .specs import MetricSpec

MIN_MOTION_M = 0.02  # odometry: less camera travel than this is no scale reference
MIN_RELATIVE_TRANSLATION = 0.01  # estimated camera distance / median depth: below = rotation
MIN_DEPTH_PIXELS = 50  # depth: fewer valid, confident pixels give no estimate


@dataclass
class PairSensors:
    """What the robot measured for one pair (view 0 = reference). Every field is optional.

    K: per view, 3x3 pixel intrinsics at the camera image's resolution (CameraInfo).
    depth: per view, a depth image aligned with that view's camera image, in metres
        (H, W) float32; NaN or <= 0 where invalid.
    rectified_baseline: a rectified stereo rig: camera 1's offset along camera 0's x axis,
        metres, signed (> 0: camera 1 on the right); from the right CameraInfo's P.
    relative_pose: camera 1's pose in camera 0's frame (4x4, metres), from TF: between the
        two cameras (``pose_source`` 'stereo') or between two keyframes ('odometry').
    floor_pose: per view, the camera's pose in a floor frame (4x4, metres; z up, the floor
        at z = 0, like REP-120's base_footprint), from TF at that image's stamp: lets
        :mod:`lsm.geometry.floor` label the floor from measured geometry once the result is
        metric. Without view 1's, view 0's is carried to view 1 by the pair's pose.
    """

    K: Tuple[Optional[np.ndarray], Optional[np.ndarray]] = (None, None)
    depth: Tuple[Optional[np.ndarray], Optional[np.ndarray]] = (None, None)
    rectified_baseline: Optional[float] = None
    relative_pose: Optional[np.ndarray] = None
    pose_source: str = ""  # stereo | odometry
    floor_pose: Tuple[Optional[np.ndarray], Optional[np.ndarray]] = (None, None)

    @property
    def distance(self) -> Optional[float]:
        """Metres between the two camera centres, when known."""
        if self.relative_pose is not None:
            return float(np.linalg.norm(np.asarray(self.relative_pose)[:3, 3]))
        if self.rectified_baseline is not None:
            return abs(float(self.rectified_baseline))
        return None


@dataclass(frozen=True)
class ScaleEstimate:
    """One pair's scale from one source: metres per model unit, or None with the reason."""

    source: str
    value: Optional[float]
    confidence: float = 0.0  # in [0, 1]
    detail: str = ""


def _distance(c2w) -> float:
    t = np.asarray(c2w[1][:3, 3], dtype=np.float64)
    return float(np.linalg.norm(t))


def scale_from_distance(source: str, true_distance: Optional[float], c2w,
                        median_depth: float) -> ScaleEstimate:
    """Stereo baseline or odometry motion (metres) over the estimated camera distance."""
    if true_distance is None or not math.isfinite(true_distance):
        return ScaleEstimate(source, None, detail=f"no {source} distance measured")
    if true_distance < MIN_MOTION_M:
        return ScaleEstimate(source, None, detail=f"{source} distance {true_distance:.3f} m is "
                                                  f"below {MIN_MOTION_M} m")
    estimated = _distance(c2w)
    if not math.isfinite(estimated) or estimated <= 0:
        return ScaleEstimate(source, None, detail="the estimated cameras coincide")
    relative = estimated / max(median_depth, 1e-9)
    if relative < MIN_RELATIVE_TRANSLATION:
        return ScaleEstimate(source, None, detail=f"nearly pure rotation: camera distance is "
                                                  f"{relative:.4f} of the scene depth")
    confidence = float(min(1.0, relative / (10 * MIN_RELATIVE_TRANSLATION)))
    return ScaleEstimate(source, true_distance / estimated, confidence,
                         f"{true_distance:.3f} m over {estimated:.4f} model units")


def scale_from_points(source: str, uv_model: np.ndarray, depth: np.ndarray, predicted: np.ndarray,
                      min_points: int = 8) -> ScaleEstimate:
    """Median of sparse metric depths (e.g. triangulated) over the predicted depth (model
    units) at the same model pixels ``uv_model`` (N, 2)."""
    S = predicted.shape[0]
    u = np.floor(uv_model[:, 0]).astype(int)
    v = np.floor(uv_model[:, 1]).astype(int)
    inside = (u >= 0) & (u < predicted.shape[1]) & (v >= 0) & (v < S)
    p = predicted[v[inside], u[inside]]
    d = depth[inside]
    ok = np.isfinite(p) & (p > 0) & np.isfinite(d) & (d > 0)
    if int(ok.sum()) < min_points:
        return ScaleEstimate(source, None, detail=f"only {int(ok.sum())} triangulated points "
                                                  f"(need {min_points})")
    r = d[ok] / p[ok]
    value = float(np.median(r))
    spread = float(np.median(np.abs(r / value - 1.0)))
    confidence = float(np.clip(1.0 - spread, 0.0, 1.0) * min(1.0, ok.sum() / 50.0))
    return ScaleEstimate(source, value, confidence,
                         f"median of {int(ok.sum())} triangulated points, spread {100 * spread:.1f} %")


def scale_from_depth(measured: Sequence[Optional[np.ndarray]], predicted: Sequence[np.ndarray],
                     confidence: Sequence[np.ndarray], source: str = "depth") -> ScaleEstimate:
    """Median of measured / predicted depth over the valid pixels (model pixels; ``measured``
    in metres, NaN invalid). ``confidence`` is not used to select pixels: on held-out pairs
    keeping only the more confident half moved the estimate away from the best scale."""
    ratios = []
    total = 0
    for m, p, c in zip(measured, predicted, confidence):
        if m is None:
            continue
        total += m.size
        ok = np.isfinite(m) & (m > 0) & np.isfinite(p) & (p > 0)
        ratios.append(m[ok] / p[ok])
    if not ratios:
        return ScaleEstimate(source, None, detail="no depth image")
    r = np.concatenate(ratios)
    if r.size < MIN_DEPTH_PIXELS:
        return ScaleEstimate(source, None, detail=f"only {r.size} valid, confident depth pixels")
    value = float(np.median(r))
    spread = float(np.median(np.abs(r / value - 1.0)))
    confidence = float(np.clip(1.0 - spread, 0.0, 1.0) * min(1.0, 4.0 * r.size / max(total, 1)))
    return ScaleEstimate(source, value, confidence,
                         f"median of {r.size} pixels, spread {100 * spread:.1f} %")


@dataclass
class ScaleTracker:
    """Running estimate per source: the median of the last ``window`` accepted estimates;
    once ``min_samples`` exist, an estimate more than ``outlier`` (relative) away from it is
    rejected (counted), so one bad pose cannot throw the scale off."""

    window: int = 15
    outlier: float = 0.3
    min_samples: int = 3
    _values: Dict[str, Deque[float]] = field(default_factory=dict)
    rejected: int = 0

    def update(self, estimate: ScaleEstimate) -> bool:
        """Add ``estimate`` (ignored without a value); True when it was accepted."""
        if estimate.value is None:
            return False
        values = self._values.setdefault(estimate.source, deque(maxlen=self.window))
        if len(values) >= self.min_samples:
            current = float(np.median(values))
            if abs(estimate.value / current - 1.0) > self.outlier:
                self.rejected += 1
                return False
        values.append(float(estimate.value))
        return True

    def value(self, source: str) -> Optional[float]:
        values = self._values.get(source)
        return float(np.median(values)) if values else None

    def samples(self, source: str) -> int:
        return len(self._values.get(source, ()))

    def reset(self) -> None:
        self._values.clear()
        self.rejected = 0


@dataclass(frozen=True)
class ScaleDecision:
    """The scale applied to one pair: metres per model unit (None: model units)."""

    value: Optional[float]
    source: str  # stereo | depth | odometry | fixed | none
    confidence: float
    detail: str
    estimates: Tuple[ScaleEstimate, ...] = ()

    @property
    def units(self) -> str:
        return "m" if self.value is not None else "model units"


ORDER = ("depth", "stereo", "odometry")  # 'auto': the most accurate measured source first


def decide_scale(spec: MetricSpec, estimates: Dict[str, ScaleEstimate],
                 tracker: Optional[ScaleTracker]) -> ScaleDecision:
    """Pick the pair's scale by ``spec.scale_source`` from this pair's ``estimates`` and the
    smoothed history in ``tracker``; a source without a usable value falls back to the next
    one ('auto') or to model units (a named source), saying why."""
    all_estimates = tuple(estimates.values())
    if spec.scale_source == "none":
        return ScaleDecision(None, "none", 0.0, "scale_source is none", all_estimates)
    if spec.scale_source == "fixed":
        return ScaleDecision(spec.fixed_scale, "fixed", 1.0, "fixed_scale parameter",
                             all_estimates)
    sources = ORDER if spec.scale_source == "auto" else (spec.scale_source,)
    reasons = []
    for source in sources:
        estimate = estimates.get(source)
        if estimate is None:
            continue
        accepted = tracker.update(estimate) if tracker is not None else estimate.value is not None
        value = tracker.value(source) if tracker is not None else estimate.value
        if value is not None:
            note = "" if accepted else " (this pair's estimate rejected as an outlier)"
            count = tracker.samples(source) if tracker is not None else 1
            return ScaleDecision(value, source, estimate.confidence if accepted else 0.5,
                                 f"{estimate.detail}; median of {count}{note}", all_estimates)
        reasons.append(f"{source}: {estimate.detail}")
    if spec.scale_source == "auto" and spec.fixed_scale > 0:
        return ScaleDecision(spec.fixed_scale, "fixed", 1.0,
                             "no measured source (" + "; ".join(reasons) + "); fixed_scale",
                             all_estimates)
    return ScaleDecision(None, "none", 0.0,
                         "no scale: " + ("; ".join(reasons) or "no sensor for it"), all_estimates)


def unproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) depth and 3x3 pixel intrinsics -> (H, W, 3) points in that camera's optical
    frame (pixel centres at +0.5, the convention of :mod:`lsm.preprocess`)."""
    H, W = depth.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    x = (u - K[0, 2]) / K[0, 0] * depth
    y = (v - K[1, 2]) / K[1, 1] * depth
    return np.stack([x, y, depth], axis=-1)


def fuse_depth(points: np.ndarray, measured: np.ndarray, K: np.ndarray, c2w: np.ndarray,
               scale: float) -> Tuple[np.ndarray, np.ndarray]:
    """Replace the predicted points of one view by its measured depth where that is valid.

    points: (H, W, 3) predicted, reference frame, model units; measured: (H, W) metres at the
    same (model) pixels, NaN/<= 0 invalid; K: that view's intrinsics (model pixels); c2w: its
    camera-to-reference pose (model units); scale: metres per model unit.
    Returns (fused points, valid mask).
    """
    valid = np.isfinite(measured) & (measured > 0)
    own = unproject(np.where(valid, measured / scale, 1.0), K)
    ref = own @ np.asarray(c2w[:3, :3], np.float64).T + np.asarray(c2w[:3, 3], np.float64)
    return np.where(valid[..., None], ref, points).astype(points.dtype), valid
