"""Textures, shading and rendering of procedural rooms (:func:`render_view` -> :class:`RaycastView`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..sample import ViewSample
from .base import (
    _FLOOR_S,
    CHAIR,
    CHECKER,
    NOISE,
    PLAIN,
    STRIPES,
    TABLE,
    WOOD,
    SizeLike,
    parse_size,
)
from .raycast import _Hits, _occluded, _trace
from .rooms import ProceduralRoom


def _hash(ix: np.ndarray, iy: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Integer lattice hash -> float in [0, 1)."""
    h = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663) ^ (salt.astype(np.int64) * 83492791)
    h = h & 0xFFFFFFFF
    h = (h ^ (h >> 13)) * 1274126177 & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).astype(np.float32) / float(0x1000000)


def _value_noise(u: np.ndarray, v: np.ndarray, salt: np.ndarray) -> np.ndarray:
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    a, b = _hash(iu, iv, salt), _hash(iu + 1, iv, salt)
    c, e = _hash(iu, iv + 1, salt), _hash(iu + 1, iv + 1, salt)
    return (a + (b - a) * fu) + ((c + (e - c) * fu) - (a + (b - a) * fu)) * fv


_UV_AXES = np.array([[1, 2], [0, 2], [0, 1]])


def _albedo(room: ProceduralRoom, hits: _Hits) -> np.ndarray:
    c1, c2, pattern, scale, swap, _, _ = room.tables()
    s = hits.surface
    uv_idx = _UV_AXES[hits.axis]
    uv = np.take_along_axis(hits.local, uv_idx, axis=1)
    sw = swap[s]
    u = np.where(sw, uv[:, 1], uv[:, 0]) / scale[s]
    v = np.where(sw, uv[:, 0], uv[:, 1]) / scale[s]
    salt = s + 131 * (room.seed % 100003)
    fine = _value_noise(u * 3.0, v * 3.0, salt)
    coarse = _value_noise(u * 0.7 + 17.0, v * 0.7, salt + 7)
    pat = pattern[s]
    val = np.zeros_like(u)
    m = pat == CHECKER
    if m.any():
        val[m] = ((np.floor(u[m]) + np.floor(v[m])) % 2) * 0.85 + 0.15 * fine[m]
    m = pat == STRIPES
    if m.any():
        val[m] = (np.floor(u[m] * 0.5) % 2) * 0.8 + 0.2 * fine[m]
    m = pat == WOOD
    if m.any():
        # planks of width ``scale`` along u, grain rings along v, seams between planks
        pu, pv = u[m], v[m] * 0.25
        plank = np.floor(pu)
        fu = pu - plank
        tone = _hash(plank, np.floor(pv + _hash(plank, plank, salt[m]) * 3), salt[m])
        grain = 0.5 + 0.5 * np.sin(2 * np.pi * (fu * 2.5 + 1.5 * _value_noise(pu * 2, pv * 6, salt[m])))
        seam = (fu < 0.05) | (fu > 0.97)
        val[m] = np.where(seam, 1.0, 0.55 * tone + 0.35 * grain + 0.1 * fine[m])
    m = pat == NOISE
    if m.any():
        val[m] = 0.6 * coarse[m] + 0.4 * fine[m]
    m = pat == PLAIN
    if m.any():
        val[m] = 0.25 * coarse[m] + 0.1 * fine[m]
    col = c1[s] + (c2[s] - c1[s]) * val[:, None]
    return col * (0.92 + 0.16 * fine)[:, None]


