"""Typed settings of :class:`lsm.perception.Perception`: where the weights come from and what a
published cloud holds. Plain dataclasses, importable without torch (the ROS node builds them
from its parameters before the model loads); their defaults are the node's defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

# The official LSM demo label set, in the official order
# (NVlabs/LSM large_spatial_model/utils/visualization_utils.py: LABELS).
DEFAULT_LABELS: Tuple[str, ...] = ("wall", "floor", "ceiling", "chair", "table", "sofa", "bed", "other")
IMAGE_OUTPUTS: Tuple[str, ...] = ("labels", "labels_color", "depth", "rendered")
MODEL_CONFIGS: Tuple[str, ...] = ("tiny", "paper")
PRECISIONS: Tuple[str, ...] = ("fp32", "fp16", "bf16")
SCALE_SOURCES: Tuple[str, ...] = ("auto", "stereo", "depth", "odometry", "fixed", "none")
DEPTH_FUSION: Tuple[str, ...] = ("off", "scale_only", "replace")


@dataclass(frozen=True)
class WeightSources:
    """Where the model's weights come from (all paths local; '' = not given).

    ``checkpoint`` '' loads the embedded weights of ``config`` (only ``tiny`` has some).
    An official LSM ``checkpoint-final.pth`` is merged with the ``dust3r`` / ``lseg`` /
    ``clip`` files by the official rule unless ``keep_lsm_dust3r`` / ``keep_lsm_lseg`` keep
    the LSM file's own copies (see :func:`lsm.checkpoint.load_model`).
    """

    config: str = "tiny"
    checkpoint: str = ""
    dust3r: str = ""
    lseg: str = ""
    clip: str = ""
    keep_lsm_dust3r: bool = False
    keep_lsm_lseg: bool = False

    def load_model(self, device: str = "cpu"):
        """The :class:`~lsm.model.lsm.LSM` in eval mode on ``device``; raises
        :class:`~lsm.checkpoint.CheckpointError` for unreadable, unsafe or non-fitting files."""
        from .checkpoint import load_model

        if not self.checkpoint and self.config != "tiny":
            raise ValueError(f"model config '{self.config}' has no embedded weights; give a "
                             "checkpoint file")
        return load_model(self.checkpoint or None, device, dust3r=self.dust3r or None,
                          lseg=self.lseg or None, clip=self.clip or None,
                          keep_lsm_dust3r=self.keep_lsm_dust3r,
                          keep_lsm_lseg=self.keep_lsm_lseg, config=self.config)


@dataclass(frozen=True)
class OutputSpec:
    """What a published point cloud holds.

    labels: vocabulary of per-point labels and label images (label id = position);
    confidence_threshold: smallest pointmap confidence (>= 1) of a point, 0 keeps all;
    point_stride: every n-th pixel of each pointmap in both image axes;
    max_points: most points (uniform subsample above it), 0 = no limit.
    """

    labels: Tuple[str, ...] = DEFAULT_LABELS
    confidence_threshold: float = 0.0
    point_stride: int = 2
    max_points: int = 200000

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.labels:
            raise ValueError("labels must hold at least one class name")
        if self.point_stride < 1:
            raise ValueError(f"point_stride must be >= 1, got {self.point_stride}")
        if self.max_points < 0:
            raise ValueError(f"max_points must be >= 0, got {self.max_points}")


@dataclass(frozen=True)
class MetricSpec:
    """How outputs become metric (see :mod:`lsm.metric`).

    scale_source: 'auto' (the best measured source available: depth, stereo, odometry, then
    fixed_scale if > 0), one source by name, 'fixed' (fixed_scale) or 'none' (model units);
    fixed_scale: metres per model unit for 'fixed' (and the last resort of 'auto'; 0 = none);
    depth_fusion: 'replace' (measured depth replaces the predicted one where valid),
    'scale_only' (depth only sets the scale), 'off' (depth is not used);
    depth_pose: with depth images of both views, a metric result and no pose from the
    sensors, refine the pair's relative pose on the measured depth
    (:mod:`lsm.geometry.depth_pose`; not with depth_fusion 'off').
    """

    scale_source: str = "auto"
    fixed_scale: float = 0.0
    depth_fusion: str = "replace"
    depth_pose: bool = True

    def __post_init__(self) -> None:
        if self.scale_source not in SCALE_SOURCES:
            raise ValueError(f"scale_source must be one of {SCALE_SOURCES}, got {self.scale_source!r}")
        if self.depth_fusion not in DEPTH_FUSION:
            raise ValueError(f"depth_fusion must be one of {DEPTH_FUSION}, got {self.depth_fusion!r}")
        if self.fixed_scale < 0 or (self.scale_source == "fixed" and self.fixed_scale <= 0):
            raise ValueError(f"fixed_scale must be > 0 for scale_source 'fixed', got {self.fixed_scale}")

