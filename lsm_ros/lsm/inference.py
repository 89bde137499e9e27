"""Image pairs in, plain :class:`~lsm.results.Reconstruction` s out: preprocessing, one batched
forward pass, camera recovery.

Camera images are RGB uint8 (H,W,3) arrays (or float in [0,1]); each pair may have its own
resolution. Output frames and units are documented in :mod:`lsm.results`.
Most callers want :class:`lsm.perception.Perception`, which wraps this with loading,
precision, rendering, labels and queries.
"""
from __future__ import annotations

import time
from typing import List, Sequence, Tuple

import torch

from .geometry.pair_cameras import estimate_cameras
from .preprocess import prepare_image
from .results import Reconstruction


@torch.no_grad()
def reconstruct_pairs(model, pairs: Sequence[Tuple[object, object]],
                      timings: dict | None = None) -> List[Reconstruction]:
    """Reconstruct every (image1, image2) pair in one forward pass (batch = len(pairs)).

    ``timings``, when given, is filled with seconds per stage: ``preprocess``, ``network``,
    ``cameras``.
    """
    if len(pairs) == 0:
        raise ValueError("no image pairs given")
    size = model.config.image_size
    param = next(model.parameters())
    t0 = time.perf_counter()
    imgs1, imgs2, tfs = [], [], []
    for a, b in pairs:
        ta, tfa = prepare_image(a, size)
        tb, tfb = prepare_image(b, size)
        imgs1.append(ta)
        imgs2.append(tb)
        tfs.append((tfa, tfb))
    img1 = torch.stack(imgs1).to(param.device, param.dtype)
    img2 = torch.stack(imgs2).to(param.device, param.dtype)
    t1 = time.perf_counter()
    was_training = model.training
    model.eval()
    out = model(img1, img2, symmetric=True)
    model.train(was_training)
    t2 = time.perf_counter()
    recs = []
    sw = out.backbone.swapped
    for i in range(len(pairs)):
        cams = estimate_cameras(out.pts1[i], out.pts2[i], out.conf1[i], out.conf2[i],
                                sw.pts2[i], sw.pts1[i], sw.conf2[i], sw.conf1[i])
        recs.append(Reconstruction(
            images=torch.stack([img1[i], img2[i]]).permute(0, 2, 3, 1).float().cpu(),
            pointmaps=torch.stack([out.pts1[i], out.pts2[i]]).float().cpu(),
            confidence=torch.stack([out.conf1[i], out.conf2[i]]).float().cpu(),
            gaussians=out.gaussians[i].detach().to(torch.float32),  # stays on the model device
            intrinsics=cams.K,
            c2w=cams.c2w,
            transforms=tfs[i],
            focal=cams.focal,
            camera_status=cams.status,
        ))
    t3 = time.perf_counter()
    if timings is not None:
        timings.update(preprocess=t1 - t0, network=t2 - t1, cameras=t3 - t2)
    return recs
