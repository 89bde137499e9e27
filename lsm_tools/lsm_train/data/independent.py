"""Independent evaluation scenes: SDF-modelled rooms, sphere-traced in numpy.  EVALUATION ONLY.

This module is a second scene source, written separately from :mod:`lsm_train.data.procedural`
(it shares no code with it and imports nothing from it) so that evaluation on it cannot be
gamed by fitting the training generator.  **Never train on these samples.**

How it differs from the training generator
------------------------------------------
* Geometry: signed distance functions (rounded boxes, cylinders, capsules, ellipsoids, tori,
  cone frusta, curved arc panels, stadium slabs) rendered by vectorised sphere tracing.
  Furniture is assembled from them: round/oval tables on a pedestal or three legs, chairs
  with curved backs and round seats, stools, swivel chairs, sofas with rounded cushions and
  rolled arms, beds with headboard, pillows and a duvet lump, plus clutter (lamps, plants,
  shelves with book rows, rugs, cabinets, vases, wall art, pendant and ceiling lights).
  Rooms are rectangular or L-shaped, yawed arbitrarily in the world, 2.3-3.2 m high (some
  with a sloped ceiling), with door and window recesses in the walls.
* Appearance: palette-based colours with per-object hue jitter; solid 3-D patterns (smooth
  gradients, plaid, marble turbulence, speckle/terrazzo, tiles with grout, plank floors,
  book spines); fabric / wood / metal / ceramic materials with Blinn-Phong highlights.
* Light: hemisphere sky ambient with SDF ambient occlusion, 1-3 point lights with SDF soft
  shadows and inverse-square falloff, glowing lamp shades and windows, filmic tone mapping,
  exposure variation, vignetting and sensor noise.
* Cameras: horizontal field of view 50-80 deg, heights 0.8-1.8 m, small roll, aimed at
  furniture; context pair with 0.2-1.0 m baseline and 5-30 deg relative rotation.

Conventions (those of :mod:`lsm_train.data.sample`)
---------------------------------------------------
* World: metres, z up, floor at z = 0; the room is yawed and shifted in x/y.
* ``image`` uint8 (H, W, 3) RGB; ``depth`` float32 (H, W) metric **z-depth** of the first
  surface hit (the room is closed, so every pixel is valid, > 0); ``labels`` uint8 class ids
  into ``CLASS_NAMES``; ``instance`` uint16 (0 = room structure, k = object k).
* ``K`` float32 (3, 3), square pixels, principal point (W/2, H/2), pixel (u, v) centred at
  (u + 0.5, v + 0.5); one K per sample.
* ``c2w`` float32 (4, 4) camera-to-world with OpenCV camera axes (x right, y down, z forward).
* A sample has 2 context views (an overlapping pair) and ``num_targets`` target views
  placed between/near them.  Everything is deterministic per ``seed``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .sample import CLASS_NAMES, SceneSample, ViewSample

WALL, FLOOR, CEILING, CHAIR, TABLE, SOFA, BED, OTHER = (
    CLASS_NAMES.index(n) for n in ("wall", "floor", "ceiling", "chair", "table", "sofa", "bed", "other"))
FURNITURE = (CHAIR, TABLE, SOFA, BED)
SizeArg = Union[int, Sequence[int]]


def _hw(size: SizeArg) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        h, w = (int(s) for s in size)
    if h < 4 or w < 4:
        raise ValueError(f"image size must be at least 4x4, got {size!r}")
    return h, w


# ----------------------------------------------------------------------------------------------
# Small linear-algebra helpers
# ----------------------------------------------------------------------------------------------

def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _frame_z(direction) -> np.ndarray:
    """Rotation whose third column is ``direction`` (normalised)."""
    z = np.asarray(direction, float)
    z = z / np.linalg.norm(z)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], 1)


def _norm(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------------------------
# Signed distance primitives (q: (N, 3) points in the primitive's own frame)
# ----------------------------------------------------------------------------------------------

def _sd_rbox(q, hx, hy, hz, r):
    dx, dy, dz = np.abs(q[:, 0]) - (hx - r), np.abs(q[:, 1]) - (hy - r), np.abs(q[:, 2]) - (hz - r)
    out = np.sqrt(np.maximum(dx, 0) ** 2 + np.maximum(dy, 0) ** 2 + np.maximum(dz, 0) ** 2)
    return out + np.minimum(np.maximum(np.maximum(dx, dy), dz), 0) - r


def _extrude(d2, z, hh, rr):
    wz = np.abs(z) - (hh - rr)
    return np.minimum(np.maximum(d2, wz), 0) + np.hypot(np.maximum(d2, 0), np.maximum(wz, 0)) - rr


def _sd_cyl(q, ra, hh, rr):
    return _extrude(np.hypot(q[:, 0], q[:, 1]) - (ra - rr), q[:, 2], hh, rr)


def _sd_capsule(q, hh, r):
    dz = q[:, 2] - np.clip(q[:, 2], -hh, hh)
    return np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2 + dz ** 2) - r


def _sd_ellipsoid(q, a, b, c):
    k0 = np.sqrt((q[:, 0] / a) ** 2 + (q[:, 1] / b) ** 2 + (q[:, 2] / c) ** 2)
    k1 = np.sqrt((q[:, 0] / (a * a)) ** 2 + (q[:, 1] / (b * b)) ** 2 + (q[:, 2] / (c * c)) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _sd_torus(q, big, r):
    return np.hypot(np.hypot(q[:, 0], q[:, 1]) - big, q[:, 2]) - r


def _sd_cone(q, hh, r1, r2):
    """Capped cone frustum along z: radius r1 at z=-hh, r2 at z=+hh (exact)."""
    qx, qy = np.hypot(q[:, 0], q[:, 1]), q[:, 2]
    k2x, k2y = r2 - r1, 2.0 * hh
    cax = qx - np.minimum(qx, np.where(qy < 0, r1, r2))
    cay = np.abs(qy) - hh
    t = np.clip(((r2 - qx) * k2x + (hh - qy) * k2y) / (k2x * k2x + k2y * k2y), 0.0, 1.0)
    cbx, cby = qx - r2 + k2x * t, qy - hh + k2y * t
    s = np.where((cbx < 0) & (cay < 0), -1.0, 1.0)
    return s * np.sqrt(np.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby))


def _sd_arc(q, ra, ang, rb, hh, rr):
    """Curved panel: an arc of radius ``ra`` in the xy-plane spanning +-``ang`` about +y,
    half thickness ``rb``, extruded +-``hh`` along z, edges rounded by ``rr``."""
    sx, sy = math.sin(ang), math.cos(ang)
    px, py = np.abs(q[:, 0]), q[:, 1]
    d2 = np.where(sy * px > sx * py, np.hypot(px - sx * ra, py - sy * ra), np.abs(np.hypot(px, py) - ra))
    return _extrude(d2 - (rb - rr), q[:, 2], hh, rr)


def _sd_stadium(q, a, r, hh, rr):
    """Oval slab: a 2-D capsule (segment +-a along x, radius r) extruded +-hh along z."""
    d2 = np.hypot(np.maximum(np.abs(q[:, 0]) - a, 0.0), q[:, 1]) - (r - rr)
    return _extrude(d2, q[:, 2], hh, rr)


_SDF: Dict[str, Callable] = {
    "rbox": _sd_rbox, "cyl": _sd_cyl, "capsule": _sd_capsule, "ellipsoid": _sd_ellipsoid,
    "torus": _sd_torus, "cone": _sd_cone, "arc": _sd_arc, "stadium": _sd_stadium,
}


def _local_bounds(kind: str, p: Tuple[float, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """Bounding box (lo, hi) of a primitive in its own frame."""
    if kind in ("rbox", "ellipsoid"):
        e = np.array(p[:3])
    elif kind == "cyl":
        e = np.array([p[0], p[0], p[1]])
    elif kind == "capsule":
        e = np.array([p[1], p[1], p[0] + p[1]])
    elif kind == "torus":
        e = np.array([p[0] + p[1], p[0] + p[1], p[1]])
    elif kind == "cone":
        r = max(p[1], p[2])
        e = np.array([r, r, p[0]])
    elif kind == "stadium":
        e = np.array([p[0] + p[1], p[1], p[2]])
    elif kind == "arc":
        ra, ang, rb, hh = p[:4]
        if ang <= math.pi / 2:
            xh = ra * math.sin(ang) + rb
            y0 = (ra - rb) * math.cos(ang) - rb
        else:
            xh, y0 = ra + rb, ra * math.cos(ang) - rb
        return np.array([-xh, y0, -hh]), np.array([xh, ra + rb, hh])
    else:
        raise ValueError(kind)
    return -e, e


@dataclass
class _Prim:
    kind: str
    centre: np.ndarray
    params: Tuple[float, ...]
    mat: int
    R: Optional[np.ndarray] = None  # columns: primitive axes in the object frame

    def sdf(self, q: np.ndarray) -> np.ndarray:
        q = q - self.centre
        if self.R is not None:
            q = q @ self.R
        return _SDF[self.kind](q, *self.params)

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        lo, hi = _local_bounds(self.kind, self.params)
        if self.R is None:
            return self.centre + lo, self.centre + hi
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        world = corners @ self.R.T + self.centre
        return world.min(0), world.max(0)


class _Parts:
    """Collects the primitives of one object (object frame: z up, origin on the floor,
    +y = back, -y = front, x = width)."""

    def __init__(self) -> None:
        self.prims: List[_Prim] = []

    def add(self, kind, centre, params, mat, R=None) -> None:
        self.prims.append(_Prim(kind, np.asarray(centre, float), tuple(float(x) for x in params), int(mat),
                                None if R is None else np.asarray(R, float)))

    def rbox(self, c, half, r, mat, R=None):
        r = min(r, 0.999 * min(half))
        self.add("rbox", c, (*half, r), mat, R)

    def cyl(self, c, ra, hh, mat, rr=0.0, R=None):
        self.add("cyl", c, (ra, hh, min(rr, 0.999 * ra, 0.999 * hh)), mat, R)

    def capsule(self, a, b, r, mat):
        a, b = np.asarray(a, float), np.asarray(b, float)
        self.add("capsule", (a + b) / 2, (np.linalg.norm(b - a) / 2, r), mat, _frame_z(b - a))

    def ellipsoid(self, c, radii, mat, R=None):
        self.add("ellipsoid", c, radii, mat, R)

    def torus(self, c, big, r, mat, R=None):
        self.add("torus", c, (big, r), mat, R)

    def cone(self, c, hh, r1, r2, mat, R=None):
        self.add("cone", c, (hh, r1, r2), mat, R)

    def arc(self, c, ra, ang, rb, hh, mat, rr=0.0, R=None):
        self.add("arc", c, (ra, ang, rb, hh, min(rr, 0.999 * rb, 0.999 * hh)), mat, R)

    def stadium(self, c, a, r, hh, mat, rr=0.0, R=None):
        self.add("stadium", c, (a, r, hh, min(rr, 0.999 * r, 0.999 * hh)), mat, R)


@dataclass
class _Object:
    label: int
    prims: List[_Prim]
    origin: np.ndarray  # room frame
    yaw: float
    kind: str
    blocks_floor: bool = True  # stands on the floor (cameras may not be above it)
    lo: np.ndarray = field(default=None)
    hi: np.ndarray = field(default=None)
    R: np.ndarray = field(default=None)
    tex_offset: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        bounds = [p.bounds() for p in self.prims]
        self.lo = np.min([b[0] for b in bounds], 0) - 0.01
        self.hi = np.max([b[1] for b in bounds], 0) + 0.01
        self.R = _rz(self.yaw)
        self.origin = np.asarray(self.origin, float)

    def local(self, p: np.ndarray) -> np.ndarray:
        return (p - self.origin) @ self.R

    def sdf(self, q: np.ndarray) -> np.ndarray:
        d = self.prims[0].sdf(q)
        for prim in self.prims[1:]:
            d = np.minimum(d, prim.sdf(q))
        return d

    def prim_index(self, q: np.ndarray) -> np.ndarray:
        return np.argmin(np.stack([p.sdf(q) for p in self.prims], 1), 1)

    def box_distance(self, q: np.ndarray) -> np.ndarray:
        e = np.maximum(np.maximum(self.lo - q, q - self.hi), 0.0)
        return np.sqrt(e[:, 0] ** 2 + e[:, 1] ** 2 + e[:, 2] ** 2)


# ----------------------------------------------------------------------------------------------
# Room shell
# ----------------------------------------------------------------------------------------------

@dataclass
class _Recess:
    lo: np.ndarray
    hi: np.ndarray
    axis: int        # wall normal axis (0 = x, 1 = y)
    back: float      # coordinate of the recess back face along ``axis``
    kind: str        # "door" | "window"
    mat: int


@dataclass
class _Room:
    pieces: List[Tuple[np.ndarray, np.ndarray]]  # interior boxes (room frame) of the floor plan
    recesses: List[_Recess]
    ceil: Tuple[float, float, float]  # ceiling height = c0 + cx * x + cy * y
    mats: Dict[str, int]
    accent_dir: Optional[int]          # wall normal direction (0..3) painted with the accent material

    def ceiling(self, x, y):
        return self.ceil[0] + self.ceil[1] * x + self.ceil[2] * y

    def plan_sdf(self, x, y):
        """2-D distance inside the floor plan (positive inside, recesses excluded)."""
        d = None
        for lo, hi in self.pieces:
            dd = np.minimum(np.minimum(x - lo[0], hi[0] - x), np.minimum(y - lo[1], hi[1] - y))
            d = dd if d is None else np.maximum(d, dd)
        return d

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Free-space distance (positive inside the room) -- a lower bound of the true distance."""
        d = None
        boxes = [(lo, hi) for lo, hi in self.pieces] + [(r.lo, r.hi) for r in self.recesses]
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        for lo, hi in boxes:
            c, b = (lo + hi) / 2, (hi - lo) / 2
            ex, ey, ez = np.abs(x - c[0]) - b[0], np.abs(y - c[1]) - b[1], np.abs(z - c[2]) - b[2]
            sd = np.sqrt(np.maximum(ex, 0) ** 2 + np.maximum(ey, 0) ** 2 + np.maximum(ez, 0) ** 2)
            sd += np.minimum(np.maximum(np.maximum(ex, ey), ez), 0)
            d = -sd if d is None else np.maximum(d, -sd)
        c0, cx, cy = self.ceil
        dc = (c0 + cx * p[:, 0] + cy * p[:, 1] - p[:, 2]) / math.sqrt(1 + cx * cx + cy * cy)
        return np.minimum(d, dc)

    def extent(self) -> Tuple[np.ndarray, np.ndarray]:
        lo = np.min([p[0] for p in self.pieces], 0)
        hi = np.max([p[1] for p in self.pieces], 0)
        return lo, hi


