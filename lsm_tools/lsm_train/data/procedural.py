"""Procedural indoor scenes rendered by vectorised ray casting of boxes.

World frame: metres, **z up**, the room spans ``[0, W] x [0, D] x [0, H]`` (floor at z = 0).
Cameras: OpenCV axes (x right, y down, z forward), poses are camera-to-world 4x4; pixel (u, v)
has its centre at (u + 0.5, v + 0.5) and the principal point is the image centre (W/2, H/2).
Depth is the metric z-depth; every pixel hits a surface (the room is closed), so depth is
always valid (> 0).  Classes follow :data:`CLASS_NAMES` (official LSM order).

A room is a closed box (floor, ceiling, four walls) plus 3-10 pieces of furniture, each an
object frame (floor position + yaw) holding axis-aligned box parts.  Rendering tests every
pixel ray against the room and, per object, against the object's bounding box and then its
parts -- all vectorised over pixels; the only Python loops are over objects.  Surfaces carry
procedural textures (checker, stripes, wood planks, value noise) in object/world coordinates,
so texture sticks to the geometry; shading is ambient + point light + a directional light
(Lambertian) with cheap contact/corner darkening.

Public entry points: :func:`generate_room`, :func:`render_view`, :func:`generate_sample`,
:func:`generate_sequence`, :func:`intrinsics_from_fov`, :func:`look_pose`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .sample import CLASS_NAMES, SceneSample, ViewSample

WALL, FLOOR, CEILING, CHAIR, TABLE, SOFA, BED, OTHER = range(8)
SizeLike = Union[int, Tuple[int, int]]

# Pattern kinds of a surface material.
PLAIN, CHECKER, STRIPES, WOOD, NOISE = range(5)

# Room surface ids (the first six surfaces of every room).
_FLOOR_S, _CEIL_S, _WALL_X0, _WALL_X1, _WALL_Y0, _WALL_Y1 = range(6)


def parse_size(size: SizeLike) -> Tuple[int, int]:
    """``size`` is an int (square) or ``(height, width)``; returns ``(H, W)``."""
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or a (height, width) pair, got {size!r}") from None
    if h < 2 or w < 2:
        raise ValueError(f"image size must be at least 2x2, got (H={h}, W={w})")
    return h, w


# ----------------------------------------------------------------------------- materials
@dataclass
class _Materials:
    """Per-surface appearance table (one row per surface id)."""

    color1: List[np.ndarray] = field(default_factory=list)
    color2: List[np.ndarray] = field(default_factory=list)
    pattern: List[int] = field(default_factory=list)
    scale: List[float] = field(default_factory=list)
    swap: List[bool] = field(default_factory=list)
    label: List[int] = field(default_factory=list)
    instance: List[int] = field(default_factory=list)

    def add(self, c1, c2, pattern, scale, swap, label, instance) -> int:
        self.color1.append(np.asarray(c1, np.float32))
        self.color2.append(np.asarray(c2, np.float32))
        self.pattern.append(int(pattern))
        self.scale.append(float(scale))
        self.swap.append(bool(swap))
        self.label.append(int(label))
        self.instance.append(int(instance))
        return len(self.pattern) - 1

    def arrays(self):
        return (np.stack(self.color1), np.stack(self.color2), np.array(self.pattern, np.int64),
                np.array(self.scale, np.float32), np.array(self.swap, bool),
                np.array(self.label, np.uint8), np.array(self.instance, np.uint16))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


def _wood(rng) -> np.ndarray:
    return _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.8))


def _fabric(rng) -> np.ndarray:
    return _hsv(rng.uniform(0, 1), rng.uniform(0.15, 0.75), rng.uniform(0.3, 0.9))


def _second(rng, c: np.ndarray, contrast: Tuple[float, float] = (0.5, 0.8)) -> np.ndarray:
    return np.clip(c * rng.uniform(*contrast) + rng.uniform(-0.05, 0.05, 3), 0, 1).astype(np.float32)


def _random_material(rng, kind: str):
    """(color1, color2, pattern, scale, swap) for a surface kind."""
    swap = bool(rng.random() < 0.5)
    if kind == "wood":
        c = _wood(rng)
        return c, _second(rng, c, (0.6, 0.85)), WOOD, rng.uniform(0.08, 0.2), swap
    if kind == "fabric":
        c = _fabric(rng)
        pat = rng.choice([PLAIN, NOISE, STRIPES, CHECKER], p=[0.3, 0.35, 0.2, 0.15])
        return c, _second(rng, c), pat, rng.uniform(0.04, 0.15), swap
    if kind == "metal":
        g = rng.uniform(0.15, 0.6)
        c = np.array([g, g, g * rng.uniform(0.95, 1.1)], np.float32)
        return c, _second(rng, c, (0.8, 0.95)), NOISE, rng.uniform(0.05, 0.2), swap
    if kind == "paint":
        c = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.5), rng.uniform(0.5, 0.95))
        pat = rng.choice([PLAIN, NOISE, STRIPES], p=[0.3, 0.45, 0.25])
        return c, _second(rng, c, (0.75, 0.92)), pat, rng.uniform(0.1, 0.4), swap
    raise ValueError(kind)


# ----------------------------------------------------------------------------- objects
@dataclass
class RoomObject:
    """One piece of furniture: parts are axis-aligned boxes in the object frame.

    Object frame: origin on the floor at the footprint centre, x = width, y = depth with the
    object's *front* towards +y, z up.  ``world = Rz(yaw) @ local + origin``.
    """

    label: int
    origin: np.ndarray  # (3,) world position of the object frame origin (z = 0)
    yaw: float
    part_lo: np.ndarray  # (P, 3) local box minima
    part_hi: np.ndarray  # (P, 3) local box maxima
    part_surface: np.ndarray  # (P,) surface (material) ids
    instance: int = 0

    def __post_init__(self) -> None:
        self.lo = self.part_lo.min(0)  # (3,) local bounding box
        self.hi = self.part_hi.max(0)

    @property
    def height(self) -> float:
        return float(self.hi[2])

    def footprint_corners(self) -> np.ndarray:
        """(4, 2) world xy corners of the local bounding-box footprint."""
        lo, hi = self.lo, self.hi
        local = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return local @ np.array([[c, s], [-s, c]]) + self.origin[:2]

    def footprint_aabb(self) -> np.ndarray:
        """(4,) world xy axis-aligned bounds ``(xmin, ymin, xmax, ymax)`` of the footprint."""
        c = self.footprint_corners()
        return np.concatenate([c.min(0), c.max(0)])


@dataclass
class ProceduralRoom:
    """A closed room plus furniture and lights (world frame: z up, metres)."""

    size: np.ndarray  # (3,) W, D, H
    objects: List[RoomObject]
    materials: _Materials
    light_pos: np.ndarray  # (3,)
    light_color: np.ndarray  # (3,)
    sun_dir: np.ndarray  # (3,) unit direction the directional light travels
    ambient: float
    seed: int = 0
    _tables: Optional[tuple] = None

    def tables(self):
        if self._tables is None:
            self._tables = self.materials.arrays()
        return self._tables


class _PartList:
    def __init__(self) -> None:
        self.lo: List[np.ndarray] = []
        self.hi: List[np.ndarray] = []
        self.surf: List[int] = []

    def box(self, center, half, surf: int) -> None:
        c, h = np.asarray(center, np.float64), np.abs(np.asarray(half, np.float64))
        self.lo.append(c - h)
        self.hi.append(c + h)
        self.surf.append(surf)


def _chair(rng, mats: _Materials, inst: int) -> _PartList:
    w, d = rng.uniform(0.4, 0.52), rng.uniform(0.4, 0.5)
    seat_h, seat_t, leg = rng.uniform(0.42, 0.48), rng.uniform(0.04, 0.07), rng.uniform(0.03, 0.045)
    back_h, back_t = rng.uniform(0.35, 0.5), rng.uniform(0.03, 0.06)
    seat = mats.add(*_random_material(rng, "wood" if rng.random() < 0.5 else "fabric"), CHAIR, inst)
    legs = seat if rng.random() < 0.5 else mats.add(*_random_material(rng, "metal"), CHAIR, inst)
    p = _PartList()
    lh = (seat_h - seat_t) / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.box((sx * (w / 2 - leg / 2), sy * (d / 2 - leg / 2), lh), (leg / 2, leg / 2, lh), legs)
    p.box((0, 0, seat_h - seat_t / 2), (w / 2, d / 2, seat_t / 2), seat)
    p.box((0, -d / 2 + back_t / 2, seat_h + back_h / 2), (w / 2, back_t / 2, back_h / 2), seat)
    return p


def _table(rng, mats: _Materials, inst: int, coffee: bool = False) -> _PartList:
    if coffee:
        w, d, h = rng.uniform(0.7, 1.2), rng.uniform(0.45, 0.7), rng.uniform(0.38, 0.5)
    else:
        w, d, h = rng.uniform(0.8, 1.7), rng.uniform(0.6, 0.95), rng.uniform(0.7, 0.78)
    top_t, leg, inset = rng.uniform(0.03, 0.06), rng.uniform(0.04, 0.08), rng.uniform(0.02, 0.1)
    top = mats.add(*_random_material(rng, "wood" if rng.random() < 0.7 else "paint"), TABLE, inst)
    legs = top if rng.random() < 0.6 else mats.add(*_random_material(rng, "metal"), TABLE, inst)
    p = _PartList()
    lh = (h - top_t) / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.box((sx * (w / 2 - inset - leg / 2), sy * (d / 2 - inset - leg / 2), lh), (leg / 2, leg / 2, lh), legs)
    p.box((0, 0, h - top_t / 2), (w / 2, d / 2, top_t / 2), top)
    return p


def _bed(rng, mats: _Materials, inst: int) -> _PartList:
    w, length = rng.uniform(1.0, 1.9), rng.uniform(1.95, 2.15)
    frame_h, matt_t = rng.uniform(0.22, 0.35), rng.uniform(0.18, 0.26)
    head_h, head_t = rng.uniform(0.85, 1.2), rng.uniform(0.05, 0.1)
    frame = mats.add(*_random_material(rng, "wood"), BED, inst)
    sheet = mats.add(*_random_material(rng, "fabric"), BED, inst)
    pillow_c = _fabric(rng)
    pillow = mats.add(pillow_c, _second(rng, pillow_c), NOISE, 0.05, False, BED, inst)
    p = _PartList()
    p.box((0, 0, frame_h / 2), (w / 2, length / 2, frame_h / 2), frame)
    p.box((0, 0.02, frame_h + matt_t / 2), (w / 2 - 0.03, length / 2 - 0.04, matt_t / 2), sheet)
    p.box((0, -length / 2 - head_t / 2, head_h / 2), (w / 2 + 0.02, head_t / 2, head_h / 2), frame)
    n_pillows = 1 if w < 1.3 else 2
    pw = (w - 0.2) / n_pillows
    for k in range(n_pillows):
        x = -w / 2 + 0.1 + pw * (k + 0.5)
        p.box((x, -length / 2 + 0.28, frame_h + matt_t + 0.06), (pw / 2 - 0.04, 0.18, 0.06), pillow)
    return p


def _sofa(rng, mats: _Materials, inst: int) -> _PartList:
    w, d = rng.uniform(1.5, 2.3), rng.uniform(0.8, 0.95)
    seat_h, back_h, back_t = rng.uniform(0.4, 0.46), rng.uniform(0.75, 0.9), rng.uniform(0.15, 0.22)
    arm_w, arm_h, leg_h = rng.uniform(0.12, 0.2), rng.uniform(0.55, 0.65), rng.uniform(0.04, 0.1)
    body = mats.add(*_random_material(rng, "fabric"), SOFA, inst)
    cushion_c = _second(rng, mats.color1[body], (0.85, 1.15))
    cushion = mats.add(cushion_c, _second(rng, cushion_c), NOISE, 0.05, False, SOFA, inst)
    legs = mats.add(*_random_material(rng, "wood"), SOFA, inst)
    p = _PartList()
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.box((sx * (w / 2 - 0.06), sy * (d / 2 - 0.06), leg_h / 2), (0.025, 0.025, leg_h / 2), legs)
    base_top = seat_h - 0.1
    p.box((0, 0, (leg_h + base_top) / 2), (w / 2, d / 2, (base_top - leg_h) / 2), body)
    p.box((0, -d / 2 + back_t / 2, (leg_h + back_h) / 2), (w / 2, back_t / 2, (back_h - leg_h) / 2), body)
    for sx in (-1, 1):
        p.box((sx * (w / 2 - arm_w / 2), 0.0, (leg_h + arm_h) / 2), (arm_w / 2, d / 2, (arm_h - leg_h) / 2), body)
    inner = w - 2 * arm_w
    n_c = 2 if inner < 1.5 else 3
    cw = inner / n_c
    for k in range(n_c):
        x = -inner / 2 + cw * (k + 0.5)
        p.box((x, back_t / 2, (base_top + seat_h) / 2), (cw / 2 - 0.01, (d - back_t) / 2 - 0.01, (seat_h - base_top) / 2), cushion)
    return p


def _other(rng, mats: _Materials, inst: int, kind: str) -> _PartList:
    p = _PartList()
    if kind == "cabinet":
        w, d, h = rng.uniform(0.4, 1.2), rng.uniform(0.35, 0.6), rng.uniform(0.5, 2.0)
        body = mats.add(*_random_material(rng, "wood" if rng.random() < 0.5 else "paint"), OTHER, inst)
        door = mats.add(*_random_material(rng, "paint"), OTHER, inst) if rng.random() < 0.5 else body
        p.box((0, 0, h / 2), (w / 2, d / 2, h / 2), body)
        n_doors = 1 if w < 0.6 else 2
        dw = w / n_doors
        for k in range(n_doors):
            x = -w / 2 + dw * (k + 0.5)
            p.box((x, d / 2 + 0.01, h / 2), (dw / 2 - 0.015, 0.012, h / 2 - 0.03), door)
    elif kind == "shelf":
        w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.25, 0.4), rng.uniform(1.0, 2.0)
        t = rng.uniform(0.02, 0.035)
        board = mats.add(*_random_material(rng, "wood"), OTHER, inst)
        for sx in (-1, 1):
            p.box((sx * (w / 2 - t / 2), 0, h / 2), (t / 2, d / 2, h / 2), board)
        p.box((0, -d / 2 + t / 2, h / 2), (w / 2, t / 2, h / 2), board)
        n_shelves = int(rng.integers(3, 6))
        levels = np.linspace(t / 2, h - t / 2, n_shelves)
        for z in levels:
            p.box((0, 0, z), (w / 2 - t, d / 2, t / 2), board)
        book_mats = [mats.add(*_random_material(rng, "fabric"), OTHER, inst) for _ in range(3)]
        for z0, z1 in zip(levels[:-1], levels[1:]):
            x = -w / 2 + t + 0.02
            while x < w / 2 - t - 0.1 and rng.random() < 0.85:
                bw, bh = rng.uniform(0.03, 0.09), min(rng.uniform(0.15, 0.3), z1 - z0 - t - 0.02)
                bd = rng.uniform(0.6, 0.9) * d
                if bh > 0.05:
                    p.box((x + bw / 2, -d / 2 + t + bd / 2, z0 + t / 2 + bh / 2), (bw / 2, bd / 2, bh / 2),
                          book_mats[int(rng.integers(3))])
                x += bw + rng.uniform(0.0, 0.05)
    elif kind == "boxes":
        mat = mats.add(*_random_material(rng, "paint" if rng.random() < 0.5 else "wood"), OTHER, inst)
        z = 0.0
        size = rng.uniform(0.25, 0.5)
        for _ in range(int(rng.integers(1, 4))):
            s = size * rng.uniform(0.75, 1.0)
            p.box((rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), z + s / 2), (s / 2, s / 2 * rng.uniform(0.8, 1), s / 2), mat)
            z += s
            size = s
    elif kind == "lamp":
        metal = mats.add(*_random_material(rng, "metal"), OTHER, inst)
        sc = _hsv(rng.uniform(0.08, 0.15), rng.uniform(0.1, 0.4), rng.uniform(0.75, 0.95))
        shade = mats.add(sc, _second(rng, sc, (0.85, 0.95)), STRIPES, 0.03, True, OTHER, inst)
        h, r = rng.uniform(1.3, 1.7), rng.uniform(0.15, 0.22)
        p.box((0, 0, 0.015), (0.14, 0.14, 0.015), metal)
        p.box((0, 0, h / 2), (0.015, 0.015, h / 2), metal)
        p.box((0, 0, h + 0.12), (r, r, 0.15), shade)
    elif kind == "picture":  # thin frame hung on a wall; origin z is lifted by the caller
        w, h = rng.uniform(0.4, 1.1), rng.uniform(0.35, 0.8)
        frame = mats.add(*_random_material(rng, "wood"), OTHER, inst)
        c1, c2 = _fabric(rng), _fabric(rng)
        art = mats.add(c1, c2, rng.choice([CHECKER, STRIPES, NOISE]), rng.uniform(0.05, 0.2), bool(rng.random() < 0.5), OTHER, inst)
        p.box((0, 0, h / 2), (w / 2, 0.015, h / 2), frame)
        p.box((0, 0.012, h / 2), (w / 2 - 0.04, 0.01, h / 2 - 0.04), art)
    else:
        raise ValueError(kind)
    return p


def _make_object(label: int, parts: _PartList, origin, yaw: float, inst: int) -> RoomObject:
    lo, hi = np.stack(parts.lo), np.stack(parts.hi)
    # Recentre the footprint so that the local bounding box is centred on the origin in xy.
    shift = np.array([(lo[:, 0].min() + hi[:, 0].max()) / 2, (lo[:, 1].min() + hi[:, 1].max()) / 2, 0.0])
    lo, hi = lo - shift, hi - shift
    return RoomObject(label=label, origin=np.array([origin[0], origin[1], origin[2] if len(origin) > 2 else 0.0], np.float64),
                      yaw=float(yaw), part_lo=lo.astype(np.float32), part_hi=hi.astype(np.float32),
                      part_surface=np.array(parts.surf, np.int64), instance=inst)


def _fits(aabb: np.ndarray, placed: List[np.ndarray], room: np.ndarray, gap: float) -> bool:
    if aabb[0] < 0.02 or aabb[1] < 0.02 or aabb[2] > room[0] - 0.02 or aabb[3] > room[1] - 0.02:
        return False
    for b in placed:
        if aabb[0] < b[2] + gap and b[0] < aabb[2] + gap and aabb[1] < b[3] + gap and b[1] < aabb[3] + gap:
            return False
    return True


def _wall_pose(rng, room: np.ndarray, half_w: float, half_d: float, wall: int, yaw_noise: float = 0.0):
    """Origin (x, y) and yaw that put an object's back against ``wall`` (0: x=0, 1: x=W, 2: y=0, 3: y=D)."""
    W, D = room[0], room[1]
    gap = 0.02 + rng.uniform(0, 0.05)
    along = (D if wall < 2 else W)
    pos = rng.uniform(half_w + 0.05, max(half_w + 0.05, along - half_w - 0.05))
    if wall == 0:
        xy, face = (half_d + gap, pos), 0.0
    elif wall == 1:
        xy, face = (W - half_d - gap, pos), math.pi
    elif wall == 2:
        xy, face = (pos, half_d + gap), math.pi / 2
    else:
        xy, face = (pos, D - half_d - gap), -math.pi / 2
    return xy, face - math.pi / 2 + yaw_noise


