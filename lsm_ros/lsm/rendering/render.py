"""Public Gaussian-splatting entry point: :func:`render` -> :class:`RenderOutput`.

Conventions (same as gsplat):
- ``means`` (N, 3) world frame; ``quats`` (N, 4) **wxyz** (normalised internally);
  ``scales`` (N, 3) linear standard deviations (not log); ``opacities`` (N,) in [0, 1].
- ``colors`` (N, 3) RGB in [0, 1] (post-activation, what LSM uses since its rasteriser only
  uses the SH DC term), or SH coefficients (N, K, 3) together with ``sh_degree``
  (colour = max(SH(d) + 0.5, 0), 3DGS convention).
- ``features`` (N, F) optional extra channels, alpha-composited exactly like colour.
- ``Ks`` (C, 3, 3) pixel intrinsics; ``viewmats`` (C, 4, 4) **world-to-camera, OpenCV**
  (x right, y down, z forward). Pixel (u, v) has its centre at (u + 0.5, v + 0.5).
- Batch: every Gaussian tensor may carry one leading batch dim B (means (B, N, 3), ...,
  Ks (B, C, 3, 3), viewmats (B, C, 4, 4)); outputs then gain the same leading B.

Backends: ``"gsplat"`` calls ``gsplat.rasterization`` (CUDA only); ``"torch"`` is the
pure-torch rasteriser of :mod:`.torch_rasterizer` (CPU or GPU, differentiable,
memory-bounded); ``"tiles"`` is the tile rasteriser of :mod:`.tile_rasterizer` (CPU,
numba, forward only, same rule and candidates as torch); ``"auto"`` uses gsplat for CUDA
tensors when its extension loads (else warns once and falls back to torch), tiles for CPU
tensors when no gradient is needed and numba imports, and torch otherwise.  The backends
agree except for pixels where a single Gaussian's alpha exceeds 0.99: torch and tiles clamp
at 0.99 (3DGS, the official LSM rasteriser), gsplat at 0.999.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from . import tile_rasterizer
from .covariance import covariance_from_scale_rotation
from .projection import project_gaussians
from .sh import eval_sh_colors
from .torch_rasterizer import rasterize_camera

EPS2D = 0.3  # px^2 low-pass added to every projected covariance (3DGS / gsplat)
BACKENDS = ("auto", "torch", "gsplat", "tiles")
_gsplat_status: Optional[bool] = None  # None: not tried yet


@dataclass
class RenderOutput:
    """Rendered images; shapes for C cameras (a leading batch dim B is added when given).

    rgb: (C, H, W, 3) composited colour plus ``background * (1 - alpha)``.
    depth: (C, H, W) expected camera-frame z-depth, sum_i w_i z_i / alpha (scene units),
        0 where alpha == 0.
    features: (C, H, W, F) composited features (no background), or None.
    alpha: (C, H, W) accumulated opacity 1 - T_final in [0, 1].
    """

    rgb: Tensor
    depth: Tensor
    features: Optional[Tensor]
    alpha: Tensor


def _check_finite(name: str, t: Tensor) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"render: {name} contains NaN or Inf")


def _validate(means, quats, scales, opacities, colors, Ks, viewmats, width, height, features, background, sh_degree):
    if not isinstance(means, Tensor) or means.dim() not in (2, 3) or means.shape[-1] != 3:
        raise ValueError(f"render: means must be (N, 3) or (B, N, 3), got {getattr(means, 'shape', type(means))}")
    lead = tuple(means.shape[:-1])  # (N,) or (B, N)
    n = lead[-1]
    expect = {"quats": (quats, lead + (4,)), "scales": (scales, lead + (3,)), "opacities": (opacities, lead)}
    for name, (t, shape) in expect.items():
        if not isinstance(t, Tensor) or tuple(t.shape) != shape:
            raise ValueError(
                f"render: {name} must have shape {shape} to match means {tuple(means.shape)} "
                f"(N={n}), got {tuple(getattr(t, 'shape', ()))}"
            )
    if sh_degree is None:
        if not isinstance(colors, Tensor) or tuple(colors.shape) != lead + (3,):
            raise ValueError(
                f"render: colors must be {lead + (3,)} RGB (or pass sh_degree for (.., N, K, 3) SH), "
                f"got {tuple(getattr(colors, 'shape', ()))}"
            )
    else:
        if not isinstance(colors, Tensor) or colors.dim() != len(lead) + 2 or tuple(colors.shape[:-2]) != lead \
                or colors.shape[-1] != 3:
            raise ValueError(f"render: SH colors must be {lead + ('K', 3)}, got {tuple(getattr(colors, 'shape', ()))}")
    if features is not None:
        if not isinstance(features, Tensor) or features.dim() != len(lead) + 1 or tuple(features.shape[:-1]) != lead:
            raise ValueError(f"render: features must be {lead + ('F',)}, got {tuple(getattr(features, 'shape', ()))}")
    batch = lead[:-1]
    if not isinstance(viewmats, Tensor) or viewmats.dim() != len(batch) + 3 or tuple(viewmats.shape[-2:]) != (4, 4) \
            or tuple(viewmats.shape[:-3]) != batch:
        raise ValueError(f"render: viewmats must be {batch + ('C', 4, 4)} world-to-camera, got "
                         f"{tuple(getattr(viewmats, 'shape', ()))}")
    cams = viewmats.shape[-3]
    if not isinstance(Ks, Tensor) or tuple(Ks.shape) != batch + (cams, 3, 3):
        raise ValueError(f"render: Ks must be {batch + (cams, 3, 3)} to match viewmats, got "
                         f"{tuple(getattr(Ks, 'shape', ()))}")
    if background is not None:
        ok = isinstance(background, Tensor) and background.shape[-1] == 3 and background.dim() <= len(batch) + 2
        if not ok:
            raise ValueError(f"render: background must be (3,), (C, 3) or (B, C, 3), got "
                             f"{tuple(getattr(background, 'shape', ()))}")
    if int(width) != width or int(height) != height or width <= 0 or height <= 0:
        raise ValueError(f"render: width/height must be positive integers, got {width}x{height}")
    if sh_degree is not None and not 0 <= int(sh_degree) <= 3:
        raise ValueError(f"render: sh_degree must be in [0, 3], got {sh_degree}")
    named = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "colors": colors,
             "Ks": Ks, "viewmats": viewmats}
    if features is not None:
        named["features"] = features
    for name, t in named.items():
        if t.device != means.device:
            raise ValueError(f"render: {name} is on {t.device} but means is on {means.device}")
        _check_finite(name, t.detach())
    if opacities.numel() and (float(opacities.detach().min()) < 0 or float(opacities.detach().max()) > 1):
        raise ValueError("render: opacities must lie in [0, 1] (apply the sigmoid first)")


def _gsplat_available() -> bool:
    global _gsplat_status
    if _gsplat_status is None:
        try:
            from gsplat.cuda._backend import _C  # noqa: F401  (None when the extension cannot load)
            _gsplat_status = _C is not None
        except Exception:  # ImportError, build errors
            _gsplat_status = False
    return _gsplat_status


def _camera_colors(means, colors, viewmats, sh_degree):
    """Per-camera RGB (C, N, 3), or (N, 3) when colours are view independent."""
    if sh_degree is None:
        return colors
    campos = torch.linalg.inv(viewmats)[:, :3, 3]  # (C, 3)
    dirs = means[None] - campos[:, None]
    return eval_sh_colors(colors[None].expand(campos.shape[0], *colors.shape), dirs, int(sh_degree))


def _render_projected(means, quats, scales, opacities, rgb, Ks, viewmats, width, height, features, near,
                      far, rasterize):
    """Our projection, then ``rasterize`` (one camera's composite, the signature of
    :func:`.torch_rasterizer.rasterize_camera` up to width and height) per camera."""
    covars = covariance_from_scale_rotation(scales, quats)
    proj = project_gaussians(means, covars, opacities, viewmats, Ks, width, height, near, far, EPS2D)
    cams = viewmats.shape[0]
    outs, alphas = [], []
    for c in range(cams):
        parts = [rgb[c] if rgb.dim() == 3 else rgb, proj.depths[c][:, None]]
        if features is not None:
            parts.append(features)
        channels = torch.cat(parts, -1)
        out, alpha = rasterize(proj.means2d[c], proj.conics[c], opacities, channels,
                               proj.depths[c], proj.radii[c], width, height)
        outs.append(out)
        alphas.append(alpha)
    return torch.stack(outs), torch.stack(alphas)  # (C,H,W,3+1+F), (C,H,W)


def _render_gsplat(means, quats, scales, opacities, rgb, Ks, viewmats, width, height, features, near, far):
    from gsplat import rasterization

    cams = viewmats.shape[0]
    rgb = rgb if rgb.dim() == 3 else rgb[None].expand(cams, -1, -1)
    chans = rgb if features is None else torch.cat([rgb, features[None].expand(cams, -1, -1)], -1)
    out, alpha, _ = rasterization(
        means, quats, scales, opacities, chans, viewmats, Ks, int(width), int(height),
        near_plane=near, far_plane=far, eps2d=EPS2D, render_mode="RGB+ED", packed=False,
    )
    # gsplat returns RGB, features, expected depth; reorder to RGB, accumulated depth, features.
    alpha = alpha[..., 0]
    depth_acc = out[..., -1:] * alpha[..., None]
    return torch.cat([out[..., :3], depth_acc, out[..., 3:-1]], -1), alpha


def render(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    Ks: Tensor,
    viewmats: Tensor,
    width: int,
    height: int,
    features: Optional[Tensor] = None,
    near: float = 0.01,
    far: float = 100.0,
    background: Optional[Tensor] = None,
    backend: str = "auto",
    sh_degree: Optional[int] = None,
    max_pairs: int = 1 << 20,
    chunk_pairs: int = 1 << 16,
) -> RenderOutput:
    """Render N 3-D Gaussians into C pinhole cameras (see the module docstring for conventions).

    Args:
        means (N,3), quats (N,4 wxyz), scales (N,3 linear), opacities (N,) in [0,1],
        colors (N,3) RGB or (N,K,3) SH with ``sh_degree``, features (N,F) or None,
        Ks (C,3,3), viewmats (C,4,4) world-to-camera OpenCV; optional leading batch dim B.
        near/far: Gaussians with camera z outside (near, far) are culled.
        background: (3,), (C,3) or (B,C,3) RGB added as ``bg * (1 - alpha)``; default black.
        backend: "auto" | "torch" | "gsplat" | "tiles".
        max_pairs / chunk_pairs: memory knobs of the torch backend (candidate pixel-Gaussian
            pairs built at once, pairs per channel-sized chunk).
    Returns:
        :class:`RenderOutput` with rgb (C,H,W,3), depth (C,H,W), features (C,H,W,F) or None,
        alpha (C,H,W); all with a leading B when batched.
    Raises:
        ValueError: on wrong shapes, mismatched N / C, NaN or Inf inputs, opacities outside
            [0, 1], an unknown backend, gsplat forced on CPU tensors or tiles forced on
            CUDA tensors or where a gradient is needed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"render: backend must be one of {BACKENDS}, got {backend!r}")
    _validate(means, quats, scales, opacities, colors, Ks, viewmats, width, height, features, background, sh_degree)
    width, height = int(width), int(height)
    if means.dim() == 3:  # batched: render each scene and stack
        outs = []
        for b in range(means.shape[0]):
            bg = background
            if background is not None and background.dim() == 3:
                bg = background[b]
            outs.append(render(
                means[b], quats[b], scales[b], opacities[b], colors[b], Ks[b], viewmats[b], width, height,
                None if features is None else features[b], near, far, bg, backend, sh_degree, max_pairs,
                chunk_pairs,
            ))
        return RenderOutput(
            rgb=torch.stack([o.rgb for o in outs]), depth=torch.stack([o.depth for o in outs]),
            features=None if features is None else torch.stack([o.features for o in outs]),
            alpha=torch.stack([o.alpha for o in outs]),
        )

    use_gsplat = False
    if backend == "gsplat":
        if means.device.type != "cuda":
            raise ValueError("render: backend='gsplat' needs CUDA tensors; use backend='torch' on CPU")
        if not _gsplat_available():
            raise RuntimeError("render: gsplat's CUDA extension could not be loaded")
        use_gsplat = True
    elif backend == "auto" and means.device.type == "cuda":
        use_gsplat = _gsplat_available()
        if not use_gsplat:
            warnings.warn("render: gsplat CUDA extension unavailable, using the pure-torch rasteriser", stacklevel=2)

    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad
        for t in (means, quats, scales, opacities, colors, features, Ks, viewmats))
    tiles = False
    if backend == "tiles":
        if means.device.type != "cpu" or needs_grad:
            raise ValueError("render: backend='tiles' runs on CPU tensors without gradients")
        if not tile_rasterizer.available():
            raise RuntimeError("render: backend='tiles' needs numba")
        tiles = True
    elif backend == "auto" and means.device.type == "cpu":
        tiles = not needs_grad and tile_rasterizer.available()

    rgb = _camera_colors(means, colors, viewmats, sh_degree)
    if use_gsplat:
        chans, alpha = _render_gsplat(means, quats, scales, opacities, rgb, Ks, viewmats, width, height,
                                      features, near, far)
    else:
        rasterize = (tile_rasterizer.rasterize_camera_tiles if tiles else functools.partial(
            rasterize_camera, max_pairs=max_pairs, chunk_pairs=chunk_pairs))
        chans, alpha = _render_projected(means, quats, scales, opacities, rgb, Ks, viewmats, width,
                                         height, features, near, far, rasterize)
    rgb_img = chans[..., :3]
    if background is not None:
        bg = background.to(rgb_img.dtype)
        bg = bg.reshape(-1, 1, 1, 3) if background.dim() == 2 else bg
        rgb_img = rgb_img + bg * (1.0 - alpha[..., None])
    depth = chans[..., 3] / alpha.clamp_min(1e-10)
    feats = chans[..., 4:] if features is not None else None
    return RenderOutput(rgb=rgb_img, depth=depth, features=feats, alpha=alpha)