# ----------------------------------------------------------------------------------------------
# Materials and patterns
# ----------------------------------------------------------------------------------------------

@dataclass
class _Mat:
    kind: str       # fabric wood metal paint stone ceramic leaf glow sky
    pattern: str
    c1: np.ndarray  # linear RGB
    c2: np.ndarray
    c3: np.ndarray
    scale: float
    salt: int
    direction: np.ndarray
    spec: float
    shin: float
    metal: bool = False
    emit: float = 0.0


def _hsv2rgb(h, s, v) -> np.ndarray:
    h = (h % 1.0) * 6.0
    i = int(h) % 6
    f = h - math.floor(h)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _lin(c) -> np.ndarray:
    return np.clip(np.asarray(c, float), 0, 1) ** 2.2


# Interior palettes: (hue, saturation, value) anchors for accents, woods and walls.
_PALETTES = [
    {"accent": [(0.33, 0.25, 0.55), (0.08, 0.15, 0.85), (0.58, 0.2, 0.45)], "wood": (0.09, 0.35, 0.8),
     "wall": [(0.1, 0.04, 0.93), (0.55, 0.05, 0.9)]},                                    # nordic
    {"accent": [(0.03, 0.65, 0.6), (0.12, 0.55, 0.75), (0.22, 0.45, 0.45)], "wood": (0.07, 0.55, 0.45),
     "wall": [(0.09, 0.18, 0.88), (0.06, 0.25, 0.8)]},                                   # terracotta
    {"accent": [(0.42, 0.7, 0.4), (0.62, 0.7, 0.45), (0.13, 0.75, 0.8)], "wood": (0.06, 0.6, 0.35),
     "wall": [(0.13, 0.08, 0.9), (0.45, 0.12, 0.75)]},                                   # jewel
    {"accent": [(0.95, 0.3, 0.9), (0.45, 0.3, 0.85), (0.75, 0.25, 0.85)], "wood": (0.1, 0.25, 0.9),
     "wall": [(0.0, 0.06, 0.95), (0.6, 0.08, 0.93)]},                                    # pastel
    {"accent": [(0.0, 0.0, 0.25), (0.07, 0.6, 0.35), (0.58, 0.15, 0.55)], "wood": (0.08, 0.45, 0.3),
     "wall": [(0.0, 0.0, 0.7), (0.1, 0.05, 0.55)]},                                      # industrial
    {"accent": [(0.61, 0.65, 0.35), (0.12, 0.25, 0.9), (0.52, 0.45, 0.6)], "wood": (0.1, 0.3, 0.75),
     "wall": [(0.57, 0.1, 0.95), (0.15, 0.1, 0.92)]},                                    # coastal
]

_KIND_SPEC = {  # (spec range, shininess range)
    "fabric": ((0.0, 0.04), (2, 6)), "wood": ((0.08, 0.3), (15, 60)), "metal": ((0.5, 0.9), (40, 160)),
    "paint": ((0.01, 0.06), (5, 15)), "stone": ((0.2, 0.5), (50, 150)), "ceramic": ((0.3, 0.6), (60, 200)),
    "leaf": ((0.05, 0.15), (8, 20)), "glow": ((0.0, 0.0), (1, 1)), "sky": ((0.0, 0.0), (1, 1)),
}


class _Palette:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.pal = _PALETTES[int(rng.integers(len(_PALETTES)))]
        self.mats: List[_Mat] = []

    def colour(self, role: str, jitter: float = 0.04) -> np.ndarray:
        rng = self.rng
        if role == "accent":
            if rng.random() < 0.3:  # fully random hue
                h, s, v = rng.random(), rng.uniform(0.2, 0.75), rng.uniform(0.3, 0.9)
            else:
                h, s, v = self.pal["accent"][int(rng.integers(len(self.pal["accent"])))]
        elif role == "wood":
            h, s, v = self.pal["wood"]
        elif role == "wall":
            h, s, v = self.pal["wall"][int(rng.integers(len(self.pal["wall"])))]
        elif role == "metal":
            h, s, v = rng.choice([0.1, 0.12, 0.6, 0.0]), rng.uniform(0.0, 0.5), rng.uniform(0.5, 0.95)
        elif role == "leaf":
            h, s, v = rng.uniform(0.22, 0.38), rng.uniform(0.45, 0.8), rng.uniform(0.25, 0.6)
        elif role == "neutral":
            h, s, v = rng.random(), rng.uniform(0.0, 0.12), rng.uniform(0.2, 0.95)
        else:
            raise ValueError(role)
        h += rng.normal(0, jitter)
        s = float(np.clip(s + rng.normal(0, 0.06), 0, 1))
        v = float(np.clip(v * rng.uniform(0.8, 1.15), 0.05, 1))
        return _lin(_hsv2rgb(h, s, v))

    def add(self, kind: str, pattern: str, c1, c2=None, c3=None, scale: float = 0.3, emit: float = 0.0) -> int:
        rng = self.rng
        c1 = np.asarray(c1, float)
        c2 = np.clip(c1 * rng.uniform(0.45, 0.75), 0, 1) if c2 is None else np.asarray(c2, float)
        c3 = np.clip(1.0 - c1 * 0.6, 0, 1) ** 1.5 if c3 is None else np.asarray(c3, float)
        (s0, s1), (h0, h1) = _KIND_SPEC[kind]
        self.mats.append(_Mat(kind, pattern, c1, c2, c3, float(scale), int(rng.integers(1, 2 ** 30)),
                              _norm(rng.normal(size=3)), float(rng.uniform(s0, s1)), float(rng.uniform(h0, h1)),
                              kind == "metal", float(emit)))
        return len(self.mats) - 1

    # Convenience material makers -------------------------------------------------------------
    def fabric(self, role: str = "accent") -> int:
        rng = self.rng
        c1 = self.colour(role)
        pattern = rng.choice(["plain", "weave", "plaid", "gradient", "speckle", "weave"],
                             p=[0.2, 0.35, 0.15, 0.15, 0.1, 0.05])
        c2 = None
        if pattern == "plaid":
            c2 = self.colour("accent")
        return self.add("fabric", str(pattern), c1, c2, scale=float(rng.uniform(0.06, 0.18)))

    def wood(self) -> int:
        rng = self.rng
        c1 = self.colour("wood", 0.02)
        return self.add("wood", str(rng.choice(["grain", "grain", "gradient"])), c1,
                        np.clip(c1 * rng.uniform(0.5, 0.75), 0, 1), scale=float(rng.uniform(0.03, 0.08)))

    def metal(self) -> int:
        return self.add("metal", "plain", self.colour("metal", 0.01))

    def frame(self) -> int:
        """Wood, metal or painted frame material."""
        r = self.rng.random()
        if r < 0.45:
            return self.wood()
        if r < 0.75:
            return self.metal()
        return self.add("paint", "plain", self.colour("neutral"))

    def ceramic(self) -> int:
        rng = self.rng
        c1 = self.colour("accent" if rng.random() < 0.6 else "neutral")
        return self.add("ceramic", str(rng.choice(["plain", "speckle", "gradient", "marble"])), c1,
                        scale=float(rng.uniform(0.05, 0.15)))


def _hash3(ix, iy, iz, salt: int) -> np.ndarray:
    h = (ix.astype(np.int64) * 73856093 + iy.astype(np.int64) * 19349669 + iz.astype(np.int64) * 83492791
         + salt * 2654435761) & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    h ^= h >> 16
    return (h & 0xFFFFFF).astype(np.float64) / float(0xFFFFFF)


def _noise3(p: np.ndarray, salt: int) -> np.ndarray:
    """Smooth 3-D value noise in [0, 1]."""
    fl = np.floor(p)
    f = p - fl
    f = f * f * (3 - 2 * f)
    i = fl.astype(np.int64)
    out = 0.0
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1 - f[:, 2]
                out = out + wx * wy * wz * _hash3(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz, salt)
    return out


def _fbm(p: np.ndarray, salt: int, octaves: int = 3) -> np.ndarray:
    out, amp, tot = 0.0, 1.0, 0.0
    for k in range(octaves):
        out = out + amp * _noise3(p * (2.0 ** k), salt + 31 * k)
        tot += amp
        amp *= 0.5
    return out / tot


