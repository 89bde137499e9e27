"""One training step's loss: forward the context pair, render the views, combine the terms.

See :mod:`lsm_train.training.losses` for each term. Batch dict keys (from
:func:`lsm_train.data.dataset.collate`): ``images`` (B,V,3,H,W) in [0,1], ``depth`` (B,V,H,W),
``labels`` (B,V,H,W) long, ``K`` (B,V,3,3), ``c2w`` (B,V,4,4); views 0 and 1 are the
context pair, the rest are target views.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lsm.model.lsm import normalise_images
from lsm.rendering import render

from .losses import (
    class_contrast_loss,
    gt_pointmaps,
    optimal_scale,
    photometric_loss,
    pointmap_loss,
    relative_pointmap_loss,
    semantic_loss,
    teacher_features,
)


@dataclass(frozen=True)
class LossWeights:
    pointmap: float = 1.0
    # our addition for geometry stages: unweighted relative point error (see losses)
    pointmap_relative: float = 0.0
    photometric: float = 1.0
    semantic: float = 0.2  # official feature_loss_weight
    distill: float = 0.5  # trains a learnable 2-D semantic extractor (tiny); 0 for frozen LSeg
    distill_contrast: float = 0.1  # class cross-entropy for the learnable extractor (see losses)
    semantic_contrast: float = 0.0  # the same on the rendered features (0 = the paper's objective)
    # 2-D stage only: fits the per-pixel semantic residual path (expansion o reduction of the
    # detached 2-D features), which the rendered source-view features mostly follow
    residual_path: float = 0.0
    ssim: float = 0.2
    conf_alpha: float = 0.2


def reads_target_views(weights: LossWeights) -> bool:
    """Whether the objective renders and scores target views; without the photometric and
    semantic terms only the 2-D stage runs, which reads the context pair alone."""
    return weights.photometric != 0 or weights.semantic != 0


def scaled_relative_poses(c2w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Ground-truth poses (B,V,4,4) -> poses in view 0's frame with translations x ``scale`` (B,),
    i.e. in the prediction's units."""
    B, V = c2w.shape[:2]
    rel = torch.linalg.inv(c2w[:, :1]) @ c2w
    rel = torch.cat([rel[..., :3, :3], rel[..., :3, 3:] * scale[:, None, None, None]], dim=-1)
    return torch.cat([rel, c2w.new_tensor([0, 0, 0, 1]).expand(B, V, 1, 4)], dim=-2)


def render_views(gaussians, K: torch.Tensor, rel_c2w: torch.Tensor, width: int, height: int):
    """Render one scene's Gaussians at V cameras: K (V,3,3), rel_c2w (V,4,4) reference frame."""
    g = gaussians
    return render(g.means, g.rotations, g.scales, g.opacities, g.colors(), K,
                  torch.linalg.inv(rel_c2w), width, height, features=g.features)


