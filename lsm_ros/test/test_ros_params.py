"""Parameters of lsm_node: shipped YAML, validation, and bad params files at start-up."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")

from lsm.specs import DEFAULT_LABELS  # noqa: E402
from lsm_ros.parameters import (  # noqa: E402
    PARAMETER_SPECS,
    LsmSettings,
    ParameterError,
    check_parameter_change,
    settings_from_values,
)


def _yaml_parameters(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    assert list(doc) == ["/**/lsm_node"], "key must match the node in any namespace"
    return doc["/**/lsm_node"]["ros__parameters"]


def test_shipped_yaml_lists_every_parameter_with_its_default(params_file):
    values = _yaml_parameters(params_file)
    assert set(values) == {s.name for s in PARAMETER_SPECS}
    for spec in PARAMETER_SPECS:
        assert values[spec.name] == spec.default, spec.name
        assert type(values[spec.name]) is type(spec.default), spec.name
    assert settings_from_values(values) == LsmSettings()
    assert LsmSettings().labels == DEFAULT_LABELS == (
        "wall", "floor", "ceiling", "chair", "table", "sofa", "bed", "other")


def test_descriptors_carry_ranges_and_read_only_flags():
    by_name = {s.name: s.descriptor() for s in PARAMETER_SPECS}
    d = by_name["query_threshold"]
    assert not d.read_only and d.floating_point_range[0].to_value == 1.0
    assert by_name["point_stride"].integer_range[0].from_value == 1
    assert by_name["model_config"].read_only
    assert "tiny" in by_name["model_config"].additional_constraints
    assert all(s.description for s in PARAMETER_SPECS)


@pytest.mark.parametrize("values,name,fragment", [
    ({"model_config": "huge"}, "model_config", "not one of tiny, paper"),
    ({"device": "gpu"}, "device", "not auto, cpu, cuda or cuda:N"),
    ({"slop": "fast"}, "slop", "expected a number"),
    ({"point_stride": 0}, "point_stride", "outside [1, 64]"),
    ({"query_threshold": 0.0}, "query_threshold", "must be > 0"),
    ({"labels": []}, "labels", "at least one"),
    ({"labels": ["chair", "chair"]}, "labels", "duplicate"),
    ({"labels": ["a" * 65]}, "labels", "longer than max_label_length"),
    ({"image_topics": ["only_one"]}, "image_topics", "needs 2 topic(s)"),
    ({"image_topics": ["cam 0/image", "image_1"]}, "image_topics", "not a valid topic name"),
    ({"confidence_threshold": float("nan")}, "confidence_threshold", "NaN"),
    ({"no_such_param": 1}, "no_such_param", "unknown parameter"),
])
def test_invalid_values_name_the_parameter(values, name, fragment):
    with pytest.raises(ParameterError) as err:
        settings_from_values(values)
    assert err.value.name == name
    assert fragment in str(err.value) and f"'{name}'" in str(err.value)


def test_mono_mode_needs_one_topic_and_device_accepts_cuda_index():
    s = settings_from_values({"mode": "mono", "image_topics": ["cam"], "device": "cuda:1"})
    assert s.image_topics == ("cam",) and s.device == "cuda:1"


def test_run_time_changes():
    s = LsmSettings()
    new, reason = check_parameter_change(s, [("query_threshold", 0.7), ("labels", ["mug"])])
    assert reason == "" and new.query_threshold == 0.7 and new.labels == ("mug",)
    assert s.query_threshold == 0.5  # settings are immutable
    new, reason = check_parameter_change(s, [("device", "cpu")])
    assert new is None and "read-only" in reason
    new, reason = check_parameter_change(s, [("point_stride", 100)])
    assert new is None and "point_stride" in reason
    new, reason = check_parameter_change(s, [("use_sim_time", True)])
    assert new == s and reason == ""


def _run_node(ros_args, timeout=60):
    script = Path(sys.executable).parent / "lsm_node"
    return subprocess.run([str(script), "--ros-args", *ros_args], capture_output=True,
                          text=True, timeout=timeout)


def _write_params(tmp_path, params_file, **changes):
    values = _yaml_parameters(params_file)
    values.update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"/**/lsm_node": {"ros__parameters": values}}))
    return path


@pytest.mark.parametrize("changes,name,fragment", [
    ({"slop": "fast"}, "slop", "expecting type 'DOUBLE'"),
    ({"query_threshold": 1}, "query_threshold", "expecting type 'DOUBLE'"),
    ({"labels": 3}, "labels", "expecting type 'STRING_ARRAY'"),
    ({"point_stride": 0}, "point_stride", ""),
    ({"model_config": "huge"}, "model_config", "not one of tiny, paper"),
    ({"image_topics": ["/cam/left image", "/cam/right"]}, "image_topics", "not a valid topic name"),
])
def test_bad_params_file_stops_the_node_with_a_clear_message(tmp_path, params_file,
                                                             changes, name, fragment):
    path = _write_params(tmp_path, params_file, **changes)
    out = _run_node(["--params-file", str(path)])
    assert out.returncode == 2, out.stdout + out.stderr
    assert "lsm_node: invalid parameter" in out.stderr
    assert name in out.stderr and fragment in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_params_file_is_reported(tmp_path):
    out = _run_node(["--params-file", str(tmp_path / "nope.yaml")])
    assert out.returncode == 2
    assert "lsm_node: cannot initialise ROS 2" in out.stderr and "nope.yaml" in out.stderr