def _uv(pos: np.ndarray, nrm: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Planar coordinates on the dominant-normal plane."""
    a = np.abs(nrm).argmax(1)
    u = np.where(a == 0, pos[:, 1], pos[:, 0])
    v = np.where(a == 2, pos[:, 1], pos[:, 2])
    return u, v


def _mix(a, b, t):
    t = np.asarray(t)[:, None]
    return a * (1 - t) + b * t


def _albedo(m: _Mat, pos: np.ndarray, nrm: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(albedo (N, 3) linear, emission (N, 3)) of material ``m`` at texture positions ``pos``."""
    n = len(pos)
    c1, c2, c3, s = m.c1[None], m.c2[None], m.c3[None], m.scale
    emit = np.zeros((n, 3))
    pat = m.pattern
    if pat == "plain":
        col = c1 * (0.94 + 0.12 * _noise3(pos * 2.5, m.salt))[:, None]
    elif pat == "gradient":
        t = np.clip(0.5 + (pos @ m.direction) / 1.2, 0, 1)
        col = _mix(c1, c2, t * t * (3 - 2 * t)) * (0.95 + 0.1 * _noise3(pos * 4.0, m.salt))[:, None]
    elif pat == "weave":
        u, v = _uv(pos, nrm)
        f = 2 * math.pi / max(s * 0.08, 0.004)
        w = 0.5 + 0.5 * np.sin(u * f) * np.sin(v * f)
        heather = _noise3(pos * 18.0, m.salt)
        col = _mix(c1, c2, 0.25 * w + 0.35 * (heather > 0.7))
    elif pat == "plaid":
        u, v = _uv(pos, nrm)
        fu, fv = (u / s) % 1.0, (v / s) % 1.0
        col = _mix(c1, c2, 0.55 * (fu < 0.35) + 0.45 * (fv < 0.35))
        thin = (np.abs(fu - 0.7) < 0.04) | (np.abs(fv - 0.7) < 0.04)
        col = _mix(col, c3, 0.8 * thin)
    elif pat == "marble":
        t = (pos @ m.direction) / max(s, 0.02) + 5.0 * _fbm(pos * 2.0, m.salt, 4)
        vein = (1 - np.abs(np.sin(t))) ** 6
        col = _mix(c1, c2, 0.85 * vein) * (0.93 + 0.1 * _noise3(pos * 9.0, m.salt + 3))[:, None]
    elif pat == "speckle":
        d1 = _noise3(pos / max(s * 0.25, 0.01), m.salt) > 0.72
        d2 = _noise3(pos / max(s * 0.18, 0.01) + 17.3, m.salt + 5) > 0.76
        col = _mix(_mix(c1, c2, d1.astype(float)), c3, d2.astype(float))
    elif pat == "tiles":
        u, v = _uv(pos, nrm)
        iv = np.floor(v / s)
        u = u + 0.5 * s * (iv % 2) * (m.salt % 2)
        iu = np.floor(u / s)
        fu, fv = u / s - iu, v / s - iv
        g = 0.04
        grout = (fu < g) | (fu > 1 - g) | (fv < g) | (fv > 1 - g)
        tint = 0.82 + 0.3 * _hash3(iu, iv, np.zeros_like(iu), m.salt)
        base = c1 * tint[:, None] * (0.95 + 0.08 * _noise3(pos * 6.0, m.salt))[:, None]
        col = np.where(grout[:, None], c2 * 0.8, base)
    elif pat == "planks":
        u, v = _uv(pos, nrm)
        if m.salt % 2:
            u, v = v, u
        width, length = s, 6 * s
        iv = np.floor(v / width)
        uu = u + length * _hash3(iv, iv, iv, m.salt)
        iu = np.floor(uu / length)
        grain = _fbm(np.stack([uu * 1.5, v / width * 6.0, iu], 1), m.salt + 9, 3)
        tint = 0.75 + 0.45 * _hash3(iu, iv, iu, m.salt + 1)
        col = _mix(c1, c2, np.clip(grain * 1.6 - 0.4, 0, 1)) * tint[:, None]
        seam = ((v / width) % 1.0 < 0.04) | ((uu / length) % 1.0 < 0.01)
        col = np.where(seam[:, None], col * 0.45, col)
    elif pat == "grain":
        t = (pos @ m.direction) / max(s, 0.01) + 3.0 * _fbm(pos * np.array([1.0, 1.0, 8.0]) * 2.0, m.salt, 3)
        col = _mix(c1, c2, 0.5 + 0.5 * np.sin(t) * (0.6 + 0.4 * _noise3(pos * 20.0, m.salt + 1)))
    elif pat == "spines":  # rows of book spines along x
        ib = np.floor(pos[:, 0] / 0.035 + 2.5 * _hash3(np.floor(pos[:, 2] * 3), np.zeros(n), np.zeros(n), m.salt))
        hsh = _hash3(ib, ib * 7, np.zeros(n), m.salt + 2)
        pal = np.stack([m.c1, m.c2, m.c3, np.array([0.6, 0.55, 0.45]), np.array([0.05, 0.05, 0.08])])
        col = pal[np.minimum((hsh * 5).astype(int), 4)] * (0.7 + 0.5 * _hash3(ib, ib, ib, m.salt + 4))[:, None]
    elif pat == "leaf":
        col = _mix(c1, c2, _fbm(pos * 9.0, m.salt, 3)) * (0.8 + 0.4 * _noise3(pos * 30.0, m.salt + 1))[:, None]
    elif pat == "glow":
        col = c1 * np.ones((n, 1))
        emit = c1 * m.emit * np.ones((n, 1))
    elif pat == "sky":  # window: bright sky gradient behind mullions
        u, v = _uv(pos, nrm)
        t = np.clip((pos[:, 2] - 0.8) / 1.5, 0, 1)
        sky = _mix(c2, c1, t)
        bars = (np.abs(((u / s) % 1.0) - 0.5) > 0.46) | (np.abs(((v / s) % 1.0) - 0.5) > 0.46)
        col = np.where(bars[:, None], c3, 0.2 * sky)
        emit = np.where(bars[:, None], 0.0, sky * m.emit)
    else:
        raise ValueError(pat)
    return np.clip(col, 0, 1), emit


# ----------------------------------------------------------------------------------------------
# Furniture builders: each returns (label, Parts, kind, extras) in the object frame
# ----------------------------------------------------------------------------------------------

def _legs_round(P: _Parts, rng, n, top_z, r_top, r_floor, rad, mat, phase=None):
    phase = rng.uniform(0, 2 * math.pi) if phase is None else phase
    for k in range(n):
        a = phase + 2 * math.pi * k / n
        d = np.array([math.cos(a), math.sin(a), 0.0])
        P.capsule(d * r_top + [0, 0, top_z], d * r_floor + [0, 0, rad], rad, mat)


def _chair(rng, pal: _Palette):
    P = _Parts()
    frame, seat_mat = pal.frame(), pal.fabric() if rng.random() < 0.7 else pal.wood()
    style = rng.choice(["curved", "stool", "swivel", "tub", "curved"])
    sh = rng.uniform(0.42, 0.5)
    if style == "curved":
        ra = rng.uniform(0.19, 0.25)
        th = rng.uniform(0.025, 0.05)
        if rng.random() < 0.5:
            P.cyl([0, 0, sh - th], ra, th, seat_mat, rr=0.015)
        else:
            P.rbox([0, 0, sh - th], (ra, ra, th), 0.06, seat_mat)
        _legs_round(P, rng, 4, sh - 2 * th, 0.7 * ra, 0.85 * ra, rng.uniform(0.012, 0.022), frame, math.pi / 4)
        bh = rng.uniform(0.1, 0.16)
        bz = sh + rng.uniform(0.25, 0.38)
        tilt = _rx(-math.radians(rng.uniform(5, 15)))
        P.arc([0, 0, bz], ra * rng.uniform(0.9, 1.05), math.radians(rng.uniform(45, 80)),
              rng.uniform(0.012, 0.022), bh, seat_mat if rng.random() < 0.4 else frame, rr=0.01, R=tilt)
        for sx in (-1, 1):
            P.capsule([sx * 0.5 * ra, 0.8 * ra, sh - th], [sx * 0.5 * ra, 0.95 * ra, bz - bh * 0.8], 0.012, frame)
    elif style == "stool":
        ra = rng.uniform(0.15, 0.2)
        sh = rng.uniform(0.45, 0.75)
        P.cyl([0, 0, sh - 0.025], ra, 0.025, seat_mat, rr=0.012)
        _legs_round(P, rng, int(rng.choice([3, 4])), sh - 0.05, 0.6 * ra, 1.15 * ra, 0.015, frame)
        P.torus([0, 0, sh * 0.4], 0.85 * ra, 0.01, frame)
        if rng.random() < 0.4:
            P.arc([0, 0, sh + 0.12], ra * 0.95, math.radians(70), 0.015, 0.06, frame, rr=0.01)
    elif style == "swivel":
        w = rng.uniform(0.22, 0.27)
        P.rbox([0, 0, sh - 0.04], (w, w, 0.04), 0.035, seat_mat)
        P.cyl([0, 0, (sh - 0.08) / 2 + 0.06], 0.025, (sh - 0.08) / 2 - 0.03, frame)
        for k in range(5):
            a = 2 * math.pi * k / 5
            d = np.array([math.cos(a), math.sin(a), 0.0])
            P.capsule(np.array([0, 0, 0.07]), d * 0.28 + [0, 0, 0.06], 0.018, frame)
            P.ellipsoid(d * 0.28 + [0, 0, 0.03], (0.025, 0.025, 0.03), frame)
        tilt = _rx(-math.radians(rng.uniform(5, 15)))
        bh = rng.uniform(0.2, 0.3)
        P.rbox([0, w * 0.95, sh + 0.08 + bh], (w * 0.9, 0.04, bh), 0.035, seat_mat, R=tilt)
        if rng.random() < 0.5:
            for sx in (-1, 1):
                P.capsule([sx * w, -w * 0.6, sh + 0.18], [sx * w, w * 0.6, sh + 0.18], 0.02, frame)
                P.capsule([sx * w, 0, sh], [sx * w, 0, sh + 0.18], 0.015, frame)
    else:  # tub armchair: a thick curved shell around a round cushion
        ra = rng.uniform(0.3, 0.38)
        body = pal.fabric()
        P.arc([0, 0, 0.42], ra, math.radians(rng.uniform(100, 130)), 0.07, 0.3, body, rr=0.05)
        P.cyl([0, 0, 0.3], ra - 0.03, 0.14, body, rr=0.05)
        P.cyl([0, 0, 0.47], ra - 0.06, 0.06, seat_mat, rr=0.05)
        for k in range(4):
            a = math.pi / 4 + k * math.pi / 2
            P.cone([0.8 * ra * math.cos(a), 0.8 * ra * math.sin(a), 0.08], 0.08, 0.015, 0.025, frame)
    return CHAIR, P, f"chair_{style}"


def _table(rng, pal: _Palette, kind: str = "dining"):
    P = _Parts()
    top = pal.wood() if rng.random() < 0.6 else pal.add("stone", "marble", pal.colour("neutral"),
                                                        scale=float(rng.uniform(0.05, 0.2)))
    if rng.random() < 0.2:
        top = pal.add("paint", "gradient", pal.colour("accent"))
    frame = pal.frame()
    if kind == "coffee":
        h = rng.uniform(0.35, 0.46)
    elif kind == "side":
        h = rng.uniform(0.45, 0.6)
    else:
        h = rng.uniform(0.71, 0.77)
    th = rng.uniform(0.018, 0.035)
    oval = kind != "side" and rng.random() < 0.4
    if kind == "side":
        R = rng.uniform(0.2, 0.3)
    elif kind == "coffee":
        R = rng.uniform(0.35, 0.55)
    else:
        R = rng.uniform(0.42, 0.65)
    if oval:
        a = rng.uniform(0.25, 0.55)
        P.stadium([0, 0, h - th], a, R * 0.85, th, top, rr=0.01)
    elif kind == "desk":
        pass
    else:
        P.cyl([0, 0, h - th], R, th, top, rr=0.01)
    support = rng.choice(["pedestal", "tripod", "drum"] if kind == "coffee" else ["pedestal", "tripod", "four"])
    if oval and support == "pedestal":
        for sx in (-1, 1):
            P.cyl([sx * a * 0.6, 0, h / 2], 0.04, h / 2 - th, frame)
            P.ellipsoid([sx * a * 0.6, 0, 0.02], (0.2, 0.15, 0.025), frame)
    elif support == "pedestal":
        P.cyl([0, 0, h / 2], rng.uniform(0.035, 0.07), h / 2 - th, frame)
        if rng.random() < 0.5:
            P.cone([0, 0, 0.04], 0.04, R * 0.55, 0.06, frame)
        else:
            for k in range(4):
                ang = k * math.pi / 2 + math.pi / 4
                P.capsule([0, 0, 0.05], [0.3 * R * 2 * math.cos(ang), 0.3 * R * 2 * math.sin(ang), 0.02], 0.02,
                          frame)
    elif support == "drum":
        P.cyl([0, 0, (h - 2 * th) / 2], R * 0.7, (h - 2 * th) / 2, pal.wood(), rr=0.01)
    else:
        n = 3 if support == "tripod" else 4
        if oval:
            for sx in (-1, 1):
                for sy in (-1, 1):
                    P.capsule([sx * a * 0.8, sy * R * 0.4, h - 2 * th], [sx * (a * 0.8 + 0.08), sy * R * 0.5, 0.02],
                              0.018, frame)
        else:
            _legs_round(P, rng, n, h - 2 * th, 0.55 * R, 0.75 * R, rng.uniform(0.015, 0.025), frame)
    if kind == "coffee" and rng.random() < 0.4 and support != "drum":
        if oval:
            P.stadium([0, 0, h * 0.3], a * 0.9, R * 0.7, 0.012, top)
        else:
            P.cyl([0, 0, h * 0.3], R * 0.75, 0.012, top)
    return TABLE, P, f"table_{kind}_{support}{'_oval' if oval else ''}"


def _desk(rng, pal: _Palette):
    P = _Parts()
    top, frame = pal.wood(), pal.frame()
    w, d, h = rng.uniform(0.55, 0.8), rng.uniform(0.28, 0.38), rng.uniform(0.72, 0.76)
    P.rbox([0, 0, h - 0.02], (w, d, 0.02), 0.015, top)
    for sx in (-1, 1):
        if rng.random() < 0.5:
            P.cyl([sx * (w - 0.06), 0, (h - 0.04) / 2], 0.025, (h - 0.04) / 2, frame)
        else:
            P.capsule([sx * (w - 0.06), -d + 0.06, h - 0.04], [sx * (w - 0.04), -d + 0.04, 0.02], 0.018, frame)
            P.capsule([sx * (w - 0.06), d - 0.06, h - 0.04], [sx * (w - 0.04), d - 0.04, 0.02], 0.018, frame)
    if rng.random() < 0.6:
        P.rbox([w * 0.45, 0, h - 0.17], (w * 0.45, d * 0.9, 0.13), 0.02, pal.frame())
    return TABLE, P, "table_desk"


def _sofa(rng, pal: _Palette):
    P = _Parts()
    body, cushion = pal.fabric(), pal.fabric() if rng.random() < 0.4 else None
    cushion = body if cushion is None else cushion
    feet = pal.frame()
    W = rng.uniform(0.75, 1.2)      # half width
    D = rng.uniform(0.4, 0.5)       # half depth
    base_z0, seat_h = rng.uniform(0.06, 0.14), rng.uniform(0.4, 0.47)
    arm_w = rng.uniform(0.08, 0.16)
    arm_h = seat_h + rng.uniform(0.12, 0.25)
    P.rbox([0, 0, (base_z0 + seat_h - 0.12) / 2], (W, D, (seat_h - 0.12 - base_z0) / 2), 0.03, body)
    n = int(rng.choice([2, 3])) if W > 0.9 else 2
    cw = (W - arm_w) / n
    for k in range(n):
        cx = -W + arm_w + cw * (2 * k + 1)
        P.rbox([cx, -0.05, seat_h - 0.06], (cw - 0.01, D - 0.08, 0.07), 0.06, cushion)
        tilt = _rx(-math.radians(rng.uniform(8, 16)))
        P.rbox([cx, D - 0.12, seat_h + 0.2], (cw - 0.01, 0.09, 0.22), 0.08, cushion, R=tilt)
    P.rbox([0, D - 0.06, (base_z0 + seat_h + 0.25) / 2], (W, 0.06, (seat_h + 0.25 - base_z0) / 2), 0.04, body)
    rolled = rng.random() < 0.6
    for sx in (-1, 1):
        x = sx * (W - arm_w / 2)
        P.rbox([x, 0, (base_z0 + arm_h) / 2], (arm_w / 2, D, (arm_h - base_z0) / 2), 0.04, body)
        if rolled:
            P.cyl([x, 0, arm_h], arm_w / 2 + 0.03, D, body, rr=0.03, R=_rx(math.pi / 2))
    for sx in (-1, 1):
        for sy in (-1, 1):
            P.cone([sx * (W - 0.08), sy * (D - 0.08), base_z0 / 2], base_z0 / 2, 0.015, 0.025, feet)
    if rng.random() < 0.6:  # throw pillow
        pm = pal.fabric()
        sx = rng.choice([-1, 1])
        P.ellipsoid([sx * (W - arm_w - 0.2), D - 0.28, seat_h + 0.15], (0.18, 0.07, 0.16), pm,
                    R=_rz(rng.uniform(-0.3, 0.3)) @ _rx(-0.3))
    return SOFA, P, "sofa_rolled" if rolled else "sofa"


def _bed(rng, pal: _Palette):
    P = _Parts()
    frame, head_mat = pal.wood() if rng.random() < 0.6 else pal.fabric(), pal.fabric()
    sheet = pal.add("fabric", "plain", _lin(_hsv2rgb(rng.random(), 0.05, 0.93)))
    duvet = pal.fabric()
    W = rng.uniform(0.45, 0.95)          # half width
    L = rng.uniform(1.0, 1.1)            # half length (along y)
    fz = rng.uniform(0.2, 0.3)
    P.rbox([0, 0, fz / 2 + 0.04], (W + 0.03, L + 0.03, fz / 2), 0.02, frame)
    for sx in (-1, 1):
        for sy in (-1, 1):
            P.cyl([sx * (W - 0.05), sy * (L - 0.05), 0.03], 0.03, 0.03, frame)
    mz = fz + 0.04
    P.rbox([0, 0, mz + 0.1], (W, L, 0.1), 0.06, sheet)
    dz = mz + 0.2
    P.rbox([0, -0.25, dz], (W + 0.02, L * 0.78, 0.05), 0.05, duvet)
    for _ in range(int(rng.integers(1, 3))):
        P.ellipsoid([rng.uniform(-0.5, 0.5) * W, rng.uniform(-0.6, 0.1) * L, dz + 0.03],
                    (rng.uniform(0.3, 0.5) * W, rng.uniform(0.25, 0.45) * L, rng.uniform(0.06, 0.12)), duvet)
    npil = 2 if W > 0.6 else 1
    for k in range(npil):
        x = 0.0 if npil == 1 else (k - 0.5) * W
        P.ellipsoid([x, L - 0.25, dz + 0.04], (min(0.33, W * 0.45 if npil == 2 else W * 0.8), 0.17, 0.07),
                    sheet if rng.random() < 0.6 else pal.fabric(), R=_rx(0.25))
    hh = rng.uniform(0.45, 0.65)
    style = rng.choice(["panel", "arc", "roll"])
    if style == "arc":
        big = W * 3.0
        ang = math.asin(min(0.99, (W + 0.05) / big))
        P.arc([0, L + 0.06 - big, hh + 0.05], big, ang, 0.05, hh, head_mat, rr=0.03)
    else:
        P.rbox([0, L + 0.08, hh + 0.05], (W + 0.05, 0.05, hh), 0.04 if style == "panel" else 0.02, head_mat)
        if style == "roll":
            P.cyl([0, L + 0.08, 2 * hh + 0.05], 0.07, W + 0.05, head_mat, rr=0.03, R=_ry(math.pi / 2))
    return BED, P, f"bed_{style}"


def _lamp(rng, pal: _Palette, floor: bool = True):
    P = _Parts()
    frame = pal.metal() if rng.random() < 0.7 else pal.wood()
    shade_col = _lin(_hsv2rgb(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.4), rng.uniform(0.75, 0.95)))
    shade = pal.add("glow", "glow", shade_col, emit=float(rng.uniform(1.0, 2.5)))
    h = rng.uniform(1.4, 1.7) if floor else rng.uniform(0.35, 0.5)
    rb = rng.uniform(0.12, 0.18) if floor else rng.uniform(0.06, 0.09)
    P.cyl([0, 0, 0.015], rb, 0.015, frame, rr=0.008)
    P.capsule([0, 0, 0.02], [0, 0, h - 0.1], 0.012, frame)
    sh = rng.uniform(0.12, 0.2) if floor else rng.uniform(0.07, 0.1)
    r1 = rng.uniform(0.15, 0.25) if floor else rng.uniform(0.09, 0.14)
    P.cone([0, 0, h - sh * 0.6], sh, r1, r1 * rng.uniform(0.5, 0.8), shade)
    light = np.array([0.0, 0.0, h - sh * 1.6 - 0.12])
    return OTHER, P, "lamp", {"light": light, "light_col": shade_col}


