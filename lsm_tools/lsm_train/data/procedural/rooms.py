"""Procedural rooms: a closed box with furniture made of axis-aligned box parts (:func:`generate_room`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .base import (
    BED,
    CEILING,
    CHAIR,
    CHECKER,
    FLOOR,
    NOISE,
    OTHER,
    SOFA,
    STRIPES,
    TABLE,
    WALL,
    WOOD,
)
from .materials import _fabric, _hsv, _Materials, _random_material, _second


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
        p.box((x, back_t / 2, (base_top + seat_h) / 2),
              (cw / 2 - 0.01, (d - back_t) / 2 - 0.01, (seat_h - base_top) / 2), cushion)
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
            p.box((rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), z + s / 2),
                  (s / 2, s / 2 * rng.uniform(0.8, 1), s / 2), mat)
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
        art = mats.add(c1, c2, rng.choice([CHECKER, STRIPES, NOISE]), rng.uniform(0.05, 0.2),
                       bool(rng.random() < 0.5), OTHER, inst)
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
    origin = np.array([origin[0], origin[1], origin[2] if len(origin) > 2 else 0.0], np.float64)
    return RoomObject(label=label, origin=origin,
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
