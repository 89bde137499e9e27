"""Plain results of :class:`lsm.perception.Perception`: tensors, arrays and cameras, no model.

Frames and units
----------------
* Everything 3-D is in the **reference camera frame** = view 0's camera (OpenCV / REP-103
  optical frame: x right, y down, z forward), in the model's scene units: metric only up
  to an unknown global scale (an image pair alone does not fix the scale).
* ``c2w[v]`` is view v's camera-to-reference pose; ``c2w[0]`` is the identity.
* ``intrinsics[v]`` are pixel intrinsics at the model resolution S x S; the per-view
  :class:`~lsm.preprocess.ImageTransform` maps them (and every 2-D output) back to the
  original camera images.

A :class:`Reconstruction` is immutable by convention and holds no reference to the network:
keeping one (for queries, for saving) keeps only its tensors. Importing this module loads
neither torch nor OpenCV.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:  # annotations only: this module needs no torch to import
    import torch

    from .gaussians import Gaussians
    from .preprocess import ImageTransform

LABEL_NONE = 255  # label id of camera pixels the model did not see (outside its crop)
UNITS = "model units"  # metric only up to an unknown global scale (an image pair alone)
METRES = "m"  # once a sensor-given scale was applied (see lsm.metric)


@dataclass(eq=False)  # identity semantics: a reconstruction is one event, not a value
class Reconstruction:
    """What one forward pass gives for an image pair (view 0 = reference)."""

    images: torch.Tensor  # (2,S,S,3) RGB in [0,1], model input
    pointmaps: torch.Tensor  # (2,S,S,3) reference frame
    confidence: torch.Tensor  # (2,S,S) >= 1
    gaussians: Gaussians  # N = 2*S*S, ordered (view, row, col); on the model's device
    intrinsics: torch.Tensor  # (2,3,3) model resolution, pixels
    c2w: torch.Tensor  # (2,4,4)
    transforms: Sequence[ImageTransform]  # per view: camera image <-> model image
    focal: float = 0.0  # focal length of view 0, model pixels (known or estimated)
    camera_status: str = ""  # how the cameras were obtained (PnP or a fallback)
    focal_estimated: float = float("nan")  # the pointmaps' own focal, model pixels
    units: str = UNITS  # UNITS or METRES
    scale: Optional[float] = None  # metres per model unit applied to this result, if any
    scale_source: str = "none"  # stereo | depth | odometry | fixed | none
    scale_detail: str = ""  # how the scale was obtained, or why there is none
    depth_fused: Tuple[float, float] = (0.0, 0.0)  # per view: fraction of pixels from depth
    frame: str = ""  # '' = view 0's optical frame; else the frame of transformed() (a world)
    # how far to trust view 1's pose, in [0, 1] (lsm.geometry.pose_check; 1 when a sensor
    # gave it); NaN = not checked; pose_check says how it was judged
    pose_confidence: float = float("nan")
    pose_check: str = ""
    # (2,S,S) bool: pixels (= Gaussians, same order) on the floor by measured geometry
    # (lsm.geometry.floor: the robot's floor frame and a metric result); None = not decided,
    # the labels are the model's alone; floor_detail says why or how
    floor: Optional[torch.Tensor] = None
    floor_detail: str = ""

    @property
    def size(self) -> int:
        """Model resolution S."""
        return int(self.images.shape[1])

    def check_view(self, view: int) -> None:
        if view not in (0, 1):
            raise ValueError(f"unknown view {view}: a reconstruction has views 0 and 1")

    @property
    def metric(self) -> bool:
        return self.units == METRES

    def scaled(self, scale: float, source: str, detail: str = "") -> "Reconstruction":
        """This reconstruction in metres: every length multiplied by ``scale`` (metres per
        model unit): pointmaps, Gaussian centres and sizes, camera translations."""
        import dataclasses

        g = self.gaussians
        c2w = self.c2w.clone()
        c2w[:, :3, 3] *= scale
        return dataclasses.replace(
            self, pointmaps=self.pointmaps * scale, c2w=c2w,
            gaussians=dataclasses.replace(g, means=g.means * scale, scales=g.scales * scale),
            units=METRES, scale=float(scale), scale_source=source, scale_detail=detail)

    def transformed(self, T, frame: str) -> "Reconstruction":
        """This reconstruction expressed in ``frame``: ``T`` (4x4) maps points of the current
        frame into it (e.g. world_T_camera from TF at the image stamp, translation in the
        result's units). Pointmaps, Gaussian centres and orientations and both cameras move;
        sizes, colours and features do not."""
        import dataclasses

        import torch

        T = torch.as_tensor(np.asarray(T, dtype=np.float64))
        g = self.gaussians
        R, t = T[:3, :3].to(g.means), T[:3, 3].to(g.means)
        w, x, y, z = _rotation_quaternion(T[:3, :3].numpy())
        q = torch.tensor([w, x, y, z], dtype=g.rotations.dtype, device=g.rotations.device)
        Rp, tp = T[:3, :3].to(self.pointmaps), T[:3, 3].to(self.pointmaps)
        return dataclasses.replace(
            self, pointmaps=self.pointmaps @ Rp.T + tp, c2w=T.to(self.c2w) @ self.c2w,
            gaussians=dataclasses.replace(g, means=g.means @ R.T + t,
                                          rotations=_quaternion_product(q, g.rotations)),
            frame=frame)

    def intrinsics_original(self) -> np.ndarray:
        """(2,3,3) float64 pixel intrinsics at each view's original camera resolution."""
        return np.stack([self.transforms[v].intrinsics_to_original(self.intrinsics[v].cpu().numpy())
                         for v in range(2)])

    def image_sizes(self) -> np.ndarray:
        """(2,2) int64 (width, height) of each original camera image."""
        return np.array([self.transforms[v].original_size for v in range(2)], dtype=np.int64)


def _rotation_quaternion(R: np.ndarray):
    """3x3 rotation -> (w, x, y, z)."""
    from transforms3d.quaternions import mat2quat

    return mat2quat(np.asarray(R, dtype=np.float64))


def _quaternion_product(q, r):
    """q (4,) times every r (..., 4), both wxyz: the rotation r followed by q."""
    import torch

    w1, x1, y1, z1 = q.unbind(-1)
    w2, x2, y2, z2 = r.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], dim=-1)