def _plant(rng, pal: _Palette):
    P = _Parts()
    pot, leaf = pal.ceramic(), pal.add("leaf", "leaf", pal.colour("leaf"), pal.colour("leaf"))
    ph, pr = rng.uniform(0.15, 0.35), rng.uniform(0.12, 0.22)
    P.cone([0, 0, ph / 2], ph / 2, pr * 0.75, pr, pot)
    if rng.random() < 0.5:
        top = ph + rng.uniform(0.3, 0.8)
        P.capsule([0, 0, ph], [0, 0, top], 0.015, pal.wood())
        for _ in range(int(rng.integers(2, 5))):
            c = np.array([rng.normal(0, 0.1), rng.normal(0, 0.1), top + rng.uniform(-0.1, 0.15)])
            r = rng.uniform(0.15, 0.3)
            P.ellipsoid(c, (r, r * rng.uniform(0.8, 1.2), r * rng.uniform(0.7, 1.1)), leaf)
    else:
        for _ in range(int(rng.integers(4, 8))):
            a, tilt = rng.uniform(0, 2 * math.pi), rng.uniform(0.1, 0.5)
            ln = rng.uniform(0.25, 0.6)
            R = _rz(a) @ _rx(tilt)
            c = np.array([0, 0, ph]) + R @ np.array([0, 0, ln])
            P.ellipsoid(c, (0.05, 0.015, ln), leaf, R=R)
    return OTHER, P, "plant"


def _shelf(rng, pal: _Palette):
    P = _Parts()
    body = pal.wood() if rng.random() < 0.6 else pal.add("paint", "plain", pal.colour("neutral"))
    books = pal.add("paint", "spines", pal.colour("accent"), pal.colour("accent"), pal.colour("accent"))
    W, D, H = rng.uniform(0.35, 0.6), rng.uniform(0.14, 0.2), rng.uniform(0.8, 2.0)
    n = max(2, int(H / 0.38))
    for sx in (-1, 1):
        P.rbox([sx * (W - 0.01), 0, H / 2], (0.012, D, H / 2), 0.005, body)
    for k in range(n + 1):
        z = 0.02 + (H - 0.04) * k / n
        P.rbox([0, 0, z], (W, D, 0.012), 0.005, body)
        if k < n and rng.random() < 0.85:
            bh = rng.uniform(0.15, 0.28) * 0.5
            fill = rng.uniform(0.4, 0.95)
            x0 = -W + 0.02 + rng.uniform(0, (1 - fill)) * (2 * W - 0.04)
            bw = fill * (W - 0.02)
            P.rbox([x0 + bw, 0.01, z + 0.012 + bh], (bw, D - 0.025, bh), 0.003, books)
    return OTHER, P, "shelf"


def _cabinet(rng, pal: _Palette, night: bool = False):
    P = _Parts()
    body = pal.wood() if rng.random() < 0.5 else pal.add("paint", "gradient" if rng.random() < 0.3 else "plain",
                                                        pal.colour("accent" if rng.random() < 0.5 else "neutral"))
    knob = pal.metal()
    if night:
        W, D, H = rng.uniform(0.2, 0.28), rng.uniform(0.18, 0.22), rng.uniform(0.45, 0.6)
    else:
        W, D, H = rng.uniform(0.4, 0.9), rng.uniform(0.2, 0.3), rng.uniform(0.6, 1.9)
    leg = rng.uniform(0.05, 0.15)
    P.rbox([0, 0, leg + (H - leg) / 2], (W, D, (H - leg) / 2), rng.uniform(0.01, 0.05), body)
    for sx in (-1, 1):
        for sy in (-1, 1):
            P.cone([sx * (W - 0.05), sy * (D - 0.05), leg / 2], leg / 2, 0.01, 0.02, knob)
    nd = int(rng.integers(1, 4))
    for k in range(nd):
        z = leg + (H - leg) * (k + 0.5) / nd
        P.ellipsoid([0, -D - 0.005, z], (0.02, 0.015, 0.02), knob)
    return OTHER, P, "nightstand" if night else "cabinet", {"top": leg + H - leg}


