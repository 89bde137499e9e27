"""Relative-pose errors of a model on held-out procedural pairs (what the node publishes on
its poses topic): rotation error and translation-direction error (up to scale), in degrees.

Usage: .venv/bin/python scripts/pose_errors.py [CHECKPOINT ...]   ('' or none = embedded model)
Pairs: ``generate_sample(seed)`` for seeds 300000 .. 300023 (never used in training), 128x128;
see ``lsm_train.evaluation.poses``.
"""
import sys

import numpy as np
import torch

from lsm.checkpoint import load_model
from lsm_train.evaluation.poses import pair_pose_errors

if __name__ == "__main__":
    torch.set_num_threads(2)
    for ckpt in sys.argv[1:] or [""]:
        rot, direction = pair_pose_errors(load_model(ckpt or None))
        print(f"{ckpt or 'embedded model'}: {len(rot)} pairs, rotation error median "
              f"{np.median(rot):.1f} deg (mean {rot.mean():.1f}), translation direction median "
              f"{np.median(direction):.1f} deg (mean {direction.mean():.1f}), "
              f"within 45 deg {np.mean(direction < 45):.0%}")
