"""Builds ROS 2 launch descriptions from the graph description (octo_ros.ros.graph).
Used by launch/*.launch.py on a workstation with `launch` and `launch_ros`.

Every launch argument and every ``node.parameter:=value`` given to `ros2 launch` reaches
:func:`~octo_ros.ros.graph.describe`, as with `octo-ros launch`; a required node that exits
shuts the launch down (OnProcessExit -> Shutdown)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit, OnShutdown
from launch_ros.actions import Node

from launch import LaunchDescription
from octo_ros.ros.graph import ROBOTS, arguments_from_launch, describe, launch_arguments
from octo_ros.ros.launcher import write_params_file


def launch_description(robot: str | None, sim: bool) -> LaunchDescription:
    """``robot`` None: the robot is chosen by a `robot:=` launch argument."""
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in launch_arguments(robot).items()]
    if robot is None:
        arguments.insert(0, DeclareLaunchArgument("robot", default_value="bimanual", choices=list(ROBOTS),
                                                  description="which robot to simulate"))

    def nodes(context):
        configurations = dict(context.launch_configurations)
        chosen = robot or configurations.pop("robot")
        specs = describe(chosen, sim=sim, arguments=arguments_from_launch(configurations, chosen))
        # Parameters go through a file written with every string quoted: launch_ros would
        # dump a dict with PyYAML, which leaves e.g. "y" bare and rcl reads it as a boolean.
        # The nodes read their files when they start; the folder goes when the launch ends.
        params_dir = Path(tempfile.mkdtemp(prefix="octo_ros_launch_"))
        actions = [RegisterEventHandler(OnShutdown(
            on_shutdown=lambda event, context: shutil.rmtree(params_dir, ignore_errors=True)))]
        for spec in specs:
            node = Node(
                package="octo_ros",
                executable=spec.executable,
                name=spec.name,
                namespace=spec.namespace,
                parameters=[str(write_params_file(spec, params_dir))],
                remappings=list(spec.remappings),
                output="screen",
                emulate_tty=True,
            )
            actions.append(node)
            if spec.required:
                actions.append(RegisterEventHandler(OnProcessExit(
                    target_action=node, on_exit=[Shutdown(reason=f"{spec.name} exited: it is required")])))
        return actions

    return LaunchDescription([*arguments, OpaqueFunction(function=nodes)])
