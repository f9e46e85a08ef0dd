"""One Octo policy server and several robot graphs on one ROS domain, each robot's graph
(buffer, adapter, recorder, simulator) under its own namespace, served by the one policy node.

    ros2 launch octo_ros fleet.launch.py robots:=widowx,widowx,ur5 checkpoint:=/path/to/octo sim:=true
    ros2 launch octo_ros fleet.launch.py robots:=widowx,ur5 names:=cell1,cell2 record:=true

The graphs are described in octo_ros/ros/graph.py (describe_fleet) and configured in
config/<robot>.yaml (with config/<robot>_sim.yaml on top for sim:=true).
"""
from octo_ros.ros.launch_description import fleet_launch_description


def generate_launch_description():
    return fleet_launch_description()
