"""Write one reconstruction to disk: what ``~/save_scene`` and ``lsm_demo`` store.

No ROS imports.  Files in the target folder:

* ``gaussians.ply``: the 3D Gaussians in the 3DGS layout (+ ``semantic_*`` channels),
* ``points.ply``: the labelled point cloud exactly as published on ``~/points``
  (x y z float32, red green blue uint8, label uint32, confidence float32),
* ``cameras.json``: both views' camera-to-reference poses (4x4, OpenCV / REP-103 optical
  axes), intrinsics at the original resolution, image sizes, the label list, stamp and frame.

Everything is in the reference view's optical frame, in model units (up to scale).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np

from lsm_ros.outputs import ReconstructionOutputs


def cameras_record(outputs: ReconstructionOutputs, stamp: float, frame_id: str) -> Dict:
    """JSON-ready description of the two estimated cameras."""
    return {
        "frame_id": frame_id,
        "stamp": stamp,
        "units": "model units (metric up to an unknown global scale)",
        "c2w": np.asarray(outputs.c2w, dtype=float).tolist(),
        "intrinsics": np.asarray(outputs.intrinsics, dtype=float).tolist(),
        "image_sizes_wh": np.asarray(outputs.image_sizes, dtype=int).tolist(),
        "labels": list(outputs.labels),
        "camera_recovery": outputs.camera_status,
    }


def save_scene(folder, reconstruction, outputs: ReconstructionOutputs, stamp: float,
               frame_id: str) -> Dict[str, Path]:
    """Write gaussians.ply, points.ply and cameras.json into ``folder`` (created)."""
    from lsm.io.ply import save_labelled_points_ply

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cloud = outputs.cloud
    files = {
        "gaussians": reconstruction.save_ply(folder / "gaussians.ply"),
        "points": save_labelled_points_ply(cloud.points, cloud.colors, cloud.labels,
                                           cloud.confidence, folder / "points.ply"),
        "cameras": folder / "cameras.json",
    }
    files["cameras"].write_text(json.dumps(cameras_record(outputs, stamp, frame_id), indent=2))
    return files