def compute_loss(model, batch: dict, class_embeddings: torch.Tensor,
                 weights: LossWeights = LossWeights(), render_scale: float = 1.0
                 ) -> tuple[torch.Tensor, dict]:
    """Total loss and a dict of float logs for one batch.

    ``render_scale`` 0.5 renders the views for the photometric and semantic terms at half
    the input resolution (intrinsics scaled; images area-averaged to match; the rendered
    features are then already at the teacher's H/2 and only the 1x1 expansion applies).
    It quarters the rasterisation cost, which dominates a CPU training step; 1.0 is the
    paper's setting. With ``weights.photometric == weights.semantic == 0`` only the 2-D
    stage runs (see :func:`_backbone_stage_loss`)."""
    if render_scale not in (0.5, 1.0):
        raise ValueError(f"render_scale must be 0.5 or 1.0, got {render_scale}")
    images, labels = batch["images"], batch["labels"]
    K, c2w = batch["K"], batch["c2w"]
    B, V, _, H, W = images.shape
    if not reads_target_views(weights):
        return _backbone_stage_loss(model, batch, class_embeddings, weights)
    out = model(images[:, 0], images[:, 1])
    l_geo, logs, scale = _pointmap_term(out, batch, weights)

    rel = scaled_relative_poses(c2w, scale)
    Kr, Wr, Hr = K, W, H
    if render_scale != 1.0:
        Kr = K.clone()
        Kr[..., :2, :] *= render_scale  # pixel centres at +0.5 stay consistent for a factor 1/2
        Wr, Hr = int(W * render_scale), int(H * render_scale)
    rgb, feats = [], []
    for b in range(B):
        r = render_views(out.gaussians[b], Kr[b], rel[b], Wr, Hr)
        rgb.append(r.rgb)
        feats.append(r.features)
    rgb = torch.stack(rgb).permute(0, 1, 4, 2, 3).flatten(0, 1)  # (B*V,3,H,W)
    feats = torch.stack(feats).permute(0, 1, 4, 2, 3).flatten(0, 1)  # (B*V,F,H,W)
    target = images.flatten(0, 1)
    if render_scale != 1.0:
        target = torch.nn.functional.avg_pool2d(target, 2)
    l_photo, plogs = photometric_loss(rgb, target, weights.ssim)
    logs.update(plogs)

    teacher, tvalid = teacher_features(labels.flatten(0, 1), class_embeddings.to(feats.dtype))
    expanded = model.expand_features(feats, downsample=render_scale == 1.0)
    l_sem = semantic_loss(expanded, teacher, tvalid)
    total = l_geo + weights.photometric * l_photo + weights.semantic * l_sem
    logs.update(photometric=float(l_photo.detach()), semantic=float(l_sem.detach()))
    if weights.semantic_contrast > 0:
        l_sc = class_contrast_loss(expanded, class_embeddings, labels.flatten(0, 1))
        total = total + weights.semantic_contrast * l_sc
        logs["semantic_contrast"] = float(l_sc.detach())

    if _distills(model, weights):
        # out.semantic_2d is view-major (2B): reorder the context teachers to match
        t_ctx = teacher.unflatten(0, (B, V))[:, :2].transpose(0, 1).flatten(0, 1)
        v_ctx = tvalid.unflatten(0, (B, V))[:, :2].transpose(0, 1).flatten(0, 1)
        l_ctx = labels[:, :2].transpose(0, 1).flatten(0, 1)
        total = total + _distill_loss(out.semantic_2d, t_ctx, v_ctx, l_ctx, class_embeddings, weights, logs)
    logs["loss"] = float(total.detach())
    return total, logs


def _pointmap_term(pred_out, batch: dict, weights: LossWeights):
    """Weighted geometry loss of the context pair from any output with
    ``pts1/pts2/conf1/conf2`` (the network's or the geometry backbone's): ``pointmap`` x the
    paper's pointmap loss + ``pointmap_relative`` x the relative point error; returns (loss,
    logs with both unweighted terms, scale (B,) with s * gt ~ pred)."""
    gt, valid = gt_pointmaps(batch["depth"], batch["K"], batch["c2w"])
    pred = torch.stack([pred_out.pts1, pred_out.pts2], dim=1)
    conf = torch.stack([pred_out.conf1, pred_out.conf2], dim=1)
    l_pts, logs = pointmap_loss(pred, conf, gt[:, :2], valid[:, :2], alpha=weights.conf_alpha)
    logs["pointmap"] = float(l_pts.detach())
    loss = weights.pointmap * l_pts
    if weights.pointmap_relative > 0:
        rel = relative_pointmap_loss(pred, gt[:, :2], valid[:, :2])
        logs["pointmap_relative"] = float(rel.detach())
        loss = loss + weights.pointmap_relative * rel
    return loss, logs, optimal_scale(pred, gt[:, :2], valid[:, :2])


def _distill_loss(sem, teacher, valid, labels, class_embeddings, weights: LossWeights, logs: dict):
    """Weighted distillation of the learned 2-D extractor: 1 - cos to the teacher plus the
    class contrast term; sem/teacher (N,D,h,w), valid (N,h,w), labels (N,H,W)."""
    return _feature_fit(sem, teacher, valid, labels, class_embeddings,
                        weights.distill, weights.distill_contrast, logs, "distill")


def _feature_fit(feats, teacher, valid, labels, class_embeddings, w_cos: float, w_ce: float,
                 logs: dict, name: str):
    """w_cos x (1 - cos to the teacher) + w_ce x class cross-entropy of text-space features
    (N,D,h,w); logged as ``name`` and ``name + "_contrast"``."""
    l_cos = semantic_loss(feats, teacher, valid)
    logs[name] = float(l_cos.detach())
    total = w_cos * l_cos
    if w_ce > 0:
        l_ce = class_contrast_loss(feats, class_embeddings, labels)
        logs[name + "_contrast"] = float(l_ce.detach())
        total = total + w_ce * l_ce
    return total


def _distills(model, weights: LossWeights) -> bool:
    """Whether the 2-D semantic extractor is trained (a learnable one and a distill weight)."""
    return weights.distill > 0 and any(p.requires_grad for p in model.lseg_feature_extractor.parameters())


