"""Camera recovery from predicted pointmaps: shared focal (Weiszfeld) and relative pose (PnP).

This mirrors what the official LSM demo gets from DUSt3R's ``PairViewer``:

* focal: ``estimate_focal_knowing_depth(..., focal_mode='weiszfeld')`` -- a robust (L1) fit
  of f in ``(u - cx, v - cy) = f * (x / z, y / z)`` over the pixels of a pointmap expressed in
  its own camera frame, least-squares initialised, then ~10 re-weighted iterations;
* relative pose: ``cv2.solvePnPRansac`` with SQPnP, 100 iterations and a 5 px threshold on
  the pixels of one view against its points expressed in the other view's frame;
* of the two symmetric predictions (pair (1,2) and pair (2,1)), the edge with the larger
  product of mean confidences is kept.

Beyond PairViewer, the RANSAC pose is polished by Levenberg-Marquardt on a re-selected
inlier set (``refine_pose=False`` switches this off): with 5 px inlier threshold and a small
baseline at 64-256 px, outliers landing inside the threshold otherwise bias the final
SQPnP fit by degrees in translation direction.

Unlike PairViewer, one focal is shared by both views (estimated jointly from every
own-frame pointmap given), and view 1 is always the reference: ``c2w[0]`` is the identity
and ``c2w[1]`` is view 2's camera-to-world pose in view 1's frame.

Conventions (see :mod:`lsm.geometry.pointmaps`): OpenCV camera frame, c2w poses, pixel
centres at ``integer + pixel_center`` (0.5 by default) and principal point (W/2, H/2).
Inputs may be torch tensors or numpy arrays; every result is a torch tensor (float32, CPU).

Errors: malformed input (wrong shapes, fewer than ``min_points`` usable points) and a pose
that no direction could estimate raise :class:`CameraRecoveryError` (a ``ValueError``).
Non-finite points and points at or behind the camera (z <= 0, for the focal) are treated as
invalid pixels and skipped, not errors, as long as enough valid points remain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from .pointmaps import DEFAULT_PIXEL_CENTER, ArrayLike, as_tensor, intrinsics_from_focal, pixel_grid

PNP_ITERATIONS = 100
PNP_REPROJECTION_ERROR_PX = 5.0
WEISZFELD_ITERATIONS = 10
MIN_POINTS = 16
REFINE_MAX_POINTS = 8192


class CameraRecoveryError(ValueError):
    """Cameras cannot be recovered from the given pointmaps (bad input or no consistent pose)."""


@dataclass
class RelativePose:
    """Result of one PnP direction.

    ``c2w`` (4, 4): the camera of the queried view expressed in the pointmap's frame.
    ``num_inliers`` / ``num_points``: RANSAC inliers among the points that were used.
    """

    c2w: torch.Tensor
    num_inliers: int
    num_points: int

    @property
    def inlier_ratio(self) -> float:
        return self.num_inliers / max(self.num_points, 1)


@dataclass
class CameraEstimate:
    """Cameras of an image pair, in view 1's frame (all torch float32).

    ``K`` (2, 3, 3) intrinsics of view 1 and view 2 (shared focal, centred principal points;
    or the known intrinsics when they were given);
    ``c2w`` (2, 4, 4) camera-to-world poses with ``c2w[0]`` the identity;
    ``focal`` scalar tensor, the shared focal in pixels (the known fx of view 1 when given);
    ``focal_estimated``: the Weiszfeld estimate from the pointmaps, always computed (a
    calibration sanity check when the intrinsics are known);
    ``direction``: which prediction gave the pose, ``"2_in_1"`` (PnP of view 2 against
    pts2_in_1) or ``"1_in_2"`` (PnP of view 1 against pts1_in_2, inverted);
    ``edge_confidence``: product of mean confidences of the chosen prediction (as PairViewer);
    ``num_inliers`` / ``num_points``: PnP RANSAC inliers and points used for the chosen pose.
    """

    K: torch.Tensor
    c2w: torch.Tensor
    focal: torch.Tensor
    direction: str
    edge_confidence: float
    num_inliers: int
    num_points: int
    focal_estimated: float = float("nan")

    @property
    def inlier_ratio(self) -> float:
        return self.num_inliers / max(self.num_points, 1)


# --------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------


def _pointmap(x: ArrayLike, name: str, batched: bool) -> torch.Tensor:
    t = as_tensor(x, name)
    want = 4 if batched else 3
    if t.ndim != want or t.shape[-1] != 3:
        shape = "(B, H, W, 3)" if batched else "(H, W, 3)"
        raise CameraRecoveryError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if t.shape[-3] < 1 or t.shape[-2] < 1:
        raise CameraRecoveryError(f"{name} has an empty image size {tuple(t.shape)}")
    return t.detach().to("cpu", torch.float64)


def _per_pixel(x: Optional[ArrayLike], name: str, shape: Tuple[int, ...]) -> Optional[torch.Tensor]:
    if x is None:
        return None
    t = as_tensor(x, name).detach().to("cpu")
    if tuple(t.shape) != tuple(shape):
        raise CameraRecoveryError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    return t


# --------------------------------------------------------------------------------------
# focal
# --------------------------------------------------------------------------------------


def estimate_focal(
    pts: Union[ArrayLike, Sequence[ArrayLike]],
    weights: Union[None, ArrayLike, Sequence[Optional[ArrayLike]]] = None,
    principal_point: Optional[ArrayLike] = None,
    *,
    pixel_center: float = DEFAULT_PIXEL_CENTER,
    iterations: int = WEISZFELD_ITERATIONS,
    min_points: int = MIN_POINTS,
) -> torch.Tensor:
    """Focal length (pixels) of pointmaps given in their own camera frame, by Weiszfeld/IRLS.

    ``pts``: (B, H, W, 3), or a list of such pointmaps (views of one camera, possibly of
    different sizes) that share one focal per batch element.
    ``weights``: optional non-negative per-pixel weights (B, H, W) (e.g. confidences), same
    structure as ``pts``; None means uniform (as DUSt3R).
    ``principal_point``: (2,) or (B, 2) in pixels, applied to every view; default (W/2, H/2)
    of each view.
    Minimises ``sum_i w_i * || p_i - c - f * (x_i/z_i, y_i/z_i) ||`` over f: least-squares
    start, then ``iterations`` re-weightings by 1/residual.
    Returns focal (B,) float32.  Pixels with non-finite points, z <= 0 or zero weight are
    skipped; fewer than ``min_points`` usable pixels raises :class:`CameraRecoveryError`.
    Robustness: outliers along other pixels' rays are harmless (20 % gives an exact focal),
    but a point near the camera plane (z -> 0, x/z huge) has unbounded leverage in this L1
    fit, as in DUSt3R; zero the weights of such unreliable pixels (e.g. by confidence).
    """
    views = list(pts) if isinstance(pts, (list, tuple)) else [pts]
    if len(views) == 0:
        raise CameraRecoveryError("estimate_focal needs at least one pointmap")
    if weights is None or isinstance(weights, (list, tuple)):
        weight_list = list(weights) if weights is not None else [None] * len(views)
    else:
        weight_list = [weights]
    if len(weight_list) != len(views):
        raise CameraRecoveryError(f"got {len(weight_list)} weight maps for {len(views)} pointmaps")

    rays, pixels, ws = [], [], []
    B = None
    for i, (view, w) in enumerate(zip(views, weight_list)):
        p = _pointmap(view, f"pts[{i}]", batched=True)
        if B is None:
            B = p.shape[0]
        elif p.shape[0] != B:
            raise CameraRecoveryError(f"pts[{i}] has batch size {p.shape[0]}, expected {B}")
        _, H, W, _ = p.shape
        w = _per_pixel(w, f"weights[{i}]", (B, H, W))
        w = torch.ones(B, H, W, dtype=torch.float64) if w is None else w.to(torch.float64)
        if (w < 0).any():
            raise CameraRecoveryError(f"weights[{i}] must be non-negative")
        if principal_point is None:
            pp = torch.tensor([W / 2.0, H / 2.0], dtype=torch.float64).expand(B, 2)
        else:
            pp = as_tensor(principal_point, "principal_point").to("cpu", torch.float64)
            if pp.shape not in ((2,), (B, 2)):
                raise CameraRecoveryError(f"principal_point must be (2,) or ({B}, 2), got {tuple(pp.shape)}")
            pp = pp.expand(B, 2)
        px = pixel_grid(H, W, pixel_center=pixel_center, dtype=torch.float64).view(1, -1, 2) - pp.view(B, 1, 2)
        p = p.reshape(B, -1, 3)
        w = w.reshape(B, -1)
        usable = torch.isfinite(p).all(dim=-1) & (p[..., 2] > 0) & torch.isfinite(w) & (w > 0)
        xy_over_z = torch.where(usable[..., None], p[..., :2] / p[..., 2:3].clamp(min=1e-300), 0.0)
        w = torch.where(usable, w, 0.0)
        rays.append(xy_over_z)
        pixels.append(px.expand(B, -1, -1))
        ws.append(w)
    rays = torch.cat(rays, dim=1)
    pixels = torch.cat(pixels, dim=1)
    ws = torch.cat(ws, dim=1)
    counts = (ws > 0).sum(dim=1)
    if (counts < min_points).any():
        bad = torch.nonzero(counts < min_points).flatten().tolist()
        raise CameraRecoveryError(
            f"batch elements {bad} have fewer than {min_points} usable points (finite, z > 0) for the focal"
        )
    dot_xy_px = (rays * pixels).sum(dim=-1)
    dot_xy_xy = rays.square().sum(dim=-1)
    focal = (ws * dot_xy_px).sum(dim=1) / (ws * dot_xy_xy).sum(dim=1)
    for _ in range(iterations):
        residual = (pixels - focal.view(-1, 1, 1) * rays).norm(dim=-1)
        irls = ws / residual.clamp(min=1e-8)
        focal = (irls * dot_xy_px).sum(dim=1) / (irls * dot_xy_xy).sum(dim=1)
    if not torch.isfinite(focal).all() or (focal <= 0).any():
        raise CameraRecoveryError(f"focal estimate is not a positive finite number: {focal.tolist()}")
    return focal.to(torch.float32)


# --------------------------------------------------------------------------------------
# relative pose
# --------------------------------------------------------------------------------------


def estimate_relative_pose(
    pts_in_ref: ArrayLike,
    K: ArrayLike,
    conf: Optional[ArrayLike] = None,
    *,
    valid_mask: Optional[ArrayLike] = None,
    min_conf: Optional[float] = None,
    max_points: Optional[int] = None,
    pixel_center: float = DEFAULT_PIXEL_CENTER,
    iterations: int = PNP_ITERATIONS,
    reprojection_error: float = PNP_REPROJECTION_ERROR_PX,
    min_points: int = MIN_POINTS,
    min_inliers: int = MIN_POINTS,
    refine: bool = True,
) -> RelativePose:
    """Pose of a camera from its pixels' 3-D points expressed in a reference frame (PnP-RANSAC).

    ``pts_in_ref`` (H, W, 3): for each pixel of the queried view, its point in the reference
    view's frame (e.g. pts2_in_1 for view 2).  ``K`` (3, 3): the queried view's intrinsics.
    Points used: finite, inside ``valid_mask`` (H, W) if given, with ``conf > min_conf`` if
    both are given; then at most ``max_points`` of them, the most confident (or a fixed-stride
    subset without ``conf``).  Solves ``cv2.solvePnPRansac`` (SQPnP, ``iterations``,
    ``reprojection_error`` px) and returns the queried camera's c2w in the reference frame.
    With ``refine`` (default) the RANSAC pose is polished as described in :func:`_refine_pose`;
    ``refine=False`` returns OpenCV's RANSAC result as the official PairViewer does.
    Raises :class:`CameraRecoveryError` with too few points or when RANSAC fails or keeps
    fewer than ``min_inliers`` inliers.
    """
    pts = _pointmap(pts_in_ref, "pts_in_ref", batched=False)
    H, W, _ = pts.shape
    K_t = as_tensor(K, "K").detach().to("cpu", torch.float64)
    if K_t.shape != (3, 3) or not torch.isfinite(K_t).all():
        raise CameraRecoveryError(f"K must be a finite (3, 3) matrix, got shape {tuple(K_t.shape)}")
    conf_t = _per_pixel(conf, "conf", (H, W))
    mask_t = _per_pixel(valid_mask, "valid_mask", (H, W))

    usable = torch.isfinite(pts).all(dim=-1)
    if mask_t is not None:
        usable &= mask_t.bool()
    if conf_t is not None:
        conf_t = conf_t.to(torch.float64)
        usable &= torch.isfinite(conf_t)
        if min_conf is not None:
            usable &= conf_t > min_conf
    index = torch.nonzero(usable.flatten()).flatten()
    if index.numel() < min_points:
        raise CameraRecoveryError(
            f"only {index.numel()} usable points for PnP (need {min_points}): "
            "check the pointmap for NaNs, the mask and the confidence threshold"
        )
    if max_points is not None and index.numel() > max_points:
        if max_points < min_points:
            raise CameraRecoveryError(f"max_points={max_points} is below min_points={min_points}")
        if conf_t is not None:
            top = torch.topk(conf_t.flatten()[index], max_points).indices
            index = index[top]
        else:
            index = index[torch.linspace(0, index.numel() - 1, max_points).round().long()]

    grid = pixel_grid(H, W, pixel_center=pixel_center, dtype=torch.float64).reshape(-1, 2)
    object_points = pts.reshape(-1, 3)[index].numpy()
    image_points = grid[index].numpy()
    try:
        success, rvec, tvec, inliers = cv2.solvePnPRansac(
            object_points,
            image_points,
            K_t.numpy(),
            None,
            iterationsCount=iterations,
            reprojectionError=reprojection_error,
            flags=cv2.SOLVEPNP_SQPNP,
        )
    except cv2.error as exc:  # degenerate configurations make OpenCV throw
        raise CameraRecoveryError(f"PnP failed inside OpenCV: {exc}") from exc
    num_inliers = 0 if inliers is None else int(len(inliers))
    if not success or num_inliers < min_inliers:
        raise CameraRecoveryError(
            f"PnP-RANSAC found no consistent pose ({num_inliers} inliers of {len(index)} points)"
        )
    if refine:
        rvec, tvec = _refine_pose(object_points, image_points, K_t.numpy(), rvec, tvec, inliers.reshape(-1),
                                  reprojection_error)
    w2c = np.eye(4)
    w2c[:3, :3] = cv2.Rodrigues(rvec)[0]
    w2c[:3, 3] = tvec.reshape(3)
    c2w = np.linalg.inv(w2c)
    return RelativePose(
        c2w=torch.from_numpy(c2w).to(torch.float32), num_inliers=num_inliers, num_points=int(len(index))
    )


def _reprojection_errors(obj, img, K, rvec, tvec) -> np.ndarray:
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    return np.linalg.norm(proj.reshape(-1, 2) - img, axis=1)


def _evenly_spaced(index: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` entries of ``index``, evenly spread over it (deterministic)."""
    if len(index) <= count:
        return index
    return index[np.linspace(0, len(index) - 1, count).round().astype(np.int64)]


