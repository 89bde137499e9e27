"""Image pairs in, plain :class:`~lsm.results.Reconstruction` s out: preprocessing, one batched
forward pass, camera recovery, and, where the robot's sensors say more, known intrinsics,
metric scale and measured depth (:mod:`lsm.metric`).

Camera images are RGB uint8 (H,W,3) arrays (or float in [0,1]); each pair may have its own
resolution. Output frames and units are documented in :mod:`lsm.results`.
Most callers want :class:`lsm.perception.Perception`, which wraps this with loading,
precision, rendering, labels and queries.
"""
from __future__ import annotations

import dataclasses
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from .geometry.pair_cameras import estimate_cameras
from .metric import (
    PairSensors,
    ScaleEstimate,
    ScaleTracker,
    decide_scale,
    fuse_depth,
    scale_from_depth,
    scale_from_distance,
    scale_from_points,
)
from .preprocess import ImageTransform, check_rgb, prepare_image
from .results import Reconstruction
from .specs import MetricSpec


def _model_sensors(sensors: Optional[PairSensors], tfs: Tuple[ImageTransform, ImageTransform]):
    """Known intrinsics and depth of a pair, mapped to the model's pixels."""
    if sensors is None:
        return None, (None, None)
    K = None
    if all(k is not None for k in sensors.K):
        K = tuple(torch.from_numpy(tf.intrinsics_to_model(k)) for k, tf in zip(sensors.K, tfs))
    depth = tuple(None if d is None else tf.to_model(np.asarray(d, np.float32), nearest=True,
                                                     fill=float("nan"))
                  for d, tf in zip(sensors.depth, tfs))
    return K, depth


