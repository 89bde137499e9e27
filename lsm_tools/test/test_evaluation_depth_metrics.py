"""Depth metrics of the paper's protocol: median scaling, AbsRel / tau, and the split of the
errors into pixels near and away from true depth edges."""
from __future__ import annotations

import math

import torch

from lsm_train.evaluation.metrics import depth_errors_by_edges, depth_scores


def step_scene():
    """A near box (2 m) left of column 10 in front of a far wall (4 m), 1 x 32 x 32; the wall
    is most of the image, so it sets the median."""
    gt = torch.full((1, 32, 32), 4.0)
    gt[:, :, :10] = 2.0
    return gt


def test_depth_scores_ignore_the_scale_and_count_pixels_within_three_percent():
    gt = step_scene()
    pred = 0.37 * gt  # right shape, wrong scale: perfect after median scaling
    s = depth_scores(pred, gt)
    assert s["tau"] == 1.0 and s["abs_rel"] < 1e-12
    off = pred.clone()
    off[:, :8] *= 1.10  # a quarter of the pixels 10 % too far
    s = depth_scores(off, gt)
    assert math.isclose(s["tau"], 0.75) and 0.02 < s["abs_rel"] < 0.03


def test_errors_split_at_the_depth_edge():
    gt = step_scene()
    pred = gt.clone()
    pred[:, :, 8:12] = 3.0  # a blurred outline: two columns each side of the edge
    pred[0, 0, 0] = float("nan")  # invalid pixels drop out
    err, near = depth_errors_by_edges(pred, gt)
    assert err.shape == near.shape == (32 * 32 - 1,)
    cols = torch.arange(32).expand(32, 32).reshape(-1)[1:]
    assert torch.equal(near, (cols >= 8) & (cols <= 11))  # 5x5 window: 2 columns each side
    assert torch.all(err[~near] == 0)
    expected = torch.where(cols[near] < 10, math.log(3 / 2), math.log(4 / 3)).double()
    torch.testing.assert_close(err[near], expected)