def _rug(rng, pal: _Palette, radius: float):
    P = _Parts()
    mat = pal.add("fabric", str(rng.choice(["plaid", "speckle", "gradient", "weave"])), pal.colour("accent"),
                  pal.colour("accent"), scale=float(rng.uniform(0.1, 0.3)))
    if rng.random() < 0.5:
        P.cyl([0, 0, 0.006], radius, 0.006, mat, rr=0.004)
    else:
        P.stadium([0, 0, 0.006], radius * rng.uniform(0.3, 0.6), radius * 0.75, 0.006, mat, rr=0.004)
    return OTHER, P, "rug"


def _tabletop_item(rng, pal: _Palette):
    P = _Parts()
    mat = pal.ceramic()
    r = rng.random()
    if r < 0.4:  # vase
        h = rng.uniform(0.1, 0.2)
        P.cone([0, 0, h], h, rng.uniform(0.04, 0.07), rng.uniform(0.02, 0.05), mat)
        P.ellipsoid([0, 0, h * 0.6], (0.07, 0.07, h * 0.6), mat)
    elif r < 0.7:  # bowl
        br = rng.uniform(0.08, 0.14)
        P.torus([0, 0, 0.06], br, 0.012, mat)
        P.ellipsoid([0, 0, 0.045], (br * 0.9, br * 0.9, 0.045), mat)
    else:  # small plant
        P.cone([0, 0, 0.05], 0.05, 0.05, 0.065, mat)
        P.ellipsoid([0, 0, 0.16], (0.09, 0.09, 0.08), pal.add("leaf", "leaf", pal.colour("leaf"), pal.colour("leaf")))
    return OTHER, P, "tabletop"


def _wall_art(rng, pal: _Palette):
    """Object frame: back (+y) against the wall, origin at the wall-plane bottom centre."""
    P = _Parts()
    if rng.random() < 0.7:
        w, h = rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.45)
        frame = pal.frame()
        P.rbox([0, -0.015, 0], (w, 0.015, h), 0.005, frame)
        art = pal.add("paint", str(rng.choice(["marble", "gradient", "speckle", "plaid"])), pal.colour("accent"),
                      pal.colour("accent"), scale=float(rng.uniform(0.05, 0.2)))
        P.rbox([0, -0.02, 0], (w - 0.03, 0.012, h - 0.03), 0.002, art)
    else:
        r = rng.uniform(0.12, 0.2)
        P.cyl([0, -0.02, 0], r, 0.02, pal.add("ceramic", "plain", _lin([0.95, 0.95, 0.93])), R=_rx(math.pi / 2))
        P.torus([0, -0.025, 0], r, 0.015, pal.frame(), R=_rx(math.pi / 2))
        P.capsule([0, -0.045, 0], [0.0, -0.045, r * 0.6], 0.006, pal.metal())
        P.capsule([0, -0.045, 0], [r * 0.45, -0.045, 0.0], 0.006, pal.metal())
    return OTHER, P, "wall_art"


def _pendant(rng, pal: _Palette, drop: float):
    """Hanging lamp; origin at the ceiling, hangs ``drop`` metres down."""
    P = _Parts()
    shade_col = _lin(_hsv2rgb(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.5), rng.uniform(0.7, 0.95)))
    shade = pal.add("glow", "glow", shade_col, emit=float(rng.uniform(0.8, 2.0)))
    P.cyl([0, 0, -0.01], 0.05, 0.01, pal.metal())
    P.capsule([0, 0, -0.01], [0, 0, -drop + 0.12], 0.006, pal.metal())
    if rng.random() < 0.5:
        P.ellipsoid([0, 0, -drop], (0.16, 0.16, 0.12), shade)
    else:
        P.cone([0, 0, -drop], 0.1, rng.uniform(0.15, 0.25), 0.05, shade)
    return OTHER, P, "pendant", {"light": np.array([0.0, 0.0, -drop - 0.25]), "light_col": shade_col}


def _ceiling_light(rng, pal: _Palette):
    P = _Parts()
    col = _lin(_hsv2rgb(rng.uniform(0.08, 0.6), rng.uniform(0.0, 0.12), 0.97))
    P.ellipsoid([0, 0, 0], (0.2, 0.2, 0.07), pal.add("glow", "glow", col, emit=float(rng.uniform(1.5, 3.0))))
    return OTHER, P, "ceiling_light", {"light": np.array([0.0, 0.0, -0.3]), "light_col": col}


# ----------------------------------------------------------------------------------------------
# Scene assembly
# ----------------------------------------------------------------------------------------------

@dataclass
class _Light:
    pos: np.ndarray
    col: np.ndarray
    radius: float


@dataclass
class _Scene:
    room: _Room
    objects: List[_Object]
    mats: List[_Mat]
    lights: List[_Light]
    sky: np.ndarray
    ground: np.ndarray
    ambient: float
    room_yaw: float
    room_shift: np.ndarray
    info: dict


class _Layout:
    """Occupancy grid (5 cm) of the floor plan for placing furniture footprints."""

    def __init__(self, room: _Room) -> None:
        lo, hi = room.extent()
        xs = np.arange(lo[0] + 0.025, hi[0], 0.05)
        ys = np.arange(lo[1] + 0.025, hi[1], 0.05)
        self.X, self.Y = np.meshgrid(xs, ys)
        self.room = room
        self.outside = room.plan_sdf(self.X, self.Y) < 0.0
        self.taken = np.zeros_like(self.outside)

    def _rect(self, x, y, yaw, lo, hi, margin):
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = self.X - x, self.Y - y
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        return (lx > lo[0] - margin) & (lx < hi[0] + margin) & (ly > lo[1] - margin) & (ly < hi[1] + margin)

    def fits(self, x, y, yaw, lo, hi, clearance=0.12, ignore=None) -> bool:
        c, s = math.cos(yaw), math.sin(yaw)
        corners = [(lo[0], lo[1]), (hi[0], lo[1]), (lo[0], hi[1]), (hi[0], hi[1])]
        for cx, cy in corners:
            px, py = x + c * cx - s * cy, y + s * cx + c * cy
            if self.room.plan_sdf(np.array(px), np.array(py)) < 0.0:
                return False
        if np.any(self._rect(x, y, yaw, lo, hi, -0.01) & self.outside):
            return False
        taken = self.taken if ignore is None else self.taken & ~ignore
        return not np.any(self._rect(x, y, yaw, lo, hi, clearance) & taken)

    def occupy(self, x, y, yaw, lo, hi, margin=0.0) -> None:
        self.taken |= self._rect(x, y, yaw, lo, hi, margin)

    def random_free_point(self, rng, margin: float = 0.3) -> Optional[Tuple[float, float]]:
        ok = ~self.outside & ~self.taken & (self.room.plan_sdf(self.X, self.Y) > margin)
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return None
        k = idx[int(rng.integers(idx.size))]
        return float(self.X.flat[k]), float(self.Y.flat[k])

    def wall_along(self, x, y, direction) -> float:
        """Distance from (x, y) along the 2-D ``direction`` to the floor-plan boundary."""
        s = np.arange(0.0, 12.0, 0.01)
        inside = self.room.plan_sdf(x + s * direction[0], y + s * direction[1]) > 0
        k = np.argmin(inside) if not inside.all() else len(s) - 1
        return float(s[k])


def _make_room(rng, pal: _Palette) -> Tuple[_Room, dict]:
    W, D = rng.uniform(3.4, 6.5), rng.uniform(3.0, 5.5)
    big = 10.0
    pieces = [(np.array([0.0, 0.0, 0.0]), np.array([W, D, big]))]
    shape = "rect"
    if rng.random() < 0.35:
        shape = "L"
        ext, wid = rng.uniform(1.6, 3.0), rng.uniform(1.8, 0.75 * W)
        x0 = 0.0 if rng.random() < 0.5 else W - wid
        pieces.append((np.array([x0, D - 0.5, 0.0]), np.array([x0 + wid, D + ext, big])))
    lo = np.min([p[0] for p in pieces], 0)
    hi = np.max([p[1] for p in pieces], 0)
    if rng.random() < 0.3:
        h0 = rng.uniform(2.3, 2.7)
        axis = int(rng.integers(2))
        span = hi[axis] - lo[axis]
        slope = rng.uniform(0.3, min(0.8, 3.2 - h0)) / span  # heights stay within 2.3-3.2 m
        if rng.random() < 0.5:
            ceil = (h0, slope if axis == 0 else 0.0, slope if axis == 1 else 0.0)
        else:  # high side at the low coordinate
            top = h0 + slope * span
            ceil = (top + slope * lo[axis], -slope if axis == 0 else 0.0, -slope if axis == 1 else 0.0)
        ceiling = "sloped"
    else:
        ceil = (rng.uniform(2.3, 3.2), 0.0, 0.0)
        ceiling = "flat"
    wall_c = pal.colour("wall", 0.01)
    mats = {
        "wall": pal.add("paint", str(rng.choice(["plain", "plain", "gradient", "speckle"])), wall_c,
                        np.clip(wall_c * 0.85, 0, 1), scale=0.4),
        "accent": pal.add("paint", str(rng.choice(["plain", "plaid", "tiles", "gradient"])), pal.colour("accent"),
                          pal.colour("accent", 0.1), scale=float(rng.uniform(0.2, 0.5))),
        "ceiling": pal.add("paint", "plain", _lin(_hsv2rgb(rng.uniform(0, 1), rng.uniform(0, 0.05),
                                                          rng.uniform(0.85, 0.97)))),
        "skirting": pal.add("paint", "plain", _lin(_hsv2rgb(0.1, rng.uniform(0, 0.1), rng.uniform(0.3, 0.95)))),
    }
    floor_kind = rng.choice(["planks", "tiles", "marble", "speckle", "planks"])
    if floor_kind == "planks":
        fc = pal.colour("wood", 0.03)
        mats["floor"] = pal.add("wood", "planks", fc, np.clip(fc * 0.6, 0, 1), scale=float(rng.uniform(0.1, 0.22)))
    elif floor_kind == "tiles":
        mats["floor"] = pal.add("ceramic", "tiles", pal.colour("neutral"), _lin([0.5, 0.5, 0.48]),
                                scale=float(rng.uniform(0.25, 0.6)))
    elif floor_kind == "marble":
        mats["floor"] = pal.add("stone", "marble", _lin(_hsv2rgb(rng.uniform(0, 1), 0.05, rng.uniform(0.7, 0.95))),
                                pal.colour("neutral"), scale=float(rng.uniform(0.1, 0.3)))
    else:  # terrazzo
        mats["floor"] = pal.add("stone", "speckle", pal.colour("neutral"), pal.colour("accent"),
                                pal.colour("accent"), scale=float(rng.uniform(0.1, 0.25)))
    room = _Room(pieces, [], ceil, mats, int(rng.integers(4)) if rng.random() < 0.4 else None)
    # Door and window recesses on walls of the floor plan.
    kinds = ["door"] * int(rng.random() < 0.8) + ["window"] * int(rng.integers(0, 3))
    for kind in kinds:
        for _ in range(30):
            side = int(rng.integers(4))   # 0: x=lo, 1: x=hi, 2: y=lo, 3: y=hi (of a random piece)
            plo, phi = pieces[int(rng.integers(len(pieces)))]
            axis = 0 if side < 2 else 1
            other = 1 - axis
            wall = plo[axis] if side % 2 == 0 else phi[axis]
            out = -1.0 if side % 2 == 0 else 1.0
            width = rng.uniform(0.8, 1.0) if kind == "door" else rng.uniform(0.7, 1.8)
            lo_a = plo[other] + 0.3 + width / 2
            a = rng.uniform(lo_a, max(lo_a + 0.01, phi[other] - 0.3 - width / 2))
            depth = rng.uniform(0.12, 0.2) if kind == "door" else rng.uniform(0.15, 0.3)
            if kind == "door":
                z0, z1 = 0.0, rng.uniform(2.0, 2.1)
            else:
                z0 = rng.uniform(0.75, 1.0)
                z1 = z0 + rng.uniform(0.9, 1.3)
            # the wall must be real along the whole opening (room inside, solid outside)
            ts = np.linspace(a - width / 2 - 0.1, a + width / 2 + 0.1, 9)
            inx = np.full(9, wall - out * 0.05)
            outx = np.full(9, wall + out * 0.05)
            pin = (inx, ts) if axis == 0 else (ts, inx)
            pout = (outx, ts) if axis == 0 else (ts, outx)
            if np.any(room.plan_sdf(*pin) <= 0) or np.any(room.plan_sdf(*pout) > -0.02):
                continue
            pts = np.stack(np.broadcast_arrays(*pin, np.full(9, 0.0)), 1)
            if np.min(room.ceiling(pts[:, 0], pts[:, 1])) < z1 + 0.15:
                continue
            if any(abs(((r.lo + r.hi) / 2)[other] - a) < (width + (r.hi - r.lo)[other]) / 2 + 0.3
                   and r.axis == axis and abs(r.back - (wall + out * depth)) < 0.5 for r in room.recesses):
                continue
            lo3, hi3 = np.zeros(3), np.zeros(3)
            lo3[other], hi3[other] = a - width / 2, a + width / 2
            lo3[axis], hi3[axis] = sorted([wall - out * 0.1, wall + out * depth])
            lo3[2], hi3[2] = z0, z1
            if kind == "door":
                dm = pal.wood() if rng.random() < 0.6 else pal.add("paint", "plain", pal.colour("neutral"))
            else:
                sky_top = _lin(_hsv2rgb(rng.uniform(0.55, 0.62), rng.uniform(0.2, 0.5), 1.0))
                dm = pal.add("sky", "sky", sky_top, _lin([0.95, 0.93, 0.88]), _lin([0.9, 0.9, 0.9]),
                             scale=float(rng.uniform(0.3, 0.6)), emit=float(rng.uniform(1.5, 3.0)))
            room.recesses.append(_Recess(lo3, hi3, axis, wall + out * depth, kind, dm))
            break
    info = {"room_shape": shape, "ceiling": ceiling, "room_extent": [float(x) for x in (hi - lo)[:2]],
            "ceiling_height_range": [float(min(room.ceiling(x, y) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]))),
                                     float(max(room.ceiling(x, y) for x in (lo[0], hi[0]) for y in (lo[1], hi[1])))],
            "recesses": [r.kind for r in room.recesses]}
    return room, info


