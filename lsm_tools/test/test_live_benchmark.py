"""lsm-benchmark-live runs end to end over DDS and its figures are consistent (no timing
thresholds: speed is reported by the benchmark, not asserted)."""
from __future__ import annotations

import math
import os

import pytest

pytest.importorskip("rclpy")

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_live_benchmark_measures_throughput_latency_and_staleness(rclpy_node):
    from lsm_tools.live_benchmark import CONFIGS, measure, report

    rows = measure("defaults", CONFIGS["defaults"], [8.0], 6.0, (240, 320), dict(os.environ),
                   log=print)
    (r,) = rows
    print(report(rows))
    assert r["offered"] == 48 and 2 <= r["published"] <= r["offered"]
    assert r["precision"] == "fp32"  # the default, as /diagnostics reports it
    assert r["pairs_per_s"] > 0 and math.isfinite(r["latency_median_s"])
    assert r["latency_p90_s"] >= r["latency_median_s"] > 0
    # the newest pair only: at 8 Hz offered, the node skips pairs rather than queueing them
    assert r["published"] < r["offered"] or r["pairs_per_s"] >= 7.0


def test_live_benchmark_runs_the_node_in_bf16_where_the_cpu_has_it(rclpy_node):
    """precision: bf16 reaches the node: it reconstructs and /diagnostics names what ran."""
    from lsm.perception import effective_precision
    from lsm_tools.live_benchmark import CONFIGS, measure

    (r,) = measure("bf16", CONFIGS["bf16"], [4.0], 4.0, (240, 320), dict(os.environ), log=print)
    expected, note = effective_precision("bf16", "cpu")
    assert r["published"] >= 2
    assert r["precision"] == (expected if not note else f"{expected} ({note})")


def test_configurations_are_named_or_a_weights_file(tmp_path):
    """``--configs`` takes the named configurations or checkpoint=PATH (two weight files
    alternating in one run); anything else is refused before a node starts."""
    import pytest

    from lsm_tools.live_benchmark import CONFIGS, config_arguments, main

    assert config_arguments("bf16") == CONFIGS["bf16"]
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"x")
    assert config_arguments(f"checkpoint={weights}") == ["-p", f"checkpoint:={weights.resolve()}"]
    for bad in ("fast", f"checkpoint={tmp_path / 'absent.pt'}", "checkpoint="):
        with pytest.raises(ValueError):
            config_arguments(bad)
    with pytest.raises(SystemExit):
        main(["--configs", "defaults", "fast"])
