"""Write one reconstruction to disk: what the node's ``~/save_scene`` and the demo store.

Files in the target folder:

* ``gaussians.ply``: the 3D Gaussians in the 3DGS layout (+ ``semantic_*`` channels),
* ``points.ply``: the labelled point cloud exactly as published
  (x y z float32, red green blue uint8, label uint32, confidence float32),
* ``cameras.json``: both views' camera-to-reference poses (4x4, OpenCV / REP-103 optical
  axes), intrinsics at the original resolution, image sizes, the label list, stamp, frame
  and units,
* ``manifest.json``, written last: every file with its size, and ``"complete": true``.

Everything is in the result's frame (the reference view's optical frame, or the world
frame it was placed in) and in its units (metres when a sensor gave the scale, else model
units up to an unknown scale); cameras.json says which.

Crash safety: a scene is written into a hidden ``.<name>.partial-*`` folder and renamed to
its final name only when every file is on disk (fsync), so a save killed at any moment
leaves either a complete scene or a hidden partial folder, never a ``scene_*`` folder that
looks complete. Saves never overwrite each other: an existing name gets a ``_2``, ``_3``...
suffix.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict

from ..results import PointCloud, Reconstruction
from .ply import save_gaussians_ply, save_labelled_points_ply


def cameras_record(rec: Reconstruction, labels, stamp: float, frame_id: str) -> Dict:
    """JSON-ready description of the two estimated cameras."""
    return {
        "frame_id": rec.frame or frame_id,
        "stamp": stamp,
        "units": rec.units,
        "scale_m_per_model_unit": rec.scale,
        "scale_source": rec.scale_source,
        "scale_detail": rec.scale_detail,
        "c2w": rec.c2w.cpu().numpy().astype(float).tolist(),
        "intrinsics": rec.intrinsics_original().tolist(),
        "image_sizes_wh": rec.image_sizes().tolist(),
        "labels": list(labels),
        "camera_recovery": rec.camera_status,
    }


def _write_scene(folder: Path, rec: Reconstruction, cloud: PointCloud, stamp: float,
                 frame_id: str) -> Dict[str, Path]:
    files = {
        "gaussians": save_gaussians_ply(rec.gaussians.detach().to("cpu"), folder / "gaussians.ply"),
        "points": save_labelled_points_ply(cloud.points, cloud.colors, cloud.labels,
                                           cloud.confidence, folder / "points.ply"),
        "cameras": folder / "cameras.json",
    }
    record = cameras_record(rec, cloud.label_names, stamp, frame_id)
    files["cameras"].write_text(json.dumps(record, indent=2))
    return files


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_scene(parent, name: str, rec: Reconstruction, cloud: PointCloud, stamp: float,
               frame_id: str) -> Path:
    """Write a complete scene to a new folder ``parent/name`` (or ``name_2``, ``name_3``...
    if taken) and return that folder; see the module docstring for the crash safety."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent))
    try:
        files = _write_scene(tmp, rec, cloud, stamp, frame_id)
        manifest = {"complete": True, "files": {p.name: p.stat().st_size for p in files.values()}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        for path in list(files.values()) + [tmp / "manifest.json"]:
            _fsync(path)
        _fsync(tmp)
        for k in range(1, 10000):
            target = parent / (name if k == 1 else f"{name}_{k}")
            if target.exists():
                continue
            try:
                os.rename(tmp, target)  # atomic; fails if another save took the name meanwhile
            except OSError:
                continue
            _fsync(parent)
            return target
        raise FileExistsError(f"no free name for {name} in {parent}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def scene_is_complete(folder) -> bool:
    """True when ``folder`` holds a scene whose manifest lists files that are all there."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    files = manifest.get("files", {})
    return bool(manifest.get("complete")) and bool(files) and all(
        (folder / f).is_file() and (folder / f).stat().st_size == size for f, size in files.items())
