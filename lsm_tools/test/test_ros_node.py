"""lsm_node as its own process (console script + YAML), queried over real DDS."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("lsm_ros_interfaces")

from lsm_tools.process import call_query, start_lsm_node, stop_process  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def node_process(params_file, tmp_path_factory):
    log = tmp_path_factory.mktemp("lsm_node") / "lsm_node.log"
    proc = start_lsm_node(params_file, log_path=log)
    yield proc
    code = stop_process(proc)
    assert code == 0, f"lsm_node exited with {code}:\n{log.read_text()}"


def query(node, proc, label, **kw):
    return call_query(node, label, server_process=proc, timeout=30.0, **kw)


def test_query_without_reconstruction_is_a_clear_failure(rclpy_node, node_process):
    r = query(rclpy_node, node_process, "chair")
    assert r.success is False
    assert r.message.startswith("no reconstruction yet: ")
    assert "/image_0" in r.message and "/image_1" in r.message
    # nothing else is filled in a failed answer
    assert (r.mask.width, r.mask.height, len(r.mask.data)) == (0, 0, 0)
    assert r.points.width * r.points.height == 0 and len(r.points.data) == 0
    assert r.score == 0.0 and r.header.frame_id == ""


def test_label_matching_ignores_case_and_spaces(rclpy_node, node_process):
    r = query(rclpy_node, node_process, "  Chair ", threshold=0.3, view=0)
    assert r.message.startswith("no reconstruction yet")


@pytest.mark.parametrize("label,expected", [
    ("", "label is empty"),
    ("   ", "label is empty"),
    ("x" * 65, "longer than max_label_length=64"),
    ("chair\n", "non-printable"),
])
def test_bad_labels_get_clear_errors(rclpy_node, node_process, label, expected):
    r = query(rclpy_node, node_process, label)
    assert r.success is False
    assert expected in r.message


@pytest.mark.parametrize("kw,expected", [
    (dict(threshold=1.5), "threshold 1.5 is outside [0, 1]"),
    (dict(threshold=-0.1), "outside [0, 1]"),
    (dict(view=-2), "view -2 is invalid"),
])
def test_bad_threshold_or_view_get_clear_errors(rclpy_node, node_process, kw, expected):
    r = query(rclpy_node, node_process, "chair", **kw)
    assert r.success is False and expected in r.message


def _set_parameters(node, target, params, timeout=20.0):
    """Call <target>/set_parameters (as `ros2 param set` does); returns the results."""
    import rclpy
    from rcl_interfaces.srv import SetParameters

    client = node.create_client(SetParameters, f"{target}/set_parameters")
    try:
        assert client.wait_for_service(timeout_sec=timeout)
        request = SetParameters.Request(parameters=[p.to_parameter_msg() for p in params])
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
        assert future.done()
        return future.result().results
    finally:
        node.destroy_client(client)


def test_labels_change_at_run_time_and_are_validated(rclpy_node, node_process):
    from rclpy.parameter import Parameter

    bad = _set_parameters(rclpy_node, "/lsm_node",
                          [Parameter("labels", value=["chair", ""])])
    assert not bad[0].successful and "label is empty" in bad[0].reason
    ro = _set_parameters(rclpy_node, "/lsm_node",
                         [Parameter("model_config", value="paper")])
    assert not ro[0].successful and "read-only" in ro[0].reason
    rng = _set_parameters(rclpy_node, "/lsm_node",
                          [Parameter("query_threshold", value=1.5)])
    assert not rng[0].successful

    ok = _set_parameters(rclpy_node, "/lsm_node",
                         [Parameter("labels", value=["chair", "spaceship"])])
    assert ok[0].successful, ok[0].reason
    try:
        r = query(rclpy_node, node_process, "spaceship")
        assert r.message.startswith("no reconstruction yet")
        r = query(rclpy_node, node_process, "wall")  # open vocabulary: any label is valid
        assert r.message.startswith("no reconstruction yet")
    finally:
        from lsm.specs import DEFAULT_LABELS
        _set_parameters(rclpy_node, "/lsm_node",
                        [Parameter("labels", value=list(DEFAULT_LABELS))])


def test_namespace_and_image_remaps(rclpy_node, params_file, tmp_path):
    proc = start_lsm_node(params_file, ["-r", "__ns:=/robot1", "-r", "image_0:=/cam/left",
                                        "-p", "mode:=mono"],
                          log_path=tmp_path / "ns.log")
    try:
        r = call_query(rclpy_node, "table", service="/robot1/lsm/query",
                       server_process=proc, timeout=30.0)
        assert r.message.startswith("no reconstruction yet")
        assert "mode 'mono'" in r.message and "/cam/left" in r.message
        assert "image_1" not in r.message
    finally:
        assert stop_process(proc) == 0, (tmp_path / "ns.log").read_text()


def test_node_stops_cleanly_on_sigterm(params_file, tmp_path):
    import signal

    proc = start_lsm_node(params_file, log_path=tmp_path / "term.log")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, (tmp_path / "term.log").read_text()



class _RunsCode:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind,expected", [
    ("missing", "not found"),
    ("truncated", "truncated"),
    ("code", "could run code"),
    ("wrong_architecture", "does not fit"),
])
def test_node_refuses_a_bad_checkpoint_and_says_why(params_file, tmp_path, kind, expected):
    import torch

    path = tmp_path / f"{kind}.pt"
    if kind == "truncated":
        from lsm.checkpoint import EMBEDDED_CHECKPOINT

        data = EMBEDDED_CHECKPOINT.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "code":
        torch.save({"format": "lsm_ros/1", "model": {"w": torch.zeros(1)},
                    "x": _RunsCode(tmp_path / "pwned")}, path)
    elif kind == "wrong_architecture":
        from lsm.config import tiny

        torch.save({"format": "lsm_ros/1", "config": tiny().to_dict(),
                    "model": {"not.a.layer.weight": torch.zeros(3, 3)}}, path)
    log = tmp_path / "node.log"
    proc = start_lsm_node(params_file, ["-p", f"checkpoint:={path}"], log_path=log)
    try:
        code = proc.wait(timeout=90)
    finally:
        stop_process(proc)
    text = log.read_text()
    assert code == 3, text
    assert "lsm_node: cannot start: the model could not be loaded" in text
    assert expected in text and path.name in text, text
    assert not (tmp_path / "pwned").exists()
