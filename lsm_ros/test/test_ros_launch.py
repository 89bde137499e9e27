"""launch/lsm.launch.py: compiles everywhere; its arguments are checked where launch_ros is."""
from __future__ import annotations

import ast
import importlib.util
import py_compile
import re

import pytest

EXPECTED_ARGUMENTS = {"params_file", "namespace", "image_0", "image_1", "device",
                      "checkpoint", "use_sim_time", "use_rviz", "fixed_frame"}


@pytest.fixture(scope="module")
def launch_file(package_root):
    return package_root / "launch" / "lsm.launch.py"


@pytest.fixture
def ament_index(monkeypatch):
    """The venv's ament index (scripts/setup_venv.sh registers lsm_ros there) unless an
    install (colcon) already set one."""
    import os
    import sys

    if not os.environ.get("AMENT_PREFIX_PATH"):
        monkeypatch.setenv("AMENT_PREFIX_PATH", sys.prefix)
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("lsm_ros")
    except PackageNotFoundError:
        pytest.skip("lsm_ros is not in the ament index (colcon build, or scripts/setup_venv.sh)")


def test_launch_file_byte_compiles(launch_file, tmp_path):
    py_compile.compile(str(launch_file), cfile=str(tmp_path / "lsm.launch.pyc"), doraise=True)


def test_launch_file_declares_and_uses_the_expected_arguments(launch_file):
    tree = ast.parse(launch_file.read_text())
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], "id", "") == "LAUNCH_ARGUMENTS")
    declared = {k.value for k in table.keys}
    assert declared == EXPECTED_ARGUMENTS
    text = launch_file.read_text()
    for name in EXPECTED_ARGUMENTS - {"params_file", "device", "checkpoint", "use_sim_time"}:
        assert re.search(rf'value\["{name}"\]|LaunchConfiguration\("{name}"\)', text), name


def test_launch_file_starts_the_console_script_of_this_package(launch_file, package_root):
    text = launch_file.read_text()
    assert 'package="lsm_ros"' in text and 'executable="lsm_node"' in text
    assert 'name="lsm_node"' in text  # matches the `/**/lsm_node` key of config/lsm.yaml
    assert '"lsm_node = lsm_ros.node:main"' in (package_root / "setup.py").read_text()


def test_launch_description_with_launch_ros(launch_file, ament_index):
    pytest.importorskip("launch_ros")
    pytest.importorskip("launch")
    spec = importlib.util.spec_from_file_location("lsm_launch", launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert names == EXPECTED_ARGUMENTS


def test_device_and_checkpoint_override_the_params_file_only_when_given(launch_file, ament_index):
    """The user's params file is authoritative: empty launch arguments pass nothing."""
    pytest.importorskip("launch_ros")
    spec = importlib.util.spec_from_file_location("lsm_launch_params", launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    value = {name: default for name, (default, _) in module.LAUNCH_ARGUMENTS.items()}
    value["params_file"] = "/robot/my_params.yaml"
    assert module.node_parameters(value) == ["/robot/my_params.yaml"]
    value.update(device="cuda", use_sim_time="true")
    assert module.node_parameters(value) == ["/robot/my_params.yaml",
                                             {"device": "cuda", "use_sim_time": True}]


def test_rviz_config_shows_the_node_outputs(package_root):
    import yaml

    config = yaml.safe_load((package_root / "config" / "lsm.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    by_topic = {}
    for d in displays:  # the first display of a topic is the enabled one
        if "Topic" in d:
            by_topic.setdefault(d["Topic"]["Value"], d)
    assert all(not t.startswith("/") for t in by_topic), "relative: shown under a namespace"
    cloud = by_topic["lsm_node/points"]
    assert cloud["Class"] == "rviz_default_plugins/PointCloud2"
    assert cloud["Color Transformer"] == "Intensity" and cloud["Channel Name"] == "label"
    assert cloud["Autocompute Intensity Bounds"] is True  # any number of labels
    assert by_topic["lsm_node/labels_color"]["Class"] == "rviz_default_plugins/Image"
    assert by_topic["lsm_node/poses"]["Class"] == "rviz_default_plugins/PoseArray"
    assert by_topic["lsm_node/query_markers"]["Class"] == "rviz_default_plugins/MarkerArray"
    assert by_topic["lsm_node/map"]["Class"] == "rviz_default_plugins/PointCloud2"
    assert by_topic["lsm_node/map"]["Enabled"] is True
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"]
