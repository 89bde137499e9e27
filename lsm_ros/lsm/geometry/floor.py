"""The floor from measured geometry and the robot's floor frame, not from the network.

A mobile robot knows where its floor is: REP-120's ``base_footprint`` lies on it with z up.
Given each camera's pose in that frame (from TF) and a reconstruction in metres (depth
images, a stereo rig or odometry gave the scale), a pixel is floor when its point lies
within a few centimetres of the floor plane and its surface faces up. No label model is
needed, and the embedded one is not reliable there: on the real held-out RGB-D pairs its
floor label scores IoU 0.10 against the geometric floor, this test with their depth images
0.97 (``docs/generalisation.md``; that truth comes from the same depth images).

Points are taken as they are: where depth fusion replaced the network's points by measured
depth the test is as good as the depth camera; elsewhere it inherits the network's errors.
A surface 5 cm above the floor (a thin rug, a low step) counts as floor. The floor frame is
a prior: the plane is refitted to the up-facing points within 15 cm of it, so a frame 2 deg
off level still finds the floor several metres away; a table top (higher) never competes.
"""
from __future__ import annotations

import numpy as np

FLOOR_LABEL = "floor"  # the label whose pixels and points this test decides
FLOOR_TOLERANCE_M = 0.05  # points within this height of the floor plane
FLOOR_MAX_TILT_DEG = 25.0  # surface normal within this angle of up
FLOOR_SEARCH_M = 0.15  # the floor frame is refitted to the points within this of it
FLOOR_MAX_CORRECTION_DEG = 4.0  # ... tilting it by at most this much


def surface_normals(points: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) unnormalised normals of pointmaps from central differences (zero at
    the border and where a neighbour is not finite)."""
    p = np.asarray(points, np.float64)
    dx = np.zeros_like(p)
    dy = np.zeros_like(p)
    dx[..., :, 1:-1, :] = p[..., :, 2:, :] - p[..., :, :-2, :]
    dy[..., 1:-1, :, :] = p[..., 2:, :, :] - p[..., :-2, :, :]
    n = np.cross(dx, dy)
    return np.where(np.isfinite(n), n, 0.0)


def floor_mask(pointmaps: np.ndarray, floor_T_ref: np.ndarray,
               tolerance: float = FLOOR_TOLERANCE_M,
               max_tilt_deg: float = FLOOR_MAX_TILT_DEG,
               search: float = FLOOR_SEARCH_M) -> np.ndarray:
    """bool (V, H, W): the pixels of pointmaps (V, H, W, 3) that are floor.

    ``pointmaps`` in metres; ``floor_T_ref`` (4, 4), or (V, 4, 4) one per view, maps each
    view's points into the floor frame (z up, floor at z = 0). The frame is a prior: per
    view, the plane is refitted to the up-facing points within ``search`` of it (a vote
    over small tilts and heights, :func:`_refit`), so a floor frame a few degrees or
    centimetres off (calibration, a tilting base) still finds the floor. A pixel is floor when its point is within
    ``tolerance`` of that plane and its surface normal within ``max_tilt_deg`` of the
    plane's normal. ``search = 0``: the frame as given, no refit.
    """
    pts = np.asarray(pointmaps, np.float64)
    T = np.asarray(floor_T_ref, np.float64)
    if pts.ndim != 4 or pts.shape[-1] != 3:
        raise ValueError(f"pointmaps must be (V, H, W, 3), got {pts.shape}")
    T = np.broadcast_to(T, (pts.shape[0], 4, 4)) if T.shape == (4, 4) else T
    if T.shape != (pts.shape[0], 4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"floor_T_ref must be finite, (4, 4) or ({pts.shape[0]}, 4, 4)")
    normals = surface_normals(pts)
    out = np.zeros(pts.shape[:3], bool)
    for v in range(pts.shape[0]):
        up, offset = T[v, 2, :3], T[v, 2, 3]  # the plane z = 0: up . x + offset = 0
        if search > 0:
            up, offset = _refit(pts[v], normals[v], up, offset, search, tolerance, max_tilt_deg)
        out[v] = _on_plane(pts[v], normals[v], up, offset, tolerance, max_tilt_deg)
    return out


def _on_plane(pts, normals, up, offset, tolerance, max_tilt_deg) -> np.ndarray:
    norm = np.linalg.norm(normals, axis=-1)
    facing = np.abs(normals @ up) > np.cos(np.radians(max_tilt_deg)) * np.maximum(norm, 1e-12)
    finite = np.all(np.isfinite(pts), axis=-1)
    with np.errstate(invalid="ignore"):
        near = np.abs(pts @ up + offset) < tolerance
    return finite & (norm > 0) & facing & near


def _refit(pts, normals, up, offset, search, tolerance, max_tilt_deg, min_points: int = 50,
           max_correction_deg: float = FLOOR_MAX_CORRECTION_DEG, step_deg: float = 1.0):
    """The floor plane (unit normal, offset) refitted near the prior (``up``, ``offset``):
    among the up-facing points within ``search`` of the prior, the slab ``tolerance`` / 2
    thick that holds the most of them (normals tilted up to ``max_correction_deg`` from
    the prior on a ``step_deg`` grid, every height in the window, on up to 1,000 of them; ties: the smaller
    correction), then least squares on that slab's points. A vote first: a cabinet plinth
    or a few stray points near the floor do not tilt it. Fewer than ``min_points``
    candidates: the prior."""
    chosen = _on_plane(pts, normals, up, offset, search, max_tilt_deg)
    sample = pts[chosen]
    if len(sample) < min_points:
        return up, offset
    sample = sample[:: max(1, len(sample) // 1000)]  # enough for a vote, bounded cost
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    steps = np.tan(np.radians(np.arange(-max_correction_deg, max_correction_deg + 1e-9, step_deg)))
    a, b = np.meshgrid(steps, steps, indexing="ij")
    cands = up + a.reshape(-1, 1) * e1 + b.reshape(-1, 1) * e2  # (M, 3)
    cands /= np.linalg.norm(cands, axis=1, keepdims=True)
    heights = np.sort(sample @ cands.T, axis=0)  # (N, M), each column sorted
    # a slab thinner than the final band, so that a tilt the band would still contain
    # loses to the right one
    width = 0.5 * tolerance
    counts = np.stack([np.searchsorted(heights[:, m], heights[:, m] + width, side="right")
                       for m in range(cands.shape[0])], axis=1) - np.arange(len(sample))[:, None]
    penalty = np.hypot(a, b).reshape(-1)  # prefer the smaller correction among equals
    score = counts.max(axis=0) - 1e-3 * penalty
    m = int(np.argmax(score))
    i = int(np.argmax(counts[:, m]))
    n, d = cands[m], -float(heights[i, m] + 0.5 * width)
    # polish: least squares on the slab's points, kept if it stays within the correction
    inliers = sample[np.abs(sample @ n + d) < 0.5 * width]
    if len(inliers) >= min_points:
        centre = inliers.mean(axis=0)
        fine = np.linalg.eigh(np.cov((inliers - centre).T))[1][:, 0]
        fine = fine if fine @ up > 0 else -fine
        if np.degrees(np.arccos(np.clip(fine @ up, -1.0, 1.0))) <= max_correction_deg:
            n, d = fine, -float(fine @ centre)
    return n, d
