"""PLY export: 3DGS-compatible Gaussian files and labelled point clouds (via ``plyfile``).

``save_gaussians_ply`` writes the layout 3DGS viewers read: ``x y z nx ny nz f_dc_0..2
f_rest_* opacity scale_0..2 rot_0..3`` with opacity as a logit, scales as logs, rotation
wxyz, ``f_rest`` channel-major (as 3DGS stores it), plus ``semantic_0..F-1`` feature channels
(as the official LSM demo does).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from ..gaussians import Gaussians


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def save_gaussians_ply(gaussians: Gaussians, path) -> Path:
    """Write one scene's Gaussians (leading dim N) to ``path``; returns the path."""
    g = gaussians
    if g.means.dim() != 2:
        raise ValueError(f"save_gaussians_ply expects one scene (N,3) means, got {tuple(g.means.shape)}")
    n = g.count
    sh = _np(g.sh)  # (N, K, 3)
    f_dc = sh[:, 0, :]
    f_rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    opa = np.clip(_np(g.opacities), 1e-6, 1 - 1e-6)
    columns = {
        **{c: _np(g.means)[:, i] for i, c in enumerate("xyz")},
        **{f"n{c}": np.zeros(n, np.float32) for c in "xyz"},
        **{f"f_dc_{i}": f_dc[:, i] for i in range(3)},
        **{f"f_rest_{i}": f_rest[:, i] for i in range(f_rest.shape[1])},
        "opacity": np.log(opa / (1 - opa)),
        **{f"scale_{i}": np.log(np.maximum(_np(g.scales)[:, i], 1e-12)) for i in range(3)},
        **{f"rot_{i}": _np(g.rotations)[:, i] for i in range(4)},
        **{f"semantic_{i}": _np(g.features)[:, i] for i in range(g.features.shape[-1])},
    }
    return _write(columns, {}, path)


def save_labelled_points_ply(points: np.ndarray, rgb: np.ndarray, labels: np.ndarray,
                             confidence: np.ndarray | None, path) -> Path:
    """Point cloud with colour (uint8 RGB), class index (uint32) and confidence (float32)."""
    points = np.asarray(points, np.float32)
    columns = {c: points[:, i] for i, c in enumerate("xyz")}
    ints = {
        "red": np.asarray(rgb)[:, 0].astype(np.uint8),
        "green": np.asarray(rgb)[:, 1].astype(np.uint8),
        "blue": np.asarray(rgb)[:, 2].astype(np.uint8),
        "label": np.asarray(labels).astype(np.uint32),
    }
    if confidence is not None:
        columns["confidence"] = np.asarray(confidence, np.float32)
    return _write(columns, ints, path)


def _write(float_columns: dict, other_columns: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {**{k: np.asarray(v, np.float32) for k, v in float_columns.items()}, **other_columns}
    n = len(next(iter(cols.values())))
    data = np.empty(n, dtype=[(k, v.dtype) for k, v in cols.items()])
    for k, v in cols.items():
        data[k] = v
    PlyData([PlyElement.describe(data, "vertex")]).write(str(path))
    return path


def load_ply_vertices(path) -> np.ndarray:
    """The vertex table of a PLY file as a numpy structured array."""
    return PlyData.read(str(path))["vertex"].data