def _backbone_stage_loss(model, batch: dict, class_embeddings: torch.Tensor, weights: LossWeights
                         ) -> tuple[torch.Tensor, dict]:
    """The 2-D stage: pointmap regression of the geometry backbone plus distillation of the
    learned 2-D semantic extractor, without the point transformer, the Gaussian head or any
    rendering (about a tenth of a full step on CPU). Used when the photometric and semantic
    weights are both 0; the Gaussian stage is then trained afterwards with the full objective.
    With ``weights.residual_path`` > 0 it also fits the semantic residual path (feature
    reduction then expansion, per pixel, of the detached 2-D features) to the teacher; with
    ``weights.pointmap`` and ``weights.pointmap_relative`` 0 the geometry backbone is not run
    at all."""
    images, labels = batch["images"], batch["labels"]
    total, logs = images.new_zeros(()), {}
    if weights.pointmap > 0 or weights.pointmap_relative > 0:
        geo = model.dust3r(normalise_images(images[:, 0]), normalise_images(images[:, 1]))
        l_geo, logs, _ = _pointmap_term(geo, batch, weights)
        total = total + l_geo
    logs.update(photometric=0.0, semantic=0.0)
    if _distills(model, weights) or weights.residual_path > 0:
        sem = model.semantic_features(torch.cat([images[:, 0], images[:, 1]], dim=0))  # view-major
        ctx_labels = torch.cat([labels[:, 0], labels[:, 1]], dim=0)
        teacher, tvalid = teacher_features(ctx_labels, class_embeddings.to(sem.dtype))
        if _distills(model, weights):
            total = total + _distill_loss(sem, teacher, tvalid, ctx_labels, class_embeddings, weights, logs)
        if weights.residual_path > 0:
            path = model.expand_features(model.feature_reduction(sem.detach()))
            total = total + _feature_fit(path, teacher, tvalid, ctx_labels, class_embeddings,
                                         weights.residual_path, weights.semantic_contrast, logs,
                                         "residual_path")
    logs["loss"] = float(total.detach())
    return total, logs


def point_distillation_loss(model, batch: dict, teacher) -> tuple[torch.Tensor, dict]:
    """Fit ``model``'s point transformer so that its Gaussians match ``teacher``'s.

    For a student whose only difference is the point transformer's input (e.g.
    ``ptv3.point_stride`` 2 against the teacher's 1): both read the teacher's geometry and
    2-D semantic features of the context pair (the student's are the same frozen modules),
    and the loss compares what the renderer and the labels read, per Gaussian: opacity, log
    scale, rotation (1 - |cos| of the quaternions), SH colour and semantic feature. Each
    squared difference is divided by the teacher's variance of that quantity over the batch
    (1.0 = as far as the teacher's own spread), and the five are summed. Logs every term,
    ``point_distill`` (the sum) and ``point_cosine`` (median cosine similarity of the
    semantic features)."""
    img1, img2 = batch["images"][:, 0], batch["images"][:, 1]
    B = img1.shape[0]
    with torch.no_grad():
        geo, sem = teacher.geometry(img1, img2)
        points = torch.stack([geo.pts1, geo.pts2], dim=1).flatten(1, 3)
        target = teacher.gaussians_from_points(points, img1, img2, geo.enc_tokens, sem)
    pred = model.gaussians_from_points(points, img1, img2, geo.enc_tokens, sem)

    def fit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        b = b.reshape(B, -1, b.shape[-1] if b.dim() > 2 else 1)
        a = a.reshape(b.shape)
        return (a - b).pow(2).mean() / b.flatten(0, 1).var(dim=0).mean().clamp_min(1e-8)

    rotation = 1 - (pred.rotations * target.rotations).sum(dim=-1).abs()
    terms = {"opacity": fit(pred.opacities, target.opacities),
             "log_scale": fit(pred.scales.log(), target.scales.log()),
             "rotation": rotation.mean(),
             "colour": fit(pred.sh.flatten(-2), target.sh.flatten(-2)),
             "feature": fit(pred.features, target.features)}
    loss = sum(terms.values())
    cosine = torch.nn.functional.cosine_similarity(pred.features.detach(), target.features, dim=-1)
    logs = {f"distill_{k}": float(v.detach()) for k, v in terms.items()}
    logs.update(loss=float(loss.detach()), point_distill=float(loss.detach()),
                point_cosine=float(cosine.median()))
    return loss, logs