@torch.no_grad()
def reconstruct_pairs(model, pairs: Sequence[Tuple[object, object]],
                      timings: dict | None = None,
                      sensors: Optional[Sequence[Optional[PairSensors]]] = None,
                      metric: MetricSpec = MetricSpec(),
                      tracker: Optional[ScaleTracker] = None,
                      pose_check: bool = True, two_view_pose: bool = True) -> List[Reconstruction]:
    """Reconstruct every (image0, image1) pair in one forward pass (batch = len(pairs)).

    ``sensors``: per pair, what the robot measured (:class:`~lsm.metric.PairSensors`) or
    None. Known intrinsics replace the estimated ones in camera recovery; a scale from
    ``metric.scale_source`` (smoothed by ``tracker`` across calls) makes the result metric;
    with ``metric.depth_fusion == 'replace'`` and a known scale, measured depth replaces
    the predicted points before the Gaussian stage. Without sensors nothing of this runs.
    ``pose_check``: estimate the two-view geometry of the images (:mod:`lsm.geometry.pose_check`:
    an essential matrix on SIFT and optical-flow matches, refined on all of them; about 50 ms per
    640x480 pair on 2 cores) and give each result a ``pose_confidence``; a pose given by
    sensors has confidence 1. ``two_view_pose`` (with ``pose_check``): that two-view pose
    replaces the network's (PnP on its pointmaps) when at least
    :data:`~lsm.geometry.pose_check.MIN_ADOPT_INLIERS` matches support it -- on every test
    source it is the better one (``docs/generalisation.md``) -- keeping the network's
    translation length (a pair's scale). As with a pose from the sensors, the pointmaps stay
    the network's joint prediction of both views in view 1's frame: only the camera moves.
    With depth images of both views, a metric scale and no pose from the sensors,
    ``metric.depth_pose`` refines that pose on the measured depth
    (:func:`lsm.geometry.depth_pose.align_depth`), whose confidence it then carries.
    ``timings``, when given, is filled with seconds per stage: ``preprocess``, ``network``,
    ``cameras`` (focal, PnP, sensors) and ``pose`` (the two-view geometry, the depth
    alignment, and their confidence).
    """
    if len(pairs) == 0:
        raise ValueError("no image pairs given")
    sensors = list(sensors) if sensors is not None else [None] * len(pairs)
    if len(sensors) != len(pairs):
        raise ValueError(f"{len(sensors)} sensor records for {len(pairs)} pairs")
    size = model.config.image_size
    param = next(model.parameters())
    t0 = time.perf_counter()
    imgs1, imgs2, tfs = [], [], []
    for a, b in pairs:
        ta, tfa = prepare_image(a, size)
        tb, tfb = prepare_image(b, size)
        imgs1.append(ta)
        imgs2.append(tb)
        tfs.append((tfa, tfb))
    img1 = torch.stack(imgs1).to(param.device, param.dtype)
    img2 = torch.stack(imgs2).to(param.device, param.dtype)
    model_sensors = [_model_sensors(s, tf) for s, tf in zip(sensors, tfs)]
    t1 = time.perf_counter()
    was_training = model.training
    model.eval()
    geo, sem = model.geometry(img1, img2, symmetric=True)
    t2 = time.perf_counter()
    B = len(pairs)
    points = torch.stack([geo.pts1, geo.pts2], dim=1).detach()  # (B, 2, S, S, 3)
    cameras, decisions, fused, checks = [], [], [], []
    pose_seconds = 0.0  # the two-view geometry, within the camera stage
    sw = geo.swapped
    for i in range(B):
        K_known, depth = model_sensors[i]
        cams = estimate_cameras(geo.pts1[i], geo.pts2[i], geo.conf1[i], geo.conf2[i],
                                sw.pts2[i], sw.pts1[i], sw.conf2[i], sw.conf1[i],
                                intrinsics=K_known)
        cameras.append(cams)
        decision = None
        if sensors[i] is not None:
            images = tuple(check_rgb(image) for image in pairs[i])
            decision, fusion_depth = _decide(sensors[i], images, depth, geo, i, cams, tfs[i],
                                             metric, tracker)
        given = None  # the sensor that gave the relative pose, if one did
        if decision is not None and decision.value is not None:
            cams, given = _known_pose(cams, sensors[i], decision.value)
        if given is not None:
            checks.append((1.0, f"given by the sensors ({given})"))
        elif not pose_check:
            checks.append((float("nan"), "not checked (pose_check off)"))
        else:
            tp = time.perf_counter()
            cams, confidence, how = _two_view(pairs[i], tfs[i], cams, two_view_pose)
            pose_seconds += time.perf_counter() - tp
            checks.append((confidence, how))
        if (given is None and metric.depth_pose and metric.depth_fusion != "off"
                and decision is not None and decision.value is not None
                and all(d is not None for d in depth)):
            tp = time.perf_counter()
            cams, checks[-1] = _depth_pose(cams, depth, decision.value, checks[-1])
            pose_seconds += time.perf_counter() - tp
        cameras[-1] = cams
        decisions.append(decision)
        fractions = (0.0, 0.0)
        if (decision is not None and decision.value is not None
                and metric.depth_fusion == "replace"):
            fractions = _fuse(points, i, fusion_depth, cams, decision.value)
        fused.append(fractions)
    t3 = time.perf_counter()
    gaussians = model.gaussians_from_points(points.reshape(B, -1, 3), img1, img2,
                                            geo.enc_tokens, sem)
    model.train(was_training)
    recs = []
    for i in range(B):
        cams = cameras[i]
        rec = Reconstruction(
            images=torch.stack([img1[i], img2[i]]).permute(0, 2, 3, 1).float().cpu(),
            pointmaps=points[i].float().cpu(),
            confidence=torch.stack([geo.conf1[i], geo.conf2[i]]).float().cpu(),
            gaussians=gaussians[i].detach().to(torch.float32),  # stays on the model device
            intrinsics=cams.K,
            c2w=cams.c2w,
            transforms=tfs[i],
            focal=cams.focal,
            camera_status=cams.status,
            focal_estimated=cams.focal_estimated,
            depth_fused=fused[i],
            pose_confidence=checks[i][0],
            pose_check=checks[i][1],
        )
        decision = decisions[i]
        if decision is not None:
            rec = (rec.scaled(decision.value, decision.source, decision.detail)
                   if decision.value is not None
                   else dataclasses.replace(rec, scale_detail=decision.detail))
        if sensors[i] is not None and sensors[i].floor_pose[0] is not None:
            rec = _with_floor(rec, sensors[i].floor_pose)
        recs.append(rec)
    t4 = time.perf_counter()
    if timings is not None:  # the Gaussian stage belongs to the network's time
        timings.update(preprocess=t1 - t0, network=(t2 - t1) + (t4 - t3),
                       cameras=t3 - t2 - pose_seconds, pose=pose_seconds)
    return recs