@dataclass
class PointCloud:
    """A labelled cloud from both views' pointmaps, in the reconstruction's frame and units."""

    points: np.ndarray  # (N, 3) float32
    colors: np.ndarray  # (N, 3) uint8 RGB
    labels: np.ndarray  # (N,) uint32 index into label_names
    confidence: np.ndarray  # (N,) float32 pointmap confidence (>= 1)
    label_names: Tuple[str, ...] = ()
    label_scores: Optional[np.ndarray] = None  # (N,) float32 cosine of each point to its label


@dataclass
class ObjectBox:
    """An object (or all points of one class) as an axis-aligned box in the reference frame,
    in the reconstruction's frame and units: centre = median of its points, size = their
    2nd-98th percentile range."""

    label: str
    score: float  # in [0, 1]; what it means is said where the box is made
    center: np.ndarray  # (3,)
    size: np.ndarray  # (3,) along the box axes
    points: int  # how many points support it
    rotation: Optional[np.ndarray] = None  # (3, 3) columns = box axes; None = the frame's axes


def box_of(label: str, score: float, points: np.ndarray) -> ObjectBox:
    """The :class:`ObjectBox` of ``points`` (M, 3), M >= 1."""
    lo, hi = np.percentile(points, [2, 98], axis=0)
    return ObjectBox(label, float(score), np.median(points, axis=0).astype(np.float64),
                     (hi - lo).astype(np.float64), int(len(points)))


def class_boxes(cloud: PointCloud, min_points: int = 30) -> list:
    """One :class:`ObjectBox` per label with at least ``min_points`` points in ``cloud``;
    score = mean of (cosine + 1) / 2 of those points to the label (0.5 when unknown).

    Classes, not instances: two chairs make one box (splitting them is the map's job).
    """
    boxes = []
    for index, name in enumerate(cloud.label_names):
        sel = cloud.labels == index
        if int(sel.sum()) < min_points:
            continue
        score = (0.5 if cloud.label_scores is None
                 else float(np.mean((cloud.label_scores[sel] + 1.0) / 2.0)))
        boxes.append(box_of(name, score, cloud.points[sel]))
    return boxes


@dataclass
class ViewImages:
    """2-D outputs at one input view, at that camera's ORIGINAL resolution.

    Camera pixels outside the model's centre crop get :data:`LABEL_NONE` / black / NaN.
    Fields not asked for are None.
    """

    view: int
    label_ids: Optional[np.ndarray] = None  # (H, W) uint8 index into label_names
    label_color: Optional[np.ndarray] = None  # (H, W, 3) uint8
    depth: Optional[np.ndarray] = None  # (H, W) float32 rendered z-depth, NaN where empty
    rendered: Optional[np.ndarray] = None  # (H, W, 3) uint8 rendered colour
    label_names: Tuple[str, ...] = ()


@dataclass
class QueryResult:
    """Answer to a text query at one view."""

    label: str
    view: int
    found: bool
    score: float  # mean relevance of the selected pixels (0..1), 0 when not found
    mask: np.ndarray  # bool (S,S) at model resolution
    mask_original: np.ndarray  # uint8 (H,W) at the camera resolution, 255 = object
    points: np.ndarray  # (M,3) float32, reference frame
    centroid: np.ndarray  # (3,)
    extent: np.ndarray  # (3,) axis-aligned size, reference frame
    message: str = ""
