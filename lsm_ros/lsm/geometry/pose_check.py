"""How far to trust a pair's estimated relative pose: a check against two-view geometry.

The network's pose (PnP on its pointmaps) comes with PnP inlier counts that say nothing
about whether it is right: on real photographs the embedded model reports 66-99 % inliers
for poses whose direction is off by more than 100 degrees, because PnP only checks the
pointmaps against themselves. This check uses evidence the network did not produce: SIFT
matches and dense optical flow between the two original images, an essential matrix fitted
to them (USAC), and the pose it implies. The network's pose is trusted as far as it agrees
with that pose, and only as far as that pose is itself well determined (enough inliers, enough parallax).

:func:`check_pose` returns a :class:`PoseCheck` whose ``confidence`` is in [0, 1]:

    confidence = support * exp(-(d / 15 deg)^2 / 2) * exp(-(r / 10 deg)^2 / 2)

with ``d`` the angle between the two translation directions, ``r`` the angle between the
two rotations, and ``support = min(1, inliers / 40) * min(1, parallax / 1 deg)``: few matches
or a near-pure rotation (where no direction can be verified) give a low confidence, which
is the honest answer. 0 means "could not verify" as much as "wrong"; ``detail`` says which.
The widths (15 and 10 degrees) were chosen on the real tuning pairs (TUM fr1_rpy and frames
0-30 of fr3_cabinet: AUC 0.91 against "direction error > 30 deg" with the shipped
weights), never on held-out ones.

Pixel convention as everywhere in lsm: pixel (u, v) covers [u, u+1) x [v, v+1).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .pose_metrics import direction_angle_deg, rotation_angle_deg
from .stereo import feature_matches, flow_matches

MIN_MATCHES = 12  # fewer SIFT matches than this: nothing to check against
FULL_SUPPORT_INLIERS = 40  # essential-matrix inliers for full support
FULL_SUPPORT_PARALLAX_DEG = 1.0  # median rotation-compensated parallax for full support
DIRECTION_SIGMA_DEG = 15.0
ROTATION_SIGMA_DEG = 10.0
MAX_SIDE = 320  # images are checked at most this large (longest side), for speed


@dataclass(frozen=True)
class PoseCheck:
    """The check of one pair's relative pose (angles in degrees, NaN when not computed)."""

    confidence: float  # [0, 1]
    rotation_deg: float = float("nan")  # network rotation vs the two-view rotation
    direction_deg: float = float("nan")  # network translation direction vs the two-view one
    matches: int = 0  # SIFT and optical-flow correspondences
    inliers: int = 0  # essential-matrix inliers in front of both cameras
    parallax_deg: float = float("nan")  # median rotation-compensated parallax of the inliers
    detail: str = ""

    @staticmethod
    def unchecked(detail: str) -> "PoseCheck":
        return PoseCheck(confidence=0.0, detail=detail)


def _downscaled(image: np.ndarray, K: np.ndarray):
    h, w = image.shape[:2]
    f = min(1.0, MAX_SIDE / max(h, w))
    if f >= 1.0:
        return image, K
    small = cv2.resize(image, (max(2, round(w * f)), max(2, round(h * f))), interpolation=cv2.INTER_AREA)
    S = np.diag([small.shape[1] / w, small.shape[0] / h, 1.0])
    return small, S @ K


def two_view_pose(p0: np.ndarray, p1: np.ndarray, K0: np.ndarray, K1: np.ndarray,
                  threshold_px: float = 1.0):
    """Relative pose from pixel matches (N, 2) of two calibrated views: (R, t, inlier mask,
    normalised coordinates of view 0, of view 1) with ``x1 = R x0 + t`` (camera 0
    coordinates -> camera 1), ``|t| = 1``; None when the essential matrix cannot be fitted."""
    n0 = _normalised(p0, K0)
    n1 = _normalised(p1, K1)
    focal = 0.25 * (K0[0, 0] + K0[1, 1] + K1[0, 0] + K1[1, 1])
    try:
        E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), method=cv2.USAC_ACCURATE, prob=0.999,
                                       threshold=threshold_px / focal)
    except cv2.error:  # degenerate configurations (the plain RANSAC 5-point solver asserts)
        return None
    if E is None or E.shape != (3, 3):  # no fit, or several stacked solutions
        if E is None or E.shape[0] % 3 or E.shape[1] != 3:
            return None
        E = E[:3]
    _, R, t, inliers = cv2.recoverPose(E, n0, n1, np.eye(3), mask=mask.copy())
    return R, t.reshape(3), inliers.reshape(-1) > 0, n0, n1