def _decide(sensors: PairSensors, images, depth, geo, i: int, cams, tfs, metric: MetricSpec,
            tracker: Optional[ScaleTracker]):
    """This pair's scale decision from its measured sources, and the metric depth of each
    view to fuse (the depth images, or for view 0 dense stereo depth when no image)."""
    from .geometry.stereo import rectified_depth, triangulated_depth

    estimates = {}
    pred_z0 = geo.pts1[i, ..., 2].float().cpu().numpy()
    finite = np.isfinite(pred_z0) & (pred_z0 > 0)
    median_depth = float(np.median(pred_z0[finite])) if finite.any() else 1.0
    c2w = cams.c2w.numpy()
    conf0 = geo.conf1[i].float().cpu().numpy()
    fusion_depth = list(depth)
    if metric.depth_fusion != "off" and any(d is not None for d in depth):
        # each view's predicted depth in its own camera frame
        pts2_own = (geo.pts2[i].float().cpu().numpy() - c2w[1][:3, 3]) @ c2w[1][:3, :3]
        predicted = (pred_z0, pts2_own[..., 2])
        conf = (conf0, geo.conf2[i].float().cpu().numpy())
        estimates["depth"] = scale_from_depth(depth, predicted, conf)
    K = sensors.K if all(k is not None for k in sensors.K) else None
    if sensors.rectified_baseline is not None and K is not None:
        dense = rectified_depth(images[0], images[1], float(K[0][0, 0]), sensors.rectified_baseline)
        dense_model = tfs[0].to_model(dense, nearest=True, fill=float("nan"))
        estimates["stereo"] = scale_from_depth((dense_model,), (pred_z0,), (conf0,), "stereo")
        if fusion_depth[0] is None:
            fusion_depth[0] = dense_model
    for source in ("stereo", "odometry"):
        if source in estimates or sensors.pose_source != source:
            continue
        if K is not None:
            uv, z = triangulated_depth(images[0], images[1], K[0], K[1], sensors.relative_pose)
            estimates[source] = scale_from_points(source, tfs[0].to_model_pixels(uv), z, pred_z0)
        else:
            estimates[source] = scale_from_distance(source, sensors.distance, c2w, median_depth)
    if "stereo" not in estimates and sensors.rectified_baseline is not None:
        estimates["stereo"] = scale_from_distance("stereo", sensors.distance, c2w, median_depth)
    if not estimates:
        estimates["none"] = ScaleEstimate("none", None, detail="no scale sensor for this pair")
    return decide_scale(metric, estimates, tracker), tuple(fusion_depth)


def _two_view(images, tfs, cams, adopt: bool):
    """(cameras, confidence, how it was judged): view 1's pose checked against the images'
    two-view geometry (lsm.geometry.pose_check) and, with ``adopt``, replaced by it when
    enough matches support it."""
    from .geometry.pose_check import MIN_ADOPT_INLIERS, check_pose, estimate_two_view, two_view_confidence

    rgb = [check_rgb(image) for image in images]
    K = [tf.intrinsics_to_original(k.double().numpy()) for tf, k in zip(tfs, cams.K)]
    network = cams.c2w[1].double().numpy()
    geometry, why = estimate_two_view(rgb[0], rgb[1], K[0], K[1])
    if geometry is None:
        return cams, 0.0, why
    check = check_pose(rgb[0], rgb[1], K[0], K[1], network, geometry=geometry)
    if not adopt or geometry.inliers < MIN_ADOPT_INLIERS:
        note = "" if not adopt else f" (fewer than {MIN_ADOPT_INLIERS} inliers: the network's pose is kept)"
        return cams, check.confidence, check.detail + note
    pose, direction = geometry.adopted(network)
    c2w = cams.c2w.clone()
    c2w[1] = torch.from_numpy(pose).to(c2w.dtype)
    status = (f"{cams.status}; pose from two-view geometry ({geometry.inliers}/{geometry.matches} "
              f"matches{'' if direction else ', direction from the network: too little parallax'})")
    confidence = two_view_confidence(geometry, check)
    compared = (f"the network's pose differed by {check.rotation_deg:.1f} deg in rotation, "
                f"{check.direction_deg:.0f} deg in direction" if np.isfinite(check.direction_deg)
                else f"the network's pose was not compared ({check.detail})")
    how = (f"two-view pose: {geometry.inliers}/{geometry.matches} matches, parallax "
           f"{geometry.parallax_deg:.1f} deg; {compared}")
    return dataclasses.replace(cams, c2w=c2w, status=status), confidence, how