def _build_scene(seed: int) -> _Scene:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1D3, 1]))
    pal = _Palette(rng)
    room, info = _make_room(rng, pal)
    lay = _Layout(room)
    for r in room.recesses:  # keep doorways clear
        if r.kind == "door":
            c = (r.lo + r.hi) / 2
            lay.taken |= (np.abs(lay.X - c[0]) < (r.hi[0] - r.lo[0]) / 2 + 0.9 * (r.axis == 0) + 0.1) & \
                         (np.abs(lay.Y - c[1]) < (r.hi[1] - r.lo[1]) / 2 + 0.9 * (r.axis == 1) + 0.1)
    objects: List[_Object] = []
    lights: List[_Light] = []

    def add(built, x, y, yaw, z=0.0, blocks=True, occupy=True, margin=0.05):
        label, P, kind = built[:3]
        extra = built[3] if len(built) > 3 else {}
        obj = _Object(label, P.prims, np.array([x, y, z]), yaw, kind, blocks)
        obj.tex_offset = rng.uniform(-50, 50, 3)
        objects.append(obj)
        if occupy:
            lay.occupy(x, y, yaw, obj.lo, obj.hi, margin)
        if "light" in extra:
            lights.append(_Light(obj.origin + obj.R @ extra["light"], 0.8 + 0.4 * extra["light_col"] /
                                 max(extra["light_col"].max(), 1e-3), 0.1))
        return obj, extra

    def place_wall(built, tries=40, clearance=0.1):
        label, P, kind = built[:3]
        tmp = _Object(label, P.prims, np.zeros(3), 0.0, kind)
        for _ in range(tries):
            pt = lay.random_free_point(rng, 0.2)
            if pt is None:
                return None
            k = int(rng.integers(4))
            u = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]][k], float)
            dist = lay.wall_along(pt[0], pt[1], u)
            yaw = math.atan2(u[1], u[0]) - math.pi / 2
            back = tmp.hi[1]
            x, y = pt[0] + u[0] * (dist - back - 0.02), pt[1] + u[1] * (dist - back - 0.02)
            if lay.fits(x, y, yaw, tmp.lo, tmp.hi, clearance):
                return add(built, x, y, yaw)
        return None

    def place_free(built, tries=40, near=None, spread=1.0, clearance=0.15, facing=None):
        label, P, kind = built[:3]
        tmp = _Object(label, P.prims, np.zeros(3), 0.0, kind)
        for _ in range(tries):
            if near is None:
                pt = lay.random_free_point(rng, 0.5)
                if pt is None:
                    return None
            else:
                pt = (near[0] + rng.normal(0, spread), near[1] + rng.normal(0, spread))
            yaw = rng.uniform(0, 2 * math.pi)
            if facing is not None:
                yaw = math.atan2(facing[1] - pt[1], facing[0] - pt[0]) + math.pi / 2 + rng.normal(0, 0.15)
            if lay.fits(pt[0], pt[1], yaw, tmp.lo, tmp.hi, clearance):
                return add(built, pt[0], pt[1], yaw)
        return None

    def chairs_around(table_obj, n):
        rad = max(table_obj.hi[0] - table_obj.lo[0], table_obj.hi[1] - table_obj.lo[1]) / 2
        phase = rng.uniform(0, 2 * math.pi)
        style_seed = int(rng.integers(1 << 30))
        # chairs tuck under the table edge: the table's own footprint does not block them
        own = lay._rect(table_obj.origin[0], table_obj.origin[1], table_obj.yaw, table_obj.lo, table_obj.hi, 0.06)
        for k in range(n):
            a = phase + 2 * math.pi * k / n + rng.normal(0, 0.1)
            built = _chair(np.random.default_rng(style_seed), pal)
            tmp = _Object(CHAIR, built[1].prims, np.zeros(3), 0.0, built[2])
            r = rad + 0.1 + tmp.hi[1] * 0.4 if built[2] != "chair_tub" else rad + 0.45
            u = np.array([math.cos(a), math.sin(a)])
            x, y = table_obj.origin[:2] + u * r
            yaw = math.atan2(u[1], u[0]) - math.pi / 2 + rng.normal(0, 0.1)
            if lay.fits(x, y, yaw, tmp.lo, tmp.hi, 0.02, ignore=own):
                add(built, x, y, yaw, margin=0.02)

    def on_top(support: _Object, built):
        top = support.hi[2] - 0.01
        label, P, kind = built[:3]
        tmp = _Object(label, P.prims, np.zeros(3), 0.0, kind)
        # sit on the support's highest surface near its centre
        q = np.array([[rng.uniform(-0.3, 0.3) * (support.hi[0] - support.lo[0]) / 2,
                       rng.uniform(-0.3, 0.3) * (support.hi[1] - support.lo[1]) / 2, top + 0.5]])
        for _ in range(60):
            q[0, 2] -= 0.01
            if support.sdf(q)[0] < 0.005:
                break
        if max(tmp.hi[0] - tmp.lo[0], tmp.hi[1] - tmp.lo[1]) > 0.8 * min(support.hi[0] - support.lo[0],
                                                                        support.hi[1] - support.lo[1]):
            return None
        p = support.origin + support.R @ q[0]
        return add(built, p[0], p[1], rng.uniform(0, 2 * math.pi), z=p[2], blocks=False, occupy=False)

    rtype = str(rng.choice(["living", "bedroom", "dining", "study", "studio"]))
    tables: List[_Object] = []
    if rtype in ("living", "studio"):
        sofa = place_wall(_sofa(rng, pal))
        if sofa is not None:
            s = sofa[0]
            fwd = s.R @ np.array([0.0, -1.0, 0.0])
            front = s.origin + fwd * (-s.lo[1] + rng.uniform(0.7, 1.0))
            if rng.random() < 0.7:
                add(_rug(rng, pal, rng.uniform(0.8, 1.3)), front[0], front[1], s.yaw, blocks=False, occupy=False)
            t = place_free(_table(rng, pal, "coffee"), near=front[:2], spread=0.1, clearance=0.05)
            if t is not None:
                tables.append(t[0])
                for _ in range(int(rng.integers(1, 3))):
                    place_free(_chair(rng, pal), near=t[0].origin[:2], spread=1.2, facing=t[0].origin[:2])
        if rng.random() < 0.6:
            place_free(_table(rng, pal, "side"), clearance=0.1)
    if rtype in ("bedroom", "studio"):
        bed = place_wall(_bed(rng, pal))
        if bed is not None:
            b = bed[0]
            for sx in (-1, 1):
                if rng.random() < 0.75:
                    ns = _cabinet(rng, pal, night=True)
                    tmp = _Object(OTHER, ns[1].prims, np.zeros(3), 0.0, "n")
                    loc = b.origin + b.R @ np.array([sx * (b.hi[0] + tmp.hi[0] + 0.05), b.hi[1] - tmp.hi[1] - 0.02, 0])
                    if lay.fits(loc[0], loc[1], b.yaw, tmp.lo, tmp.hi, 0.02):
                        n_obj, _ = add(ns, loc[0], loc[1], b.yaw)
                        if rng.random() < 0.6:
                            on_top(n_obj, _lamp(rng, pal, floor=False))
            if rng.random() < 0.5:
                add(_rug(rng, pal, rng.uniform(0.7, 1.1)), *(b.origin + b.R @ np.array([0, b.lo[1] - 0.3, 0]))[:2],
                    b.yaw, blocks=False, occupy=False)
        place_wall(_cabinet(rng, pal))
        if rng.random() < 0.6:
            place_free(_chair(rng, pal))
    if rtype in ("dining", "studio") or (rtype == "living" and rng.random() < 0.4):
        pt = lay.random_free_point(rng, 1.2) or lay.random_free_point(rng, 0.6)
        if pt is not None:
            t = None
            for clearance in (0.7, 0.45, 0.25):
                t = place_free(_table(rng, pal, "dining"), near=pt, spread=0.4, tries=15, clearance=clearance)
                if t is not None:
                    break
            if t is not None:
                tables.append(t[0])
                if rng.random() < 0.5:
                    add(_rug(rng, pal, rng.uniform(1.2, 1.6)), *t[0].origin[:2], t[0].yaw, blocks=False,
                        occupy=False)
                chairs_around(t[0], int(rng.integers(2, 6)))
                if rng.random() < 0.6:
                    c = t[0].origin[:2]
                    drop = rng.uniform(0.6, 1.0)
                    add(_pendant(rng, pal, drop), c[0], c[1], 0.0, z=float(room.ceiling(c[0], c[1])),
                        blocks=False, occupy=False)
        place_wall(_cabinet(rng, pal))
    if rtype == "study":
        d = place_wall(_desk(rng, pal))
        if d is not None:
            dd = d[0]
            loc = dd.origin + dd.R @ np.array([0.0, dd.lo[1] - 0.15, 0])
            built = _chair(rng, pal)
            tmp = _Object(CHAIR, built[1].prims, np.zeros(3), 0.0, built[2])
            if lay.fits(loc[0], loc[1], dd.yaw + math.pi, tmp.lo, tmp.hi, 0.0):
                add(built, loc[0], loc[1], dd.yaw + math.pi + rng.normal(0, 0.3))
            tables.append(dd)
        if rng.random() < 0.6:
            place_wall(_sofa(rng, pal))
        else:
            place_free(_chair(rng, pal))
        place_free(_table(rng, pal, "side"))
    # every room gets at least two pieces of named furniture
    for _ in range(6):
        if sum(o.label in FURNITURE for o in objects) >= 2:
            break
        if rng.random() < 0.5:
            place_free(_chair(rng, pal), clearance=0.1)
        else:
            t = place_free(_table(rng, pal, str(rng.choice(["side", "coffee", "dining"]))), clearance=0.1)
            if t is not None:
                tables.append(t[0])
    # clutter
    for _ in range(int(rng.integers(1, 4))):
        place_wall(_shelf(rng, pal) if rng.random() < 0.6 else _cabinet(rng, pal), tries=15)
    for _ in range(int(rng.integers(1, 3))):
        place_wall(_plant(rng, pal), tries=10, clearance=0.05)
    if rng.random() < 0.6:
        place_wall(_lamp(rng, pal), tries=10, clearance=0.05)
    for t in tables:
        if rng.random() < 0.6:
            on_top(t, _tabletop_item(rng, pal))
    if rng.random() < 0.7:
        place_free(_chair(rng, pal), tries=15)
    # wall art
    for _ in range(int(rng.integers(0, 4))):
        built = _wall_art(rng, pal)
        for _ in range(10):
            pt = lay.random_free_point(rng, 0.3) or (1.0, 1.0)
            k = int(rng.integers(4))
            u = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]][k], float)
            dist = lay.wall_along(pt[0], pt[1], u)
            wx, wy = pt[0] + u[0] * dist, pt[1] + u[1] * dist
            z = rng.uniform(1.2, 1.7)
            side = np.array([-u[1], u[0]])
            probe = np.array([[wx + u[0] * 0.05 + side[0] * s, wy + u[1] * 0.05 + side[1] * s, z + dz]
                              for s in (-0.55, 0.55) for dz in (-0.5, 0.5)])
            front = probe - np.r_[u, 0] * 0.1
            if np.all(room.sdf(probe) < -0.02) and np.all(room.sdf(front) > 0.02):
                add(built, wx, wy, math.atan2(u[1], u[0]) - math.pi / 2, z=z, blocks=False, occupy=False)
                break
    # lights: ceiling fixtures (+ lamps and pendants added above)
    lo, hi = room.extent()
    for _ in range(max(1, int(rng.integers(1, 3)) - max(0, len(lights) - 1))):
        for _ in range(20):
            x, y = rng.uniform(lo[0] + 0.6, hi[0] - 0.6), rng.uniform(lo[1] + 0.6, hi[1] - 0.6)
            if room.plan_sdf(np.array(x), np.array(y)) > 0.6:
                add(_ceiling_light(rng, pal), x, y, 0.0, z=float(room.ceiling(x, y)) - 0.02, blocks=False,
                    occupy=False)
                break
    lights = lights[:3]
    for li in lights:
        li.col = li.col * rng.uniform(2.5, 5.0)
    for r in room.recesses:  # daylight entering through windows
        if r.kind == "window" and len(lights) < 4:
            c = (r.lo + r.hi) / 2
            n = np.zeros(3)
            n[r.axis] = -1.0 if r.back > c[r.axis] else 1.0
            p = c.copy()
            p[r.axis] = r.back
            lights.append(_Light(p + n * 0.6, _lin([0.85, 0.92, 1.0]) * rng.uniform(2.0, 4.0), 0.3))
    sky = _lin(_hsv2rgb(rng.uniform(0.55, 0.65), rng.uniform(0.05, 0.25), 1.0))
    ground = _lin(_hsv2rgb(rng.uniform(0.05, 0.12), rng.uniform(0.1, 0.35), 0.8))
    scene = _Scene(room, objects, pal.mats, lights, sky, ground, float(rng.uniform(0.08, 0.22)),
                   float(rng.uniform(0, 2 * math.pi)), np.r_[rng.uniform(-4, 4, 2), 0.0], {})
    info.update({"room_type": rtype, "num_objects": len(objects), "num_lights": len(lights),
                 "object_kinds": sorted({o.kind for o in objects})})
    scene.info = info
    return scene


