"""Cameras in procedural rooms: intrinsics, poses, view sampling, samples and smooth sequences."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..sample import CLASS_NAMES, SceneSample, ViewSample
from .base import CHAIR, OTHER, SizeLike, parse_size
from .raycast import _rot_z, _trace
from .rooms import ProceduralRoom, generate_room
from .shading import camera_rays, render_view


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
    fov_x = math.degrees(2 * math.atan(w / 2 / K[0, 0]))
    return K.astype(np.float32), poses, {"context_overlap_probe": ov, "fov_x_deg": fov_x}


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
