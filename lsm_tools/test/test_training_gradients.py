"""The training objective trains the whole network: every trainable parameter of ``tiny``
gets a finite, non-zero gradient from ``compute_loss``; the parameters the forward pass never
uses are frozen; a few AdamW steps on one batch lower the loss.
"""
from __future__ import annotations

import dataclasses as dc

import pytest
import torch

from lsm.config import tiny
from lsm.model.lsm import LSM, normalise_images
from lsm_train.data.dataset import ProceduralDataset, collate
from lsm_train.training.losses import gt_pointmaps, optimal_scale, pointmap_loss
from lsm_train.training.objective import compute_loss, render_views, scaled_relative_poses

# Parameters that exist for checkpoint compatibility but that the forward pass never uses:
# DUSt3R's mask token (masked pre-training only) and DPT refinenet4's first residual unit
# (refinenet4 has no skip input).
UNUSED = {
    "dust3r.dust3r.mask_token",
    *(f"dust3r.dust3r.downstream_head{h}.dpt.scratch.refinenet4.resConfUnit1.conv{c}.{w}"
      for h in (1, 2) for c in (1, 2) for w in ("weight", "bias")),
}


def micro_config(size: int = 64):
    """``tiny`` narrowed further (1 encoder block, 2 decoder blocks) for fast optimisation tests."""
    t = tiny()
    return dc.replace(
        t, name="micro", image_size=size,
        encoder=dc.replace(t.encoder, depth=1, embed_dim=96, num_heads=2),
        decoder=dc.replace(t.decoder, depth=2, embed_dim=96, num_heads=2),
        dpt=dc.replace(t.dpt, hooks=(0, 1, 2, 2), layer_dims=(24, 48, 96, 96), feature_dim=32, last_dim=16))


def procedural_batch(size: int, index: int = 0):
    return collate([ProceduralDataset(8, seed=0, size=size)[index]])


@pytest.fixture(scope="module")
def tiny_setup():
    torch.manual_seed(0)
    model = LSM.from_config("tiny").train()
    batch = procedural_batch(128)
    emb = model.text_encoder().encode(list(batch["class_names"]))
    return model, batch, emb


def visible_fraction(model, batch):
    """Mean rendered alpha of the predicted Gaussians at the batch's context cameras."""
    with torch.no_grad():
        out = model(batch["images"][:, 0], batch["images"][:, 1])
        gt, valid = gt_pointmaps(batch["depth"], batch["K"], batch["c2w"])
        scale = optimal_scale(torch.stack([out.pts1, out.pts2], 1), gt[:, :2], valid[:, :2])
        rel = scaled_relative_poses(batch["c2w"], scale)
        r = render_views(out.gaussians[0], batch["K"][0, :2], rel[0, :2], 128, 128)
    return float(r.alpha.mean())


def test_unused_parameters_are_frozen_and_really_unused(tiny_setup):
    model, batch, emb = tiny_setup
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == UNUSED
    # unfreeze them temporarily: the loss must still not reach them
    params = dict(model.named_parameters())
    for n in UNUSED:
        params[n].requires_grad_(True)
    try:
        model.zero_grad(set_to_none=True)
        loss, _ = compute_loss(model, batch, emb)
        loss.backward()
        assert all(params[n].grad is None for n in UNUSED)
    finally:
        for n in UNUSED:
            params[n].requires_grad_(False)
        model.zero_grad(set_to_none=True)


