"""Relative-pose errors of a model on held-out procedural pairs (what the node publishes on
its poses topic): rotation error and translation-direction error (up to scale), in degrees.

Usage: .venv/bin/python scripts/pose_errors.py [CHECKPOINT ...]   ('' or none = embedded model)
Pairs: ``generate_sample(seed)`` for seeds 300000 .. 300023 (never used in training), 128x128.
"""
import sys

import numpy as np
import torch

from lsm.data.procedural import generate_sample
from lsm.geometry.pose_metrics import relative_pose_errors
from lsm.model.lsm import LSM

SEEDS = range(300000, 300024)


def pose_errors(checkpoint):
    model = LSM.load(checkpoint or None)
    rot, direction = [], []
    for seed in SEEDS:
        sample = generate_sample(seed, size=128)
        rec = model.reconstruct(sample.context[0].image, sample.context[1].image)
        est = (torch.linalg.inv(rec.c2w[0]) @ rec.c2w[1]).numpy()
        truth = np.linalg.inv(sample.context[0].c2w) @ sample.context[1].c2w
        r, t = (float(np.asarray(e).reshape(-1)[0]) for e in relative_pose_errors(est, truth))
        rot.append(r)
        direction.append(t)
    return np.array(rot), np.array(direction)


if __name__ == "__main__":
    torch.set_num_threads(2)
    for ckpt in sys.argv[1:] or [""]:
        rot, direction = pose_errors(ckpt)
        print(f"{ckpt or 'embedded model'}: {len(rot)} pairs, rotation error median "
              f"{np.median(rot):.1f} deg (mean {rot.mean():.1f}), translation direction median "
              f"{np.median(direction):.1f} deg (mean {direction.mean():.1f})")