# ----------------------------------------------------------------------------------------------
# Sphere tracing
# ----------------------------------------------------------------------------------------------

def _slab(o, d, lo, hi):
    inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
    ta, tb = (lo - o) * inv, (hi - o) * inv
    tmin, tmax = np.minimum(ta, tb), np.maximum(ta, tb)
    t0 = np.maximum(np.maximum(tmin[..., 0], tmin[..., 1]), tmin[..., 2])
    t1 = np.minimum(np.minimum(tmax[..., 0], tmax[..., 1]), tmax[..., 2])
    return t0, t1


def _march(sdf, o, d, t, tend, max_steps=80):
    """Sphere-trace rays o + t d (t from ``t`` to ``tend``); returns hit t (inf = miss)."""
    n = len(t)
    t = t.copy()
    out = np.full(n, np.inf)
    idx = np.arange(n)
    h = np.zeros(0)
    for _ in range(max_steps):
        tt = t[idx]
        h = sdf(o[idx] + d[idx] * tt[:, None])
        eps = 1e-4 + 3e-4 * tt
        hit = h < eps
        if hit.any():
            out[idx[hit]] = tt[hit] + h[hit]
        tt = tt + h
        t[idx] = tt
        keep = ~hit & (tt < tend[idx])
        idx, h = idx[keep], h[keep]
        if idx.size == 0:
            break
    if idx.size:  # out of steps: accept rays that crawl along a surface
        close = h < 0.01
        out[idx[close]] = t[idx[close]]
    return out


def _trace(scene: _Scene, o: np.ndarray, d: np.ndarray):
    """Closest hits of rays (room frame).  Returns (t, object index (-1 = room))."""
    n = len(d)
    o = np.broadcast_to(o, d.shape)
    t_best = _march(scene.room.sdf, o, d, np.zeros(n), np.full(n, np.inf), max_steps=200)
    miss = ~np.isfinite(t_best)
    if miss.any():  # should not happen in a closed room; keep the pixel valid anyway
        t_best[miss] = 1.0
    which = np.full(n, -1)
    centre = o.mean(0)
    order = np.argsort([np.linalg.norm((ob.lo + ob.hi) / 2 + ob.origin - centre) for ob in scene.objects])
    for j in order:
        ob = scene.objects[j]
        ol, dl = (o - ob.origin) @ ob.R, d @ ob.R
        t0, t1 = _slab(ol, dl, ob.lo, ob.hi)
        t0 = np.maximum(t0, 0.0)
        sel = np.flatnonzero((t1 > t0) & (t0 < t_best))
        if sel.size == 0:
            continue
        th = _march(ob.sdf, ol[sel], dl[sel], t0[sel], np.minimum(t1[sel], t_best[sel]), max_steps=64)
        better = th < t_best[sel]
        t_best[sel[better]] = th[better]
        which[sel[better]] = j
    return t_best, which


def _scene_sdf(scene: _Scene, p: np.ndarray) -> np.ndarray:
    d = scene.room.sdf(p)
    for ob in scene.objects:
        q = ob.local(p)
        sel = np.flatnonzero(ob.box_distance(q) < d)
        if sel.size:
            d[sel] = np.minimum(d[sel], ob.sdf(q[sel]))
    return d


def _soft_shadow(scene: _Scene, p: np.ndarray, light: _Light) -> np.ndarray:
    """Visibility in [0, 1] of ``light`` from points ``p`` (SDF penumbra, hard room occlusion)."""
    v = light.pos - p
    dist = np.linalg.norm(v, axis=1)
    d = v / dist[:, None]
    res = np.ones(len(p))
    for f in np.linspace(0.08, 0.92, 7):  # the room shell (L-shaped rooms, recesses) blocks light hard
        res[scene.room.sdf(p + v * f) < -0.01] = 0.0
    k = max(4.0, 0.6 / light.radius * 4)
    margin = 0.15
    for ob in scene.objects:
        ol, dl = ob.local(p), d @ ob.R
        t0, t1 = _slab(ol, dl, ob.lo - margin, ob.hi + margin)
        t0 = np.maximum(t0, 0.02)
        t1 = np.minimum(t1, dist - 0.05)
        idx = np.flatnonzero((t1 > t0) & (res > 0.01))
        t = t0[idx]
        for _ in range(24):
            if idx.size == 0:
                break
            h = ob.sdf(ol[idx] + dl[idx] * t[:, None])
            res[idx] = np.minimum(res[idx], np.clip(k * h / t, 0, 1))
            t = t + np.clip(h, 0.015, 0.25)
            keep = (t < t1[idx]) & (res[idx] > 0.01)
            idx, t = idx[keep], t[keep]
    return res * res * (3 - 2 * res)


def _ambient_occlusion(scene: _Scene, p: np.ndarray, n: np.ndarray) -> np.ndarray:
    occ = np.zeros(len(p))
    w = 1.0
    for h in (0.03, 0.08, 0.16, 0.3):
        occ += w * np.maximum(h - _scene_sdf(scene, p + n * h), 0.0) / h
        w *= 0.6
    return np.clip(1.0 - 0.45 * occ, 0.15, 1.0)


_TETRA = np.array([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], float)


def _gradient(sdf, q, e=5e-4):
    g = np.zeros_like(q)
    for k in _TETRA:
        g += k * sdf(q + k * e)[:, None]
    return _norm(g)


@dataclass
class _Render:
    t: np.ndarray
    which: np.ndarray
    labels: np.ndarray
    rgb: Optional[np.ndarray] = None  # linear radiance (H*W, 3)


def _camera_rays(K, c2w_room, h, w):
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    pix = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], 1)
    dc = pix @ np.linalg.inv(K).T
    zscale = 1.0 / np.linalg.norm(dc, axis=1)  # z-depth = t * zscale (dc has z = 1)
    d = _norm(dc @ c2w_room[:3, :3].T)
    return c2w_room[:3, 3], d, zscale


def _room_label(room: _Room, p, n):
    lab = np.full(len(p), WALL, np.uint8)
    lab[(n[:, 2] > 0.6) & (p[:, 2] < 0.02)] = FLOOR
    ceil = room.ceiling(p[:, 0], p[:, 1])
    lab[(n[:, 2] < -0.5) & (p[:, 2] > ceil - 0.03)] = CEILING
    return lab


def _render(scene: _Scene, K, c2w_room, hw, shade: bool = True) -> _Render:
    h, w = hw
    o, d, zscale = _camera_rays(K, c2w_room, h, w)
    t, which = _trace(scene, o, d)
    p = o + d * t[:, None]
    labels = np.zeros(len(t), np.uint8)
    normal = np.zeros_like(p)
    on_room = which < 0
    room = scene.room
    if on_room.any():
        normal[on_room] = _gradient(room.sdf, p[on_room])  # grows into free space = surface normal
        labels[on_room] = _room_label(room, p[on_room], normal[on_room])
    for j in np.unique(which[which >= 0]):
        ob = scene.objects[j]
        sel = np.flatnonzero(which == j)
        labels[sel] = ob.label
        normal[sel] = _gradient(ob.sdf, ob.local(p[sel])) @ ob.R.T
    out = _Render(t * zscale, which, labels)
    if not shade:
        return out
    # face normals towards the camera (thin shells, numerical noise)
    back = (normal * d).sum(1) > 0
    normal[back] = -normal[back]
    albedo = np.zeros_like(p)
    emit = np.zeros_like(p)
    spec = np.zeros(len(p))
    shin = np.ones(len(p))
    metal = np.zeros(len(p), bool)
    # material of every pixel
    mat_id = np.full(len(p), -1)
    tex = p.copy()
    tex_n = normal.copy()
    if on_room.any():
        idx = np.flatnonzero(on_room)
        pr, nr = p[idx], normal[idx]
        lab = labels[idx]
        mid = np.where(lab == FLOOR, room.mats["floor"], np.where(lab == CEILING, room.mats["ceiling"],
                                                                      room.mats["wall"]))
        wall = lab == WALL
        if room.accent_dir is not None:
            dirs = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], float)[room.accent_dir]
            acc = wall & (nr[:, 0] * dirs[0] + nr[:, 1] * dirs[1] > 0.9)
            mid = np.where(acc, room.mats["accent"], mid)
        mid = np.where(wall & (pr[:, 2] < 0.08) & (np.abs(nr[:, 2]) < 0.5), room.mats["skirting"], mid)
        for r in room.recesses:
            inside = np.all((pr > r.lo - 2e-3) & (pr < r.hi + 2e-3), 1)
            at_back = inside & (np.abs(pr[:, r.axis] - r.back) < 3e-3)
            mid = np.where(at_back, r.mat, mid)
            if r.kind == "door":  # door frame: the recess sides
                mid = np.where(inside & ~at_back & wall, room.mats["skirting"], mid)
        mat_id[idx] = mid
    for j in np.unique(which[which >= 0]):
        ob = scene.objects[j]
        sel = np.flatnonzero(which == j)
        q = ob.local(p[sel])
        mat_id[sel] = np.array([pr.mat for pr in ob.prims])[ob.prim_index(q)]
        tex[sel] = q + ob.tex_offset
        tex_n[sel] = normal[sel] @ ob.R
    for m in np.unique(mat_id):
        sel = np.flatnonzero(mat_id == m)
        mat = scene.mats[m]
        albedo[sel], emit[sel] = _albedo(mat, tex[sel], tex_n[sel])
        spec[sel], shin[sel], metal[sel] = mat.spec, mat.shin, mat.metal
    # lighting
    pn = p + normal * 2e-3
    ao = _ambient_occlusion(scene, pn, normal)
    hemi = 0.5 + 0.5 * normal[:, 2]
    amb = scene.ambient * ao[:, None] * (scene.sky[None] * hemi[:, None] + scene.ground[None] * (1 - hemi)[:, None])
    diffuse = np.zeros_like(p)
    specular = np.zeros_like(p)
    view = -d
    for li in scene.lights:
        v = li.pos - p
        dist2 = (v * v).sum(1)
        ldir = v / np.sqrt(dist2)[:, None]
        ndl = np.maximum((normal * ldir).sum(1), 0.0)
        lit = np.flatnonzero(ndl > 0)
        vis = np.zeros(len(p))
        if lit.size:
            vis[lit] = _soft_shadow(scene, pn[lit], li)
        e = (ndl * vis / (dist2 + li.radius ** 2))[:, None] * li.col[None]
        diffuse += e
        hv = _norm(ldir + view)
        sp = np.maximum((normal * hv).sum(1), 0.0) ** shin * spec * (shin + 8) / (8 * math.pi)
        specular += e * sp[:, None]
    metal_f = metal[:, None]
    spec_col = np.where(metal_f, albedo, 1.0)
    diff_w = np.where(metal_f, 0.35, 1.0)
    out.rgb = albedo * diff_w * (amb + diffuse) + specular * spec_col + emit
    return out


