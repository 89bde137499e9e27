"""Vectorised ray casting of procedural rooms: ray-box slab tests and shadow rays."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .base import _CEIL_S, _FLOOR_S, _WALL_X0, _WALL_X1, _WALL_Y0, _WALL_Y1
from .rooms import ProceduralRoom


def _safe_inv(d: np.ndarray) -> np.ndarray:
    """1/d with exact zeros nudged to a tiny positive value (keeps slab tests NaN-free)."""
    return (1.0 / np.where(d == 0, np.float32(1e-12), d)).astype(np.float32)


@dataclass
class _Hits:
    t: np.ndarray  # (N,) ray parameter == z-depth
    surface: np.ndarray  # (N,) surface ids
    local: np.ndarray  # (N, 3) hit point in the surface's object frame (world for the room)
    axis: np.ndarray  # (N,) local axis of the hit face normal
    normal: np.ndarray  # (N, 3) world normal
    obj: np.ndarray  # (N,) object index, -1 for room surfaces


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)


def _slab(o, inv, lo, hi):
    """Vectorised ray/box slab test on per-axis component lists.

    ``o``: 3 scalars (ray origin), ``inv``: 3 arrays of 1/direction (broadcastable),
    ``lo``/``hi``: 3 box bound arrays (broadcastable).  Returns (t_near, t_far, near_axis).
    """
    tmins, tmaxs = [], []
    for a in range(3):
        t1 = (lo[a] - o[a]) * inv[a]
        t2 = (hi[a] - o[a]) * inv[a]
        tmins.append(np.minimum(t1, t2))
        tmaxs.append(np.maximum(t1, t2))
    tn = np.maximum(np.maximum(tmins[0], tmins[1]), tmins[2])
    tf = np.minimum(np.minimum(tmaxs[0], tmaxs[1]), tmaxs[2])
    axis = np.where(tmins[0] == tn, 0, np.where(tmins[1] == tn, 1, 2))
    return tn, tf, axis


def _shadow_regions(room: ProceduralRoom, light: np.ndarray) -> List[Optional[tuple]]:
    """Per object, a bound ``(xmin, ymin, xmax, ymax, ztop)`` of the world points it can shadow
    from a point light above it (None: no bound, test everything).  The shadow volume below the
    object top lies inside the xy box spanning the object and its projection onto the floor."""
    regions: List[Optional[tuple]] = []
    for obj in room.objects:
        lo, hi = obj.lo.astype(np.float64), obj.hi.astype(np.float64)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        world = corners @ _rot_z(obj.yaw).T.astype(np.float64) + obj.origin
        if light[2] <= world[:, 2].max() + 1e-3:
            regions.append(None)
            continue
        s = light[2] / (light[2] - world[:, 2])  # scale taking each corner to z = 0 along the light ray
        proj = light[:2] + (world[:, :2] - light[:2]) * s[:, None]
        xy = np.concatenate([world[:, :2], proj])
        regions.append((xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max(), world[:, 2].max()))
    return regions


def _occluded(room: ProceduralRoom, p: np.ndarray, target: np.ndarray) -> np.ndarray:
    """bool (N,): is the segment from each point ``p`` (N, 3) to ``target`` (3,) blocked by furniture?"""
    n = p.shape[0]
    blocked = np.zeros(n, bool)
    px, py, pz = p[:, 0], p[:, 1], p[:, 2]
    for obj, region in zip(room.objects, _shadow_regions(room, target)):
        # Cheap culling: only points inside the object's shadow volume bound can be blocked.
        if region is None:
            cand = np.arange(n)
        else:
            x0, y0, x1, y1, ztop = region
            cand = np.nonzero((pz < ztop) & (px > x0) & (px < x1) & (py > y0) & (py < y1) & ~blocked)[0]
        if cand.size == 0:
            continue
        R = _rot_z(obj.yaw)
        o_l = ((p[cand] - obj.origin) @ R).astype(np.float32)
        d_l = ((target - p[cand]) @ R).astype(np.float32)  # segment parameter t in (0, 1)
        inv_l = _safe_inv(d_l)
        oc = (o_l[:, 0], o_l[:, 1], o_l[:, 2])
        ic = (inv_l[:, 0], inv_l[:, 1], inv_l[:, 2])
        tn, tf, _ = _slab(oc, ic, obj.lo, obj.hi)
        sub = np.nonzero((tn <= tf) & (tf > 1e-4) & (tn < 1.0))[0]
        idx = cand[sub]
        if idx.size == 0:
            continue
        tn, tf, _ = _slab(tuple(c[sub][:, None] for c in oc), tuple(c[sub][:, None] for c in ic),
                          obj.part_lo.T, obj.part_hi.T)
        hit = ((tn <= tf) & (tf > 1e-4) & (tn < 1.0)).any(1)
        blocked[idx[hit]] = True
    return blocked


def _trace(room: ProceduralRoom, o: np.ndarray, d: np.ndarray) -> _Hits:
    """First hits of rays ``o + t d`` (o: (3,), d: (N, 3)) against the room and its objects."""
    n = d.shape[0]
    ar = np.arange(n)
    o = o.astype(np.float32)
    inv = _safe_inv(d)
    size = room.size.astype(np.float32)
    # Room: the camera is inside, so each axis is left through the plane the ray points at.
    t_axes = [np.where(d[:, a] > 0, size[a] - o[a], -o[a]) * inv[:, a] for a in range(3)]
    t = np.minimum(np.minimum(t_axes[0], t_axes[1]), t_axes[2])
    axis = np.where(t_axes[0] == t, 0, np.where(t_axes[1] == t, 1, 2))
    positive = d[ar, axis] > 0
    surface = np.array([[_WALL_X0, _WALL_X1], [_WALL_Y0, _WALL_Y1], [_FLOOR_S, _CEIL_S]])[axis, positive.astype(int)]
    normal = np.zeros((n, 3), np.float32)
    normal[ar, axis] = np.where(positive, -1.0, 1.0)
    local = o + t[:, None] * d
    obj_idx = np.full(n, -1, np.int64)
    for k, obj in enumerate(room.objects):
        R = _rot_z(obj.yaw)
        o_l = ((o - obj.origin) @ R).astype(np.float32)  # R^T (o - origin)
        d_l = d @ R
        inv_l = _safe_inv(d_l)
        inv_c = (inv_l[:, 0], inv_l[:, 1], inv_l[:, 2])
        lo, hi = obj.lo, obj.hi
        tn, tf, _ = _slab(o_l, inv_c, lo, hi)
        idx = np.nonzero((tn <= tf) & (tf > 0) & (tn < t))[0]
        if idx.size == 0:
            continue
        inv_s = tuple(c[idx][:, None] for c in inv_c)
        plo, phi = obj.part_lo.T, obj.part_hi.T  # (3, P)
        tn, tf, ax_all = _slab(o_l, inv_s, plo, phi)  # (n, P)
        tn = np.where((tn <= tf) & (tn > 1e-4), tn, np.inf)
        part = tn.argmin(1)
        sub = np.arange(idx.size)
        tp = tn[sub, part]
        better = tp < t[idx]
        if not better.any():
            continue
        sel = idx[better]
        part_b = part[better]
        t[sel] = tp[better]
        surface[sel] = obj.part_surface[part_b]
        ax = ax_all[sub[better], part_b]
        axis[sel] = ax
        dl_sel = d_l[sel]
        m = sel.size
        ln = np.zeros((m, 3), np.float32)
        ln[np.arange(m), ax] = np.where(dl_sel[np.arange(m), ax] > 0, -1.0, 1.0)
        normal[sel] = ln @ R.T
        local[sel] = o_l + t[sel][:, None] * dl_sel
        obj_idx[sel] = k
    return _Hits(t=t, surface=surface, local=local, axis=axis, normal=normal, obj=obj_idx)
