"""Both cameras of a reconstructed pair, with a fallback when camera recovery fails.

:func:`estimate_cameras` is the policy the runtime applies to every pair: the shared
Weiszfeld focal + PnP-RANSAC of :func:`~lsm.geometry.camera_recovery.recover_cameras`
first; when that raises (e.g. an untrained model's pointmaps), the pose falls back to the
rigid alignment of view 2's points predicted in both frames and the focal to a
:data:`FALLBACK_FOV_DEG` field of view. The returned status string says which was used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .camera_recovery import CameraRecoveryError, recover_cameras
from .pointmaps import intrinsics_from_focal
from .pose_metrics import umeyama_similarity

FALLBACK_FOV_DEG = 60.0


@dataclass(frozen=True)
class PairCameras:
    """Cameras of one pair at the model resolution.

    K: (2,3,3) pixel intrinsics; c2w: (2,4,4) camera-to-reference poses (c2w[0] = identity);
    focal: the shared focal length in model pixels; status: how they were obtained.
    """

    K: torch.Tensor
    c2w: torch.Tensor
    focal: float
    status: str
    focal_estimated: float = float("nan")  # from the pointmaps, even when K was given


def estimate_cameras(pts1, pts2, conf1, conf2, pts2_in_2, pts1_in_2, conf2_in_2, conf1_in_2,
                     max_points: int = 8192, intrinsics=None) -> PairCameras:
    """Intrinsics and poses of one pair from its symmetric pointmap predictions.

    ``pts1``/``pts2``: (H,W,3) view 1 / view 2 pointmaps in view 1's frame; ``pts2_in_2``
    and ``pts1_in_2`` the symmetric prediction in view 2's frame; ``conf*`` their
    confidences (H,W). ``intrinsics``: known (K1, K2) at the model resolution (e.g. from
    CameraInfo); PnP then uses them, and the fallback keeps them.
    """
    H, W = pts1.shape[:2]
    known = "known K, " if intrinsics is not None else ""
    try:
        cams = recover_cameras(pts1, pts2, conf1, conf2, pts2_in_2=pts2_in_2, pts1_in_2=pts1_in_2,
                               conf2_in_2=conf2_in_2, conf1_in_2=conf1_in_2, max_points=max_points,
                               intrinsics=intrinsics)
        return PairCameras(cams.K.float(), cams.c2w.float(), float(cams.focal),
                           f"pnp ({known}{cams.direction}, {cams.num_inliers}/{cams.num_points} "
                           "inliers)", cams.focal_estimated)
    except CameraRecoveryError as exc:
        reason = str(exc)
    if intrinsics is not None:
        K = torch.stack([torch.as_tensor(k, dtype=torch.float32) for k in intrinsics])
        focal, intrinsics_note = float(K[0, 0, 0]), "known K"
    else:
        focal = 0.5 * W / math.tan(math.radians(FALLBACK_FOV_DEG) / 2)
        K = intrinsics_from_focal(torch.tensor(focal, dtype=torch.float64), H, W).float()
        K, intrinsics_note = K.expand(2, 3, 3).clone(), f"{FALLBACK_FOV_DEG:.0f} deg FoV"
    c2w = torch.eye(4).repeat(2, 1, 1)
    try:
        src = pts2_in_2.reshape(-1, 3).float().cpu().numpy()
        dst = pts2.reshape(-1, 3).float().cpu().numpy()
        ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
        step = max(1, int(ok.sum()) // max_points)
        s, R, t = umeyama_similarity(src[ok][::step], dst[ok][::step], with_scale=True)
        c2w[1, :3, :3] = torch.from_numpy(np.asarray(R, np.float32))
        c2w[1, :3, 3] = torch.from_numpy(np.asarray(t, np.float32))
        status = f"fallback: rigid alignment pose, {intrinsics_note} ({reason})"
    except ValueError as exc:
        status = f"fallback: identity pose, {intrinsics_note} ({reason}; {exc})"
    return PairCameras(K, c2w, focal, status)
