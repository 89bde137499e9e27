"""Package layout: colcon finds both packages; manifests and installed data files agree."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


def _colcon() -> str:
    exe = Path(sys.executable).parent / "colcon"
    if exe.is_file():
        return str(exe)
    found = shutil.which("colcon")
    if found is None:
        pytest.skip("colcon is not installed (pip install colcon-core colcon-ros "
                    "colcon-package-information)")
    return found


def test_colcon_list_finds_every_package_with_its_build_type(package_root, tmp_path):
    repo = package_root.parent
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lsm_repo").symlink_to(repo, target_is_directory=True)
    out = subprocess.run([_colcon(), "--log-base", str(tmp_path / "log"), "list"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = sorted(tuple(line.split("\t")) for line in out.stdout.splitlines() if line)
    assert rows == [
        ("lsm_ros", "src/lsm_repo/lsm_ros", "(ros.ament_python)"),
        ("lsm_ros_interfaces", "src/lsm_repo/lsm_ros_interfaces", "(ros.ament_cmake)"),
        ("lsm_tools", "src/lsm_repo/lsm_tools", "(ros.ament_python)"),
    ], out.stdout


@pytest.mark.parametrize("folder,build_type", [("lsm_ros", "ament_python"),
                                               ("lsm_ros_interfaces", "ament_cmake"),
                                               ("lsm_tools", "ament_python")])
def test_manifests_are_format_3(package_root, folder, build_type):
    root = ET.parse(package_root.parent / folder / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == folder
    assert root.find("export").findtext("build_type") == build_type


def test_interfaces_are_a_dependency_and_importable(package_root):
    root = ET.parse(package_root / "package.xml").getroot()
    assert "lsm_ros_interfaces" in [e.text for e in root.iter("exec_depend")]
    query = pytest.importorskip("lsm_ros_interfaces.srv").Query
    fields = query.Response.get_fields_and_field_types()
    assert fields == {"success": "boolean", "message": "string",
                      "mask": "sensor_msgs/Image", "points": "sensor_msgs/PointCloud2",
                      "centroid": "geometry_msgs/Point", "extent": "geometry_msgs/Vector3",
                      "score": "float", "header": "std_msgs/Header", "age": "double",
                      "units": "string", "scale_source": "string",
                      "instances": "sequence<lsm_ros_interfaces/Instance>"}
    assert query.Request.get_fields_and_field_types() == {
        "label": "string", "threshold": "float", "view": "int32", "scope": "uint8",
        "max_instances": "uint32"}
    assert query.Request().view == query.Request.VIEW_LATEST == -1
    # old clients: a request without the new fields asks the latest reconstruction
    assert query.Request().scope == query.Request.SCOPE_LATEST == 0


def test_share_directory_has_config_and_launch():
    from lsm_tools.paths import config_file, share_directory

    share = share_directory()
    assert (share / "launch" / "lsm.launch.py").is_file()
    assert config_file("lsm.yaml").is_file() and config_file("fastdds_loopback.xml").is_file()


def test_fastdds_profile_keeps_traffic_on_loopback(package_root):
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(package_root / "config" / "fastdds_loopback.xml").getroot()
    shm = [t for t in root.iterfind(".//d:transport_descriptor", ns)
           if t.findtext("d:type", namespaces=ns) == "SHM"]
    assert int(shm[0].findtext("d:segment_size", namespaces=ns)) >= 16 * 1024 * 1024
    udp = [t for t in root.iterfind(".//d:transport_descriptor", ns)
           if t.findtext("d:type", namespaces=ns) == "UDPv4"]
    addresses = [a.text for a in udp[0].iterfind(".//d:address", ns)]
    assert addresses == ["127.0.0.1"]
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext(".//d:useBuiltinTransports", namespaces=ns) == "false"


@pytest.mark.slow
def test_colcon_build_installs_every_package_and_colcon_test_runs_pytest(package_root, tmp_path):
    """`colcon build` (the real-ROS route) over the PyPI ROS wheels as underlay, then
    `colcon test` on lsm_ros: it must run the package's pytest suite (a subset here, to
    keep CI short), not report 0 tests as a pass."""
    pytest.importorskip("colcon_ros")
    pytest.importorskip("colcon_cmake")
    import os

    repo = package_root.parent
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lsm_repo").symlink_to(repo, target_is_directory=True)
    env = dict(os.environ)
    prefix = sys.prefix
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["AMENT_PREFIX_PATH"] = env["CMAKE_PREFIX_PATH"] = prefix
    out = subprocess.run(
        [_colcon(), "--log-base", "log", "build", "--cmake-args", "-DBUILD_TESTING=OFF",
         f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    install = tmp_path / "install"
    share = install / "lsm_ros" / "share" / "lsm_ros"
    for path in [install / "lsm_ros" / "lib" / "lsm_ros" / "lsm_node",
                 share / "launch" / "lsm.launch.py", share / "config" / "lsm.yaml",
                 share / "package.xml",
                 install / "lsm_ros_interfaces" / "share" / "lsm_ros_interfaces" / "srv"
                 / "Query.srv", install / "lsm_tools" / "lib" / "lsm_tools" / "lsm_demo"]:
        assert path.is_file(), path
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert (install / "lsm_ros_interfaces" / "lib" / pyver / "site-packages"
            / "lsm_ros_interfaces" / "srv" / "_query.py").is_file()
    # With the install in the ament index, the package finds its share folder there.
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        [str(install / "lsm_ros"), str(install / "lsm_tools"), prefix])
    env["PYTHONPATH"] = os.pathsep.join(str(install / p / "lib" / pyver / "site-packages")
                                        for p in ("lsm_ros", "lsm_tools"))
    probe = subprocess.run([sys.executable, "-c", "from lsm_tools.paths import share_directory;"
                            " print(share_directory())"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()) == share

    test = subprocess.run(
        [_colcon(), "--log-base", "log", "test", "--packages-select", "lsm_ros",
         "--pytest-args", "-m", "not slow", "-k", "pairing or params or image_conversion"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert test.returncode == 0, test.stdout[-4000:] + test.stderr[-4000:]
    result = subprocess.run([_colcon(), "test-result", "--test-result-base", "build/lsm_ros"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    summary = re.search(r"Summary: (\d+) tests, (\d+) errors, (\d+) failures", result.stdout)
    assert summary, result.stdout + result.stderr
    tests, errors, failures = (int(x) for x in summary.groups())
    assert tests >= 30 and errors == 0 and failures == 0, result.stdout
