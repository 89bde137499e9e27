"""Geometry: pointmaps, camera recovery from pointmaps, pose comparison.

Conventions: OpenCV camera frame (x right, y down, z forward), camera-to-world 4x4 poses,
pixel (u, v) centred at (u + 0.5, v + 0.5), principal point (W/2, H/2) by default.
"""
from .camera_recovery import (
    CameraEstimate,
    CameraRecoveryError,
    RelativePose,
    estimate_focal,
    estimate_relative_pose,
    recover_cameras,
    recover_cameras_batch,
)
from .pointmaps import (
    depth_to_pointmap,
    intrinsics_from_focal,
    normalize_pointmaps,
    pixel_grid,
    project_points,
    transform_points,
)
from .pose_metrics import (
    direction_angle_deg,
    relative_pose_errors,
    rotation_angle_deg,
    umeyama_similarity,
)

__all__ = [
    "CameraEstimate",
    "CameraRecoveryError",
    "RelativePose",
    "depth_to_pointmap",
    "direction_angle_deg",
    "estimate_focal",
    "estimate_relative_pose",
    "intrinsics_from_focal",
    "normalize_pointmaps",
    "pixel_grid",
    "project_points",
    "recover_cameras",
    "recover_cameras_batch",
    "relative_pose_errors",
    "rotation_angle_deg",
    "transform_points",
    "umeyama_similarity",
]
