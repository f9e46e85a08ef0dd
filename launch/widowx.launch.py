"""Octo on a WidowX 250 6DOF driven by the Interbotix xs_sdk driver (start the driver separately: interbotix_xsarm_control xsarm_control.launch.py robot_model:=wx250s).

    ros2 launch octo_ros widowx.launch.py checkpoint:=/path/to/octo dry_run:=false

The node graph is described in octo_ros/ros/graph.py and configured in config/widowx.yaml.
"""
from octo_ros.ros.launch_description import launch_description


def generate_launch_description():
    return launch_description("widowx", sim=False)
