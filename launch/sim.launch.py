"""Octo on a simulated robot: the full graph with a simulator standing in for the hardware.

    ros2 launch octo_ros sim.launch.py robot:=bimanual checkpoint:=/path/to/octo

The node graph is described in octo_ros/ros/graph.py and configured in config/<robot>.yaml
with config/<robot>_sim.yaml on top.
"""
from octo_ros.ros.launch_description import launch_description


def generate_launch_description():
    return launch_description(None, sim=True)
