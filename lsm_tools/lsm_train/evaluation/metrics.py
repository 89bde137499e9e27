"""The paper's metrics (Table 1): semantic mIoU / pixel accuracy, depth AbsRel / inlier
ratio tau, and novel-view PSNR / SSIM / LPIPS.

* Semantics: confusion matrix over ``num_classes`` classes; pixels labelled ``ignore`` drop
  out; mIoU averages the IoU of classes present in the ground truth or the prediction.
* Depth: prediction scaled by the median ratio ``median(gt) / median(pred)`` over valid
  pixels (the models are scale-free); ``AbsRel = mean(|d - g| / g)``;
  ``tau = mean(max(d/g, g/d) < 1.03)`` (LSM's threshold).
* Images in [0, 1]: PSNR in dB; SSIM with a Gaussian window (11, sigma 1.5); LPIPS only when
  a local weights file is given (no downloads here) -- otherwise reported as ``None``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def confusion_matrix(pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore: int = 255) -> torch.Tensor:
    valid = (gt != ignore) & (gt >= 0) & (gt < num_classes)
    idx = gt[valid].long() * num_classes + pred[valid].long().clamp(0, num_classes - 1)
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def segmentation_scores(conf: torch.Tensor) -> dict:
    """mIoU and pixel accuracy from a confusion matrix (rows = ground truth)."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = tp[present] / union[present]
    total = conf.sum()
    return {
        "miou": float(iou.mean()) if present.any() else float("nan"),
        "accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "per_class_iou": [float(tp[i] / union[i]) if union[i] > 0 else None for i in range(conf.shape[0])],
    }


def median_scaled_depth(pred: torch.Tensor, gt: torch.Tensor):
    """pred (...,H,W) x ``median(gt) / median(pred)`` over the valid pixels (float64), and the
    validity mask (gt and pred finite and > 0); ``None`` scaled depth when nothing is valid."""
    valid = (gt > 0) & torch.isfinite(gt) & torch.isfinite(pred) & (pred > 0)
    if not valid.any():
        return None, valid
    p = pred.double()
    return p * (gt[valid].double().median() / p[valid].median()), valid


def depth_errors_by_edges(pred: torch.Tensor, gt: torch.Tensor, window: int = 5, jump: float = 0.05):
    """Per-pixel |log(d / g)| after median scaling, and whether each pixel is near a true
    depth edge (its ``window`` x ``window`` neighbourhood spans more than ``jump`` in log
    depth): two flat tensors over the valid pixels. pred, gt (N,H,W)."""
    scaled, valid = median_scaled_depth(pred, gt)
    if scaled is None:
        return pred.new_zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.bool)
    log_g = gt.double().clamp_min(1e-6).log()[:, None]
    pad = window // 2
    span = (F.max_pool2d(log_g, window, 1, pad) + F.max_pool2d(-log_g, window, 1, pad))[:, 0]
    return (scaled.log() - log_g[:, 0])[valid].abs(), (span > jump)[valid]


def depth_scores(pred: torch.Tensor, gt: torch.Tensor, threshold: float = 1.03) -> dict:
    """AbsRel and tau after median scaling; pred, gt (...,H,W), gt <= 0 is invalid."""
    scaled, valid = median_scaled_depth(pred, gt)
    if scaled is None:
        return {"abs_rel": float("nan"), "tau": float("nan")}
    p, g = scaled[valid], gt[valid].double()
    ratio = torch.maximum(p / g, g / p)
    return {"abs_rel": float(((p - g).abs() / g).mean()), "tau": float((ratio < threshold).double().mean())}


def psnr(pred: torch.Tensor, gt: torch.Tensor) -> float:
    mse = F.mse_loss(pred.double(), gt.double())
    return float(10 * torch.log10(1.0 / mse.clamp_min(1e-12)))


def ssim(pred: torch.Tensor, gt: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Images (N,3,H,W) or (3,H,W) in [0,1]; Gaussian-window SSIM (Wang et al.)."""
    if pred.dim() == 3:
        pred, gt = pred[None], gt[None]
    x = torch.arange(window, dtype=torch.float64) - window // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).to(pred.device)
    k = (g[:, None] * g[None, :]).expand(pred.shape[1], 1, window, window).contiguous()
    conv = lambda t: F.conv2d(t, k, groups=t.shape[1])  # noqa: E731 (valid padding)
    a, b = pred.double(), gt.double()
    mu_a, mu_b = conv(a), conv(b)
    saa, sbb, sab = conv(a * a) - mu_a ** 2, conv(b * b) - mu_b ** 2, conv(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return float(s.mean())


class LPIPSMetric:
    """LPIPS from the ``lpips`` package with local weights only; ``available`` says if it runs."""

    def __init__(self, weights_path: Optional[str] = None):
        self.available = False
        self.reason = "no LPIPS weights given (pass --lpips-weights; nothing is downloaded here)"
        if not weights_path:
            return
        try:
            import lpips  # noqa: F401
        except ImportError:
            self.reason = "the 'lpips' package is not installed"
            return
        try:
            import lpips

            self.net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, model_path=weights_path,
                                   verbose=False).eval()
            self.available = True
            self.reason = ""
        except Exception as exc:  # missing backbone weights etc.
            self.reason = f"LPIPS could not load ({type(exc).__name__}: {exc})"

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> Optional[float]:
        if not self.available:
            return None
        with torch.no_grad():
            return float(self.net(pred * 2 - 1, gt * 2 - 1).mean())


def mean_of(rows: list, key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")
