"""ScanNet-style RGB-D folders: reader (as :class:`SceneSample`) and a small writer.

Folder layout of one scene (as exported by ScanNet's ``SensReader`` plus label images)::

    scene/
      color/{i}.jpg                 RGB frames (any size)
      depth/{i}.png                 uint16 depth in millimetres (``depth_scale`` per metre), 0 = invalid
      pose/{i}.txt                  4x4 camera-to-world (OpenCV camera axes); non-finite = invalid frame
      intrinsic/intrinsic_color.txt 4x4 (top-left 3x3 is K of the colour frames)
      intrinsic/intrinsic_depth.txt 4x4, optional (K of the depth frames; default: colour K
                                    scaled to the depth resolution)
      label/{i}.png                 optional raw class ids (uint8/uint16); missing = all ignore

``i`` is an integer frame id; frames are ordered by it.  Raw label ids go through
``label_map`` (raw id -> our class id, everything unmapped becomes 255 = ignore); without a
map the stored ids must already be ours (ids >= number of classes become 255).

Images are resized (short side first) and centre-cropped to the model size with K adjusted
(:func:`lsm_train.data.sample.resize_and_crop`); depth and labels use nearest-neighbour sampling.
Depth is assumed registered to the colour frame up to the resolution change (true for the
ScanNet export to within a pixel); the colour K is used for the output view.
K is used as stored, with this project's pixel-centre convention (+0.5).

Context/target selection (:class:`ScanNetStyleDataset`): context pair (frame position p,
p + gap) with targets evenly spaced strictly between them.  ``lsm_protocol=True``
reproduces LSM's test split: targets are frames whose id % 8 is 1 or 4, context frames are
the neighbours at positions -1 / +1.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from .sample import CLASS_NAMES, IGNORE_LABEL, SceneSample, ViewSample, depth_to_mm_png, resize_and_crop

# Convenience map from NYU40 ids (ScanNet ``label-filt`` after its nyu40 mapping) to our 8
# classes: wall, floor (+ floor mat), ceiling, chair, table (+ desk), sofa, bed; every other
# NYU40 class becomes ``other``; 0 (unannotated) is ignored.  Our choice, not an official table.
NYU40_TO_LSM: Dict[int, int] = {i: 7 for i in range(1, 41)}
NYU40_TO_LSM.update({1: 0, 2: 1, 20: 1, 22: 2, 5: 3, 7: 4, 14: 4, 6: 5, 4: 6})

_ID = re.compile(r"^(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)


def _read_matrix(path: str) -> np.ndarray:
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read matrix file {path}: {e}") from None
    if m.shape != (4, 4):
        raise ValueError(f"{path}: expected a 4x4 matrix, got shape {m.shape}")
    return m


def _label_lut(label_map: Optional[Mapping[int, int]], num_classes: int) -> np.ndarray:
    if label_map is None:
        lut = np.full(65536, IGNORE_LABEL, np.uint8)
        lut[:num_classes] = np.arange(num_classes)
        return lut
    lut = np.full(65536, IGNORE_LABEL, np.uint8)
    for raw, ours in label_map.items():
        raw, ours = int(raw), int(ours)
        if not 0 <= raw < 65536:
            raise ValueError(f"label_map raw id {raw} outside [0, 65535]")
        if not (0 <= ours < num_classes or ours == IGNORE_LABEL):
            raise ValueError(f"label_map target {ours} must be in [0, {num_classes}) or {IGNORE_LABEL}")
        lut[raw] = ours
    return lut


def is_scene_folder(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "color")) and os.path.isdir(os.path.join(path, "pose"))


class ScanNetStyleScene:
    """One ScanNet-style scene folder, frames loaded on demand at the model size."""

    def __init__(self, folder: str, size=256, label_map: Optional[Mapping[int, int]] = None,
                 depth_scale: float = 1000.0, class_names: Sequence[str] = CLASS_NAMES) -> None:
        if not is_scene_folder(folder):
            raise ValueError(f"{folder} is not a ScanNet-style scene (needs color/ and pose/)")
        self.folder = folder
        self.size = size
        self.depth_scale = float(depth_scale)
        self.class_names = tuple(class_names)
        self._lut = _label_lut(label_map, len(self.class_names))
        files = {}
        for name in os.listdir(os.path.join(folder, "color")):
            m = _ID.match(name)
            if m:
                files[int(m.group(1))] = name
        if not files:
            raise ValueError(f"{folder}/color holds no numbered frames")
        self.frame_ids: List[int] = sorted(files)
        self._color_files = files
        self.K_color = _read_matrix(os.path.join(folder, "intrinsic", "intrinsic_color.txt"))[:3, :3]
        depth_k = os.path.join(folder, "intrinsic", "intrinsic_depth.txt")
        self.K_depth = _read_matrix(depth_k)[:3, :3] if os.path.isfile(depth_k) else None

    def __len__(self) -> int:
        return len(self.frame_ids)

    def pose(self, frame_id: int) -> np.ndarray:
        return _read_matrix(os.path.join(self.folder, "pose", f"{frame_id}.txt"))

    def pose_valid(self, frame_id: int) -> bool:
        path = os.path.join(self.folder, "pose", f"{frame_id}.txt")
        return os.path.isfile(path) and bool(np.all(np.isfinite(self.pose(frame_id))))

    def load_frame(self, frame_id: int) -> ViewSample:
        """Frame ``frame_id`` resized/cropped to ``self.size`` as a :class:`ViewSample`."""
        if frame_id not in self._color_files:
            raise ValueError(f"frame {frame_id} not in {self.folder}")
        bgr = cv2.imread(os.path.join(self.folder, "color", self._color_files[frame_id]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read colour frame {frame_id} in {self.folder}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        image, K = resize_and_crop(rgb, self.K_color, self.size)

        depth_path = os.path.join(self.folder, "depth", f"{frame_id}.png")
        if os.path.isfile(depth_path):
            raw = cv2.imread(depth_path, cv2.IMREAD_UNCHANGED)
            if raw is None or raw.ndim != 2:
                raise ValueError(f"cannot read single-channel depth {depth_path}")
            depth = raw.astype(np.float32) / self.depth_scale
            dh, dw = depth.shape
            K_d = self.K_depth
            if K_d is None:
                K_d = self.K_color.copy()
                K_d[0] *= dw / w
                K_d[1] *= dh / h
            depth, _ = resize_and_crop(depth, K_d, self.size, nearest=True)
        else:
            depth = np.zeros(image.shape[:2], np.float32)

        label_path = os.path.join(self.folder, "label", f"{frame_id}.png")
        if os.path.isfile(label_path):
            raw = cv2.imread(label_path, cv2.IMREAD_UNCHANGED)
            if raw is None or raw.ndim != 2:
                raise ValueError(f"cannot read single-channel label image {label_path}")
            lh, lw = raw.shape
            K_l = self.K_color.copy()
            K_l[0] *= lw / w
            K_l[1] *= lh / h
            labels, _ = resize_and_crop(raw, K_l, self.size, nearest=True)
            labels = self._lut[labels.astype(np.int64)]
        else:
            labels = np.full(image.shape[:2], IGNORE_LABEL, np.uint8)
        pose = self.pose(frame_id)
        if not np.all(np.isfinite(pose)):
            raise ValueError(f"frame {frame_id} in {self.folder} has an invalid (non-finite) pose")
        return ViewSample(image=image, depth=depth, labels=labels, K=K, c2w=pose.astype(np.float32))


def _scene_folders(root: str) -> List[str]:
    if is_scene_folder(root):
        return [root]
    if not os.path.isdir(root):
        raise ValueError(f"dataset root {root} does not exist")
    scenes = [os.path.join(root, n) for n in sorted(os.listdir(root)) if is_scene_folder(os.path.join(root, n))]
    if not scenes:
        raise ValueError(f"{root} holds no ScanNet-style scene folders")
    return scenes


class ScanNetStyleDataset:
    """(context pair, targets) tuples from one scene folder or a folder of scene folders.

    Item ``k`` is a :class:`SceneSample` whose ``meta`` holds ``scene`` and ``frame_ids``
    (context ids first).  Tuples containing a frame with an invalid pose are skipped.
    Works as a ``torch.utils.data.Dataset`` (``__len__`` / ``__getitem__``).
    """

    def __init__(self, root: str, size=256, gap: int = 2, stride: Optional[int] = None,
                 num_targets: int = 1, label_map: Optional[Mapping[int, int]] = None,
                 lsm_protocol: bool = False, depth_scale: float = 1000.0,
                 class_names: Sequence[str] = CLASS_NAMES) -> None:
        if gap < 1:
            raise ValueError(f"gap must be >= 1, got {gap}")
        if num_targets < 0 or (num_targets > gap - 1 and not lsm_protocol):
            raise ValueError(f"num_targets={num_targets} needs gap >= num_targets + 1 (got gap={gap}) "
                             "so that targets lie strictly between the context frames")
        stride = gap if stride is None else int(stride)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.scenes = [ScanNetStyleScene(f, size, label_map, depth_scale, class_names) for f in _scene_folders(root)]
        self.class_names = tuple(class_names)
        self.items: List[Tuple[int, Tuple[int, ...], Tuple[int, ...]]] = []
        for s, scene in enumerate(self.scenes):
            ids = scene.frame_ids
            valid = {fid: scene.pose_valid(fid) for fid in ids}
            if lsm_protocol:
                tuples = [((ids[p - 1], ids[p + 1]), (ids[p],)) for p in range(1, len(ids) - 1)
                          if ids[p] % 8 in (1, 4)]
            else:
                tuples = []
                for p in range(0, len(ids) - gap, stride):
                    tgt = tuple(ids[p + int(round(gap * (k + 1) / (num_targets + 1)))] for k in range(num_targets))
                    tuples.append(((ids[p], ids[p + gap]), tgt))
            for ctx, tgt in tuples:
                if all(valid[f] for f in ctx + tgt):
                    self.items.append((s, ctx, tgt))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> SceneSample:
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} samples")
        s, ctx, tgt = self.items[k]
        scene = self.scenes[s]
        return SceneSample(context=[scene.load_frame(f) for f in ctx], target=[scene.load_frame(f) for f in tgt],
                           class_names=self.class_names,
                           meta={"source": "scannet_style", "scene": scene.folder, "frame_ids": list(ctx + tgt)})


def write_scannet_style(folder: str, frames: Sequence[ViewSample], frame_ids: Optional[Sequence[int]] = None,
                        raw_label_ids: Optional[Mapping[int, int]] = None, jpeg_quality: int = 95,
                        depth_downscale: int = 1) -> None:
    """Write ``frames`` (all sharing one K and size) as a ScanNet-style scene folder.

    ``raw_label_ids``: our class id -> raw id written to ``label/`` (uint16 PNG when a raw id
    exceeds 255); default writes our ids.  ``depth_downscale``: integer factor by which depth
    is stored smaller (with a matching ``intrinsic_depth.txt``), as in real ScanNet exports.
    """
    if not frames:
        raise ValueError("write_scannet_style needs at least one frame")
    K = frames[0].K
    for f in frames:
        if not np.allclose(f.K, K) or f.image.shape != frames[0].image.shape:
            raise ValueError("all frames must share one K and one image size")
    ids = list(range(len(frames))) if frame_ids is None else [int(i) for i in frame_ids]
    if len(ids) != len(frames):
        raise ValueError("frame_ids must have one id per frame")
    if depth_downscale < 1:
        raise ValueError(f"depth_downscale must be >= 1, got {depth_downscale}")
    for sub in ("color", "depth", "pose", "intrinsic", "label"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    K4 = np.eye(4)
    K4[:3, :3] = K
    np.savetxt(os.path.join(folder, "intrinsic", "intrinsic_color.txt"), K4, fmt="%.8f")
    Kd = K4.copy()
    Kd[:2] /= depth_downscale
    np.savetxt(os.path.join(folder, "intrinsic", "intrinsic_depth.txt"), Kd, fmt="%.8f")
    lut = None
    if raw_label_ids is not None:
        big = max(raw_label_ids.values()) > 255
        lut = np.zeros(256, np.uint16 if big else np.uint8)
        for ours, raw in raw_label_ids.items():
            lut[int(ours)] = int(raw)
    for fid, f in zip(ids, frames):
        ok = cv2.imwrite(os.path.join(folder, "color", f"{fid}.jpg"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        depth = f.depth
        if depth_downscale > 1:
            h, w = depth.shape
            depth = cv2.resize(depth, (w // depth_downscale, h // depth_downscale), interpolation=cv2.INTER_NEAREST)
        ok &= cv2.imwrite(os.path.join(folder, "depth", f"{fid}.png"), depth_to_mm_png(depth))
        labels = f.labels if lut is None else lut[f.labels]
        ok &= cv2.imwrite(os.path.join(folder, "label", f"{fid}.png"), labels)
        if not ok:
            raise OSError(f"could not write frame {fid} into {folder}")
        np.savetxt(os.path.join(folder, "pose", f"{fid}.txt"), f.c2w.astype(np.float64), fmt="%.8f")
