"""ament_python package lsm_tools: the demo, bag and benchmark tools (lsm_tools) and the
training/evaluation code with its procedural scenes (lsm_train). Not needed on a robot."""
from setuptools import find_packages, setup

PACKAGE = "lsm_tools"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    include_package_data=False,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy"],
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="lsm_ros maintainers",
    maintainer_email="lsm_ros@example.com",
    description="Demo, bag, benchmark, training and evaluation tools of lsm_ros",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "lsm_demo = lsm_tools.demo:main",
            "lsm_bag = lsm_tools.bag_replay:main",
            "lsm-benchmark = lsm_tools.benchmark:main",
            "lsm-benchmark-map = lsm_tools.map_benchmark:main",
            "lsm-benchmark-live = lsm_tools.live_benchmark:main",
            "lsm-train = lsm_train.training.train:main",
            "lsm-eval = lsm_train.evaluation.evaluate:main",
            "lsm-eval-metric = lsm_train.evaluation.metric:main",
            "lsm-eval-map = lsm_train.evaluation.map:main",
            "lsm-export = lsm_train.training.export:main",
        ],
    },
)
