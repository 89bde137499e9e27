"""A persistent semantic map: reconstructions fused into a sparse voxel grid in a world frame,
queried by text for object instances.

:class:`VoxelMap` keeps, per voxel (``voxel_size`` metres): the mean position and colour of
its points, the confidence-weighted running mean of the model's low-dimensional semantic
feature (expanded to text space only when queried, as for single reconstructions), the
summed confidence, the number of observations, the last-seen stamp and, where geometry
decided the floor (:mod:`lsm.geometry.floor`), how many of those observations said floor
(it then decides the voxel's floor label and a floor query). Fusion costs
O(points of the update · log voxels): voxels are found by binary search in a sorted key
index, never by scanning the map. At ``max_voxels`` the least recently seen, least
confident tenth is evicted at once (a scan, amortised over that many insertions), so memory
is bounded and fixed at construction. :meth:`VoxelMap.clear_free_space` (optional, in
:class:`MapFusion`) weakens and finally removes the voxels a camera now sees through, so
that objects that moved away do not stay in the map.

:meth:`VoxelMap.instances` turns the voxels matching a query into objects: connected
components of the matching voxels (26-neighbourhood, gaps of ``link`` voxels bridged), each
with centroid (centre of its axis-aligned box), axis-aligned and oriented boxes, score, size and last seen.

Plain numpy; the text similarity is passed in (``Perception.point_similarity_of_features``).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

_OFFSET = 1 << 20  # voxel indices are packed into one int64 key: 21 bits per axis


def voxel_keys(ijk: np.ndarray) -> np.ndarray:
    """(N, 3) integer voxel indices (each within +-2^20) -> (N,) int64 keys."""
    v = ijk.astype(np.int64) + _OFFSET
    return (v[:, 0] << 42) | (v[:, 1] << 21) | v[:, 2]


@dataclass
class MapInstance:
    """One object of a map query, in the map's frame and units."""

    label: str
    score: float  # mean relevance of its voxels, in [0, 1]
    centroid: np.ndarray  # (3,) centre of its axis-aligned box (not a median: a map sees
    # objects from above and from the near side, so its voxels crowd there)
    extent: np.ndarray  # (3,) axis-aligned size (2nd-98th percentile range)
    box_center: np.ndarray  # (3,) oriented box (principal axes of its voxels)
    box_rotation: np.ndarray  # (3, 3) columns = box axes
    box_size: np.ndarray  # (3,)
    points: np.ndarray  # (M, 3) float32 voxel centres
    voxel_count: int
    last_seen: float  # newest stamp of its voxels, seconds