# ----------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------

def _look_at(pos, target, roll: float) -> np.ndarray:
    fwd = _norm(np.asarray(target, float) - pos)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right = right / max(np.linalg.norm(right), 1e-9)
    down = np.cross(fwd, right)
    c, s = math.cos(roll), math.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, down, fwd, pos
    return m


def _rot_angle(a: np.ndarray, b: np.ndarray) -> float:
    c = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2
    return math.degrees(math.acos(float(np.clip(c, -1, 1))))


def _free_position(scene: _Scene, pos: np.ndarray, clearance: float = 0.35, margin: float = 0.15) -> bool:
    if not 0.7 < pos[2] < scene.room.ceiling(pos[0], pos[1]) - 0.3:
        return False
    if _scene_sdf(scene, pos[None])[0] < clearance:
        return False
    for ob in scene.objects:  # never above furniture
        if ob.blocks_floor:
            q = ob.local(pos[None])[0]
            if np.all(q[:2] > ob.lo[:2] - margin) and np.all(q[:2] < ob.hi[:2] + margin):
                return False
    return True


def _overlap(d1, K, c1, c2, hw, d2=None) -> float:
    """Fraction of view-1 pixels that land inside view 2 (and, given view 2's depth ``d2``,
    are not hidden there: co-visible)."""
    h, w = hw
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    pix = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], 1)
    pts = (pix @ np.linalg.inv(K).T) * d1[:, None]
    world = pts @ c1[:3, :3].T + c1[:3, 3]
    w2c = np.linalg.inv(c2)
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    uv = (cam @ K.T)[:, :2] / np.maximum(z, 1e-6)[:, None]
    inside = (z > 0.05) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    if d2 is not None:
        k = np.flatnonzero(inside)
        seen = d2.reshape(h, w)[uv[k, 1].astype(int), uv[k, 0].astype(int)]
        inside[k] = np.abs(z[k] - seen) < 0.08 * seen
    return float(np.mean(inside))


def _cameras(scene: _Scene, rng, hw, num_targets: int):
    h, w = hw
    fov = float(rng.uniform(50, 80))
    f = (w / 2) / math.tan(math.radians(fov) / 2)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    # probe renders at a fixed resolution (16 px on the long side): poses do not depend on the image size
    ph, pw = max(4, round(16 * h / max(h, w))), max(4, round(16 * w / max(h, w)))
    Kp = K.copy()
    Kp[0] *= pw / w
    Kp[1] *= ph / h
    focus_objs = [o for o in scene.objects if o.label in FURNITURE] or scene.objects
    weights = np.array([{SOFA: 3.0, BED: 3.0, TABLE: 2.0, CHAIR: 2.0}.get(o.label, 1.0) for o in focus_objs])
    best, best_score = None, -np.inf
    for attempt in range(150):
        ob = focus_objs[int(rng.choice(len(focus_objs), p=weights / weights.sum()))]
        centre = ob.origin + ob.R @ ((ob.lo + ob.hi) / 2)
        focus = np.array([centre[0], centre[1], float(np.clip((ob.hi[2] - ob.lo[2]) * rng.uniform(0.3, 0.7),
                                                              0.2, 1.1))]) + np.r_[rng.normal(0, 0.15, 2), 0]
        strict = attempt < 80  # crowded rooms: later attempts may stand closer to things
        clear, margin = (0.35, 0.15) if strict else (0.22, 0.05)
        a, dist = rng.uniform(0, 2 * math.pi), rng.uniform(1.3, 3.5) if strict else rng.uniform(0.9, 3.0)
        pos1 = np.array([focus[0] + dist * math.cos(a), focus[1] + dist * math.sin(a), rng.uniform(0.8, 1.8)])
        if not _free_position(scene, pos1, clear, margin):
            continue
        roll1 = math.radians(rng.uniform(-4, 4))
        look1 = focus + rng.normal(0, 0.15, 3)
        c1 = _look_at(pos1, look1, roll1)
        ok2 = False
        for _ in range(8):
            base = rng.uniform(0.2, 1.0)
            gamma = rng.uniform(-0.6, 0.6)
            t_cam = np.array([math.cos(gamma) * (1 if rng.random() < 0.5 else -1), rng.uniform(-0.2, 0.2),
                              math.sin(gamma)])
            pos2 = pos1 + c1[:3, :3] @ (t_cam / np.linalg.norm(t_cam) * base)
            if not 0.8 <= pos2[2] <= 1.8 or not _free_position(scene, pos2, clear, margin):
                continue
            look2 = focus + rng.normal(0, 0.35, 3)
            roll2 = math.radians(rng.uniform(-4, 4))
            c2 = _look_at(pos2, look2, roll2)
            ang = _rot_angle(c1, c2)
            if 5.0 <= ang <= 30.0:
                ok2 = True
                break
        if not ok2:
            continue
        r1 = _render(scene, Kp, c1, (ph, pw), shade=False)
        r2 = _render(scene, Kp, c2, (ph, pw), shade=False)
        usable = True
        qs = []
        for r in (r1, r2):
            if np.median(r.t) < 1.0 or np.mean(r.t < 0.6) > 0.05:
                usable = False
            qs.append(float(np.mean(np.isin(r.labels, FURNITURE))))
        ov = _overlap(r1.t, Kp, c1, c2, (ph, pw), r2.t)
        good = usable and ov >= 0.6 and min(qs) >= 0.08
        score = (min(qs) + 0.3 * ov) if good else (-1.0 + 0.1 * min(qs) + 0.1 * ov - (not usable))
        if score > best_score:
            best_score = score
            best = (pos1, look1, roll1, pos2, look2, roll2, c1, c2, ov, base, ang)
        if good and min(qs) >= 0.15:
            break
    if best is None:  # fallback: middle of the floor plan, looking along the room
        lay = _Layout(scene.room)
        pt = lay.random_free_point(rng, 0.6) or (1.0, 1.0)
        pos1 = np.array([pt[0], pt[1], 1.5])
        look1 = np.array([pt[0] + 1.0, pt[1], 0.8])
        pos2 = pos1 + np.array([0.0, 0.3, 0.0])
        look2 = pos2 + _rz(math.radians(12)) @ (look1 - pos1)
        c1, c2 = _look_at(pos1, look1, 0.0), _look_at(pos2, look2, 0.0)
        best = (pos1, look1, 0.0, pos2, look2, 0.0, c1, c2, float("nan"), 0.3, _rot_angle(c1, c2))
    pos1, look1, roll1, pos2, look2, roll2, c1, c2, ov, base, ang = best
    poses = [c1, c2]
    for _ in range(num_targets):
        for k in range(10):
            s = rng.uniform(0.2, 0.8)
            pos = pos1 + s * (pos2 - pos1) + rng.normal(0, 0.05, 3)
            pos[2] = float(np.clip(pos[2], 0.8, 1.8))
            if k == 9 or _free_position(scene, pos, 0.2):
                break
        look = look1 + s * (look2 - look1) + rng.normal(0, 0.05, 3)
        poses.append(_look_at(pos, look, roll1 + s * (roll2 - roll1) + math.radians(rng.uniform(-2, 2))))
    info = {"fov_x_deg": fov, "context_baseline_m": float(np.linalg.norm(c2[:3, 3] - c1[:3, 3])),
            "context_rotation_deg": float(ang), "context_covisible_probe": float(ov)}
    return K, poses, info


# ----------------------------------------------------------------------------------------------
# Image formation and the public entry point
# ----------------------------------------------------------------------------------------------

def _tonemap(x: np.ndarray) -> np.ndarray:
    return np.clip((x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14), 0, 1)


def _scene_seed(seed: int, *tags) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x1D3, *tags]))


def generate_independent_sample(seed: int, size: SizeArg = 128, num_targets: int = 1) -> SceneSample:
    """One evaluation-only :class:`SceneSample` (2 context + ``num_targets`` target views),
    deterministic per ``seed``.  ``size``: int (square) or ``(height, width)``."""
    if num_targets < 0:
        raise ValueError(f"num_targets must be >= 0, got {num_targets}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    hw = _hw(size)
    scene = _build_scene(int(seed))
    rng = _scene_seed(seed, 2)
    K, poses_room, cam_info = _cameras(scene, rng, hw, num_targets)
    # room frame -> world: yaw about z and a horizontal shift
    T = np.eye(4)
    T[:3, :3] = _rz(scene.room_yaw)
    T[:3, 3] = scene.room_shift
    renders = [_render(scene, K, c, hw) for c in poses_room]
    lum = renders[0].rgb @ np.array([0.2126, 0.7152, 0.0722])
    key = rng.uniform(0.16, 0.26)
    exposure = key / max(float(np.median(lum)), 1e-4)
    wb = np.exp(rng.normal(0, 0.04, 3))
    views = []
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    rr = ((xx + 0.5 - w / 2) ** 2 + (yy + 0.5 - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    vignette = 1.0 - rng.uniform(0.1, 0.3) * rr
    read_sigma, shot = rng.uniform(0.003, 0.012), rng.uniform(0.005, 0.02)
    for i, (r, c) in enumerate(zip(renders, poses_room)):
        nrng = _scene_seed(seed, 3, i)
        lin = r.rgb.reshape(h, w, 3) * exposure * math.exp(nrng.normal(0, 0.06)) * wb * vignette[..., None]
        img = _tonemap(lin) ** (1 / 2.2)
        img = img + nrng.normal(0, 1, img.shape) * (read_sigma + shot * np.sqrt(img))
        image = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
        inst = np.where(r.which >= 0, r.which + 1, 0).reshape(h, w).astype(np.uint16)
        c2w = (T @ c).astype(np.float32)
        views.append(ViewSample(image=image, depth=r.t.reshape(h, w).astype(np.float32),
                                labels=r.labels.reshape(h, w), K=K.astype(np.float32), c2w=c2w, instance=inst))
    meta = {"source": "independent", "seed": int(seed), "evaluation_only": True, **scene.info, **cam_info,
            "room_yaw_deg": math.degrees(scene.room_yaw), "exposure": float(exposure)}
    return SceneSample(context=views[:2], target=views[2:], class_names=CLASS_NAMES, meta=meta)


__all__ = ["generate_independent_sample"]
