"""Training/evaluation sample containers and their on-disk format.

Conventions
-----------
* ``image``: uint8 (H, W, 3), **RGB** order.
* ``depth``: float32 (H, W), metric **z-depth** in metres (OpenCV camera, z forward).
  **0 marks an invalid pixel** (never NaN), as in ScanNet depth PNGs.
* ``labels``: uint8 (H, W) class ids into ``class_names``; **255 = ignore**.
* ``K``: float32 (3, 3) pinhole intrinsics.  Pixel (u, v) has its centre at (u + 0.5, v + 0.5),
  so the image spans [0, W] x [0, H] and a centred principal point is (W/2, H/2)
  (same convention as :mod:`lsm.geometry.pointmaps`).
* ``c2w``: float32 (4, 4) camera-to-world pose, OpenCV camera axes (x right, y down, z forward):
  ``X_world = c2w[:3, :3] @ X_cam + c2w[:3, 3]``.
* ``instance``: optional uint16 (H, W) instance ids (0 = room structure / unknown).

On-disk format (one folder per :class:`SceneSample`)
----------------------------------------------------
Views are numbered context first, then targets: ``i = 0, 1`` are the context views and
``i >= 2`` the target views.

* ``view_{i}_rgb.png``     -- 8-bit colour PNG (stored BGR by OpenCV, read back as RGB).
* ``view_{i}_depth.png``   -- 16-bit PNG, depth in **millimetres** (rounded), 0 = invalid.
* ``view_{i}_labels.png``  -- 8-bit PNG with class ids, 255 = ignore.
* ``view_{i}_instance.png``-- optional 16-bit PNG with instance ids.
* ``cameras.json`` -- ``{"format": "lsm_ros.sample/1", "class_names": [...],
  "views": [{"index": i, "role": "context"|"target", "K": 3x3, "c2w": 4x4,
  "height": H, "width": W}, ...], "meta": {...}}`` (``meta`` must be JSON-serialisable).

Depth survives a round trip to millimetre precision (values above 65.535 m are clipped to
invalid); everything else round-trips exactly.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import cv2
import numpy as np

CLASS_NAMES: Tuple[str, ...] = ("wall", "floor", "ceiling", "chair", "table", "sofa", "bed", "other")
IGNORE_LABEL = 255
FORMAT_TAG = "lsm_ros.sample/1"


@dataclass
class ViewSample:
    """One posed RGB-D view with semantic labels (see module docstring for conventions)."""

    image: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    K: np.ndarray
    c2w: np.ndarray
    instance: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        img = np.asarray(self.image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
        h, w = img.shape[:2]
        depth = np.asarray(self.depth, dtype=np.float32)
        if depth.shape != (h, w):
            raise ValueError(f"depth must be (H, W)=({h}, {w}), got {depth.shape}")
        if not np.all(np.isfinite(depth)) or np.any(depth < 0):
            raise ValueError("depth must be finite and >= 0 (0 marks invalid pixels, not NaN)")
        labels = np.asarray(self.labels)
        if labels.shape != (h, w) or labels.dtype != np.uint8:
            raise ValueError(f"labels must be uint8 (H, W)=({h}, {w}), got {labels.dtype} {labels.shape}")
        K = np.asarray(self.K, dtype=np.float32)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            raise ValueError(f"K must be a finite (3, 3) matrix, got shape {K.shape}")
        c2w = np.asarray(self.c2w, dtype=np.float32)
        if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
            raise ValueError(f"c2w must be a finite (4, 4) matrix, got shape {c2w.shape}")
        if self.instance is not None:
            inst = np.asarray(self.instance)
            if inst.shape != (h, w):
                raise ValueError(f"instance must be (H, W)=({h}, {w}), got {inst.shape}")
            self.instance = inst.astype(np.uint16)
        self.image, self.depth, self.labels, self.K, self.c2w = img, depth, labels, K, c2w

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def valid(self) -> np.ndarray:
        """bool (H, W): pixels with valid depth."""
        return self.depth > 0


@dataclass
class SceneSample:
    """Two context views (the model input pair) plus target views for supervision/evaluation."""

    context: List[ViewSample]
    target: List[ViewSample]
    class_names: Tuple[str, ...] = CLASS_NAMES
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.context) != 2:
            raise ValueError(f"a SceneSample needs exactly 2 context views, got {len(self.context)}")
        self.context = list(self.context)
        self.target = list(self.target)
        self.class_names = tuple(self.class_names)
        sizes = {(v.height, v.width) for v in self.views}
        if len(sizes) != 1:
            raise ValueError(f"all views of a SceneSample must share one image size, got {sorted(sizes)}")

    @property
    def views(self) -> List[ViewSample]:
        """Context views first, then targets."""
        return self.context + self.target


def _check_folder_views(folder: str, n: int) -> None:
    for i in range(n):
        for kind in ("rgb", "depth", "labels"):
            path = os.path.join(folder, f"view_{i}_{kind}.png")
            if not os.path.isfile(path):
                raise ValueError(f"missing sample file {path}")


def depth_to_mm_png(depth: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres (rounded); invalid or out-of-range -> 0."""
    mm = np.round(np.asarray(depth, dtype=np.float64) * 1000.0)
    mm[(mm < 0) | (mm > 65535) | ~np.isfinite(mm)] = 0
    return mm.astype(np.uint16)


