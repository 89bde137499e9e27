"""Pure-torch, differentiable, memory-bounded Gaussian rasteriser (CPU backend).

Strategy: *sorted pixel-Gaussian pair lists* instead of dense tiles.

1. Visible Gaussians of a camera are sorted once by depth (N log N).
2. Without autograd, every Gaussian emits one pair per pixel of its opacity-aware
   3-sigma box (pixel centres at integer + 0.5), generated row band by row band so at
   most ``max_pairs`` candidate pairs exist at once.  Pairs whose alpha is below 1/255
   are dropped, the rest are stably sorted by pixel id (int32 radix-like sort), which
   keeps front-to-back order inside each pixel because pairs were emitted in depth
   order.  A segmented cumulative sum of log(1 - alpha) gives the transmittance; pairs
   after the point where T would fall to <= 1e-4 are dropped (3DGS / gsplat rule).
3. :class:`_CompositePairs`, a custom autograd function, recomputes alpha for the kept
   pairs, composites ``sum_i alpha_i T_i c_i`` and implements the analytic 3DGS
   backward (suffix sums per pixel) so that backward stores only 4 numbers per pair,
   never a (pairs x channels) tensor; channel-sized work is done in chunks of
   ``chunk_pairs`` pairs.

Compositing rule (per pixel, front to back): alpha_i = min(0.99, o_i exp(-sigma_i)),
skip if alpha_i < 1/255, stop before a Gaussian that would bring T to <= 1e-4,
w_i = alpha_i T_i, out = sum_i w_i c_i, alpha_out = sum_i w_i = 1 - T_final.

Memory bound (per camera): transient ~ ``max_pairs`` x ~64 bytes for pair building,
plus ``chunk_pairs`` x channels x 4 bytes x ~3 for compositing, plus 28 bytes per kept
pair retained for backward (kept pairs <= candidate pairs; with the transmittance
cutoff typically << pixels x Gaussians per pixel), plus the (H, W, channels) outputs.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

from .projection import ALPHA_THRESHOLD

ALPHA_MAX = 0.99  # 3DGS clamp (gsplat's CUDA kernel uses 0.999)
TRANSMITTANCE_MIN = 1e-4
_LOG_T_MIN = math.log(TRANSMITTANCE_MIN)


def _segment_starts(pix: Tensor) -> Tuple[Tensor, Tensor]:
    """For pixel ids sorted ascending: (segment id per pair, first index per segment)."""
    is_start = torch.ones_like(pix, dtype=torch.bool)
    if pix.numel() > 1:
        is_start[1:] = pix[1:] != pix[:-1]
    seg_id = torch.cumsum(is_start, 0) - 1
    start_idx = torch.nonzero(is_start).squeeze(1)
    return seg_id, start_idx


def _exclusive_segment_cumsum(values: Tensor, seg_id: Tensor, start_idx: Tensor) -> Tensor:
    """Sum of the earlier values of the same segment (accumulated in float64)."""
    values = values.double()
    excl = torch.cumsum(values, 0) - values
    return excl - excl.index_select(0, start_idx).index_select(0, seg_id)


def _pair_offsets(means2d: Tensor, conics: Tensor, gid: Tensor, pix: Tensor, width: int):
    """dx, dy (pixel centre minus Gaussian centre), sigma and conics of each pair."""
    px = (pix % width).to(means2d.dtype) + 0.5
    py = torch.div(pix, width, rounding_mode="floor").to(means2d.dtype) + 0.5
    m = means2d.index_select(0, gid)
    con = conics.index_select(0, gid)
    dx = px - m[:, 0]
    dy = py - m[:, 1]
    sigma = 0.5 * (con[:, 0] * dx * dx + con[:, 2] * dy * dy) + con[:, 1] * dx * dy
    return dx, dy, sigma, con


@torch.no_grad()
def build_pairs(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    max_pairs: int = 1 << 21,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Front-to-back pixel-Gaussian pairs of one camera that pass both cutoffs.

    Args: per-camera tensors means2d (N,2), conics (N,3), opacities (N,), depths (N,),
        radii (N,2) int (0 = culled).
    Returns: ``gauss_ids`` (M,) int64, ``pix_ids`` (M,) int64 (y * width + x), sorted by
        pixel and, within a pixel, front to back; ``alpha_raw`` (M,) = o exp(-sigma)
        (before the 0.99 clamp) and ``trans`` (M,) transmittance in front of each pair.
    """
    device, dtype = means2d.device, means2d.dtype
    empty_l = torch.zeros(0, dtype=torch.long, device=device)
    empty_f = torch.zeros(0, dtype=dtype, device=device)
    empty = (empty_l, empty_l, empty_f, empty_f)
    means2d, conics, opacities = means2d.detach(), conics.detach(), opacities.detach()
    visible = torch.nonzero((radii > 0).all(-1)).squeeze(1)
    if visible.numel() == 0:
        return empty
    visible = visible.index_select(0, torch.argsort(depths.detach().index_select(0, visible)))  # front to back
    m = means2d.index_select(0, visible)
    r = radii.index_select(0, visible).to(dtype)
    # Pixel ix is covered when |ix + 0.5 - mx| <= rx.
    x0 = torch.ceil(m[:, 0] - r[:, 0] - 0.5).clamp(0, width).long()
    x1 = (torch.floor(m[:, 0] + r[:, 0] - 0.5) + 1).clamp(0, width).long()
    y0 = torch.ceil(m[:, 1] - r[:, 1] - 0.5).clamp(0, height).long()
    y1 = (torch.floor(m[:, 1] + r[:, 1] - 0.5) + 1).clamp(0, height).long()
    bw = (x1 - x0).clamp_min(0)
    keep = torch.nonzero((bw > 0) & (y1 > y0)).squeeze(1)
    if keep.numel() == 0:
        return empty
    visible, x0, bw, y0, y1, m = (t.index_select(0, keep) for t in (visible, x0, bw, y0, y1, m))
    con = conics.index_select(0, visible)
    opac = opacities.index_select(0, visible)

    # Candidate pairs per image row -> split rows into bands of <= max_pairs pairs.
    row_delta = torch.zeros(height + 1, dtype=torch.long, device=device)
    row_delta.index_add_(0, y0, bw)
    row_delta.index_add_(0, y1, -bw)
    row_pairs = torch.cumsum(row_delta[:-1], 0).tolist()
    bands, start, acc = [], 0, 0
    for row, n in enumerate(row_pairs):
        if acc > 0 and acc + n > max_pairs:
            bands.append((start, row))
            start, acc = row, 0
        acc += n
    bands.append((start, height))

    out = []
    for ya, yb in bands:
        sel = torch.nonzero((y0 < yb) & (y1 > ya)).squeeze(1) if len(bands) > 1 else None
        gx0, gbw, gy0, gy1, gm, gcon, gop, gvis = (
            (x0, bw, y0, y1, m, con, opac, visible) if sel is None
            else tuple(t.index_select(0, sel) for t in (x0, bw, y0, y1, m, con, opac, visible))
        )
        if gvis.numel() == 0:
            continue
        gy0 = gy0.clamp_min(ya)
        counts = (gy1.clamp_max(yb) - gy0) * gbw
        total = int(counts.sum())
        if total == 0:
            continue
        local = torch.repeat_interleave(torch.arange(gvis.numel(), device=device), counts)
        # Per-Gaussian values gathered per pair (1-D gathers are much faster than row gathers).
        def per_pair(t: Tensor) -> Tensor:
            return t.index_select(0, local)

        box_w = per_pair(gbw)
        within = torch.arange(total, device=device) - per_pair(torch.cumsum(counts, 0) - counts)
        row = torch.div(within, box_w, rounding_mode="floor")
        px = per_pair(gx0) + within - row * box_w
        py = per_pair(gy0) + row
        dx = px.to(dtype) + (0.5 - per_pair(gm[:, 0].contiguous()))
        dy = py.to(dtype) + (0.5 - per_pair(gm[:, 1].contiguous()))
        sigma = (0.5 * per_pair(gcon[:, 0].contiguous())) * dx * dx + (0.5 * per_pair(gcon[:, 2].contiguous())) * dy * dy \
            + per_pair(gcon[:, 1].contiguous()) * dx * dy
        alpha_raw = per_pair(gop) * torch.exp(-sigma)
        ok = torch.nonzero((sigma >= 0) & (alpha_raw >= ALPHA_THRESHOLD)).squeeze(1)
        pix = (py * width + px).to(torch.int32).index_select(0, ok)
        local = local.index_select(0, ok)
        alpha_raw = alpha_raw.index_select(0, ok)
        pix, order = torch.sort(pix, stable=True)  # front-to-back order survives inside a pixel
        local = local.index_select(0, order)
        alpha_raw = alpha_raw.index_select(0, order)
        # Transmittance cutoff: keep pair i while T after it stays > 1e-4.
        seg_id, start_idx = _segment_starts(pix)
        log_t = torch.log1p(-alpha_raw.clamp_max(ALPHA_MAX)).double()
        excl = _exclusive_segment_cumsum(log_t, seg_id, start_idx)
        ok = torch.nonzero(excl + log_t > _LOG_T_MIN).squeeze(1)
        out.append((
            gvis.index_select(0, local.index_select(0, ok)),
            pix.index_select(0, ok).long(),
            alpha_raw.index_select(0, ok),
            torch.exp(excl.index_select(0, ok)).to(dtype),
        ))
    if not out:
        return empty
    return tuple(torch.cat(parts) for parts in zip(*out))


