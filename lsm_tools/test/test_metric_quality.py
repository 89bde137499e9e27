"""Metric outputs from the robot's sensors, with the embedded model on 20 held-out procedural
pairs (lsm-eval-metric; seeds 300000-300019, never used in training). Targets of the
sensor-grounded geometry work, each printed beside its trivial baseline:

* known intrinsics are used as given and do not make the relative rotation worse;
* scale error (median): depth <= 2 %, stereo <= 10 %, odometry <= 15 %;
* depth fusion 'replace': the cloud's depth AbsRel <= 0.01 on valid pixels, holes filled.
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summary():
    from lsm.perception import Perception
    from lsm_train.evaluation.metric import evaluate, report

    s = evaluate(Perception.load(device="cpu"), pairs=20, log=lambda m: None)
    print(report(s))
    return s


def test_known_intrinsics_are_used_and_do_not_worsen_the_rotation(summary):
    assert summary["focal_used_equals_given"]
    r = summary["rotation_deg"]
    assert r["known_K"] <= r["estimated_K"] < r["identity"], r


@pytest.mark.parametrize("source,bound", [("depth", 0.02), ("stereo_rectified", 0.10),
                                          ("stereo_tf", 0.10), ("odometry", 0.15)])
def test_scale_from_each_source_is_near_the_best_scale(summary, source, bound):
    error = summary["scale_error_median_abs"][source]
    assert error is not None and error <= bound, summary["scale_error_median_abs"]
    # metric depth after scaling beats the best constant depth by far
    assert summary["metric_abs_rel"][source] < 0.5 * summary["best_constant_depth_abs_rel"]


def test_depth_fusion_carries_the_sensor_accuracy_and_the_model_fills_the_holes(summary):
    fused = summary["fused_abs_rel"]
    assert fused["valid_pixels"] <= 0.01
    assert np.isfinite(fused["holes_filled_by_the_model"])
    assert fused["holes_filled_by_the_model"] < summary["best_constant_depth_abs_rel"]
