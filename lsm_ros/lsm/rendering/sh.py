"""Real spherical harmonics colour evaluation (degrees 0-3), 3DGS convention.

colour = max(sum_k Y_k(d) c_k + 0.5, 0) where d is the unit direction from the camera
centre to the Gaussian centre and c (N, K, 3) are the coefficients, K >= (degree+1)^2.
Degree 0 reduces to 0.28209479 * c_0 + 0.5 (what LSM uses: only the DC term).
"""
from __future__ import annotations

from torch import Tensor

SH_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
    -0.4570457994644658, 1.445305721320277, -0.5900435899266435,
)


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """DC coefficient giving colour ``rgb`` (inverse of the degree-0 evaluation)."""
    return (rgb - 0.5) / SH_C0


def eval_sh_colors(sh_coeffs: Tensor, dirs: Tensor, degree: int) -> Tensor:
    """Colours (..., 3) from coefficients (..., K, 3) and view directions (..., 3)."""
    if not 0 <= degree <= 3:
        raise ValueError(f"sh_degree must be in [0, 3], got {degree}")
    if sh_coeffs.shape[-2] < (degree + 1) ** 2:
        raise ValueError(f"sh_degree {degree} needs {(degree + 1) ** 2} coefficients, got {sh_coeffs.shape[-2]}")
    c = sh_coeffs
    out = SH_C0 * c[..., 0, :]
    if degree > 0:
        d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        x, y, z = (d[..., i : i + 1] for i in range(3))
        out = out - _C1 * y * c[..., 1, :] + _C1 * z * c[..., 2, :] - _C1 * x * c[..., 3, :]
        if degree > 1:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (
                out + _C2[0] * xy * c[..., 4, :] + _C2[1] * yz * c[..., 5, :]
                + _C2[2] * (2 * zz - xx - yy) * c[..., 6, :] + _C2[3] * xz * c[..., 7, :]
                + _C2[4] * (xx - yy) * c[..., 8, :]
            )
            if degree > 2:
                out = (
                    out + _C3[0] * y * (3 * xx - yy) * c[..., 9, :] + _C3[1] * xy * z * c[..., 10, :]
                    + _C3[2] * y * (4 * zz - xx - yy) * c[..., 11, :]
                    + _C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * c[..., 12, :]
                    + _C3[4] * x * (4 * zz - xx - yy) * c[..., 13, :]
                    + _C3[5] * z * (xx - yy) * c[..., 14, :] + _C3[6] * x * (xx - 3 * yy) * c[..., 15, :]
                )
    return (out + 0.5).clamp_min(0.0)
