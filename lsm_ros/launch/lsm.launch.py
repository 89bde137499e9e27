"""Launch lsm_node (and optionally RViz).

    ros2 launch lsm_ros lsm.launch.py [params_file:=my_params.yaml] [namespace:=robot1]
        [image_0:=/left/image_raw] [image_1:=/right/image_raw]
        [device:=cuda] [checkpoint:=/path/to/model.pt] [use_sim_time:=true]
        [use_rviz:=true] [fixed_frame:=base_link]

Your params file is authoritative: ``device`` and ``checkpoint`` given here override it only
when they are given (non-empty); left out, the file's values (or the node's defaults) hold.

Equivalent without ROS's launch tools (e.g. a venv with the PyPI ROS 2 wheels):

    lsm_node --ros-args --params-file my_params.yaml -r __ns:=/robot1 \\
        -r image_0:=/left/image_raw -r image_1:=/right/image_raw -p device:=cuda
    rviz2 -d config/lsm.rviz -f base_link     # what use_rviz:=true starts
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

SHARE = get_package_share_directory("lsm_ros")

# name -> (default, description); the test checks these against the declared arguments.
LAUNCH_ARGUMENTS = {
    "params_file": (os.path.join(SHARE, "config", "lsm.yaml"),
                    "YAML file with the lsm_node parameters (key /**/lsm_node)"),
    "namespace": ("", "Namespace of the node (the service is <namespace>/lsm/query)"),
    "image_0": ("image_0", "Topic of the first (reference) camera image, remaps image_0"),
    "image_1": ("image_1", "Topic of the second camera image, remaps image_1"),
    "device": ("", "Torch device (auto, cpu, cuda, cuda:N); empty = the params file's"),
    "checkpoint": ("", "Model checkpoint path; empty = the params file's (its default: "
                       "the embedded weights)"),
    "use_sim_time": ("false", "Use /clock (bags, simulators) for the node's clock"),
    "use_rviz": ("false", "Also start RViz with config/lsm.rviz (cloud by label, label "
                          "image, camera poses, query answers)"),
    "fixed_frame": ("base_link", "RViz fixed frame: a frame your TF tree links to the "
                                 "camera (or the camera's optical frame, without TF)"),
}


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def node_parameters(value: dict) -> list:
    """lsm_node's ``parameters``: the params file, then only the overrides actually given."""
    overrides = {name: value[name] for name in ("device", "checkpoint") if value[name]}
    if _truthy(value["use_sim_time"]):
        overrides["use_sim_time"] = True
    return [value["params_file"]] + ([overrides] if overrides else [])


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    parameters = node_parameters(value)
    node = Node(
        package="lsm_ros",
        executable="lsm_node",
        name="lsm_node",
        namespace=value["namespace"],
        output="screen",
        emulate_tty=True,
        parameters=parameters,
        remappings=[("image_0", value["image_0"]), ("image_1", value["image_1"])],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="lsm_rviz",
        namespace=value["namespace"],
        arguments=["-d", os.path.join(SHARE, "config", "lsm.rviz"), "-f", value["fixed_frame"]],
        parameters=[{"use_sim_time": _truthy(value["use_sim_time"])}],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return [node, rviz]


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