def _shade(room: ProceduralRoom, hits: _Hits, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(N, 3) irradiance: ambient + hemisphere + point light + directional light, times AO."""
    p = o + hits.t[:, None] * d
    n = hits.normal
    px, py, pz = p[:, 0], p[:, 1], p[:, 2]
    lx, ly, lz = (np.float32(c) for c in room.light_pos)
    tx, ty, tz = lx - px, ly - py, lz - pz
    dist2 = tx * tx + ty * ty + tz * tz
    dist = np.sqrt(dist2)
    lam = np.maximum((n[:, 0] * tx + n[:, 1] * ty + n[:, 2] * tz) / np.maximum(dist, 1e-6), 0)
    diffuse = 0.75 * lam / (1.0 + 0.06 * dist2)
    lit = np.nonzero(lam > 0)[0]
    if lit.size and room.objects:
        start = p[lit] + 2e-3 * n[lit]  # leave the surface before testing
        shadow = _occluded(room, start, room.light_pos.astype(np.float32))
        diffuse[lit[shadow]] *= 0.3
    sdx, sdy, sdz = (np.float32(c) for c in room.sun_dir)
    sun = 0.25 * np.maximum(-(n[:, 0] * sdx + n[:, 1] * sdy + n[:, 2] * sdz), 0)
    light = room.ambient + 0.08 * (n[:, 2] + 1.0) + diffuse + sun
    ao = np.ones_like(light)
    # Corner darkening on room surfaces: distance to the nearest other room plane.
    on_room = hits.obj < 0
    if on_room.any():
        size = room.size.astype(np.float32)
        ax = hits.axis[on_room]
        comps = [np.minimum(p[on_room, a], size[a] - p[on_room, a]) for a in range(3)]
        comps = [np.where(ax == a, np.inf, c) for a, c in enumerate(comps)]
        near = np.minimum(np.minimum(comps[0], comps[1]), comps[2])
        ao[on_room] *= 1.0 - 0.3 * np.exp(-near / 0.25)
    # Objects darken near the floor.
    on_obj = ~on_room
    if on_obj.any():
        ao[on_obj] *= 1.0 - 0.35 * np.exp(-np.maximum(pz[on_obj], 0) / 0.1)
    # Contact shadows on the floor around/under each object.
    floor = hits.surface == _FLOOR_S
    if floor.any() and room.objects:
        fx, fy = px[floor], py[floor]
        f = np.ones(fx.shape[0], np.float32)
        for obj in room.objects:
            if obj.origin[2] > 0.05:
                continue
            c, s = math.cos(obj.yaw), math.sin(obj.yaw)
            rx, ry = fx - np.float32(obj.origin[0]), fy - np.float32(obj.origin[1])
            qx, qy = c * rx + s * ry, -s * rx + c * ry
            dx = np.maximum(np.maximum(obj.lo[0] - qx, qx - obj.hi[0]), 0)
            dy = np.maximum(np.maximum(obj.lo[1] - qy, qy - obj.hi[1]), 0)
            strength = 0.35 if obj.label in (TABLE, CHAIR) else 0.5
            f *= 1.0 - strength * np.exp(-np.sqrt(dx * dx + dy * dy) / 0.12)
        ao[floor] *= f
    return (light * ao)[:, None] * room.light_color[None, :]


@dataclass
class RaycastView:
    """Rendered view: rgb uint8 (H,W,3), depth float32 (H,W) metres, labels uint8 (H,W),
    normals float32 (H,W,3) world frame, instance uint16 (H,W) (0 = room structure)."""

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    normals: np.ndarray
    instance: np.ndarray

    def to_view(self, K: np.ndarray, c2w: np.ndarray) -> ViewSample:
        return ViewSample(image=self.rgb, depth=self.depth, labels=self.labels, K=K, c2w=c2w, instance=self.instance)


def camera_rays(K: np.ndarray, c2w: np.ndarray, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """World ray origin (3,) and directions (H*W, 3) scaled so that ``t`` equals z-depth."""
    K = np.asarray(K, np.float64)
    c2w = np.asarray(c2w, np.float64)
    if K.shape != (3, 3) or c2w.shape != (4, 4):
        raise ValueError(f"K must be (3, 3) and c2w (4, 4), got {K.shape} and {c2w.shape}")
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(c2w))):
        raise ValueError("K and c2w must be finite")
    uu, vv = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], 1)
    d_cam = pix @ np.linalg.inv(K).T
    d_cam /= d_cam[:, 2:3]
    d = (d_cam @ c2w[:3, :3].T).astype(np.float32)
    return c2w[:3, 3].astype(np.float32), d


def render_view(room: ProceduralRoom, K: np.ndarray, c2w: np.ndarray, size: SizeLike,
                max_rays: int = 65536) -> RaycastView:
    """Ray-cast ``room`` from camera (K, c2w) at ``size`` (int or (H, W)); see RaycastView."""
    h, w = parse_size(size)
    o, d = camera_rays(K, c2w, h, w)
    if np.any((o < 0) | (o > room.size)):
        raise ValueError(f"camera centre {o} lies outside the room {room.size}")
    n = d.shape[0]
    rgb = np.empty((n, 3), np.float32)
    depth = np.empty(n, np.float32)
    labels = np.empty(n, np.uint8)
    normals = np.empty((n, 3), np.float32)
    instance = np.empty(n, np.uint16)
    _, _, _, _, _, label_tab, inst_tab = room.tables()
    for a in range(0, n, max_rays):
        dc = d[a:a + max_rays]
        hits = _trace(room, o, dc)
        col = _albedo(room, hits) * _shade(room, hits, o, dc)
        rgb[a:a + max_rays] = col
        depth[a:a + max_rays] = hits.t
        labels[a:a + max_rays] = label_tab[hits.surface]
        normals[a:a + max_rays] = hits.normal
        instance[a:a + max_rays] = inst_tab[hits.surface]
    rgb = np.clip(rgb, 0, 1) ** (1 / 1.1)
    return RaycastView(rgb=(rgb * 255 + 0.5).astype(np.uint8).reshape(h, w, 3), depth=depth.reshape(h, w),
                        labels=labels.reshape(h, w), normals=normals.reshape(h, w, 3),
                        instance=instance.reshape(h, w))
