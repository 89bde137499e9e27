"""What the node publishes for one reconstruction, as numpy arrays (no ROS types).

Frames: everything 3-D is in the reference (first) view's camera optical frame (REP-103
optical: x right, y down, z forward), in model units, i.e. up to an unknown global scale.
2-D outputs are at the ORIGINAL camera resolution of the reference view: model pixels
are mapped back through the view's :class:`lsm.preprocess.ImageTransform`; camera pixels
outside the model's centre crop get ``LABEL_NONE`` / black / NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

LABEL_NONE = 255  # label id of pixels the model did not see (outside the crop)


@dataclass
class CloudArrays:
    points: np.ndarray  # (N, 3) float32, reference optical frame
    colors: np.ndarray  # (N, 3) uint8 RGB
    labels: np.ndarray  # (N,) uint32 index into the label list
    confidence: np.ndarray  # (N,) float32 pointmap confidence (>= 1)


@dataclass
class ReconstructionOutputs:
    cloud: CloudArrays
    c2w: np.ndarray  # (2, 4, 4) camera-to-reference poses of both views
    intrinsics: np.ndarray  # (2, 3, 3) at each view's original resolution
    image_sizes: np.ndarray  # (2, 2) (width, height) of each original view
    label_ids: np.ndarray  # (H, W) uint8 index into labels, LABEL_NONE outside the crop
    label_color: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 rendered z-depth, NaN where nothing was rendered
    rendered: np.ndarray  # (H, W, 3) uint8 rendered colour
    labels: Sequence[str]
    camera_status: str


def cloud_arrays(reconstruction, labels: Sequence[str], confidence_threshold: float,
                 stride: int, max_points: int, rng_seed: int = 0) -> CloudArrays:
    """Pointmap pixels of both views with confidence >= ``confidence_threshold``.

    Every ``stride``-th pixel in both axes; uniformly subsampled to ``max_points``
    (0 = no limit); labels are :meth:`Reconstruction.point_labels` of those pixels.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    rec = reconstruction
    ids, _ = rec.point_labels(list(labels))
    S = rec.size
    ids = ids.reshape(2, S, S).cpu().numpy()
    pts = rec.pointmaps.cpu().numpy()
    conf = rec.confidence.cpu().numpy()
    rgb = np.clip(np.round(rec.images.cpu().numpy() * 255.0), 0, 255).astype(np.uint8)
    sl = (slice(None), slice(None, None, stride), slice(None, None, stride))
    pts, conf, rgb, ids = pts[sl].reshape(-1, 3), conf[sl].reshape(-1), rgb[sl].reshape(-1, 3), \
        ids[sl].reshape(-1)
    keep = (conf >= confidence_threshold) & np.isfinite(pts).all(axis=1)
    index = np.flatnonzero(keep)
    if max_points and index.size > max_points:
        index = np.sort(np.random.default_rng(rng_seed).choice(index, max_points, replace=False))
    return CloudArrays(pts[index].astype(np.float32), rgb[index], ids[index].astype(np.uint32),
                       conf[index].astype(np.float32))


def reference_view_images(reconstruction, labels: Sequence[str]):
    """Label ids, label colours, rendered depth and colour at view 0, original resolution."""
    from lsm.semantics.labels import colorize
    import torch

    rec = reconstruction
    tf = rec.transforms[0]
    ids, _ = rec.label_map(list(labels), 0)
    ids_model = ids.cpu().numpy().astype(np.uint8)
    label_ids = tf.to_original(ids_model, nearest=True, fill=LABEL_NONE)
    color_model = colorize(torch.from_numpy(ids_model.astype(np.int64)),
                           num_labels=len(labels)).numpy().astype(np.uint8)
    label_color = tf.to_original(np.ascontiguousarray(color_model), nearest=True, fill=0)
    out = rec.render_view(0, features=False)  # the label map's render, kept by rec
    depth_model = out.depth[0].detach().cpu().numpy().astype(np.float32)
    depth_model[out.alpha[0].detach().cpu().numpy() < 0.5] = np.nan
    depth = tf.to_original(depth_model, nearest=False, fill=float("nan"))
    # linear interpolation next to a NaN gives NaN: keep only fully valid neighbourhoods
    rgb_model = np.clip(np.round(out.rgb[0].detach().cpu().numpy() * 255), 0, 255)
    rendered = tf.to_original(rgb_model.astype(np.uint8), nearest=False, fill=0)
    return label_ids, label_color, depth.astype(np.float32), rendered


def reconstruction_outputs(reconstruction, labels: Sequence[str], confidence_threshold: float,
                           stride: int, max_points: int) -> ReconstructionOutputs:
    """Everything the node publishes for ``reconstruction`` (runs the label/render passes)."""
    rec = reconstruction
    cloud = cloud_arrays(rec, labels, confidence_threshold, stride, max_points)
    label_ids, label_color, depth, rendered = reference_view_images(rec, labels)
    K = np.stack([rec.transforms[v].intrinsics_to_original(rec.intrinsics[v].cpu().numpy())
                  for v in range(2)])
    sizes = np.array([rec.transforms[v].original_size for v in range(2)], dtype=np.int64)
    return ReconstructionOutputs(cloud, rec.c2w.cpu().numpy().astype(np.float64), K, sizes,
                                 label_ids, label_color, depth, rendered, tuple(labels),
                                 rec.camera_status)


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion ``(x, y, z, w)`` with w >= 0 (ROS order)."""
    from transforms3d.quaternions import mat2quat

    w, x, y, z = mat2quat(np.asarray(R, dtype=np.float64))
    q = np.array([x, y, z, w]) / np.linalg.norm([x, y, z, w])
    return q if q[3] >= 0 else -q


def quaternion_to_rotation(q: Sequence[float]) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` (ROS order, any norm) -> 3x3 rotation matrix."""
    from transforms3d.quaternions import quat2mat

    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return quat2mat([w, x, y, z])
