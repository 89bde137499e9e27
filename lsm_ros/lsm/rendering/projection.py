"""EWA splatting projection of 3-D Gaussians into pinhole cameras (pure torch).

For each camera the world covariance is rotated into the camera frame
(Sigma_c = R Sigma R^T) and pushed through the Jacobian J of the perspective
projection at the Gaussian centre (Zwicker et al. 2001, as in 3DGS / gsplat):

    J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]],   Sigma_2d = J Sigma_c J^T + eps2d I

with eps2d = 0.3 px^2 (the 3DGS low-pass filter) and x/z, y/z clamped to 1.3x the
field of view inside J only, as in 3DGS and gsplat.  Pixel centres sit at integer + 0.5.
Everything here is differentiable except the integer radii.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Alpha below which a Gaussian is skipped for a pixel (3DGS, gsplat).
ALPHA_THRESHOLD = 1.0 / 255.0
# Gaussians are never evaluated beyond this many standard deviations (gsplat: 3.33).
MAX_EXTENT_SIGMA = 3.33


@dataclass
class ProjectedGaussians:
    """Per-camera screen-space Gaussians; leading dims (C, N).

    means2d: (C, N, 2) pixel coordinates of the centres.
    conics: (C, N, 3) (a, b, c) of the inverse 2-D covariance [[a, b], [b, c]].
    depths: (C, N) camera-frame z (scene units).
    radii: (C, N, 2) int64 half-extent in pixels of the axis-aligned box outside
        which alpha < 1/255; 0 for culled Gaussians (behind near, beyond far, off-screen).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor


def project_gaussians(
    means: Tensor,
    covars: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near: float = 0.01,
    far: float = 100.0,
    eps2d: float = 0.3,
) -> ProjectedGaussians:
    """Project N world Gaussians into C cameras.

    Args:
        means: (N, 3) world centres. covars: (N, 3, 3) world covariances.
        opacities: (N,) in [0, 1], only used for the opacity-aware box size.
        viewmats: (C, 4, 4) world-to-camera (OpenCV). Ks: (C, 3, 3) pixel intrinsics.
    """
    rot = viewmats[:, :3, :3]
    trans = viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", rot, means) + trans[:, None, :]  # (C,N,3)
    covars_c = rot[:, None] @ covars[None] @ rot[:, None].transpose(-1, -2)  # (C,N,3,3)

    x, y, z = means_c.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # Culled Gaussians (z <= near) are projected as if at z = 1 so they stay finite (no NaN grads).
    z_safe = torch.where(z > near, z, torch.ones_like(z))

    # Clamp the direction used in the Jacobian to 1.3x the frustum (3DGS / gsplat).
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    tx = z_safe * torch.maximum(torch.minimum(x / z_safe, lim_x_pos), -lim_x_neg)
    ty = z_safe * torch.maximum(torch.minimum(y / z_safe, lim_y_pos), -lim_y_neg)

    zero = torch.zeros_like(z)
    jac = torch.stack(
        [fx / z_safe, zero, -fx * tx / z_safe**2, zero, fy / z_safe, -fy * ty / z_safe**2], dim=-1
    ).reshape(z.shape + (2, 3))
    cov2d = jac @ covars_c @ jac.transpose(-1, -2)
    c00 = cov2d[..., 0, 0] + eps2d
    c11 = cov2d[..., 1, 1] + eps2d
    c01 = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    det = (c00 * c11 - c01 * c01).clamp_min(1e-10)
    conics = torch.stack([c11 / det, -c01 / det, c00 / det], dim=-1)
    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], dim=-1)

    with torch.no_grad():
        # Opacity-aware extent: beyond sqrt(2 ln(255 o)) sigma the alpha is < 1/255.
        opac = opacities.detach().clamp_min(1e-12)[None].expand_as(z)
        extent = torch.sqrt(2.0 * torch.log(opac / ALPHA_THRESHOLD).clamp_min(0.0))
        extent = extent.clamp_max(MAX_EXTENT_SIGMA)
        radius = torch.stack(
            [torch.ceil(extent * c00.detach().sqrt()), torch.ceil(extent * c11.detach().sqrt())], dim=-1
        )
        m2 = means2d.detach()
        valid = (
            (z.detach() > near) & (z.detach() < far) & (opac >= ALPHA_THRESHOLD)
            & torch.isfinite(m2).all(-1) & (radius > 0).all(-1)
            & (m2[..., 0] + radius[..., 0] > 0) & (m2[..., 0] - radius[..., 0] < width)
            & (m2[..., 1] + radius[..., 1] > 0) & (m2[..., 1] - radius[..., 1] < height)
        )
        radii = torch.where(valid[..., None], radius, torch.zeros_like(radius)).long()
    return ProjectedGaussians(means2d=means2d, conics=conics, depths=z, radii=radii)