def depth_from_mm_png(mm: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float32 metres (0 stays 0 = invalid)."""
    return (np.asarray(mm).astype(np.float32) / 1000.0).astype(np.float32)


def save_sample(sample: SceneSample, folder: str) -> None:
    """Write ``sample`` into ``folder`` (created if needed) in the format described above."""
    if not isinstance(sample, SceneSample):
        raise ValueError(f"save_sample expects a SceneSample, got {type(sample).__name__}")
    os.makedirs(folder, exist_ok=True)
    views_meta = []
    for i, view in enumerate(sample.views):
        role = "context" if i < len(sample.context) else "target"
        ok = cv2.imwrite(os.path.join(folder, f"view_{i}_rgb.png"), cv2.cvtColor(view.image, cv2.COLOR_RGB2BGR))
        ok &= cv2.imwrite(os.path.join(folder, f"view_{i}_depth.png"), depth_to_mm_png(view.depth))
        ok &= cv2.imwrite(os.path.join(folder, f"view_{i}_labels.png"), view.labels)
        if view.instance is not None:
            ok &= cv2.imwrite(os.path.join(folder, f"view_{i}_instance.png"), view.instance)
        if not ok:
            raise OSError(f"could not write images for view {i} into {folder}")
        views_meta.append({
            "index": i, "role": role, "height": view.height, "width": view.width,
            "K": view.K.astype(np.float64).tolist(), "c2w": view.c2w.astype(np.float64).tolist(),
        })
    doc = {"format": FORMAT_TAG, "class_names": list(sample.class_names), "views": views_meta,
           "meta": sample.meta}
    with open(os.path.join(folder, "cameras.json"), "w") as f:
        json.dump(doc, f, indent=1)


def load_sample(folder: str) -> SceneSample:
    """Read a folder written by :func:`save_sample`."""
    path = os.path.join(folder, "cameras.json")
    if not os.path.isfile(path):
        raise ValueError(f"{folder} is not a sample folder (no cameras.json)")
    with open(path) as f:
        doc = json.load(f)
    if doc.get("format") != FORMAT_TAG:
        raise ValueError(f"{path}: unknown format tag {doc.get('format')!r}, expected {FORMAT_TAG!r}")
    views_meta = sorted(doc["views"], key=lambda v: v["index"])
    _check_folder_views(folder, len(views_meta))
    context, target = [], []
    for vm in views_meta:
        i = vm["index"]
        bgr = cv2.imread(os.path.join(folder, f"view_{i}_rgb.png"), cv2.IMREAD_COLOR)
        mm = cv2.imread(os.path.join(folder, f"view_{i}_depth.png"), cv2.IMREAD_UNCHANGED)
        labels = cv2.imread(os.path.join(folder, f"view_{i}_labels.png"), cv2.IMREAD_UNCHANGED)
        inst_path = os.path.join(folder, f"view_{i}_instance.png")
        instance = cv2.imread(inst_path, cv2.IMREAD_UNCHANGED) if os.path.isfile(inst_path) else None
        if bgr is None or mm is None or labels is None:
            raise ValueError(f"could not read images of view {i} in {folder}")
        if mm.dtype != np.uint16:
            raise ValueError(f"view_{i}_depth.png must be a 16-bit PNG, got {mm.dtype}")
        view = ViewSample(
            image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth=depth_from_mm_png(mm),
            labels=labels.astype(np.uint8), K=np.array(vm["K"], np.float32),
            c2w=np.array(vm["c2w"], np.float32), instance=instance,
        )
        (context if vm["role"] == "context" else target).append(view)
    return SceneSample(context=context, target=target, class_names=tuple(doc["class_names"]),
                       meta=doc.get("meta", {}))


def resize_and_crop(image: np.ndarray, K: np.ndarray, size, nearest: bool = False):
    """Resize so the image covers ``size`` (short side first), then centre-crop; adjust K.

    ``image``: (H, W) or (H, W, C) array; ``K``: (3, 3) intrinsics of ``image`` (pixel centres
    at +0.5, see module docstring); ``size``: int or ``(height, width)`` of the output.
    ``nearest=True`` for depth and label maps (no value mixing); colour uses area/linear.
    Returns ``(resized_image, K_new float32)``.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got {K.shape}")
    if isinstance(size, (int, np.integer)):
        out_h = out_w = int(size)
    else:
        out_h, out_w = (int(s) for s in size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be positive, got {size!r}")
    h, w = image.shape[:2]
    s = max(out_h / h, out_w / w)
    new_h, new_w = max(out_h, int(round(h * s))), max(out_w, int(round(w * s)))
    if (new_h, new_w) != (h, w):
        if nearest:
            interp = cv2.INTER_NEAREST
        else:
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        src = image
        if image.dtype == np.bool_:
            src = image.astype(np.uint8)
        resized = cv2.resize(src, (new_w, new_h), interpolation=interp)
        if image.ndim == 3 and resized.ndim == 2:
            resized = resized[:, :, None]
        image = resized.astype(image.dtype)
    y0, x0 = (new_h - out_h) // 2, (new_w - out_w) // 2
    out = image[y0:y0 + out_h, x0:x0 + out_w]
    K_new = K.copy()
    K_new[0] *= new_w / w
    K_new[1] *= new_h / h
    K_new[0, 2] -= x0
    K_new[1, 2] -= y0
    return np.ascontiguousarray(out), K_new.astype(np.float32)


def resize_view(view: ViewSample, size) -> ViewSample:
    """:func:`resize_and_crop` applied to a whole view (depth, labels and instances nearest)."""
    img, K = resize_and_crop(view.image, view.K, size)
    depth, _ = resize_and_crop(view.depth, view.K, size, nearest=True)
    labels, _ = resize_and_crop(view.labels, view.K, size, nearest=True)
    inst = None if view.instance is None else resize_and_crop(view.instance, view.K, size, nearest=True)[0]
    return ViewSample(image=img, depth=depth, labels=labels, K=K, c2w=view.c2w, instance=inst)
