"""Write one reconstruction to disk: what the node's ``~/save_scene`` and the demo store.

Files in the target folder:

* ``gaussians.ply``: the 3D Gaussians in the 3DGS layout (+ ``semantic_*`` channels),
* ``points.ply``: the labelled point cloud exactly as published
  (x y z float32, red green blue uint8, label uint32, confidence float32),
* ``cameras.json``: both views' camera-to-reference poses (4x4, OpenCV / REP-103 optical
  axes), intrinsics at the original resolution, image sizes, the label list, stamp, frame
  and units.

Everything is in the reference view's optical frame, in model units (up to scale).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

from ..results import UNITS, PointCloud, Reconstruction
from .ply import save_gaussians_ply, save_labelled_points_ply


def cameras_record(rec: Reconstruction, labels, stamp: float, frame_id: str) -> Dict:
    """JSON-ready description of the two estimated cameras."""
    return {
        "frame_id": frame_id,
        "stamp": stamp,
        "units": UNITS,
        "c2w": rec.c2w.cpu().numpy().astype(float).tolist(),
        "intrinsics": rec.intrinsics_original().tolist(),
        "image_sizes_wh": rec.image_sizes().tolist(),
        "labels": list(labels),
        "camera_recovery": rec.camera_status,
    }


def save_scene(folder, rec: Reconstruction, cloud: PointCloud, stamp: float,
               frame_id: str) -> Dict[str, Path]:
    """Write gaussians.ply, points.ply and cameras.json into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "gaussians": save_gaussians_ply(rec.gaussians.detach().to("cpu"), folder / "gaussians.ply"),
        "points": save_labelled_points_ply(cloud.points, cloud.colors, cloud.labels,
                                           cloud.confidence, folder / "points.ply"),
        "cameras": folder / "cameras.json",
    }
    record = cameras_record(rec, cloud.label_names, stamp, frame_id)
    files["cameras"].write_text(json.dumps(record, indent=2))
    return files
