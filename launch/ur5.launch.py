"""Octo on a UR5 through ur_rtde (the adapter connects to the controller at the configured IP).

    ros2 launch octo_ros ur5.launch.py checkpoint:=/path/to/octo dry_run:=false

The node graph is described in octo_ros/ros/graph.py and configured in config/ur5.yaml.
"""
from octo_ros.ros.launch_description import launch_description


def generate_launch_description():
    return launch_description("ur5", sim=False)
