"""Builds ROS 2 launch descriptions from the graph description (octo_ros.ros.graph).
Used by launch/*.launch.py on a workstation with `launch` and `launch_ros`."""
from __future__ import annotations

import tempfile
from pathlib import Path

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from octo_ros.ros.graph import LAUNCH_ARGUMENTS, ROBOTS, describe
from octo_ros.ros.launcher import write_params_file


def launch_description(robot: str | None, sim: bool) -> LaunchDescription:
    """``robot`` None: the robot is chosen by a `robot:=` launch argument."""
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in LAUNCH_ARGUMENTS.items()]
    if robot is None:
        arguments.insert(0, DeclareLaunchArgument("robot", default_value="bimanual", choices=list(ROBOTS),
                                                  description="which robot to simulate"))

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
        chosen = robot or LaunchConfiguration("robot").perform(context)
        # Parameters go through a file written with every string quoted: launch_ros would
        # dump a dict with PyYAML, which leaves e.g. "y" bare and rcl reads it as a boolean.
        params_dir = Path(tempfile.mkdtemp(prefix="octo_ros_launch_"))
        return [
            Node(
                package="octo_ros",
                executable=spec.executable,
                name=spec.name,
                namespace=spec.namespace,
                parameters=[str(write_params_file(spec, params_dir))],
                remappings=list(spec.remappings),
                output="screen",
                emulate_tty=True,
            )
            for spec in describe(chosen, sim=sim, arguments=values)
        ]

    return LaunchDescription([*arguments, OpaqueFunction(function=nodes)])