def generate_room(seed: int) -> ProceduralRoom:
    """A random furnished room; deterministic for a given integer ``seed`` (>= 0)."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5C3E]))
    room = np.array([rng.uniform(3.0, 7.0), rng.uniform(3.0, 7.0), rng.uniform(2.4, 3.2)])
    mats = _Materials()
    floor_kind = rng.choice(["wood", "tile", "carpet"], p=[0.5, 0.3, 0.2])
    if floor_kind == "wood":
        mats.add(*_random_material(rng, "wood")[:2], WOOD, rng.uniform(0.12, 0.25), bool(rng.random() < 0.5), FLOOR, 0)
    elif floor_kind == "tile":
        c = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.45, 0.9))
        mats.add(c, _second(rng, c, (0.55, 0.8)), CHECKER, rng.uniform(0.3, 0.6), False, FLOOR, 0)
    else:
        c = _fabric(rng)
        mats.add(c, _second(rng, c, (0.7, 0.85)), NOISE, rng.uniform(0.03, 0.08), False, FLOOR, 0)
    cc = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.1), rng.uniform(0.8, 0.97))
    mats.add(cc, _second(rng, cc, (0.88, 0.95)), NOISE, 0.5, False, CEILING, 0)
    wall_mat = _random_material(rng, "paint")
    accent = int(rng.integers(0, 8))  # < 4: one accent wall
    for k in range(4):
        m = _random_material(rng, "paint") if k == accent else wall_mat
        mats.add(*m, WALL, 0)

    objects: List[RoomObject] = []
    placed: List[np.ndarray] = []
    n_target = int(rng.integers(3, 11))
    kinds: List[str] = []
    if rng.random() < 0.45:
        kinds.append("bed")
    if rng.random() < 0.5:
        kinds.append("sofa")
    n_tables = int(rng.integers(0, 3)) if "bed" not in kinds else int(rng.integers(0, 2))
    kinds += ["table"] * n_tables
    while len(kinds) < n_target:
        kinds.append(str(rng.choice(["cabinet", "shelf", "boxes", "lamp", "chair", "picture", "coffee_table"],
                                    p=[0.15, 0.12, 0.12, 0.08, 0.33, 0.08, 0.12])))
    kinds = kinds[:n_target]
    order = {"bed": 0, "sofa": 1, "cabinet": 2, "shelf": 2, "table": 3, "coffee_table": 4,
             "chair": 5, "lamp": 6, "boxes": 6, "picture": 7}
    kinds.sort(key=lambda k: order[k])
    label_of = {"bed": BED, "sofa": SOFA, "table": TABLE, "coffee_table": TABLE, "chair": CHAIR}
    tables: List[RoomObject] = []
    chair_slots: List[Tuple[np.ndarray, float]] = []
    inst = 0

    def try_place(kind: str, parts_fn, attempts: int = 25) -> Optional[RoomObject]:
        nonlocal inst
        inst_id = inst + 1
        n_mats = len(mats.pattern)
        parts = parts_fn(inst_id)
        lo, hi = np.stack(parts.lo).min(0), np.stack(parts.hi).max(0)
        hw, hd = (hi[0] - lo[0]) / 2, (hi[1] - lo[1]) / 2
        for _ in range(attempts):
            z0 = 0.0
            if kind == "picture":
                wall = int(rng.integers(4))
                xy, yaw = _wall_pose(rng, room, hw, 0.0, wall)
                z0 = rng.uniform(1.1, max(1.15, room[2] - (hi[2] - lo[2]) - 0.3))
            elif kind in ("bed", "sofa", "cabinet", "shelf") or (kind == "boxes" and rng.random() < 0.5):
                xy, yaw = _wall_pose(rng, room, hw, hd, int(rng.integers(4)))
            elif kind == "chair" and chair_slots:
                slot_xy, slot_yaw = chair_slots.pop(0)
                xy, yaw = slot_xy, slot_yaw
            else:
                xy = (rng.uniform(0.3, room[0] - 0.3), rng.uniform(0.3, room[1] - 0.3))
                if kind in ("table", "coffee_table"):
                    yaw = rng.integers(4) * math.pi / 2 + rng.uniform(-0.25, 0.25)
                else:
                    yaw = rng.uniform(0, 2 * math.pi)
            obj = _make_object(label_of.get(kind, OTHER), parts, (xy[0], xy[1], z0), yaw, inst_id)
            if kind == "picture":
                # Pictures only need to avoid tall furniture in front of them; keep them off the list.
                return obj
            aabb = obj.footprint_aabb()
            if _fits(aabb, placed, room, 0.05):
                placed.append(aabb)
                inst = inst_id
                return obj
        # Roll back the unused materials of this object.
        del mats.color1[n_mats:], mats.color2[n_mats:], mats.pattern[n_mats:], mats.scale[n_mats:]
        del mats.swap[n_mats:], mats.label[n_mats:], mats.instance[n_mats:]
        return None

    builders = {
        "bed": lambda i: _bed(rng, mats, i), "sofa": lambda i: _sofa(rng, mats, i),
        "table": lambda i: _table(rng, mats, i), "coffee_table": lambda i: _table(rng, mats, i, coffee=True),
        "chair": lambda i: _chair(rng, mats, i),
    }
    for kind in kinds:
        fn = builders.get(kind, lambda i, k=kind: _other(rng, mats, i, k))
        obj = try_place(kind, fn)
        if obj is None:
            continue
        if kind == "picture":
            inst = obj.instance
        objects.append(obj)
        if kind == "table":
            tables.append(obj)
            # Chair slots around the table: in front of each side, facing the table centre.
            tw, td = (obj.hi - obj.lo)[:2] / 2
            c = math.cos(obj.yaw)
            slots = []
            for side in range(4):
                ang = obj.yaw + side * math.pi / 2 - math.pi / 2  # outward normal of the side
                reach = (td if side % 2 == 0 else tw) + 0.12 + 0.25
                along = (tw if side % 2 == 0 else td)
                offs = [0.0] if along < 0.6 else [-along / 2, along / 2]
                for off in offs:
                    n = np.array([math.cos(ang), math.sin(ang)])
                    t = np.array([-n[1], n[0]])
                    pos = obj.origin[:2] + n * reach + t * off * rng.uniform(0.8, 1.0)
                    slots.append((pos, ang + math.pi - math.pi / 2 + rng.uniform(-0.3, 0.3)))
            rng.shuffle(slots)
            chair_slots.extend(slots)
    # Guarantee at least three objects: fill with small boxes/chairs that fit anywhere.
    tries = 0
    while len(objects) < 3 and tries < 20:
        tries += 1
        kind = "boxes" if tries % 2 else "chair"
        fn = builders.get(kind, lambda i, k=kind: _other(rng, mats, i, k))
        obj = try_place(kind, fn)
        if obj is not None:
            objects.append(obj)

    light_pos = np.array([rng.uniform(0.3, 0.7) * room[0], rng.uniform(0.3, 0.7) * room[1], room[2] - 0.3])
    warm = rng.uniform(0, 1)
    light_color = np.array([1.0, 0.95 - 0.08 * warm, 0.9 - 0.18 * warm], np.float32) * rng.uniform(0.9, 1.15)
    az, el = rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 0.9)
    sun_dir = -np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)])
    return ProceduralRoom(size=room, objects=objects, materials=mats, light_pos=light_pos,
                          light_color=light_color, sun_dir=sun_dir, ambient=float(rng.uniform(0.35, 0.5)),
                          seed=int(seed))


# ----------------------------------------------------------------------------- ray casting
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


# ----------------------------------------------------------------------------- shading
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
class RenderOutput:
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
                max_rays: int = 65536) -> RenderOutput:
    """Ray-cast ``room`` from camera (K, c2w) at ``size`` (int or (H, W)); see RenderOutput."""
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
    return RenderOutput(rgb=(rgb * 255 + 0.5).astype(np.uint8).reshape(h, w, 3), depth=depth.reshape(h, w),
                        labels=labels.reshape(h, w), normals=normals.reshape(h, w, 3),
                        instance=instance.reshape(h, w))


# ----------------------------------------------------------------------------- cameras
def intrinsics_from_fov(fov_x_deg: float, size: SizeLike) -> np.ndarray:
    """float32 (3, 3) K with horizontal FoV ``fov_x_deg``, square pixels, principal point (W/2, H/2)."""
    h, w = parse_size(size)
    if not 1.0 < fov_x_deg < 179.0:
        raise ValueError(f"horizontal field of view must be in (1, 179) degrees, got {fov_x_deg}")
    f = (w / 2) / math.tan(math.radians(fov_x_deg) / 2)
    return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float32)


def look_pose(position: Sequence[float], yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """float32 c2w (OpenCV axes) for a camera at ``position`` in the z-up world.

    ``yaw``: heading of the optical axis about world z (0 = +x); ``pitch``: elevation
    (negative looks down); ``roll``: rotation about the optical axis. Radians.
    """
    fwd = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    cr, sr = math.cos(roll), math.sin(roll)
    right, down = cr * right + sr * down, -sr * right + cr * down
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, fwd, position
    return c2w.astype(np.float32)


def _free(room: ProceduralRoom, pos: np.ndarray, clearance: float = 0.3) -> bool:
    """Camera position inside the room (with margin), ``clearance`` away from furniture near its
    height and never above furniture (people and robots stand on free floor)."""
    if np.any(pos[:2] < 0.3) or np.any(pos[:2] > room.size[:2] - 0.3) or not 0.3 < pos[2] < room.size[2] - 0.3:
        return False
    for obj in room.objects:
        if obj.origin[2] > 0.05:
            continue
        need = clearance if obj.height + 0.35 >= pos[2] else 0.05
        R = _rot_z(obj.yaw)[:2, :2].astype(np.float64)
        q = (pos[:2] - obj.origin[:2]) @ R
        dd = np.maximum(np.maximum(obj.lo[:2] - q, q - obj.hi[:2]), 0)
        if np.hypot(*dd) < need:
            return False
    return True


def _probe(room: ProceduralRoom, K: np.ndarray, c2w: np.ndarray, size: Tuple[int, int]):
    """Low-resolution depth/label probe: (depth (h*w,), labels (h*w,), K_probe)."""
    h, w = size
    ph, pw = max(2, h // 8), max(2, w // 8)
    Kp = K.astype(np.float64).copy()
    Kp[0] *= pw / w
    Kp[1] *= ph / h
    o, d = camera_rays(Kp, c2w, ph, pw)
    hits = _trace(room, o, d)
    _, _, _, _, _, label_tab, _ = room.tables()
    return hits.t, label_tab[hits.surface], Kp, (ph, pw)


def _view_quality(depth: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """None if the view is unusable (too close to a surface), else the furniture pixel fraction."""
    if np.median(depth) < 1.0 or np.mean(depth < 0.4) > 0.05:
        return None
    return float(np.mean(labels >= CHAIR))


def _overlap(depth1, K1, c2w1, K2, c2w2, size2) -> float:
    """Fraction of view-1 probe pixels that land inside view 2 in front of the camera."""
    h, w = size2
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    pix = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], 1)
    pts = (pix @ np.linalg.inv(K1).T) * depth1[:, None]
    world = pts @ c2w1[:3, :3].T + c2w1[:3, 3]
    w2c = np.linalg.inv(c2w2.astype(np.float64))
    cam2 = world @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam2[:, 2]
    uv = (cam2 @ K2.astype(np.float64).T)[:, :2] / np.maximum(z[:, None], 1e-6)
    inside = (z > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    return float(inside.mean())


def _focus_point(room: ProceduralRoom, rng) -> np.ndarray:
    floor_objs = [o for o in room.objects if o.origin[2] < 0.05]
    if floor_objs and rng.random() < 0.9:
        w = np.array([1.0 if o.label == OTHER else 2.0 for o in floor_objs])  # favour the named classes
        obj = floor_objs[int(rng.choice(len(floor_objs), p=w / w.sum()))]
        z = float(np.clip(obj.height * rng.uniform(0.3, 0.7), 0.2, 1.2))
        return np.array([obj.origin[0], obj.origin[1], z]) + np.r_[rng.normal(0, 0.15, 2), 0.0]
    return np.array([rng.uniform(0.3, 0.7) * room.size[0], rng.uniform(0.3, 0.7) * room.size[1], rng.uniform(0.3, 1.0)])


def _angles_towards(pos: np.ndarray, target: np.ndarray) -> Tuple[float, float]:
    v = target - pos
    return math.atan2(v[1], v[0]), math.atan2(v[2], math.hypot(v[0], v[1]))


def sample_view_triplet(room: ProceduralRoom, rng: np.random.Generator, size: SizeLike,
                        num_targets: int = 1, max_tries: int = 60):
    """Cameras for two overlapping context views and ``num_targets`` targets near them.

    Returns ``(K, [c2w_context1, c2w_context2, c2w_target...], info)`` with one shared K.
    """
    h, w = parse_size(size)
    K = intrinsics_from_fov(float(rng.uniform(55, 75)), (h, w)).astype(np.float64)
    best, best_score = None, -np.inf
    for attempt in range(max_tries):
        focus = _focus_point(room, rng)
        if attempt % 3 == 2:  # every third try: anywhere on the floor (crowded rooms)
            pos1 = np.array([rng.uniform(0.3, room.size[0] - 0.3), rng.uniform(0.3, room.size[1] - 0.3),
                             rng.uniform(0.8, 1.8)])
        else:
            ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(1.2, 3.2)
            pos1 = np.array([focus[0] + dist * math.cos(ang), focus[1] + dist * math.sin(ang), rng.uniform(0.8, 1.8)])
        if not _free(room, pos1):
            continue
        yaw1, pitch1 = _angles_towards(pos1, focus)
        yaw1 += math.radians(rng.uniform(-10, 10))
        pitch1 = float(np.clip(pitch1 + math.radians(rng.uniform(-5, 5)), math.radians(-45), math.radians(10)))
        roll1 = math.radians(rng.uniform(-3, 3))
        c1 = look_pose(pos1, yaw1, pitch1, roll1).astype(np.float64)
        dyaw = math.radians(rng.uniform(5, 25)) * (1 if rng.random() < 0.5 else -1)
        base = rng.uniform(0.1, 0.6)
        side = math.copysign(1.0, dyaw) * (1 if rng.random() < 0.8 else -1)
        gamma = math.radians(rng.uniform(-40, 40))
        t_cam = np.array([side * math.cos(gamma), rng.uniform(-0.15, 0.15), math.sin(gamma)])
        t_cam *= base / np.linalg.norm(t_cam)
        pos2 = pos1 + c1[:3, :3] @ t_cam
        pos2[2] = float(np.clip(pos2[2], 0.8, 1.8))
        if not _free(room, pos2):
            continue
        # Positive dyaw turns left (counter-clockwise seen from above).
        yaw2 = yaw1 + dyaw
        pitch2 = float(np.clip(pitch1 + math.radians(rng.uniform(-5, 5)), math.radians(-50), math.radians(15)))
        roll2 = math.radians(rng.uniform(-3, 3))
        c2 = look_pose(pos2, yaw2, pitch2, roll2).astype(np.float64)
        d1, l1, Kp, psize = _probe(room, K, c1, (h, w))
        d2, l2, _, _ = _probe(room, K, c2, (h, w))
        q1, q2 = _view_quality(d1, l1), _view_quality(d2, l2)
        ov = _overlap(d1, Kp, c1, Kp, c2, psize)
        good = q1 is not None and q2 is not None and ov >= 0.5
        # Usable views rank above unusable ones; among them, more furniture and more overlap win.
        score = (min(q1, q2) if good else -1.0 - (q1 is None) - (q2 is None) - max(0.0, 0.5 - ov)) + 0.2 * ov
        if score > best_score:
            best, best_score = (pos1, yaw1, pitch1, roll1, pos2, yaw2, pitch2, roll2, c1, c2, ov), score
        if good and min(q1, q2) >= 0.1:
            break
    if best is None:
        # Fallback: stand in the room centre looking along its longest axis (always valid geometry).
        pos1 = np.array([room.size[0] / 2, room.size[1] / 2, 1.4])
        yaw1, pitch1 = (0.0 if room.size[0] > room.size[1] else math.pi / 2), math.radians(-15)
        pos2, yaw2, pitch2, roll2 = pos1 + np.array([0.0, 0.0, -0.2]), yaw1 + math.radians(10), pitch1, 0.0
        c1, c2 = look_pose(pos1, yaw1, pitch1), look_pose(pos2, yaw2, pitch2)
        best = (pos1, yaw1, pitch1, 0.0, pos2, yaw2, pitch2, roll2, c1, c2, float("nan"))
    pos1, yaw1, pitch1, roll1, pos2, yaw2, pitch2, roll2, c1, c2, ov = best
    poses = [c1.astype(np.float32), c2.astype(np.float32)]
    for _ in range(num_targets):
        for attempt in range(10):
            a = rng.uniform(0.3, 0.7) if attempt < 9 else 0.5
            jitter = attempt < 9
            pos = pos1 + a * (pos2 - pos1) + (rng.normal(0, 0.03, 3) if jitter else 0)
            if _free(room, pos, clearance=0.15) or not jitter:
                break
        yaw = yaw1 + a * (yaw2 - yaw1) + (math.radians(rng.uniform(-3, 3)) if jitter else 0)
        pitch = pitch1 + a * (pitch2 - pitch1) + (math.radians(rng.uniform(-2, 2)) if jitter else 0)
        roll = roll1 + a * (roll2 - roll1) + (math.radians(rng.uniform(-2, 2)) if jitter else 0)
        poses.append(look_pose(pos, yaw, pitch, roll))
    return K.astype(np.float32), poses, {"context_overlap_probe": ov, "fov_x_deg": math.degrees(2 * math.atan(w / 2 / K[0, 0]))}


def _sample_seed(seed: int) -> int:
    return int(np.random.SeedSequence([int(seed), 0xCA3E]).generate_state(1)[0])


def generate_sample(seed: int, size: SizeLike = 128, num_targets: int = 1,
                    room: Optional[ProceduralRoom] = None) -> SceneSample:
    """One :class:`SceneSample` (2 context views + ``num_targets`` targets), deterministic per seed.

    ``room``: render view triplets from an existing room instead of generating one from
    ``seed`` (the cameras still depend on ``seed``); lets callers cache rooms.
    """
    if num_targets < 0:
        raise ValueError(f"num_targets must be >= 0, got {num_targets}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    hw = parse_size(size)
    if room is None:
        room = generate_room(seed)
    rng = np.random.default_rng(_sample_seed(seed))
    K, poses, info = sample_view_triplet(room, rng, hw, num_targets)
    views = [render_view(room, K, c2w, hw).to_view(K, c2w) for c2w in poses]
    meta = {"source": "procedural", "seed": int(seed), "room_seed": int(room.seed),
            "room_size": [float(x) for x in room.size], "num_objects": len(room.objects), **info}
    return SceneSample(context=views[:2], target=views[2:], class_names=CLASS_NAMES, meta=meta)


def sequence_poses(room: ProceduralRoom, rng: np.random.Generator, n_frames: int,
                   step: float = 0.04, size: SizeLike = (48, 64), fov_x_deg: float = 65.0) -> List[np.ndarray]:
    """Smooth c2w trajectory: an elliptical arc inside the room, looking at a fixed interior point.

    Consecutive frames are about ``step`` metres apart (capped at one full loop).  Several
    candidate arcs are drawn; arcs that leave free space, come within 1 m of the look-at point
    or turn faster than 8 degrees per frame are rejected, and the remaining one that sees the
    most furniture (judged from coarse probe renders) is used.
    """
    W, D, _ = room.size
    floor_objs = [o for o in room.objects if o.origin[2] < 0.05]
    centroid = np.mean([o.origin[:2] for o in floor_objs], 0) if floor_objs else np.array([W / 2, D / 2])
    K = intrinsics_from_fov(fov_x_deg, size).astype(np.float64)
    hw = parse_size(size)
    best, best_score = None, -np.inf
    for attempt in range(24):
        shrink = rng.uniform(0.4, 0.85)
        a, b = max(shrink * (W / 2 - 0.4), 0.2), max(shrink * (D / 2 - 0.4), 0.2)
        cx, cy = W / 2 + rng.uniform(-0.1, 0.1) * W, D / 2 + rng.uniform(-0.1, 0.1) * D
        perimeter = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
        sweep = min(2 * math.pi, step * max(n_frames - 1, 1) / perimeter * 2 * math.pi)
        th = rng.uniform(0, 2 * math.pi) + (1 if rng.random() < 0.5 else -1) * np.linspace(0, sweep, n_frames)
        z0, dz = rng.uniform(1.1, 1.6), rng.uniform(0.0, 0.1)
        pitch0 = math.radians(rng.uniform(-28, -12))
        pos = np.stack([cx + a * np.cos(th), cy + b * np.sin(th), z0 + dz * np.sin(3 * th)], 1)
        if rng.random() < 0.5:
            target = centroid + rng.normal(0, 0.2, 2)
        else:
            target = np.array([cx, cy]) + rng.normal(0, 0.3, 2)
        rel = target - pos[:, :2]
        if np.min(np.hypot(rel[:, 0], rel[:, 1])) < 1.0:
            continue
        yaws = np.unwrap(np.arctan2(rel[:, 1], rel[:, 0]))
        if n_frames > 1 and np.max(np.abs(np.diff(yaws))) > math.radians(8):
            continue
        bad = sum(not _free(room, p, clearance=0.25) for p in pos)
        poses = [look_pose(p, y, pitch0 + math.radians(4) * math.sin(2 * t), math.radians(1.5) * math.sin(t))
                 for p, y, t in zip(pos, yaws, th)]
        quality = []
        for k in np.linspace(0, n_frames - 1, min(n_frames, 6)).round().astype(int):
            depth, labels, _, _ = _probe(room, K, poses[k].astype(np.float64), hw)
            q = _view_quality(depth, labels)
            quality.append(-0.5 if q is None else q)
        score = float(np.mean(quality)) - 10.0 * bad
        if score > best_score:
            best, best_score = poses, score
    if best is None:  # every candidate passed too close to its look-at point: rotate in place
        centre = np.array([W / 2, D / 2, 1.4])
        best = [look_pose(centre, 2 * math.pi * k / max(n_frames, 1) * min(1.0, step * n_frames / 2), math.radians(-15))
                for k in range(n_frames)]
    return best


def generate_sequence(seed: int, n_frames: int, size: SizeLike = (480, 640),
                      fov_x_deg: float = 65.0) -> List[ViewSample]:
    """``n_frames`` views along a smooth trajectory through one room (deterministic per seed)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    hw = parse_size(size)
    room = generate_room(seed)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E0]))
    K = intrinsics_from_fov(fov_x_deg, hw)
    return [render_view(room, K, c2w, hw).to_view(K, c2w) for c2w in sequence_poses(room, rng, n_frames)]
