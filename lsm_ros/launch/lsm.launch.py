"""Launch lsm_node.

    ros2 launch lsm_ros lsm.launch.py [params_file:=...] [namespace:=robot1]
        [image_0:=/cam_left/image_raw] [image_1:=/cam_right/image_raw]
        [device:=cuda] [checkpoint:=/path/to/model.pth] [use_rviz:=true]

Equivalent without ROS's launch tools (e.g. a venv with the PyPI ROS 2 wheels):

    lsm_node --ros-args --params-file config/lsm.yaml -r __ns:=/robot1 \
        -r image_0:=/cam_left/image_raw -r image_1:=/cam_right/image_raw \
        -p device:=cuda -p checkpoint:=/path/to/model.pth
    rviz2 -d config/lsm.rviz     # what use_rviz:=true starts
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

# name -> (default, description); the test checks these against the declared arguments.
LAUNCH_ARGUMENTS = {
    "params_file": (os.path.join(get_package_share_directory("lsm_ros"), "config", "lsm.yaml"),
                    "YAML file with the lsm_node parameters"),
    "namespace": ("", "Namespace of the node (the service is <namespace>/lsm/query)"),
    "image_0": ("image_0", "Topic of the first (reference) camera image, remaps image_0"),
    "image_1": ("image_1", "Topic of the second camera image, remaps image_1"),
    "device": ("auto", "Torch device: auto, cpu, cuda or cuda:N"),
    "checkpoint": ("", "Model checkpoint path; empty = embedded weights"),
    "use_rviz": ("false", "Also start RViz with config/lsm.rviz (cloud by label, label "
                          "image, camera poses)"),
}


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in LAUNCH_ARGUMENTS.items()]
    node = Node(
        package="lsm_ros",
        executable="lsm_node",
        name="lsm_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
            },
        ],
        remappings=[
            ("image_0", LaunchConfiguration("image_0")),
            ("image_1", LaunchConfiguration("image_1")),
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="lsm_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", os.path.join(get_package_share_directory("lsm_ros"), "config",
                                      "lsm.rviz")],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return LaunchDescription(arguments + [node, rviz])
