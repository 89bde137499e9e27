"""numpy <-> sensor_msgs/PointCloud2 for lsm clouds.

Layout (little-endian, 24 bytes a point, unorganised: height 1, width N):

========== ======= ====== ===============================================
field      offset  type   meaning
========== ======= ====== ===============================================
x, y, z    0,4,8   f32    position, metres, in header.frame_id
rgb        12      f32    colour packed as PCL/RViz do: uint32 0x00RRGGBB
                          reinterpreted as float32
label      16      u32    class index into the node's ``labels`` parameter
confidence 20      f32    pointmap confidence
========== ======= ====== ===============================================

Optional fields (rgb, label, confidence) are written only when given.  Reading accepts
any cloud that has float32 x, y, z; it uses sensor_msgs_py when importable.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np


class PointCloudError(ValueError):
    """Arrays or a PointCloud2 message that cannot be converted (the message says why)."""


_FIELD_TYPES = {  # name -> (PointField datatype, numpy dtype)
    "x": (7, np.dtype("<f4")), "y": (7, np.dtype("<f4")), "z": (7, np.dtype("<f4")),
    "rgb": (7, np.dtype("<f4")), "label": (6, np.dtype("<u4")),
    "confidence": (7, np.dtype("<f4")),
}
# PointField datatype -> numpy dtype (little-endian)
_DATATYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 RGB -> ``(N,)`` float32 holding 0x00RRGGBB bit patterns."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 2 or rgb.shape[1] != 3:
        raise PointCloudError(f"colors must be (N, 3), got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise PointCloudError(f"colors must be uint8, got {rgb.dtype}")
    c = rgb.astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """``(N,)`` float32 packed colours -> ``(N, 3)`` uint8 RGB."""
    u = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=1).astype(np.uint8)


def make_pointcloud(points: np.ndarray, colors: Optional[np.ndarray] = None,
                    labels: Optional[np.ndarray] = None,
                    confidence: Optional[np.ndarray] = None, header=None):
    """Build an unorganised PointCloud2 from ``(N, 3)`` points and optional per-point data.

    colors: ``(N, 3)`` uint8 RGB; labels: ``(N,)`` non-negative integers;
    confidence: ``(N,)`` floats.  Non-finite points are kept (``is_dense`` = False then).
    """
    from sensor_msgs.msg import PointCloud2, PointField

    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise PointCloudError(f"points must be (N, 3), got shape {points.shape}")
    if not np.issubdtype(points.dtype, np.number):
        raise PointCloudError(f"points must be numeric, got {points.dtype}")
    n = points.shape[0]
    columns = {"x": points[:, 0], "y": points[:, 1], "z": points[:, 2]}
    if colors is not None:
        columns["rgb"] = pack_rgb(colors)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise PointCloudError(f"labels must be ({n},), got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or (n and labels.min() < 0):
            raise PointCloudError("labels must be non-negative integers")
        columns["label"] = labels
    if confidence is not None:
        confidence = np.asarray(confidence)
        if confidence.shape != (n,):
            raise PointCloudError(
                f"confidence must be ({n},), got shape {confidence.shape}")
        columns["confidence"] = confidence
    for name, col in columns.items():
        if col.shape[0] != n:
            raise PointCloudError(f"{name} has {col.shape[0]} entries, points have {n}")

    dtype = np.dtype([(name, _FIELD_TYPES[name][1]) for name in columns])
    record = np.empty(n, dtype=dtype)
    for name, col in columns.items():
        record[name] = col
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = 1, n
    msg.fields = [PointField(name=name, offset=dtype.fields[name][1],
                             datatype=_FIELD_TYPES[name][0], count=1) for name in columns]
    msg.is_bigendian = False
    msg.point_step = dtype.itemsize
    msg.row_step = dtype.itemsize * n
    msg.is_dense = bool(np.isfinite(points).all())
    msg.data = record.tobytes()
    return msg


def _structured_dtype(msg) -> np.dtype:
    names, formats, offsets = [], [], []
    order = ">" if msg.is_bigendian else "<"
    for f in msg.fields:
        if f.datatype not in _DATATYPES:
            raise PointCloudError(f"field {f.name!r} has unknown datatype {f.datatype}")
        names.append(f.name)
        base = order + _DATATYPES[f.datatype]
        formats.append((base, (f.count,)) if f.count > 1 else base)
        offsets.append(f.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": msg.point_step})


def _structured_points(msg) -> np.ndarray:
    try:
        from sensor_msgs_py import point_cloud2  # ROS 2 install only
        return np.asarray(point_cloud2.read_points(msg, skip_nans=False)).reshape(-1)
    except ImportError:
        pass
    n = msg.width * msg.height
    if msg.row_step * msg.height != len(msg.data) or msg.point_step * msg.width > msg.row_step:
        raise PointCloudError(
            f"data holds {len(msg.data)} bytes, expected row_step*height = "
            f"{msg.row_step}*{msg.height} with point_step*width <= row_step")
    dtype = _structured_dtype(msg)
    raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.row_step)
    raw = np.ascontiguousarray(raw[:, :msg.point_step * msg.width])
    return raw.view(dtype).reshape(n)


def read_pointcloud(msg) -> Dict[str, np.ndarray]:
    """PointCloud2 -> arrays: ``points`` (N, 3) float32 and, when present, ``colors``
    (N, 3) uint8, ``labels`` (N,) uint32, ``confidence`` (N,) float32."""
    names = [f.name for f in msg.fields]
    for axis in ("x", "y", "z"):
        if axis not in names:
            raise PointCloudError(f"cloud has no field {axis!r} (fields: {names})")
    rec = _structured_points(msg)
    out = {"points": np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float32)}
    if "rgb" in names:
        out["colors"] = unpack_rgb(np.asarray(rec["rgb"], dtype=np.float32))
    if "label" in names:
        out["labels"] = np.asarray(rec["label"]).astype(np.uint32)
    if "confidence" in names:
        out["confidence"] = np.asarray(rec["confidence"]).astype(np.float32)
    return out