class VoxelMap:
    """Sparse semantic voxel map with bounded memory (see the module docstring)."""

    def __init__(self, voxel_size: float = 0.05, max_voxels: int = 200_000,
                 feature_dim: int = 32, frame: str = "", units: str = "m") -> None:
        if voxel_size <= 0 or max_voxels < 1 or feature_dim < 1:
            raise ValueError("voxel_size > 0, max_voxels >= 1 and feature_dim >= 1 are required")
        self.voxel_size, self.max_voxels, self.feature_dim = float(voxel_size), int(max_voxels), int(feature_dim)
        self.frame, self.units = frame, units
        n = self.max_voxels
        self.position = np.zeros((n, 3), np.float32)  # weighted mean point
        self.color = np.zeros((n, 3), np.float32)
        self.feature = np.zeros((n, feature_dim), np.float32)
        self.weight = np.zeros(n, np.float32)  # summed confidence of the points it has seen
        self.count = np.zeros(n, np.int32)  # reconstructions that observed it
        # the floor decided by geometry (lsm.geometry.floor): summed confidence of the
        # observations that decided it, and of those that said "floor"
        self.floor_weight = np.zeros(n, np.float32)
        self.floor_votes = np.zeros(n, np.float32)
        self.last_seen = np.zeros(n, np.float64)
        self.used = np.zeros(n, bool)
        self._key = np.zeros(n, np.int64)  # key of the voxel in each slot
        # the index: keys of the used slots, sorted, and their slots (vectorised lookups)
        self._index_keys = np.zeros(0, np.int64)
        self._index_slots = np.zeros(0, np.int64)
        self._free = np.arange(n - 1, -1, -1, dtype=np.int64)  # a stack: the top is the end
        self._free_top = n
        self.lock = threading.Lock()  # held for one update, or one snapshot
        self.evicted = 0
        self.cleared = 0  # voxels removed as seen-through free space
        self.updates = 0

    def __len__(self) -> int:
        return len(self._index_keys)

    # ------------------------------------------------------------------ fusion
    def integrate(self, points: np.ndarray, colors: np.ndarray, features: np.ndarray,
                  confidence: np.ndarray, stamp: float, floor: Optional[np.ndarray] = None) -> int:
        """Fuse one reconstruction's points (N, 3, map frame and units), colours (N, 3)
        uint8, features (N, F) and confidences (N,) seen at ``stamp``; ``floor`` (N,) bool
        when geometry decided which points are floor (Reconstruction.floor), else None.
        Returns how many voxels it touched."""
        ok = np.isfinite(points).all(1) & np.isfinite(confidence) & (confidence > 0)
        points, colors = points[ok].astype(np.float64), colors[ok].astype(np.float32)
        features, w = features[ok].astype(np.float32), confidence[ok].astype(np.float32)
        votes = None if floor is None else np.asarray(floor, bool)[ok].astype(np.float32)
        if len(points) == 0:
            return 0
        keys = voxel_keys(np.floor(points / self.voxel_size))
        order = np.argsort(keys, kind="stable")  # points of one voxel become neighbours
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        unique, m = keys[starts], len(starts)
        w = w[order]
        sw = np.add.reduceat(w, starts)

        def wsum(values):  # weighted sums per voxel of this update
            return np.add.reduceat(values[order] * w[:, None], starts, axis=0)

        pos, col, feat = wsum(points), wsum(colors), wsum(features)
        fv = wsum(votes[:, None])[:, 0] if votes is not None else np.zeros(m, np.float32)
        if m > self.max_voxels:  # one update larger than the map: its most confident voxels
            best = np.sort(np.argsort(-sw, kind="stable")[:self.max_voxels])
            unique, sw, pos, col, feat = unique[best], sw[best], pos[best], col[best], feat[best]
            fv = fv[best]
            m = len(best)
        with self.lock:
            slots = self._slots_for(unique, stamp)
            old = self.weight[slots]
            total = old + sw
            for array, new in ((self.position, pos), (self.color, col), (self.feature, feat)):
                array[slots] = ((array[slots] * old[:, None] + new) / total[:, None]).astype(np.float32)
            self.weight[slots] = total
            if votes is not None:
                self.floor_weight[slots] += sw
                self.floor_votes[slots] += fv
            self.count[slots] += 1
            self.last_seen[slots] = stamp
            self.updates += 1
        return m

    def _slots_for(self, keys: np.ndarray, stamp: float) -> np.ndarray:
        """Slots of ``keys`` (sorted, unique int64), new voxels made (zeroed) where missing."""
        index = self._index_keys
        pos = np.searchsorted(index, keys)
        found = pos < len(index)
        found[found] = index[pos[found]] == keys[found]
        slots = np.empty(len(keys), np.int64)
        slots[found] = self._index_slots[pos[found]]
        new = np.flatnonzero(~found)
        if len(new) > self._free_top:
            self._evict(max(len(new) - self._free_top, self.max_voxels // 10))
        if len(new):
            taken = self._free[self._free_top - len(new):self._free_top][::-1]
            self._free_top -= len(new)
            slots[new] = taken
            self._key[taken] = keys[new]
            self.used[taken] = True
            self.position[taken] = self.color[taken] = self.feature[taken] = 0.0
            self.weight[taken], self.count[taken] = 0.0, 0
            self.floor_weight[taken] = self.floor_votes[taken] = 0.0
            at = np.searchsorted(self._index_keys, keys[new])  # after a possible eviction
            self._index_keys = np.insert(self._index_keys, at, keys[new])
            self._index_slots = np.insert(self._index_slots, at, taken)
        return slots

    def _evict(self, n: int) -> None:
        """Free the ``n`` least recently seen voxels (ties: least confident first)."""
        used = self._index_slots
        n = min(n, len(used))
        self._remove(used[np.lexsort((self.weight[used], self.last_seen[used]))[:n]])
        self.evicted += n

    def _remove(self, victims: np.ndarray) -> None:
        """Free the slots ``victims`` (used, unique) and take them out of the index."""
        n = len(victims)
        if n == 0:
            return
        keep = np.ones(len(self._index_slots), bool)
        keep[np.searchsorted(self._index_keys, self._key[victims])] = False
        self._index_keys, self._index_slots = self._index_keys[keep], self._index_slots[keep]
        self.used[victims] = False
        self._free[self._free_top:self._free_top + n] = victims
        self._free_top += n

    def clear_free_space(self, origin: np.ndarray, points: np.ndarray, stamp: float,
                         margin: Optional[float] = None, rays: int = 1024, decay: float = 0.5,
                         min_weight: float = 1.0) -> int:
        """Free-space clearing: the space a camera at ``origin`` (3,) sees through on its way
        to the surface ``points`` (N, 3) it observed, up to ``margin`` (default 2 voxels)
        before each, is empty now. Every voxel there last seen before ``stamp`` has its
        weight multiplied by ``decay`` and is removed once it falls below ``min_weight``, so
        an object that moved away fades after a few views while one noisy ray does not
        erase a surface. Cost: at most ``rays`` rays sampled every voxel, looked up in the
        sorted index: independent of the map's size but for a logarithm. Returns how many
        voxels were removed."""
        margin = 2.0 * self.voxel_size if margin is None else float(margin)
        origin = np.asarray(origin, np.float64).reshape(3)
        points = np.asarray(points, np.float64)
        points = points[np.isfinite(points).all(1)]
        if len(points) == 0 or len(self) == 0:
            return 0
        if len(points) > rays:
            points = points[np.linspace(0, len(points) - 1, rays).astype(np.int64)]
        delta = points - origin
        dist = np.linalg.norm(delta, axis=1)
        steps = np.floor(np.clip(dist - margin, 0.0, None) / self.voxel_size).astype(np.int64)
        total = int(steps.sum())
        if total == 0:
            return 0
        ray = np.repeat(np.arange(len(points)), steps)
        k = np.arange(total) - np.repeat(np.cumsum(steps) - steps, steps)
        along = (k + 0.5) * self.voxel_size / dist[ray]
        samples = origin + delta[ray] * along[:, None]
        keys = np.unique(voxel_keys(np.floor(samples / self.voxel_size)))
        with self.lock:
            index = self._index_keys
            pos = np.searchsorted(index, keys)
            found = pos < len(index)
            found[found] = index[pos[found]] == keys[found]
            slots = self._index_slots[pos[found]]
            slots = slots[self.last_seen[slots] < stamp]
            self.weight[slots] *= decay
            dead = slots[self.weight[slots] < min_weight]
            self._remove(dead)
            self.cleared += len(dead)
        return len(dead)

    def clear(self) -> None:
        with self.lock:
            self._index_keys = np.zeros(0, np.int64)
            self._index_slots = np.zeros(0, np.int64)
            self.used[:] = False
            self._free = np.arange(self.max_voxels - 1, -1, -1, dtype=np.int64)
            self._free_top = self.max_voxels
            self.updates = 0

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> Dict[str, np.ndarray]:
        """Copies of every used voxel's data (consistent: taken under the lock)."""
        with self.lock:
            used = np.flatnonzero(self.used)
            return {"position": self.position[used].copy(), "color": self.color[used].copy(),
                    "feature": self.feature[used].copy(), "weight": self.weight[used].copy(),
                    "count": self.count[used].copy(), "last_seen": self.last_seen[used].copy(),
                    "key": self._key[used].copy(),
                    "floor_weight": self.floor_weight[used].copy(),
                    "floor_votes": self.floor_votes[used].copy(),
                    "floor": _floor_share(self.floor_votes[used], self.floor_weight[used])}

    def instances(self, similarity: Callable[[np.ndarray], np.ndarray], label: str,
                  threshold: float = 0.5, min_voxels: int = 5, link: int = 1,
                  max_instances: int = 0, floor: bool = False) -> Tuple[List[MapInstance], float]:
        """Objects matching a query: ``similarity(features (V, F)) -> relevance (V,)`` in
        [0, 1]; voxels at or above ``threshold`` are grouped into connected components
        (voxels within ``link`` voxels of each other join), those of at least
        ``min_voxels`` become instances, best score first. ``floor``: the query is the floor,
        so where geometry decided it (lsm.geometry.floor) a voxel's relevance is 1 when most of
        those observations said floor, else 0; the features speak only where none decided.
        Returns (instances, best relevance seen anywhere)."""
        data = self.snapshot()
        if len(data["key"]) == 0:
            return [], 0.0
        relevance = np.asarray(similarity(data["feature"]), np.float64)
        if floor:
            share = data["floor"]
            decided = np.isfinite(share)
            relevance[decided] = (share[decided] >= 0.5).astype(np.float64)
        best = float(relevance.max())
        sel = relevance >= threshold
        if not sel.any():
            return [], best
        ijk = np.floor(data["position"][sel] / self.voxel_size).astype(np.int64)
        labels = _components(ijk, link)
        out = []
        for c in range(labels.max() + 1):
            members = labels == c
            if int(members.sum()) < min_voxels:
                continue
            pts = data["position"][sel][members].astype(np.float64)
            lo, hi = np.percentile(pts, [2, 98], axis=0)
            center, rotation, size = _oriented_box(pts)
            out.append(MapInstance(label, float(relevance[sel][members].mean()),
                                   (lo + hi) / 2, hi - lo, center, rotation, size,
                                   pts.astype(np.float32), int(members.sum()),
                                   float(data["last_seen"][sel][members].max())))
        out.sort(key=lambda inst: (-inst.score, -inst.voxel_count))
        return (out[:max_instances] if max_instances else out), best

    # ------------------------------------------------------------------ files
    def save(self, folder, labels: List[str], label_ids: Optional[np.ndarray] = None) -> Dict[str, Path]:
        """``map.ply`` (x y z, rgb, label, weight, count, last_seen, feature_*) and
        ``map.json`` (frame, units, voxel size, labels, sizes) into ``folder``; written to
        temporary names and renamed, so a crash leaves the previous files intact."""
        from plyfile import PlyData, PlyElement

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data = self.snapshot()
        n = len(data["key"])
        fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                  ("blue", "u1"), ("label", "u4"), ("weight", "f4"), ("count", "i4"),
                  ("last_seen", "f8"), ("floor_weight", "f4"), ("floor_votes", "f4")] \
            + [(f"feature_{i}", "f4") for i in range(self.feature_dim)]
        record = np.empty(n, dtype=fields)
        for i, axis in enumerate("xyz"):
            record[axis] = data["position"][:, i]
        rgb = np.clip(np.round(data["color"]), 0, 255).astype(np.uint8)
        for i, name in enumerate(("red", "green", "blue")):
            record[name] = rgb[:, i]
        record["label"] = label_ids if label_ids is not None else 0
        record["weight"], record["count"] = data["weight"], data["count"]
        record["last_seen"] = data["last_seen"]
        record["floor_weight"], record["floor_votes"] = data["floor_weight"], data["floor_votes"]
        for i in range(self.feature_dim):
            record[f"feature_{i}"] = data["feature"][:, i]
        ply, meta = folder / "map.ply", folder / "map.json"
        PlyData([PlyElement.describe(record, "vertex")], text=False).write(str(ply) + ".tmp")
        meta_doc = {"frame": self.frame, "units": self.units, "voxel_size": self.voxel_size,
                    "max_voxels": self.max_voxels, "feature_dim": self.feature_dim,
                    "labels": list(labels), "voxels": n}
        Path(str(meta) + ".tmp").write_text(json.dumps(meta_doc, indent=2))
        Path(str(ply) + ".tmp").replace(ply)
        Path(str(meta) + ".tmp").replace(meta)
        return {"ply": ply, "json": meta}

    @classmethod
    def load(cls, path, max_voxels: Optional[int] = None) -> "VoxelMap":
        """A map written by :meth:`save` (``path``: its folder or map.json/map.ply)."""
        from plyfile import PlyData

        path = Path(path)
        folder = path if path.is_dir() else path.parent
        meta = json.loads((folder / "map.json").read_text())
        vertices = PlyData.read(str(folder / "map.ply"))["vertex"].data
        vmap = cls(meta["voxel_size"], max_voxels or meta["max_voxels"], meta["feature_dim"],
                   meta["frame"], meta["units"])
        n = len(vertices)
        if n > vmap.max_voxels:
            raise ValueError(f"{folder} holds {n} voxels, more than max_voxels = {vmap.max_voxels}")
        position = np.stack([vertices[a] for a in "xyz"], 1).astype(np.float32)
        # a voxel's key from its mean point (inside the voxel; a float32 mean on a face may
        # fall into the neighbour, whose voxel then wins)
        keys, first = np.unique(voxel_keys(np.floor(position / vmap.voxel_size)), return_index=True)
        slots = vmap._slots_for(keys, 0.0)
        vmap.position[slots] = position[first]
        vmap.color[slots] = np.stack([vertices[c] for c in ("red", "green", "blue")], 1)[first]
        vmap.feature[slots] = np.stack([vertices[f"feature_{i}"]
                                        for i in range(vmap.feature_dim)], 1)[first]
        vmap.weight[slots], vmap.count[slots] = vertices["weight"][first], vertices["count"][first]
        vmap.last_seen[slots] = vertices["last_seen"][first]
        if "floor_weight" in vertices.dtype.names:  # maps saved before the floor was kept lack it
            vmap.floor_weight[slots] = vertices["floor_weight"][first]
            vmap.floor_votes[slots] = vertices["floor_votes"][first]
        return vmap


def _floor_share(votes: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per voxel: the confidence-weighted share of the observations deciding the floor that
    said "floor"; NaN where none decided it (the model's features alone speak)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, votes / weight, np.nan).astype(np.float32)


def _components(ijk: np.ndarray, link: int = 1) -> np.ndarray:
    """Connected components of voxels (N, 3) integer indices, neighbours within ``link``
    voxels along every axis; returns a label per voxel (0..C-1)."""
    from scipy import ndimage

    lo = ijk.min(0)
    grid_idx = ijk - lo
    shape = grid_idx.max(0) + 1
    grid = np.zeros(shape, bool)
    grid[tuple(grid_idx.T)] = True
    if link > 1:
        grid = ndimage.binary_dilation(grid, np.ones((2 * link - 1,) * 3, bool))
    labelled, _ = ndimage.label(grid, np.ones((3, 3, 3), int))
    labels = labelled[tuple(grid_idx.T)]
    _, dense = np.unique(labels, return_inverse=True)
    return dense


def _oriented_box(points: np.ndarray):
    """Centre, rotation (columns = axes) and size of the principal-axes box of ``points``."""
    centre = points.mean(0)
    if len(points) < 3:
        return centre, np.eye(3), np.zeros(3)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    R = vt.T
    if np.linalg.det(R) < 0:
        R[:, 2] *= -1
    local = (points - centre) @ R
    lo, hi = np.percentile(local, [2, 98], axis=0)
    return centre + R @ ((lo + hi) / 2), R, hi - lo


class MapFusion:
    """Places each reconstruction in a :class:`VoxelMap` and fuses it.

    A metric reconstruction already in a world frame (TF at its stamp) goes in as it is.
    Without TF, in mono mode, consecutive keyframe pairs are chained: a pair's second view
    is the previous pair's reference, so its pose ``c2w[1]`` links the two and the chain
    starts at the first keyframe (frame :data:`CHAIN_FRAME`). A pair that does not continue
    the chain (its partner keyframe's pair was dropped, or time jumped) cannot be placed in
    the chain's map: the chain restarts at it and the map is cleared (:attr:`restarts`
    counts it) rather than mixing two origins in one frame. Anything else (model units,
    another frame than the map's) is not fused, and :attr:`note` says why; the note also
    gives the lowest pose confidence among the chain's links.
    """

    CHAIN_FRAME = "lsm_map"

    def __init__(self, vmap: VoxelMap, chain: bool = False, free_space: bool = False) -> None:
        self.map, self.chain, self.free_space = vmap, chain, free_space
        self._previous: Optional[Tuple[float, np.ndarray]] = None  # (stamp, map_T_reference)
        self.note = "nothing fused yet"
        self.fused = 0
        self.last_c2w: Optional[np.ndarray] = None  # (2, 4, 4) cameras of the last fused pair
        self.restarts = 0  # chains broken and restarted (the map cleared each time)
        self._weakest_link: Optional[Tuple[float, float]] = None  # (pose confidence, stamp)

    def add(self, rec, points_of, stamps: Tuple[float, float]) -> bool:
        """Fuse ``rec`` (an lsm.results.Reconstruction) seen at ``stamps`` (view 0, view 1);
        ``points_of(rec)`` -> (points, colours, features, confidences[, floor]) (Perception.map_points).
        Returns whether it was fused."""
        restarted = ""
        if not rec.metric:
            self.note = "not fused: model units (the map needs a metric scale)"
            return False
        if rec.frame:
            frame = rec.frame
        elif self.chain:
            frame = self.CHAIN_FRAME
            link = self._previous is not None and abs(self._previous[0] - stamps[1]) < 1e-6
            if link:
                map_T_ref = self._previous[1] @ np.linalg.inv(rec.c2w[1].double().numpy())
                confidence = float(rec.pose_confidence)
                if np.isfinite(confidence) and (self._weakest_link is None
                                                or confidence < self._weakest_link[0]):
                    self._weakest_link = (confidence, stamps[0])
            else:
                map_T_ref = np.eye(4)
                self._weakest_link = None
                if self._previous is not None and len(self.map) and self.map.frame == frame:
                    self.map.clear()
                    self.restarts += 1
                    restarted = (f"; the chain broke at stamp {stamps[0]:.3f} (its partner "
                                 f"{stamps[1]:.3f} was never placed) and restarted, map cleared "
                                 f"({self.restarts} restart(s))")
            self._previous = (stamps[0], map_T_ref)
            rec = rec.transformed(map_T_ref, frame)
        else:
            self.note = "not fused: no world_frame in TF, and pairs of two cameras cannot chain"
            return False
        if len(self.map) == 0 and self.map.frame != frame:
            self.map.frame = frame
        if frame != self.map.frame:
            self.note = f"not fused: in {frame!r}, the map is in {self.map.frame!r}"
            return False
        points, colors, features, confidence, *floor = points_of(rec)
        self.map.integrate(points, colors, features, confidence, stamps[0],
                           floor=floor[0] if floor else None)
        self.last_c2w = rec.c2w.double().cpu().numpy()
        if self.free_space:  # each view's rays, through what it sees now
            per_view = len(points) // 2
            for v in range(2):
                self.map.clear_free_space(self.last_c2w[v, :3, 3],
                                          points[v * per_view:(v + 1) * per_view], stamps[0])
        self.fused += 1
        note = f"fused {self.fused} reconstruction(s) in {frame!r}"
        if frame == self.CHAIN_FRAME:
            note += " (own chained poses: no TF)"
            if self._weakest_link is not None:
                note += (f"; lowest pose confidence among the chain's links "
                         f"{self._weakest_link[0]:.2f} (stamp {self._weakest_link[1]:.3f})")
            note += restarted
        else:
            note += " (TF)"
        self.note = note
        return True
