"""3-D Gaussian splatting renderer: gsplat on CUDA, a numba tile rasteriser for CPU
inference, and a differentiable pure-torch rasteriser (CPU or CUDA) for training.

Main entry point: :func:`render` (see :mod:`.render` for conventions).
"""
from .camera import Camera, invert_rigid, stack_cameras
from .covariance import covariance_from_scale_rotation, quat_to_rotmat
from .render import RenderOutput, render
from .sh import SH_C0, eval_sh_colors, rgb_to_sh_dc

__all__ = [
    "Camera", "RenderOutput", "SH_C0", "covariance_from_scale_rotation", "eval_sh_colors",
    "invert_rigid", "quat_to_rotmat", "render", "rgb_to_sh_dc", "stack_cameras",
]
