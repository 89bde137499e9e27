"""Shared test set-up for lsm_ros (unit tests of the core and the ROS layer; the system tests
that start nodes, the demo and the tools are in lsm_tools/test).

DDS isolation for every test that uses ROS 2 (set before any rclpy import):
* ROS_DOMAIN_ID unique to this pytest run (derived from the process id; override with
  LSM_TEST_ROS_DOMAIN_ID),
* discovery limited to localhost, Fast DDS profile config/fastdds_loopback.xml
  (16 MB shared memory + UDPv4 on loopback only, built-in transports off),
* ROS logs in a temporary folder.
Subprocesses started by tests inherit this environment.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT.parent
CONFIG_DIR = PACKAGE_ROOT / "config"


def _isolate_dds() -> None:
    domain = os.environ.get("LSM_TEST_ROS_DOMAIN_ID") or str(1 + os.getpid() % 231)
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(CONFIG_DIR / "fastdds_loopback.xml")
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="lsm_test_roslog_"))


_isolate_dds()


@pytest.fixture(scope="session")
def package_root() -> Path:
    """The ament_python package folder (lsm_ros/ in the repository)."""
    return PACKAGE_ROOT


@pytest.fixture(scope="session")
def params_file() -> Path:
    """The shipped parameter file config/lsm.yaml."""
    return CONFIG_DIR / "lsm.yaml"
