"""The node benchmark's per-stage attribution: a stage timed inside another (the view render
inside the label map) counts once, for its own stage."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")

from lsm_tools.benchmark_node import _timed_method  # noqa: E402


class _Scene:
    def render_view(self):
        time.sleep(0.05)

    def label_map(self):
        self.render_view()
        time.sleep(0.02)


def test_nested_stage_counts_for_itself_and_the_outer_gets_the_rest():
    scene, timings, active = _Scene(), {}, []
    _timed_method(scene, "render_view", "rendering", timings, active)
    _timed_method(scene, "label_map", "labels", timings, active)
    scene.label_map()
    scene.render_view()
    assert timings["rendering"] == pytest.approx(0.10, abs=0.03)
    assert timings["labels"] == pytest.approx(0.02, abs=0.015)
    assert active == []