def _refine_pose(obj, img, K, rvec, tvec, inliers, max_error):
    """Polish a RANSAC pose: LM on the inliers, then LM again on a tighter inlier set.

    The SQPnP fit that ends ``solvePnPRansac`` minimises an object-space error over every
    point within ``max_error`` px, so outliers that happen to land within the threshold bias
    it (a 5 px threshold is the whole parallax of a small baseline at 64-128 px).  We
    minimise the reprojection error (``cv2.solvePnPRefineLM``) on the RANSAC inliers, then
    keep the points within ``3 * 1.4826 * median`` of their errors (clipped to
    [0.5 px, max_error]) and refine once more.  Each LM step uses at most
    ``REFINE_MAX_POINTS`` points, evenly spread over the image.  Falls back to the RANSAC pose if a step fails.
    """
    try:
        first = _evenly_spaced(inliers, REFINE_MAX_POINTS)
        r1, t1 = cv2.solvePnPRefineLM(obj[first], img[first], K, None, rvec.copy(), tvec.copy())
        errors = _reprojection_errors(obj, img, K, r1, t1)
        sigma = 1.4826 * float(np.median(errors[inliers]))
        threshold = min(max(3.0 * sigma, 0.5), max_error)
        keep = np.flatnonzero(errors < threshold)
        if len(keep) < max(6, len(inliers) // 2):
            return r1, t1
        keep = _evenly_spaced(keep, REFINE_MAX_POINTS)
        r2, t2 = cv2.solvePnPRefineLM(obj[keep], img[keep], K, None, r1.copy(), t1.copy())
    except cv2.error:
        return rvec, tvec
    if not (np.isfinite(r2).all() and np.isfinite(t2).all()):
        return rvec, tvec
    return r2, t2


# --------------------------------------------------------------------------------------
# pair cameras
# --------------------------------------------------------------------------------------


def _edge_confidence(conf_a: Optional[torch.Tensor], conf_b: Optional[torch.Tensor]) -> float:
    """PairViewer's edge score: product of the mean confidences of both views (1 if absent)."""
    score = 1.0
    for c in (conf_a, conf_b):
        if c is not None:
            c = c.to(torch.float64)
            finite = c[torch.isfinite(c)]
            score *= float(finite.mean()) if finite.numel() else 0.0
    return score


def _focal_weights(conf: Optional[torch.Tensor], by_conf: bool, min_conf: Optional[float]):
    """(1, H, W) focal weights from a confidence map: conf or 1, zero at or below ``min_conf``."""
    if conf is None:
        return None
    conf = conf.to(torch.float64)
    finite = torch.isfinite(conf)
    weights = torch.where(finite, conf, 0.0) if by_conf else finite.to(torch.float64)
    if min_conf is not None:
        weights = torch.where(conf > min_conf, weights, 0.0)
    return weights.clamp(min=0)[None]


def recover_cameras(
    pts1_in_1: ArrayLike,
    pts2_in_1: ArrayLike,
    conf1: Optional[ArrayLike] = None,
    conf2: Optional[ArrayLike] = None,
    pts2_in_2: Optional[ArrayLike] = None,
    pts1_in_2: Optional[ArrayLike] = None,
    conf2_in_2: Optional[ArrayLike] = None,
    conf1_in_2: Optional[ArrayLike] = None,
    *,
    min_conf: Optional[float] = None,
    max_points: Optional[int] = None,
    weight_focal_by_conf: bool = False,
    pixel_center: float = DEFAULT_PIXEL_CENTER,
    iterations: int = PNP_ITERATIONS,
    reprojection_error: float = PNP_REPROJECTION_ERROR_PX,
    refine_pose: bool = True,
    intrinsics: Optional[Sequence[ArrayLike]] = None,
) -> CameraEstimate:
    """Intrinsics and poses of an image pair from DUSt3R-style pointmaps (view 1 = reference).

    Pair (1,2) prediction: ``pts1_in_1`` (H1, W1, 3), ``pts2_in_1`` (H2, W2, 3) with
    confidences ``conf1`` (H1, W1), ``conf2`` (H2, W2).  Optional symmetric pair (2,1)
    prediction: ``pts2_in_2`` (H2, W2, 3), ``pts1_in_2`` (H1, W1, 3) with ``conf2_in_2`` /
    ``conf1_in_2`` (default to ``conf2`` / ``conf1``).

    Focal: one value shared by both views, Weiszfeld fit on ``pts1_in_1`` and, when given,
    ``pts2_in_2`` (uniform weights as DUSt3R, or confidence weights with
    ``weight_focal_by_conf``), skipping pixels whose confidence is not above ``min_conf``
    (the official demo masks PnP points with confidence > 3; default None uses all).
    Pose: PnP of view 2 against ``pts2_in_1``; when ``pts1_in_2`` is also given, PnP of
    view 1 against it too (inverted), and the direction whose prediction has the larger
    product of mean confidences is kept (PairViewer's rule); if one direction fails, the
    other is used.  ``min_conf`` / ``max_points`` select the PnP points and ``refine_pose``
    switches the pose polishing (see :func:`estimate_relative_pose`).
    ``intrinsics``: known (K1, K2) in the pointmaps' pixels (e.g. from CameraInfo); PnP then
    uses them, and the focal is still estimated, into ``focal_estimated`` only.
    Raises :class:`CameraRecoveryError`.
    """
    p11 = _pointmap(pts1_in_1, "pts1_in_1", batched=False)
    p21 = _pointmap(pts2_in_1, "pts2_in_1", batched=False)
    (H1, W1), (H2, W2) = p11.shape[:2], p21.shape[:2]
    c1 = _per_pixel(conf1, "conf1", (H1, W1))
    c2 = _per_pixel(conf2, "conf2", (H2, W2))
    p22 = None if pts2_in_2 is None else _pointmap(pts2_in_2, "pts2_in_2", batched=False)
    p12 = None if pts1_in_2 is None else _pointmap(pts1_in_2, "pts1_in_2", batched=False)
    if p22 is not None and p22.shape != p21.shape:
        raise CameraRecoveryError(f"pts2_in_2 must have shape {tuple(p21.shape)}, got {tuple(p22.shape)}")
    if p12 is not None and p12.shape != p11.shape:
        raise CameraRecoveryError(f"pts1_in_2 must have shape {tuple(p11.shape)}, got {tuple(p12.shape)}")
    c22 = _per_pixel(conf2_in_2, "conf2_in_2", (H2, W2))
    c12 = _per_pixel(conf1_in_2, "conf1_in_2", (H1, W1))
    c22 = c2 if c22 is None else c22
    c12 = c1 if c12 is None else c12

    own_frame = [p11[None]] + ([p22[None]] if p22 is not None else [])
    own_conf = [c1] + ([c22] if p22 is not None else [])
    own_weights = [_focal_weights(c, weight_focal_by_conf, min_conf) for c in own_conf]
    focal_estimated = estimate_focal(own_frame, own_weights, pixel_center=pixel_center)[0]
    if intrinsics is None:
        focal = focal_estimated
        K1 = intrinsics_from_focal(focal.double(), H1, W1)
        K2 = intrinsics_from_focal(focal.double(), H2, W2)
    else:
        K1, K2 = (as_tensor(K, "intrinsics").detach().to("cpu", torch.float64) for K in intrinsics)
        for K in (K1, K2):
            if K.shape != (3, 3) or not torch.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise CameraRecoveryError(f"known intrinsics must be finite (3, 3) with positive "
                                          f"focal lengths, got {K.tolist()}")
        focal = K1[0, 0].to(torch.float32)

    pnp_kwargs = dict(
        min_conf=min_conf,
        max_points=max_points,
        pixel_center=pixel_center,
        iterations=iterations,
        reprojection_error=reprojection_error,
        refine=refine_pose,
    )
    candidates: List[Tuple[float, str, torch.Tensor, RelativePose]] = []
    failures: List[str] = []
    try:
        rel = estimate_relative_pose(p21, K2, c2, **pnp_kwargs)
        candidates.append((_edge_confidence(c1, c2), "2_in_1", rel.c2w, rel))
    except CameraRecoveryError as exc:
        failures.append(f"view 2 against pts2_in_1: {exc}")
    if p12 is not None:
        try:
            rel = estimate_relative_pose(p12, K1, c12, **pnp_kwargs)
            c2w_2_in_1 = torch.linalg.inv(rel.c2w.double()).to(torch.float32)
            candidates.append((_edge_confidence(c22, c12), "1_in_2", c2w_2_in_1, rel))
        except CameraRecoveryError as exc:
            failures.append(f"view 1 against pts1_in_2: {exc}")
    if not candidates:
        raise CameraRecoveryError("no relative pose could be estimated: " + "; ".join(failures))
    # stable max: on a tie keep the pair (1,2) prediction, which is listed first
    best = max(candidates, key=lambda c: c[0])
    score, direction, c2w_2, rel = best
    c2w = torch.stack([torch.eye(4), c2w_2]).to(torch.float32)
    return CameraEstimate(
        K=torch.stack([K1, K2]).to(torch.float32),
        c2w=c2w,
        focal=focal.to(torch.float32),
        direction=direction,
        edge_confidence=float(score),
        num_inliers=rel.num_inliers,
        num_points=rel.num_points,
        focal_estimated=float(focal_estimated),
    )


def recover_cameras_batch(
    pts1_in_1: ArrayLike,
    pts2_in_1: ArrayLike,
    conf1: Optional[ArrayLike] = None,
    conf2: Optional[ArrayLike] = None,
    pts2_in_2: Optional[ArrayLike] = None,
    pts1_in_2: Optional[ArrayLike] = None,
    conf2_in_2: Optional[ArrayLike] = None,
    conf1_in_2: Optional[ArrayLike] = None,
    **kwargs,
) -> List[CameraEstimate]:
    """:func:`recover_cameras` over a batch: every array gets a leading B dimension."""
    first = as_tensor(pts1_in_1, "pts1_in_1")
    if first.ndim != 4:
        raise CameraRecoveryError(f"pts1_in_1 must have shape (B, H, W, 3), got {tuple(first.shape)}")
    B = first.shape[0]
    arrays = [pts1_in_1, pts2_in_1, conf1, conf2, pts2_in_2, pts1_in_2, conf2_in_2, conf1_in_2]
    for a in arrays:
        if a is not None and a.shape[0] != B:
            raise CameraRecoveryError(f"every input needs the batch size {B}, got shape {tuple(a.shape)}")
    return [recover_cameras(*(None if a is None else a[b] for a in arrays), **kwargs) for b in range(B)]
