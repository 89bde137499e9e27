"""Where the data files of the lsm_ros package (config/, launch/) are.

Order: the ament index (a colcon/ROS 2 install, needs AMENT_PREFIX_PATH), the source
tree (editable install / running from a checkout), then ``<sys.prefix>/share/lsm_ros``
(``pip install`` of the package into a venv without ROS).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List

PACKAGE_NAME = "lsm_ros"


def _candidates() -> List[Path]:
    found: List[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory
        found.append(Path(get_package_share_directory(PACKAGE_NAME)))
    except Exception:  # no AMENT_PREFIX_PATH, or the package is not in the index
        pass
    import lsm_ros  # the node's Python package (importing it loads no ROS)

    source_root = Path(lsm_ros.__file__).resolve().parents[1]
    if (source_root / "package.xml").is_file():
        found.append(source_root)
    found.append(Path(sys.prefix) / "share" / PACKAGE_NAME)
    return found


def share_directory() -> Path:
    """The folder holding ``config/lsm.yaml`` and ``launch/lsm.launch.py``."""
    candidates = _candidates()
    for path in candidates:
        if (path / "config" / "lsm.yaml").is_file():
            return path
    raise FileNotFoundError(
        "lsm_ros share directory not found (looked in: "
        + ", ".join(str(p) for p in candidates) + "); install the package with "
        "`pip install ./lsm_ros` or `colcon build`")


def config_file(name: str = "lsm.yaml") -> Path:
    """Path of a file in the package's config/ folder (e.g. 'lsm.yaml')."""
    path = share_directory() / "config" / name
    if not path.is_file():
        raise FileNotFoundError(f"lsm_ros config file not found: {path}")
    return path