class _CompositePairs(torch.autograd.Function):
    """out[p] = sum_i w_i c[g_i],  alpha[p] = sum_i w_i over the sorted pairs of pixel p.

    ``alpha_raw`` and ``trans`` come from :func:`build_pairs` (no grad); gradients flow to
    means2d, conics, opacities and channels through the analytic 3DGS backward.
    """

    @staticmethod
    def forward(ctx, means2d, conics, opacities, channels, gauss_ids, pix_ids, alpha_raw, trans, width,
                num_pixels, chunk_pairs):
        weights = alpha_raw.clamp_max(ALPHA_MAX) * trans
        out = torch.zeros(num_pixels, channels.shape[1], dtype=channels.dtype, device=channels.device)
        for s in range(0, gauss_ids.numel(), chunk_pairs):
            e = s + chunk_pairs
            out.index_add_(0, pix_ids[s:e], channels.index_select(0, gauss_ids[s:e]) * weights[s:e, None])
        alpha_img = torch.zeros(num_pixels, dtype=channels.dtype, device=channels.device)
        alpha_img.index_add_(0, pix_ids, weights.to(channels.dtype))
        ctx.save_for_backward(means2d, conics, opacities, channels, gauss_ids, pix_ids, alpha_raw, trans)
        ctx.width, ctx.chunk_pairs = width, chunk_pairs
        return out, alpha_img

    @staticmethod
    def backward(ctx, grad_out, grad_alpha_img):
        means2d, conics, opacities, channels, gid, pix, alpha_raw, trans = ctx.saved_tensors
        if gid.numel() == 0:
            zeros = (torch.zeros_like(means2d), torch.zeros_like(conics), torch.zeros_like(opacities))
            return zeros + (torch.zeros_like(channels),) + (None,) * 7
        chunk = ctx.chunk_pairs
        alpha = alpha_raw.clamp_max(ALPHA_MAX)
        weights = alpha * trans
        # s_i = <dL/dout_p, c_i> + dL/dalpha_p  (alpha image = compositing of the constant 1)
        score = grad_alpha_img.index_select(0, pix).to(alpha.dtype)
        grad_channels = torch.zeros_like(channels)
        for s in range(0, gid.numel(), chunk):
            e = s + chunk
            g_out = grad_out.index_select(0, pix[s:e])
            score[s:e] += (g_out * channels.index_select(0, gid[s:e])).sum(-1).to(alpha.dtype)
            grad_channels.index_add_(0, gid[s:e], g_out * weights[s:e, None].to(g_out.dtype))
        # d out_p / d alpha_i = T_i s_i - (sum_{k>i} w_k s_k) / (1 - alpha_i)
        seg_id, start_idx = _segment_starts(pix)
        cs = torch.cumsum((weights * score).double(), 0)
        end_idx = torch.cat([start_idx[1:], start_idx.new_tensor([pix.numel()])]) - 1
        suffix = (cs.index_select(0, end_idx).index_select(0, seg_id) - cs).to(alpha.dtype)
        grad_alpha = trans * score - suffix / (1.0 - alpha)
        grad_alpha = torch.where(alpha_raw < ALPHA_MAX, grad_alpha, torch.zeros_like(grad_alpha))

        dx, dy, sigma, con = _pair_offsets(means2d, conics, gid, pix, ctx.width)
        grad_opac = torch.zeros_like(opacities).index_add_(0, gid, grad_alpha * torch.exp(-sigma))
        grad_sigma = -grad_alpha * alpha_raw
        grad_conics = torch.zeros_like(conics).index_add_(
            0, gid, torch.stack([0.5 * dx * dx, dx * dy, 0.5 * dy * dy], -1) * grad_sigma[:, None]
        )
        grad_means2d = torch.zeros_like(means2d).index_add_(
            0, gid, torch.stack([con[:, 0] * dx + con[:, 1] * dy, con[:, 1] * dx + con[:, 2] * dy], -1)
            * (-grad_sigma[:, None]),
        )
        return (grad_means2d, grad_conics, grad_opac, grad_channels) + (None,) * 7


def rasterize_camera(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    channels: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    max_pairs: int = 1 << 21,
    chunk_pairs: int = 1 << 16,
) -> Tuple[Tensor, Tensor]:
    """Composite one camera: returns (H, W, D) channel image and (H, W) alpha.

    All inputs are for one camera: means2d (N,2), conics (N,3), opacities (N,),
    channels (N,D), depths (N,), radii (N,2).  Differentiable w.r.t. the float inputs.
    """
    gid, pix, alpha_raw, trans = build_pairs(means2d, conics, opacities, depths, radii, width, height, max_pairs)
    out, alpha = _CompositePairs.apply(
        means2d, conics, opacities, channels, gid, pix, alpha_raw, trans, width, width * height, chunk_pairs
    )
    return out.reshape(height, width, -1), alpha.reshape(height, width)