def test_gradients_reach_every_trainable_parameter(tiny_setup):
    """The rendering terms only reach the point transformer, Gaussian head and feature
    expansion/reduction when the predicted Gaussians are in view of the training cameras.
    A randomly initialised ``tiny`` predicts an almost constant pointmap that projects off
    screen (or behind the camera), so one pointmap-only step first gives it a usable geometry
    (as the first steps of a real run do)."""
    model, batch, emb = tiny_setup
    gt, valid = gt_pointmaps(batch["depth"], batch["K"], batch["c2w"])
    backbone = [p for p in model.dust3r.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(backbone, lr=1e-3)
    x1, x2 = normalise_images(batch["images"][:, 0]), normalise_images(batch["images"][:, 1])
    geo = model.dust3r(x1, x2)
    loss, _ = pointmap_loss(torch.stack([geo.pts1, geo.pts2], 1), torch.stack([geo.conf1, geo.conf2], 1),
                            gt[:, :2], valid[:, :2])
    loss.backward()
    opt.step()
    model.zero_grad(set_to_none=True)
    visible = visible_fraction(model, batch)
    assert visible > 0.05, f"precondition: the predicted scene is not in view (mean alpha {visible:.3g})"

    loss, logs = compute_loss(model, batch, emb)
    assert torch.isfinite(loss)
    loss.backward()
    missing, zero, bad = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            missing.append(name)
        elif not torch.isfinite(p.grad).all():
            bad.append(name)
        elif p.grad.abs().max() == 0:
            zero.append(name)
    assert not missing, f"{len(missing)} trainable parameters get no gradient, e.g. {missing[:8]}"
    assert not bad, f"non-finite gradients in {bad[:8]}"
    assert not zero, f"{len(zero)} trainable parameters get an all-zero gradient, e.g. {zero[:8]}"
    # every term contributes
    for k in ("pointmap", "photometric", "semantic", "distill"):
        assert k in logs and logs[k] > 0
    model.zero_grad(set_to_none=True)


def test_adamw_steps_on_one_batch_lower_the_loss():
    torch.manual_seed(0)
    model = LSM(micro_config(64)).train()
    batch = procedural_batch(64, index=1)
    emb = model.text_encoder().encode(list(batch["class_names"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(8):
        loss, _ = compute_loss(model, batch, emb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = float(compute_loss(model, batch, emb)[0])
    print("losses", [round(x, 3) for x in losses], "final", round(final, 3))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert final < 0.75 * losses[0], losses


def test_half_resolution_loss_views_match_the_area_averaged_full_views():
    """``render_scale=0.5`` scales K by 1/2: a half-size render of a scene equals the 2x2
    average of its full-size render (checked on the true geometry of a procedural view)."""
    from lsm.rendering import render

    batch = procedural_batch(64)
    gt, valid = gt_pointmaps(batch["depth"], batch["K"], batch["c2w"])
    keep = valid[0, 0].reshape(-1)
    means = gt[0, 0].reshape(-1, 3)[keep]
    colors = batch["images"][0, 0].permute(1, 2, 0).reshape(-1, 3)[keep]
    K = batch["K"][0, :1]
    radius = (means[:, 2] / K[0, 0, 0] * 0.6)[:, None].expand(-1, 3).contiguous()
    quats = torch.tensor([1.0, 0, 0, 0]).expand(len(means), 4).contiguous()
    opacity = torch.full((len(means),), 0.99)
    eye = torch.eye(4)[None]
    full = render(means, quats, radius, opacity, colors, K, eye, 64, 64).rgb[0]
    Kh = K.clone()
    Kh[..., :2, :] *= 0.5
    half = render(means, quats, radius, opacity, colors, Kh, eye, 32, 32).rgb[0]
    pooled = torch.nn.functional.avg_pool2d(full.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    err = (half - pooled).abs().mean().item()
    shifted = (half[:, 1:] - pooled[:, :-1]).abs().mean().item()  # a half-pixel slip is visible
    assert err < 0.04 and err < shifted, (err, shifted)

    torch.manual_seed(0)
    model = LSM(micro_config(64)).train()
    emb = model.text_encoder().encode(list(batch["class_names"]))
    loss, logs = compute_loss(model, batch, emb, render_scale=0.5)
    assert torch.isfinite(loss) and logs["semantic"] > 0 and logs["photometric"] > 0
    with pytest.raises(ValueError, match="render_scale"):
        compute_loss(model, batch, emb, render_scale=0.3)


def test_backbone_stage_trains_the_2d_modules_only_with_the_same_terms():
    """With the photometric and semantic weights at 0 the step skips the Gaussian stage
    (point transformer, Gaussian head, rendering): only the geometry backbone and the learned
    2-D extractor get gradients, and their terms equal those of the full objective."""
    from lsm_train.training.objective import LossWeights

    torch.manual_seed(0)
    model = LSM(micro_config(64)).train()
    batch = procedural_batch(64, index=2)
    emb = model.text_encoder().encode(list(batch["class_names"]))
    with torch.no_grad():
        _, full = compute_loss(model, batch, emb)
    loss, logs = compute_loss(model, batch, emb, LossWeights(photometric=0.0, semantic=0.0))
    loss.backward()
    for k in ("pointmap", "distill", "distill_contrast"):
        assert logs[k] == pytest.approx(full[k], rel=1e-4), k
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        trained = name.startswith(("dust3r.", "lseg_feature_extractor."))
        assert (p.grad is not None) == trained, name


def micro_stage_step(index: int, **weights):
    """One backward pass of the micro model's 2-D stage on procedural item ``index`` with
    ``LossWeights(photometric=0, semantic=0, **weights)``: (model, batch, class embeddings,
    loss, logs, names of the top-level modules that got gradients)."""
    from lsm_train.training.objective import LossWeights

    torch.manual_seed(0)
    model = LSM(micro_config(64)).train()
    batch = procedural_batch(64, index=index)
    emb = model.text_encoder().encode(list(batch["class_names"]))
    loss, logs = compute_loss(model, batch, emb, LossWeights(photometric=0.0, semantic=0.0, **weights))
    loss.backward()
    trained = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None}
    return model, batch, emb, loss, logs, trained


def test_residual_path_stage_fits_the_path_the_rendered_features_follow():
    """``residual_path`` in the 2-D stage: the expanded-reduced 2-D features of every context
    pixel are fitted to the teacher; gradients reach the feature reduction and expansion only
    (the 2-D features are detached), and with the pointmap weight 0 nothing else runs."""
    from lsm_train.training.losses import semantic_loss, teacher_features

    model, batch, emb, loss, logs, trained = micro_stage_step(3, pointmap=0.0, distill=0.0, residual_path=1.0)
    assert "pointmap" not in logs and "distill" not in logs
    assert trained == {"feature_reduction", "feature_expansion"}

    images, labels = batch["images"], batch["labels"]
    with torch.no_grad():
        sem = model.semantic_features(torch.cat([images[:, 0], images[:, 1]]))
        teacher, valid = teacher_features(torch.cat([labels[:, 0], labels[:, 1]]), emb)
        expected = semantic_loss(model.expand_features(model.feature_reduction(sem)), teacher, valid)
    assert logs["residual_path"] == pytest.approx(float(expected), rel=1e-5)
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)


def test_class_contrast_loss_separates_classes_that_cosine_barely_does():
    """Class-name embeddings are close (cosine 0.4-0.7): the features of the wrong class lose
    little in 1 - cos but a lot in the class cross-entropy; ignored pixels drop out."""
    from lsm.semantics.text_encoder import build_text_encoder
    from lsm_train.training.losses import class_contrast_loss, semantic_loss, teacher_features

    emb = build_text_encoder("minilm").encode(["wall", "floor", "ceiling", "chair", "table", "bed", "sofa", "other"])
    labels = torch.randint(0, 8, (2, 16, 16), generator=torch.Generator().manual_seed(0))
    right = emb[labels].permute(0, 3, 1, 2)
    wrong = emb[(labels + 1) % 8].permute(0, 3, 1, 2)
    teacher, valid = emb[labels].permute(0, 3, 1, 2), torch.ones_like(labels, dtype=torch.bool)
    assert semantic_loss(wrong, teacher, valid) < 0.5
    assert class_contrast_loss(right, emb, labels) < 0.3
    assert class_contrast_loss(wrong, emb, labels) > 3.0
    half = class_contrast_loss(right[..., 1::2, 1::2], emb, labels)  # labels sub-sampled to h = H/2
    assert half == pytest.approx(float(class_contrast_loss(right[..., 1::2, 1::2], emb, labels[..., 1::2, 1::2])))
    ignored = labels.clone()
    ignored[0] = 255
    mixed = torch.cat([wrong[:1], right[1:]])
    assert class_contrast_loss(mixed, emb, ignored) < 0.3
    assert teacher_features(ignored, emb)[1][0].sum() == 0


def test_relative_pointmap_loss_counts_near_and_far_pixels_alike():
    """The relative term is scale-free (average-distance normalisation) and measures each
    pixel's error against its own distance: the same 1 % error costs the same near or far,
    while the paper's term charges the far pixel ten times more."""
    from lsm_train.training.losses import relative_pointmap_loss

    gt = torch.tensor([0.0, 0.0, 1.0]).repeat(1, 2, 1, 100, 1)  # (B=1, V=2, H=1, W=100, 3)
    gt[..., 50:, 2] = 10.0  # per view 50 near pixels at 1 m, 50 far at 10 m
    valid = torch.ones(1, 2, 1, 100, dtype=torch.bool)
    assert float(relative_pointmap_loss(gt * 3.0, gt, valid)) == pytest.approx(0.0, abs=1e-6)

    def perturbed(pixel):  # one pixel 1 % farther, its neighbour 1 % nearer: same mean distance
        pred = gt.clone()
        pred[..., pixel, 2] *= 1.01
        pred[..., pixel + 1, 2] *= 0.99
        return pred

    conf = torch.ones(1, 2, 1, 100)
    near, far = perturbed(0), perturbed(98)
    assert float(relative_pointmap_loss(near, gt, valid)) == pytest.approx(
        float(relative_pointmap_loss(far, gt, valid)), rel=1e-3)
    assert float(pointmap_loss(far, conf, gt, valid)[0]) == pytest.approx(
        10 * float(pointmap_loss(near, conf, gt, valid)[0]), rel=1e-3)


def test_relative_pointmap_weight_alone_trains_the_geometry_backbone():
    """``pointmap_relative`` > 0 with the paper's pointmap weight 0: the 2-D stage runs the
    geometry backbone, logs both terms and the loss is the relative term alone."""
    from lsm_train.training.losses import relative_pointmap_loss

    model, batch, _, loss, logs, trained = micro_stage_step(4, pointmap=0.0, pointmap_relative=1.0, distill=0.0)
    assert {"pointmap", "pointmap_relative"} <= set(logs)
    assert trained == {"dust3r"}
    with torch.no_grad():
        geo = model.dust3r(normalise_images(batch["images"][:, 0]), normalise_images(batch["images"][:, 1]))
        gt, valid = gt_pointmaps(batch["depth"], batch["K"], batch["c2w"])
        expected = relative_pointmap_loss(torch.stack([geo.pts1, geo.pts2], 1), gt[:, :2], valid[:, :2])
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
