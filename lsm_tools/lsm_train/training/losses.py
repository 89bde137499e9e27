"""The LSM training objective (paper 3.4; official settings in the reference note).

* **Pointmap**: DUSt3R's confidence-weighted regression ``ConfLoss(Regr3D(L2, avg_dis))``:
  both views' predicted and ground-truth points (view-1 frame) are each divided by their mean
  distance to the origin over valid pixels; per pixel ``c * ||p - g|| - alpha * log c``.
* **Photometric**: L1 (+ ``ssim_weight`` * (1 - SSIM)) between images rendered from the
  predicted Gaussians at the ground-truth cameras (two context views and the target views,
  translation rescaled to the prediction's scale) and the real images.
* **Semantic**: 1 - cosine between rendered-and-expanded features and the teacher features,
  at half resolution; the teacher is the text embedding of each pixel's class name (what a
  perfect LSeg would output) or any (B,D,h,w) teacher map. Pixels labelled ``ignore`` drop out.
* **Class contrast** (learned 2-D extractor only, our addition): cross-entropy over the
  cosine similarities to all class embeddings divided by a temperature, as LSeg itself is
  trained. Text embeddings of class names are close to each other (cosine 0.4-0.7 for
  all-MiniLM-L6-v2), so 1 - cosine alone barely separates the classes.

Shapes: images (B,V,3,H,W) in [0,1]; depth (B,V,H,W) metres, 0 = invalid; labels (B,V,H,W);
K (B,V,3,3); c2w (B,V,4,4) OpenCV camera-to-world. Views 0,1 are the context pair.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gt_pointmaps(depth: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor):
    """Ground-truth pointmaps in view 0's camera frame: (B,V,H,W,3) and validity (B,V,H,W)."""
    B, V, H, W = depth.shape
    v, u = torch.meshgrid(torch.arange(H, device=depth.device, dtype=depth.dtype) + 0.5,
                          torch.arange(W, device=depth.device, dtype=depth.dtype) + 0.5, indexing="ij")
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    cam = torch.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], dim=-1)  # (B,V,H,W,3)
    rel = torch.linalg.inv(c2w[:, :1]) @ c2w  # view v -> view 0
    pts = torch.einsum("bvij,bvhwj->bvhwi", rel[..., :3, :3], cam) + rel[..., None, None, :3, 3]
    valid = (depth > 0) & torch.isfinite(depth)
    return pts, valid


def _avg_dist(pts: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean distance to the origin of the valid points of each batch element: (B,1,1,1,1)."""
    d = pts.norm(dim=-1) * valid
    return (d.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)).clamp_min(1e-8)[:, None, None, None, None]


def _normalised(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor):
    """pred and gt (B,V,H,W,3) each divided by its own mean distance to the origin."""
    return pred / _avg_dist(pred, valid), gt / _avg_dist(gt, valid)


def pointmap_loss(pred: torch.Tensor, conf: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor,
                  alpha: float = 0.2) -> tuple[torch.Tensor, dict]:
    """pred, gt (B,2,H,W,3) view-0 frame; conf (B,2,H,W) >= 1; valid (B,2,H,W) bool."""
    pred_n, gt_n = _normalised(pred, gt, valid)
    dist = (pred_n - gt_n).norm(dim=-1)
    m = valid.float()
    n = m.sum().clamp_min(1)
    regr = (dist * m).sum() / n
    loss = ((conf * dist - alpha * torch.log(conf)) * m).sum() / n
    return loss, {"pointmap_regr": float(regr.detach())}


def relative_pointmap_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean relative point error ``||p - g|| / ||g||`` after average-distance normalisation,
    without confidence weights (our addition). Every valid pixel counts alike, near or far,
    confident or not, as in the depth inlier ratio tau; the paper's term weights pixels by
    distance and confidence. pred, gt (B,2,H,W,3) view-0 frame; valid (B,2,H,W) bool."""
    pred_n, gt_n = _normalised(pred, gt, valid)
    rel = (pred_n - gt_n).norm(dim=-1) / gt_n.norm(dim=-1).clamp_min(1e-6)
    m = valid.float()
    return (rel * m).sum() / m.sum().clamp_min(1)


def optimal_scale(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Least-squares s per batch element with s * gt ~ pred: (B,)."""
    m = valid[..., None].float()
    num = (pred * gt * m).flatten(1).sum(1)
    den = (gt * gt * m).flatten(1).sum(1).clamp_min(1e-8)
    return (num / den).detach()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean SSIM of images (N,3,H,W) in [0,1] with a uniform window (as in 3DGS-style losses)."""
    pad = window // 2
    mu_x = F.avg_pool2d(x, window, 1, pad, count_include_pad=False)
    mu_y = F.avg_pool2d(y, window, 1, pad, count_include_pad=False)
    sxx = F.avg_pool2d(x * x, window, 1, pad, count_include_pad=False) - mu_x ** 2
    syy = F.avg_pool2d(y * y, window, 1, pad, count_include_pad=False) - mu_y ** 2
    sxy = F.avg_pool2d(x * y, window, 1, pad, count_include_pad=False) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.mean()


def photometric_loss(rendered: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.2):
    """rendered, target (N,3,H,W) in [0,1]."""
    l1 = (rendered - target).abs().mean()
    if ssim_weight > 0:
        s = ssim(rendered, target)
        return l1 + ssim_weight * (1 - s), {"l1": float(l1.detach()), "ssim": float(s.detach())}
    return l1, {"l1": float(l1.detach())}


def half_resolution_labels(labels: torch.Tensor) -> torch.Tensor:
    """(...,H,W) -> (...,H/2,W/2): the label at the centre of every 2x2 block (nearest)."""
    return labels[..., 1::2, 1::2]


def teacher_features(labels: torch.Tensor, class_embeddings: torch.Tensor, ignore_index: int = 255):
    """Per-pixel teacher at half resolution: labels (N,H,W) -> features (N,D,H/2,W/2), valid (N,H/2,W/2).

    Sub-samples labels at the centre of every 2x2 block (nearest), as the features live at H/2.
    """
    lab = half_resolution_labels(labels)
    valid = (lab != ignore_index) & (lab >= 0) & (lab < class_embeddings.shape[0])
    feats = class_embeddings[lab.clamp(0, class_embeddings.shape[0] - 1)]  # (N,h,w,D)
    return feats.permute(0, 3, 1, 2), valid


def semantic_loss(features: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 - cos over valid pixels; features, teacher (N,D,h,w), valid (N,h,w)."""
    cos = F.cosine_similarity(features, teacher, dim=1)
    m = valid.float()
    return ((1 - cos) * m).sum() / m.sum().clamp_min(1)


def class_contrast_loss(features: torch.Tensor, class_embeddings: torch.Tensor, labels: torch.Tensor,
                        temperature: float = 0.07, ignore_index: int = 255) -> torch.Tensor:
    """Cross-entropy of per-pixel class logits ``cos(feature, class) / temperature``.

    features (N,D,h,w); class_embeddings (C,D) unit norm; labels (N,H,W) at full resolution
    (sub-sampled like :func:`teacher_features` when h = H/2).
    """
    if labels.shape[-2:] != features.shape[-2:]:
        labels = half_resolution_labels(labels)
    logits = torch.einsum("ndhw,cd->nchw", F.normalize(features, dim=1),
                          class_embeddings.to(features.dtype)) / temperature
    target = labels.clone()
    target[(target < 0) | (target >= class_embeddings.shape[0])] = ignore_index
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)
