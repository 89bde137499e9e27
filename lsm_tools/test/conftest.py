"""Shared test set-up for lsm_tools: system tests of lsm_node (processes over real DDS),
the demo, bags, benchmark, training and the embedded model's quality.

DDS isolation for every test that uses ROS 2 (set before any rclpy import): the
loopback-only environment of :func:`lsm_tools.dds_env.loopback_dds_environment` with a
ROS_DOMAIN_ID unique to this pytest run (override with LSM_TEST_ROS_DOMAIN_ID) and ROS logs
in a temporary folder. Subprocesses started by tests inherit it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from lsm_tools.dds_env import loopback_dds_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_PACKAGE_ROOT = REPO_ROOT / "lsm_ros"

os.environ.update(loopback_dds_environment(
    int(os.environ["LSM_TEST_ROS_DOMAIN_ID"]) if os.environ.get("LSM_TEST_ROS_DOMAIN_ID")
    else None))
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="lsm_test_roslog_"))


@pytest.fixture(scope="session")
def package_root() -> Path:
    """The lsm_ros package folder (the node's ament_python package)."""
    return NODE_PACKAGE_ROOT


@pytest.fixture(scope="session")
def params_file() -> Path:
    """The shipped parameter file of lsm_node, config/lsm.yaml."""
    return NODE_PACKAGE_ROOT / "config" / "lsm.yaml"


@pytest.fixture(scope="session")
def rclpy_node():
    """An rclpy node in the pytest process (rclpy initialised once for the session)."""
    rclpy = pytest.importorskip("rclpy")
    rclpy.init(args=[])
    node = rclpy.create_node("lsm_test_client")
    yield node
    node.destroy_node()
    rclpy.shutdown()