def _depth_pose(cams, depth, scale: float, check: Tuple[float, str]):
    """(cameras, (confidence, how)): view 1's pose refined on the two measured depth images
    (model pixels, metres; :func:`lsm.geometry.depth_pose.align_depth`) from the pose so far
    (network or two-view, its length made metric by ``scale``, metres per model unit). Kept
    as it was, saying why, when the depth images cannot be aligned."""
    from .geometry.depth_pose import align_depth

    c2w = cams.c2w.double().numpy()
    start = np.linalg.inv(c2w[0]) @ c2w[1]
    start[:3, 3] *= scale
    fit = align_depth(depth[0], depth[1], cams.K[0].double().numpy(), cams.K[1].double().numpy(), start)
    if fit is None:
        return cams, (check[0], f"{check[1]}; depth images too little overlap to align: pose kept")
    pose = c2w[0] @ fit.c2w1
    pose[:3, 3] /= scale
    new = cams.c2w.clone()
    new[1] = torch.from_numpy(pose).to(new.dtype)
    status = f"{cams.status}; pose from the depth images (ICP from it)"
    how = f"{fit.detail()}; started from: {check[1]}"
    return dataclasses.replace(cams, c2w=new, status=status), (fit.confidence, how)


def _with_floor(rec: Reconstruction, floor_pose) -> Reconstruction:
    """``rec`` with its floor pixels decided by geometry (lsm.geometry.floor), when it is
    metric; otherwise it says why the floor stays the model's label. ``floor_pose``: each
    view's camera pose in the floor frame (view 1's may be None). With its own, view 1's
    points are judged in its own camera, so an error of the pair's pose does not move them."""
    from .geometry.floor import FLOOR_TOLERANCE_M, floor_mask

    if not rec.metric:
        return dataclasses.replace(rec, floor_detail="floor frame known but no metric scale: "
                                                     "the floor is the model's label")
    c2w = rec.c2w.double().numpy()
    cam0 = np.asarray(floor_pose[0], np.float64)
    cam1 = cam0 @ c2w[1] if floor_pose[1] is None else np.asarray(floor_pose[1], np.float64)
    floor_T_ref = np.stack([cam0 @ np.linalg.inv(c2w[0]), cam1 @ np.linalg.inv(c2w[1])])
    mask = floor_mask(rec.pointmaps.double().numpy(), floor_T_ref)
    return dataclasses.replace(
        rec, floor=torch.from_numpy(mask),
        floor_detail=f"floor from geometry: {mask.mean():.0%} of pixels within "
                     f"{FLOOR_TOLERANCE_M * 100:.0f} cm of the floor frame's z = 0, facing up")


def _known_pose(cams, sensors: PairSensors, scale: float):
    """With a metric scale, a relative pose the sensors know (TF between the cameras,
    odometry, a rectified rig's baseline) replaces the estimated one: it is exact where the
    network's is a few degrees off, and it places view 1's measured depth correctly.
    Returns (cameras, the pose's source or None when the sensors give no pose)."""
    if sensors.relative_pose is not None:
        pose, source = np.asarray(sensors.relative_pose, np.float64).copy(), sensors.pose_source
    elif sensors.rectified_baseline is not None:
        pose, source = np.eye(4), "rectified stereo rig"
        pose[0, 3] = sensors.rectified_baseline
    else:
        return cams, None
    pose[:3, 3] /= scale  # metres -> model units, as every other length of the pair
    c2w = cams.c2w.clone()
    c2w[1] = torch.from_numpy(pose).to(c2w.dtype)
    return dataclasses.replace(cams, c2w=c2w, status=f"{cams.status}; pose from {source}"), source


def _fuse(points: torch.Tensor, i: int, depth, cams, scale: float) -> Tuple[float, float]:
    """Measured depth replaces the predicted points of pair ``i`` in place; returns the
    fraction of each view's pixels that came from the sensor."""
    fractions = []
    for v in range(2):
        if depth[v] is None:
            fractions.append(0.0)
            continue
        current = points[i, v].float().cpu().numpy()
        new, valid = fuse_depth(current, depth[v], cams.K[v].double().numpy(),
                                cams.c2w[v].double().numpy(), scale)
        points[i, v] = torch.from_numpy(new).to(points.dtype).to(points.device)
        fractions.append(float(valid.mean()))
    return tuple(fractions)
