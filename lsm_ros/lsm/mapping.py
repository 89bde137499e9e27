"""A persistent semantic map: reconstructions fused into a sparse voxel grid in a world frame,
queried by text for object instances.

:class:`VoxelMap` keeps, per voxel (``voxel_size`` metres): the mean position and colour of
its points, the confidence-weighted running mean of the model's low-dimensional semantic
feature (expanded to text space only when queried, as for single reconstructions), the
summed confidence, the number of observations and the last-seen stamp. Fusion costs
O(points of the update): voxels are found through a dict, never by scanning the map. At
``max_voxels`` the least recently seen, least confident tenth is evicted at once (a scan,
amortised over that many insertions), so memory is bounded and fixed at construction.

:meth:`VoxelMap.instances` turns the voxels matching a query into objects: connected
components of the matching voxels (26-neighbourhood, gaps of ``link`` voxels bridged), each
with centroid, axis-aligned and oriented boxes, score, size and last seen.

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
    centroid: np.ndarray  # (3,) median of its voxel centres
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
        self.last_seen = np.zeros(n, np.float64)
        self.used = np.zeros(n, bool)
        self._slot: Dict[int, int] = {}  # voxel key -> slot
        self._key = np.zeros(n, np.int64)
        self._free: List[int] = list(range(n - 1, -1, -1))
        self.lock = threading.Lock()  # held for one update, or one snapshot
        self.evicted = 0
        self.updates = 0

    def __len__(self) -> int:
        return len(self._slot)

    # ------------------------------------------------------------------ fusion
    def integrate(self, points: np.ndarray, colors: np.ndarray, features: np.ndarray,
                  confidence: np.ndarray, stamp: float) -> int:
        """Fuse one reconstruction's points (N, 3, map frame and units), colours (N, 3)
        uint8, features (N, F) and confidences (N,) seen at ``stamp``; returns how many
        voxels it touched."""
        ok = np.isfinite(points).all(1) & np.isfinite(confidence) & (confidence > 0)
        points, colors = points[ok].astype(np.float64), colors[ok].astype(np.float32)
        features, w = features[ok].astype(np.float32), confidence[ok].astype(np.float32)
        if len(points) == 0:
            return 0
        keys = voxel_keys(np.floor(points / self.voxel_size))
        unique, inverse = np.unique(keys, return_inverse=True)
        m = len(unique)
        sw = np.bincount(inverse, weights=w, minlength=m).astype(np.float32)

        def wsum(values):  # weighted sums per voxel of this update
            out = np.zeros((m, values.shape[1]), np.float64)
            np.add.at(out, inverse, values * w[:, None])
            return out

        pos, col, feat = wsum(points), wsum(colors), wsum(features)
        with self.lock:
            slots = self._slots_for(unique.tolist(), stamp)
            old = self.weight[slots]
            total = old + sw
            for array, new in ((self.position, pos), (self.color, col), (self.feature, feat)):
                array[slots] = ((array[slots] * old[:, None] + new) / total[:, None]).astype(np.float32)
            self.weight[slots] = total
            self.count[slots] += 1
            self.last_seen[slots] = stamp
            self.updates += 1
        return m

    def _slots_for(self, keys: List[int], stamp: float) -> np.ndarray:
        slots = np.empty(len(keys), np.int64)
        missing = []
        for i, key in enumerate(keys):
            slot = self._slot.get(key)
            if slot is None:
                missing.append(i)
            else:
                slots[i] = slot
        if len(missing) > len(self._free):
            self._evict(max(len(missing) - len(self._free), self.max_voxels // 10))
        for i in missing:
            slot = self._free.pop()
            self._slot[keys[i]] = slot
            self._key[slot] = keys[i]
            self.used[slot] = True
            self.position[slot] = self.color[slot] = self.feature[slot] = 0.0
            self.weight[slot], self.count[slot] = 0.0, 0
            slots[i] = slot
        return slots

    def _evict(self, n: int) -> None:
        """Free the ``n`` least recently seen voxels (ties: least confident first)."""
        used = np.flatnonzero(self.used)
        n = min(n, len(used))
        order = np.lexsort((self.weight[used], self.last_seen[used]))[:n]
        for slot in used[order]:
            del self._slot[int(self._key[slot])]
            self.used[slot] = False
            self._free.append(int(slot))
        self.evicted += n

    def clear(self) -> None:
        with self.lock:
            self._slot.clear()
            self.used[:] = False
            self._free = list(range(self.max_voxels - 1, -1, -1))
            self.updates = 0

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> Dict[str, np.ndarray]:
        """Copies of every used voxel's data (consistent: taken under the lock)."""
        with self.lock:
            used = np.flatnonzero(self.used)
            return {"position": self.position[used].copy(), "color": self.color[used].copy(),
                    "feature": self.feature[used].copy(), "weight": self.weight[used].copy(),
                    "count": self.count[used].copy(), "last_seen": self.last_seen[used].copy(),
                    "key": self._key[used].copy()}

    def instances(self, similarity: Callable[[np.ndarray], np.ndarray], label: str,
                  threshold: float = 0.5, min_voxels: int = 5, link: int = 1,
                  max_instances: int = 0) -> Tuple[List[MapInstance], float]:
        """Objects matching a query: ``similarity(features (V, F)) -> relevance (V,)`` in
        [0, 1]; voxels at or above ``threshold`` are grouped into connected components
        (voxels within ``link`` voxels of each other join), those of at least
        ``min_voxels`` become instances, best score first. Returns (instances, best
        relevance seen anywhere)."""
        data = self.snapshot()
        if len(data["key"]) == 0:
            return [], 0.0
        relevance = np.asarray(similarity(data["feature"]), np.float64)
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
                                   np.median(pts, axis=0), hi - lo, center, rotation, size,
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
                  ("last_seen", "f8")] + [(f"feature_{i}", "f4") for i in range(self.feature_dim)]
        record = np.empty(n, dtype=fields)
        for i, axis in enumerate("xyz"):
            record[axis] = data["position"][:, i]
        rgb = np.clip(np.round(data["color"]), 0, 255).astype(np.uint8)
        for i, name in enumerate(("red", "green", "blue")):
            record[name] = rgb[:, i]
        record["label"] = label_ids if label_ids is not None else 0
        record["weight"], record["count"] = data["weight"], data["count"]
        record["last_seen"] = data["last_seen"]
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
        keys = voxel_keys(np.floor(position / vmap.voxel_size)).tolist()
        slots = vmap._slots_for(keys, 0.0)
        vmap.position[slots] = position
        vmap.color[slots] = np.stack([vertices[c] for c in ("red", "green", "blue")], 1)
        vmap.feature[slots] = np.stack([vertices[f"feature_{i}"] for i in range(vmap.feature_dim)], 1)
        vmap.weight[slots], vmap.count[slots] = vertices["weight"], vertices["count"]
        vmap.last_seen[slots] = vertices["last_seen"]
        return vmap


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
