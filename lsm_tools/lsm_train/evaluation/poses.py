"""Relative-pose accuracy of a model on held-out procedural image pairs.

What the node publishes on its poses topic, measured against the generator's true cameras:
view 2's camera-to-world pose in view 1's frame (OpenCV axes), compared by rotation angle
and by translation direction (up to scale, since pointmap poses have no metric scale).
"""
from __future__ import annotations

from typing import Iterable, Tuple

import numpy as np
import torch

from lsm.geometry.pose_metrics import relative_pose_errors
from lsm.inference import reconstruct_pairs

from ..data.procedural import generate_sample

# generate_sample seeds never used in training (training uses ProceduralDataset items,
# whose per-item seeds are hashes of the dataset seed and the index)
HELD_OUT_POSE_SEEDS = range(300000, 300024)


def pair_pose_errors(model, seeds: Iterable[int] = HELD_OUT_POSE_SEEDS, size: int = 128
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """(rotation errors, translation-direction errors) in degrees, one per seed, shape (N,).

    For each seed, ``generate_sample(seed, size)``'s two context views go through
    :func:`lsm.inference.reconstruct_pairs` and the estimated relative pose is compared
    with the true one.
    """
    rotation, direction = [], []
    for seed in seeds:
        sample = generate_sample(seed, size=size)
        rec = reconstruct_pairs(model, [(sample.context[0].image, sample.context[1].image)])[0]
        estimated = (torch.linalg.inv(rec.c2w[0].double()) @ rec.c2w[1].double()).numpy()
        truth = np.linalg.inv(sample.context[0].c2w) @ sample.context[1].c2w
        r, t = relative_pose_errors(estimated, truth)
        rotation.append(float(r))
        direction.append(float(t))
    return np.array(rotation), np.array(direction)