def _normalised(p: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) -> normalised image coordinates (N, 2) (pixels and K share a convention)."""
    return (np.c_[p, np.ones(len(p))] @ np.linalg.inv(K).T)[:, :2]


def correspondences(image0: np.ndarray, image1: np.ndarray):
    """SIFT matches (a low contrast threshold, for plain indoor surfaces) plus dense-flow
    matches: pixel coordinates (N, 2) in each image. Each finds what the other misses: SIFT
    survives large rotations, flow covers weakly textured walls, floors and cabinets."""
    s0, s1 = feature_matches(image0, image1, features=2000, ratio=0.8, contrast=0.01)
    f0, f1 = flow_matches(image0, image1)
    return np.concatenate([s0, f0]), np.concatenate([s1, f1])


def check_pose(image0: np.ndarray, image1: np.ndarray, K0: np.ndarray, K1: np.ndarray,
               c2w1: np.ndarray) -> PoseCheck:
    """Check view 1's estimated pose ``c2w1`` (4x4, camera 1 -> camera 0, any scale) against
    the two-view geometry of the RGB images ``image0``, ``image1`` (H, W, 3 uint8) with pixel
    intrinsics ``K0``, ``K1`` at those images' resolutions (known or estimated)."""
    c2w1 = np.asarray(c2w1, np.float64)
    T10 = np.linalg.inv(c2w1)
    if np.linalg.norm(T10[:3, 3]) < 1e-9:
        return PoseCheck.unchecked("the estimated pose has no translation: no direction to check")
    im0, K0s = _downscaled(np.ascontiguousarray(image0), np.asarray(K0, np.float64))
    im1, K1s = _downscaled(np.ascontiguousarray(image1), np.asarray(K1, np.float64))
    p0, p1 = correspondences(im0, im1)
    if len(p0) < MIN_MATCHES:
        return PoseCheck(confidence=0.0, matches=len(p0),
                         detail=f"{len(p0)} feature matches (need {MIN_MATCHES}): pose not verifiable")
    fit = two_view_pose(p0, p1, K0s, K1s)
    if fit is None:
        return PoseCheck(confidence=0.0, matches=len(p0), detail="no essential matrix fits the matches")
    R, t, inl, n0, n1 = fit
    count = int(inl.sum())
    if count < MIN_MATCHES // 2:
        return PoseCheck(confidence=0.0, matches=len(p0), inliers=count,
                         detail=f"{count} essential-matrix inliers: pose not verifiable")
    # parallax after removing the rotation: what makes the translation direction observable
    r0 = np.c_[n0[inl], np.ones(count)] @ R.T
    r1 = np.c_[n1[inl], np.ones(count)]
    parallax = float(np.median(direction_angle_deg(r0, r1)))
    rot = float(rotation_angle_deg(T10[:3, :3], R))
    direction = float(direction_angle_deg(T10[:3, 3], t))
    support = min(1.0, count / FULL_SUPPORT_INLIERS) * min(1.0, parallax / FULL_SUPPORT_PARALLAX_DEG)
    agreement = (np.exp(-0.5 * (direction / DIRECTION_SIGMA_DEG) ** 2)
                 * np.exp(-0.5 * (rot / ROTATION_SIGMA_DEG) ** 2))
    confidence = float(np.clip(support * agreement, 0.0, 1.0))
    detail = (f"{count}/{len(p0)} matches fit one two-view pose (parallax {parallax:.1f} deg); "
              f"the estimate differs by {rot:.1f} deg in rotation, {direction:.0f} deg in direction")
    return PoseCheck(confidence=confidence, rotation_deg=rot, direction_deg=direction,
                     matches=len(p0), inliers=count, parallax_deg=parallax, detail=detail)
