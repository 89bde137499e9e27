"""``lsm-eval --suite``: the model on scenes it was not trained on, beside trivial baselines.

Every source is evaluated the way the node uses the model (:class:`lsm.Perception`: one
image pair in, pointmaps, cameras, a label image and a pose confidence out), each pair
against its own ground truth:

* ``procedural``: held-out rooms of the training generator (in domain);
* ``independent``: rooms of :mod:`lsm_train.data.independent`, a structurally different
  renderer used only for evaluation;
* ``real:<name>``: real RGB-D sequences (ScanNet-style folders, see
  :mod:`lsm_train.data.scannet`) with measured depth and motion-capture poses, split into a
  tuning part and a held-out part (the held-out part is only reported, never tuned on).

Figures per source (medians over pairs unless said otherwise):

* depth AbsRel and tau (1.03) of both views after one median scale per pair (a pair has no
  metric scale), beside the **best constant depth** (the median true depth; what a model
  that knows nothing but the scale scores) and the **mean prediction** (the average of the
  model's own depth maps over the source: as good as the model when it ignores its input);
* the focal estimate's relative error beside a fixed guess (the training field of view);
* rotation error of view 1's pose beside the **identity rotation**'s, and the translation
  direction error (up to scale);
* pose confidence: AUC of the published confidence against "direction error > 30 deg"
  (1 = it ranks every good pose above every bad one, 0.5 = chance); n/a without both kinds;
* labels where the truth has them: mIoU and pixel accuracy over the pairs (8 classes);
* floor IoU against geometric truth (real sequences: pixels on the lowest large
  upward-facing plane, gravity from the camera poses), of the model's labels alone and with
  what a robot adds (the depth images and a floor frame, as TF's base_footprint: the floor
  is then decided by :mod:`lsm.geometry.floor`), and, as a check that needs no truth,
  cross-view label consistency (view 0's labels carried to view 1 by the true depth and
  poses) beside the agreement two independent label images of the same class frequencies
  would reach by chance;
* real sequences with what an RGB-D robot adds (both depth images and CameraInfo, no pose
  from TF): the published pose's rotation, direction and translation errors (metric) and
  its confidence's AUC, the pose now refined on the measured depth
  (:mod:`lsm.geometry.depth_pose`).

Usage::

    lsm-eval --suite [--real-data DIR] [--pairs 12] [--checkpoint F] [--network-pose]
                     [--no-depth-pose] [--out DIR]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..data.sample import CLASS_NAMES, IGNORE_LABEL

FLOOR = CLASS_NAMES.index("floor")
BAD_DIRECTION_DEG = 30.0
TRAINING_FOV_DEG = 62.5  # typical horizontal field of view of the training generator


@dataclass
class TruthPair:
    """Two posed RGB-D views (view 0 is the reference) with optional labels (255 = ignore)."""

    images: Sequence[np.ndarray]  # (H, W, 3) uint8 RGB
    depth: Sequence[np.ndarray]  # (H, W) metres, 0 = invalid
    K: Sequence[np.ndarray]  # (3, 3), pixel centres at +0.5
    c2w: Sequence[np.ndarray]  # (4, 4) camera-to-world, OpenCV axes
    up: np.ndarray  # (3,) world up (against gravity)
    labels: Optional[Sequence[np.ndarray]] = None  # (H, W) uint8 class ids of CLASS_NAMES
    name: str = ""


# ------------------------------------------------------------------------------ sources

def synthetic_pairs(source: str, seeds: Iterable[int], size=128) -> List[TruthPair]:
    """Pairs of the training generator (``procedural``) or the independent one."""
    if source == "procedural":
        from ..data.procedural import generate_sample as make
    elif source == "independent":
        from ..data.independent import generate_independent_sample as make
    else:
        raise ValueError(f"unknown synthetic source {source!r}")
    out = []
    for seed in seeds:
        s = make(seed, size=size)
        a, b = s.context
        out.append(TruthPair([a.image, b.image], [a.depth, b.depth], [a.K, b.K], [a.c2w, b.c2w],
                             np.array([0.0, 0.0, 1.0]), [a.labels, b.labels], f"{source}:{seed}"))
    return out


def gravity_up(poses: Sequence[np.ndarray]) -> np.ndarray:
    """World up from the camera poses of a sequence: cameras are held roughly upright, so the
    mean of their image-up axes (-y of OpenCV cameras) points against gravity."""
    up = -np.mean([np.asarray(T, np.float64)[:3, 1] for T in poses], axis=0)
    return up / np.linalg.norm(up)


def real_pairs(folder: str, gap: int = 1, limit: Optional[int] = None,
               frames: Optional[Sequence[int]] = None) -> List[TruthPair]:
    """Consecutive frames (i, i + gap) of a ScanNet-style folder at its stored resolution;
    ``frames`` = (first, last) frame ids to use (both included), default all."""
    import cv2

    from ..data.scannet import ScanNetStyleScene

    scene = ScanNetStyleScene(folder)
    everything = [i for i in scene.frame_ids if scene.pose_valid(i)]
    up = gravity_up([scene.pose(i) for i in everything])  # from the whole sequence
    ids = [i for i in everything if frames is None or frames[0] <= i <= frames[1]]
    poses = {i: scene.pose(i) for i in ids}

    def frame(i):
        bgr = cv2.imread(os.path.join(folder, "color", scene._color_files[i]), cv2.IMREAD_COLOR)
        raw = cv2.imread(os.path.join(folder, "depth", f"{i}.png"), cv2.IMREAD_UNCHANGED)
        if bgr is None or raw is None:
            raise ValueError(f"cannot read frame {i} of {folder}")
        depth = raw.astype(np.float32) / scene.depth_scale
        if depth.shape != bgr.shape[:2]:
            raise ValueError(f"{folder}: depth {i} is {depth.shape}, colour {bgr.shape[:2]}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth

    out = []
    name = os.path.basename(os.path.normpath(folder))
    for i, j in zip(ids, ids[gap:]):
        (ia, da), (ib, db) = frame(i), frame(j)
        out.append(TruthPair([ia, ib], [da, db], [scene.K_color] * 2, [poses[i], poses[j]], up,
                             None, f"{name}:{i}-{j}"))
        if limit and len(out) >= limit:
            break
    return out


# ------------------------------------------------------------------------------ truth

def _unproject(depth: np.ndarray, K: np.ndarray, c2w: Optional[np.ndarray] = None) -> np.ndarray:
    """(H, W, 3) float64 points of a z-depth map (lsm.geometry.pointmaps' convention)."""
    from lsm.geometry.pointmaps import depth_to_pointmap

    return depth_to_pointmap(np.asarray(depth, np.float64)[None], np.asarray(K, np.float64),
                             None if c2w is None else np.asarray(c2w, np.float64))[0].numpy()


def _heights_facing_up(depth, K, c2w, up, max_tilt_deg: float = 25.0):
    """Per pixel: height along ``up`` and whether the surface faces up (normal from the
    depth within ``max_tilt_deg``); both (H, W)."""
    from lsm.geometry.floor import surface_normals

    world = _unproject(depth, K, c2w)
    n = surface_normals(world)
    norm = np.linalg.norm(n, axis=-1)
    facing = np.abs(n @ up) > np.cos(np.radians(max_tilt_deg)) * np.maximum(norm, 1e-12)
    return world @ up, (depth > 0) & (norm > 0) & facing


def floor_truth(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray, up: np.ndarray,
                floor_height: float, tolerance: float = 0.05) -> np.ndarray:
    """bool (H, W): pixels on the floor plane (height ``floor_height`` along ``up``, within
    ``tolerance`` m) whose surface faces up."""
    height, facing = _heights_facing_up(depth, K, c2w, up)
    return facing & (np.abs(height - floor_height) < tolerance)


def floor_height(pairs: Sequence[TruthPair]) -> Optional[float]:
    """Height (along up) of the lowest large upward-facing plane seen in a sequence, or None."""
    heights = []
    for p in pairs:
        for v in range(2):
            height, facing = _heights_facing_up(p.depth[v], p.K[v], p.c2w[v], p.up)
            heights.append(height[facing])
    h = np.concatenate(heights) if heights else np.zeros(0)
    if h.size < 500:
        return None
    hist, edges = np.histogram(h, bins=np.arange(h.min(), h.max() + 0.05, 0.04))
    strong = np.flatnonzero(hist >= max(200, 0.05 * h.size))
    if strong.size == 0:
        return None
    k = strong[0]  # the lowest strong peak
    return float(np.median(h[(h >= edges[k]) & (h < edges[k + 1])]))


def floor_frame_pose(p: "TruthPair", floor_z: float, view: int = 0) -> np.ndarray:
    """View ``view``'s camera pose (4x4, metres) in a floor frame (z = world up, the floor at
    z = 0): what TF gives a robot as base_footprint <- camera."""
    up = np.asarray(p.up, np.float64)
    x = np.cross([0.0, 1.0, 0.0] if abs(up[1]) < 0.9 else [1.0, 0.0, 0.0], up)
    x /= np.linalg.norm(x)
    F = np.eye(4)
    F[:3, :3] = np.stack([x, np.cross(up, x), up])
    F[2, 3] = -floor_z
    return F @ np.asarray(p.c2w[view], np.float64)


def floor_overlap(rec, labels, p: "TruthPair", floor_z: float):
    """(intersection, union, truth pixels) of the "floor" pixels of ``labels`` (two (S, S)
    label maps of ``rec`` in CLASS_NAMES ids) against the geometric floor truth of ``p``."""
    inter = union = truth_pixels = 0
    for v in range(2):
        true = rec.transforms[v].to_model(np.asarray(p.depth[v], np.float32), nearest=True, fill=0.0)
        K_model = rec.transforms[v].intrinsics_to_model(np.asarray(p.K[v], np.float64))
        truth = floor_truth(true, K_model, np.asarray(p.c2w[v], np.float64), p.up, floor_z)
        mine = (labels[v] == FLOOR) & (true > 0)
        inter += int((truth & mine).sum())
        union += int((truth | mine).sum())
        truth_pixels += int(truth.sum())
    return inter, union, truth_pixels


def floor_with_sensors(perception, p: "TruthPair", floor_z: float, two_view_pose: bool = True,
                       floor_poses=None):
    """(intersection, union) of the floor label against the geometric truth when the robot's
    sensors are given: both depth images, CameraInfo and the floor frame (lsm.geometry.floor;
    ``floor_poses``: the views' poses in it, default the true ones)."""
    return with_sensors(perception, p, floor_z, two_view_pose, floor_poses)["floor"]


def with_sensors(perception, p: "TruthPair", floor_z: Optional[float] = None,
                 two_view_pose: bool = True, floor_poses=None, depth_pose: bool = True) -> Dict[str, object]:
    """What the robot's sensors give (both depth images, CameraInfo and, with ``floor_z``,
    the floor frame; no pose from TF): the published pose's errors (rotation, direction,
    translation in metres: the result is metric) and confidence (lsm.geometry.depth_pose),
    and with ``floor_z`` ``floor`` = (intersection, union) of the floor label against the
    geometric truth (lsm.geometry.floor; ``floor_poses``: the views' poses in the floor
    frame, default the true ones). ``depth_pose=False``: the pose is not refined on the
    depth (the image pose made metric). ``_pose`` and ``_true_pose``: both relative poses
    (4x4, metres), for :func:`chain_errors`."""
    from lsm.geometry.pose_metrics import relative_pose_errors
    from lsm.metric import PairSensors
    from lsm.specs import MetricSpec

    poses = (None, None)
    if floor_z is not None:
        poses = floor_poses or tuple(floor_frame_pose(p, floor_z, v) for v in range(2))
    sensors = PairSensors(K=tuple(np.asarray(k, np.float64) for k in p.K),
                          depth=tuple(np.asarray(d, np.float32) for d in p.depth),
                          floor_pose=poses)
    rec = perception.reconstruct([(p.images[0], p.images[1])], sensors=[sensors],
                                 two_view_pose=two_view_pose, metric=MetricSpec(depth_pose=depth_pose))[0]
    if not rec.metric:
        raise ValueError(f"{p.name}: no metric scale from the depth images ({rec.scale_detail})")
    c2w = rec.c2w.double().numpy()
    estimated = np.linalg.inv(c2w[0]) @ c2w[1]
    truth = np.linalg.inv(p.c2w[0]) @ p.c2w[1]
    r, d = relative_pose_errors(estimated, truth)
    out: Dict[str, object] = {
        "sensor_rotation_deg": float(r), "sensor_direction_deg": float(d),
        "sensor_translation_error_m": float(np.linalg.norm(estimated[:3, 3] - truth[:3, 3])),
        "no_motion_translation_error_m": float(np.linalg.norm(truth[:3, 3])),
        "sensor_pose_confidence": float(rec.pose_confidence),
        "_pose": estimated, "_true_pose": truth}
    if floor_z is not None:
        if rec.floor is None:
            raise ValueError(f"{p.name}: the floor was not decided ({rec.floor_detail})")
        labels = [perception.label_map(rec, list(CLASS_NAMES), v)[0].cpu().numpy() for v in range(2)]
        out["floor"] = floor_overlap(rec, labels, p, floor_z)[:2]
    return out


def chain_errors(rows: List[Dict[str, object]]) -> None:
    """A handheld RGB-D camera without odometry (mono mode, no TF) places each keyframe by
    chaining the pairs' poses (lsm.mapping.MapFusion). For the consecutive pairs of one
    sequence, the rows get ``sensor_chain_error_m``: how far the chain of the published
    poses puts each pair's second camera from its true place (the first camera fixed), and
    ``no_motion_chain_error_m``, the same for a camera that never moved. Pops ``_pose`` and
    ``_true_pose``."""
    est, true = np.eye(4), np.eye(4)
    for r in rows:
        pose, truth = r.pop("_pose", None), r.pop("_true_pose", None)
        if pose is None:
            continue
        est, true = est @ pose, true @ truth
        r["sensor_chain_error_m"] = float(np.linalg.norm(est[:3, 3] - true[:3, 3]))
        r["no_motion_chain_error_m"] = float(np.linalg.norm(true[:3, 3]))


def floor_plane(pairs: Sequence[TruthPair]):
    """(the pairs with ``up`` = the floor's normal, the floor's height along it), or (pairs,
    None) when no floor is seen. The floor is found with gravity from the poses
    (:func:`floor_height`), then refitted to its own points: the poses' up is only the mean
    of the cameras' up axes, 7 deg off the floor's normal in fr3_cabinet (the floor's
    points spread 5 cm about a plane of that up, 1.2 cm about their own)."""
    import dataclasses

    z = floor_height(pairs)
    if z is None:
        return list(pairs), None
    up = np.asarray(pairs[0].up, np.float64)
    points = []
    for p in pairs:
        for v in range(2):
            height, facing = _heights_facing_up(p.depth[v], p.K[v], p.c2w[v], up)
            world = _unproject(p.depth[v], p.K[v], p.c2w[v])
            points.append(world[facing & (np.abs(height - z) < 0.15)][::4])
    pts = np.concatenate(points)
    n, d = up, z
    for tolerance in (0.15, 0.05, 0.05):
        near = pts[np.abs(pts @ n - d) < tolerance]
        centre = near.mean(axis=0)
        n = np.linalg.eigh(np.cov((near - centre).T))[1][:, 0]
        n = n if n @ up > 0 else -n
        d = float(centre @ n)
    return [dataclasses.replace(p, up=n) for p in pairs], d


# ------------------------------------------------------------------------------ metrics

def auc(scores: Sequence[float], bad: Sequence[bool]) -> Optional[float]:
    """Probability that a good item scores above a bad one (ties count half); None without
    both kinds."""
    s, b = np.asarray(scores, np.float64), np.asarray(bad, bool)
    good, worse = s[~b], s[b]
    if good.size == 0 or worse.size == 0:
        return None
    greater = (good[:, None] > worse[None, :]).mean()
    ties = (good[:, None] == worse[None, :]).mean()
    return float(greater + 0.5 * ties)


def _carry_labels(p: TruthPair, pred0: np.ndarray, pred1: np.ndarray):
    """View 0's predicted labels at view 1's pixels through the true geometry: the pairs
    (label in view 0, label in view 1) of co-visible pixels (depth agreeing within 5 %)."""
    d0 = p.depth[0]
    ok = (d0 > 0) & (pred0 != 255)
    cam0 = _unproject(d0, p.K[0])[ok]
    T = np.linalg.inv(p.c2w[1]) @ p.c2w[0]
    cam1 = cam0 @ T[:3, :3].T + T[:3, 3]
    z = cam1[:, 2]
    uv = (cam1 @ np.asarray(p.K[1]).T)[:, :2] / np.maximum(z, 1e-9)[:, None]
    h, w = pred1.shape
    u, v = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    inside = (z > 0.05) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, z, src = u[inside], v[inside], z[inside], pred0[ok][inside]
    d1 = p.depth[1][v, u]
    visible = (d1 > 0) & (np.abs(d1 - z) < 0.05 * z) & (pred1[v, u] != 255)
    return src[visible], pred1[v, u][visible]


def pose_rows(perception, pairs: Sequence[TruthPair], two_view_pose: bool = True) -> List[Dict[str, float]]:
    """Only the pose figures of each pair (direction and rotation errors, the identity's
    rotation error, the published pose confidence): what the confidence's AUC needs,
    without label maps."""
    from lsm.geometry.pose_metrics import relative_pose_errors, rotation_angle_deg

    rows = []
    for p in pairs:
        rec = perception.reconstruct([(p.images[0], p.images[1])], two_view_pose=two_view_pose)[0]
        c2w = rec.c2w.double().numpy()
        truth = np.linalg.inv(p.c2w[0]) @ p.c2w[1]
        r, d = relative_pose_errors(np.linalg.inv(c2w[0]) @ c2w[1], truth)
        rows.append({"rotation_deg": float(r), "direction_deg": float(d),
                     "identity_rotation_deg": float(rotation_angle_deg(np.eye(3), truth[:3, :3])),
                     "pose_confidence": float(rec.pose_confidence), "pose_check": rec.pose_check})
    return rows


def split_pairs(split: str) -> List[TruthPair]:
    """The pairs of a committed real split (``real tuning`` or ``real held-out``)."""
    return [p for folder, frames in REAL_SPLITS[split]
            for p in real_pairs(os.path.join(REAL_DATA, folder), frames=frames)]


def evaluate_pair(perception, p: TruthPair, labels: Sequence[str] = CLASS_NAMES,
                  floor_z: Optional[float] = None, two_view_pose: bool = True,
                  sensors: bool = False, depth_pose: bool = True) -> Dict[str, float]:
    """Every figure of one pair (see the module docstring); ``sensors``: also with what an
    RGB-D robot adds (real sequences), the floor with it where ``floor_z`` is known."""
    import torch

    from lsm.geometry.pose_metrics import relative_pose_errors, rotation_angle_deg

    from .metrics import confusion_matrix, depth_scores

    rec = perception.reconstruct([(p.images[0], p.images[1])], two_view_pose=two_view_pose)[0]
    row: Dict[str, float] = {}
    # depth of both views in their own cameras, at the model's pixels
    pts = rec.pointmaps.double().numpy()
    c2w = rec.c2w.double().numpy()
    own1 = (pts[1] - c2w[1][:3, 3]) @ c2w[1][:3, :3]
    pred = np.stack([pts[0][..., 2], own1[..., 2]])
    true = np.stack([rec.transforms[v].to_model(np.asarray(p.depth[v], np.float32), nearest=True,
                                                fill=0.0) for v in range(2)])
    row.update(depth_scores(torch.from_numpy(pred), torch.from_numpy(true.astype(np.float64))))
    valid = true > 0
    # kept for the input-blind baseline (the source's mean prediction), then dropped
    ok0 = np.isfinite(pred[0]) & (pred[0] > 0)
    row["_pred0"] = pred[0] / np.median(pred[0][ok0]) if ok0.any() else None
    row["_true0"] = true[0]
    const = np.median(true[valid])
    row["constant_abs_rel"] = float(np.mean(np.abs(const - true[valid]) / true[valid]))
    # pose
    truth = np.linalg.inv(p.c2w[0]) @ p.c2w[1]
    estimated = np.linalg.inv(c2w[0]) @ c2w[1]
    r, d = relative_pose_errors(estimated, truth)
    # focal: the estimate against the true K (both at the model's pixels); the baseline
    # guesses the training generator's typical field of view
    true_f = float(rec.transforms[0].intrinsics_to_model(np.asarray(p.K[0], np.float64))[0, 0])
    guess_f = 0.5 * rec.size / np.tan(np.radians(TRAINING_FOV_DEG) / 2)
    row.update(focal_error=abs(float(rec.focal_estimated) / true_f - 1.0),
               focal_guess_error=abs(guess_f / true_f - 1.0))
    row.update(rotation_deg=float(r), direction_deg=float(d),
               identity_rotation_deg=float(rotation_angle_deg(np.eye(3), truth[:3, :3])),
               pose_confidence=float(rec.pose_confidence))
    # labels (model pixels)
    names = list(labels)
    pred_labels = [perception.label_map(rec, names, v)[0].cpu().numpy().astype(np.uint8) for v in range(2)]
    if p.labels is not None:
        gt = np.stack([rec.transforms[v].to_model(p.labels[v], nearest=True, fill=IGNORE_LABEL)
                       for v in range(2)]).astype(np.int64)
        row["confusion"] = confusion_matrix(torch.from_numpy(np.stack(pred_labels).astype(np.int64)),
                                            torch.from_numpy(gt), len(names)).numpy()
    # floor against geometric truth
    if floor_z is not None:
        row["floor_intersection"], row["floor_union"], row["floor_truth_pixels"] = floor_overlap(
            rec, pred_labels, p, floor_z)
    if sensors:
        sensed = with_sensors(perception, p, floor_z, two_view_pose, depth_pose=depth_pose)
        if floor_z is not None:
            row["floor_sensors_intersection"], row["floor_sensors_union"] = sensed.pop("floor")
        row.update(sensed)
    # cross-view consistency (at the original resolution, labels carried by true geometry)
    full = [rec.transforms[v].to_original(pred_labels[v], nearest=True, fill=255) for v in range(2)]
    a, b = _carry_labels(p, full[0], full[1])
    if a.size:
        f0 = np.bincount(a, minlength=len(names))[:len(names)] / a.size
        f1 = np.bincount(b, minlength=len(names))[:len(names)] / b.size
        row.update(consistency=float(np.mean(a == b)), consistency_chance=float(f0 @ f1),
                   covisible=int(a.size))
    return row


def summarise(rows: List[Dict[str, float]]) -> Dict[str, object]:
    """Medians (and pooled label/floor figures) of one source's pair rows."""
    import torch

    from .metrics import segmentation_scores

    def med(key):
        v = [r[key] for r in rows if key in r and np.isfinite(r[key])]
        return float(np.median(v)) if v else None

    s: Dict[str, object] = {"pairs": len(rows)}
    for key in ("abs_rel", "tau", "constant_abs_rel", "mean_prediction_abs_rel", "rotation_deg",
                "identity_rotation_deg", "direction_deg", "consistency", "consistency_chance", "focal_error",
                "focal_guess_error"):
        s[key] = med(key)
    s["direction_within_30"] = float(np.mean([r["direction_deg"] <= BAD_DIRECTION_DEG for r in rows]))
    s["pose_auc"] = auc([r["pose_confidence"] for r in rows],
                        [r["direction_deg"] > BAD_DIRECTION_DEG for r in rows])
    sensed = [r for r in rows if "sensor_direction_deg" in r]
    if sensed:
        for key in ("sensor_rotation_deg", "sensor_direction_deg", "sensor_translation_error_m",
                    "no_motion_translation_error_m"):
            s[key] = med(key)
        for key in ("sensor_chain_error_m", "no_motion_chain_error_m"):  # RMS over the chains
            v = [r[key] for r in sensed if key in r]
            s[key] = float(np.sqrt(np.mean(np.square(v)))) if v else None
        s["sensor_direction_within_30"] = float(np.mean([r["sensor_direction_deg"] <= BAD_DIRECTION_DEG
                                                         for r in sensed]))
        s["sensor_pose_auc"] = auc([r["sensor_pose_confidence"] for r in sensed],
                                   [r["sensor_direction_deg"] > BAD_DIRECTION_DEG for r in sensed])
    conf = [r["confusion"] for r in rows if "confusion" in r]
    if conf:
        seg = segmentation_scores(torch.from_numpy(np.sum(conf, axis=0)))
        s["miou"], s["accuracy"] = float(seg["miou"]), float(seg["accuracy"])
    floor = [r for r in rows if r.get("floor_truth_pixels", 0) > 0]
    if floor:
        s["floor_iou"] = float(sum(r["floor_intersection"] for r in floor)
                               / max(1, sum(r["floor_union"] for r in floor)))
        s["floor_pairs"] = len(floor)
        s["floor_iou_sensors"] = float(sum(r["floor_sensors_intersection"] for r in floor)
                                       / max(1, sum(r["floor_sensors_union"] for r in floor)))
    return s


def evaluate_source(perception, pairs: List[TruthPair], log=print, floor: bool = False,
                    two_view_pose: bool = True, depth_pose: bool = True) -> Dict[str, object]:
    """Summary and rows of one source; ``floor``: a real RGB-D sequence of consecutive pairs
    (its floor from geometry, and the figures with the robot's depth images and CameraInfo,
    the pose refined on the depth unless ``depth_pose`` is false)."""
    pairs, floor_z = floor_plane(pairs) if floor else (pairs, None)
    if floor and floor_z is None:
        log("no floor plane found in this sequence: floor IoU not computed")
    rows = []
    for k, p in enumerate(pairs):
        row = evaluate_pair(perception, p, floor_z=floor_z, two_view_pose=two_view_pose, sensors=floor,
                            depth_pose=depth_pose)
        rows.append(row)
        log(f"{p.name}: AbsRel {row['abs_rel']:.3f} (constant {row['constant_abs_rel']:.3f}), "
            f"rotation {row['rotation_deg']:.1f} deg (identity {row['identity_rotation_deg']:.1f}), "
            f"direction {row['direction_deg']:.0f} deg, pose confidence {row['pose_confidence']:.2f}")
    _mean_prediction_scores(rows)
    chain_errors(rows)
    s = summarise(rows)
    s["floor_height"] = floor_z
    s["rows"] = [{k: v for k, v in r.items() if k != "confusion"} for r in rows]
    return s


def _mean_prediction_scores(rows: List[Dict[str, object]]) -> None:
    """The input-blind baseline: the mean of the model's own (median-normalised) view-0 depth
    maps over the source, scored against each pair's truth like the model. A model that
    predicts one ramp whatever the image scores as well with it as with its own output."""
    import torch

    from .metrics import depth_scores

    maps = [r.pop("_pred0") for r in rows]
    truths = [r.pop("_true0") for r in rows]
    usable = [m for m in maps if m is not None]
    if not usable or len({m.shape for m in usable}) != 1:
        return
    mean = np.nanmean(np.stack(usable), axis=0)
    for r, t in zip(rows, truths):
        r["mean_prediction_abs_rel"] = depth_scores(torch.from_numpy(mean[None]),
                                                    torch.from_numpy(t[None].astype(np.float64)))["abs_rel"]


COLUMNS = (  # (key, heading, format, baseline key)
    ("abs_rel", "depth AbsRel", "{:.3f}", "constant_abs_rel"),
    ("mean_prediction_abs_rel", "depth AbsRel of the mean prediction (input-blind)", "{:.3f}", None),
    ("tau", "depth tau 1.03", "{:.1%}", None),
    ("focal_error", "focal error", "{:.0%}", "focal_guess_error"),
    ("rotation_deg", "rotation error (deg)", "{:.1f}", "identity_rotation_deg"),
    ("direction_deg", "direction error (deg)", "{:.0f}", None),
    ("direction_within_30", "directions within 30 deg", "{:.0%}", None),
    ("pose_auc", "pose confidence AUC", "{:.2f}", None),
    ("miou", "mIoU (8 classes)", "{:.3f}", None),
    ("accuracy", "label accuracy", "{:.3f}", None),
    ("floor_iou", "floor IoU vs geometry", "{:.2f}", None),
    ("floor_iou_sensors", "floor IoU with the robot's depth + floor frame (lsm.geometry.floor)", "{:.2f}", None),
    ("consistency", "cross-view label agreement", "{:.2f}", "consistency_chance"),
    ("sensor_rotation_deg", "with the robot's depth + CameraInfo: rotation error (deg)", "{:.1f}",
     "identity_rotation_deg"),
    ("sensor_direction_deg", "... direction error (deg)", "{:.0f}", None),
    ("sensor_direction_within_30", "... directions within 30 deg", "{:.0%}", None),
    ("sensor_translation_error_m", "... translation error (m)", "{:.3f}", "no_motion_translation_error_m"),
    ("sensor_pose_auc", "... pose confidence AUC (lsm.geometry.depth_pose)", "{:.2f}", None),
    ("sensor_chain_error_m", "... keyframes chained without odometry: RMS position error (m)", "{:.3f}",
     "no_motion_chain_error_m"),
)
BASELINE_NAMES = {"constant_abs_rel": "best constant depth", "identity_rotation_deg": "identity",
                  "consistency_chance": "chance", "focal_guess_error": "62.5 deg guess",
                  "no_motion_translation_error_m": "no motion", "no_motion_chain_error_m": "no motion"}


def report(summaries: Dict[str, Dict[str, object]]) -> str:
    """One markdown table: a row per figure, a column per source; baselines in brackets."""
    names = list(summaries)
    lines = ["| figure | " + " | ".join(f"{n} ({summaries[n]['pairs']} pairs)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for key, heading, fmt, base in COLUMNS:
        cells = []
        for n in names:
            v = summaries[n].get(key)
            cell = "n/a" if v is None else fmt.format(v)
            b = summaries[n].get(base) if base else None
            if b is not None and v is not None:
                cell += f" ({BASELINE_NAMES[base]} {fmt.format(b)})"
            cells.append(cell)
        lines.append(f"| {heading} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the suite

REAL_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "data", "real_rgbd")
# (folder, (first, last) frame ids): see data/real_rgbd/README.md
REAL_SPLITS = {
    "real tuning": (("tum_fr1_rpy", None), ("tum_fr3_cabinet", (0, 30))),
    "real held-out": (("tum_fr3_cabinet", (30, 57)),),
}
IN_DOMAIN_SEEDS = range(100000, 100012)  # lsm-eval's held-out procedural samples
INDEPENDENT_SEEDS = range(0, 12)


def run_suite(perception, pairs: int = 12, real_data: Sequence[str] = (), log=print,
              size: int = 128, two_view_pose: bool = True,
              depth_pose: bool = True) -> Dict[str, Dict[str, object]]:
    """Every source's summary, in report order (see the module docstring);
    ``two_view_pose=False``: the network's own poses (PnP on its pointmaps) throughout;
    ``depth_pose=False``: with the robot's depth, the pose is not refined on it."""
    sources: Dict[str, List[TruthPair]] = {}
    floor = {}
    sources["procedural (in domain)"] = synthetic_pairs("procedural", list(IN_DOMAIN_SEEDS)[:pairs], size)
    sources["independent renderer"] = synthetic_pairs("independent", list(INDEPENDENT_SEEDS)[:pairs], size)
    for split in REAL_SPLITS:
        sources[split] = split_pairs(split)
        floor[split] = True
    for folder in real_data:
        name = os.path.basename(os.path.normpath(folder))
        sources[f"{name} (extra)"] = real_pairs(folder, limit=30)
        floor[f"{name} (extra)"] = True
    out = {}
    for name, items in sources.items():
        log(f"== {name}: {len(items)} pairs")
        if floor.get(name):  # one floor height per sequence, not per split
            out[name] = _evaluate_real_split(perception, items, log, two_view_pose, depth_pose)
        else:
            out[name] = evaluate_source(perception, items, log=log, two_view_pose=two_view_pose)
    return out


def _evaluate_real_split(perception, items: List[TruthPair], log, two_view_pose: bool = True,
                         depth_pose: bool = True) -> Dict[str, object]:
    by_sequence: Dict[str, List[TruthPair]] = {}
    for p in items:
        by_sequence.setdefault(p.name.split(":")[0], []).append(p)
    rows: List[Dict[str, float]] = []
    heights = {}
    for seq, ps in by_sequence.items():
        s = evaluate_source(perception, ps, log=log, floor=True, two_view_pose=two_view_pose,
                            depth_pose=depth_pose)
        heights[seq] = s["floor_height"]
        rows += s["rows"]
    # pooled again over the split (the per-sequence confusion is not needed: no labels)
    summary = summarise(rows)
    summary["floor_height"] = heights
    summary["rows"] = rows
    return summary
