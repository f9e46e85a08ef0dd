"""Octo on a bimanual ALOHA-style setup: two Interbotix vx300s followers (start their xs_sdk drivers separately).

    ros2 launch octo_ros bimanual.launch.py checkpoint:=/path/to/octo dry_run:=false

The node graph is described in octo_ros/ros/graph.py and configured in config/bimanual.yaml.
"""
from octo_ros.ros.launch_description import launch_description


def generate_launch_description():
    return launch_description("bimanual", sim=False)
