"""Builds ROS 2 launch descriptions from the graph description (octo_ros.ros.graph).
Used by launch/*.launch.py on a workstation with `launch` and `launch_ros`.

Every launch argument and every ``node.parameter:=value`` given to `ros2 launch` reaches
:func:`~octo_ros.ros.graph.describe` (a fleet's: :func:`~octo_ros.ros.graph.describe_fleet`), as
with `octo-ros launch`; a required node that exits shuts the launch down (OnProcessExit ->
Shutdown), or in a fleet, a robot graph's node its own graph's other nodes (ShutdownProcess)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.event_handlers import OnProcessExit, OnShutdown
from launch.events import matches_action
from launch.events.process import ShutdownProcess
from launch_ros.actions import Node, PushRosNamespace

from launch import LaunchDescription
from octo_ros.ros.graph import (
    ROBOTS,
    NodeSpec,
    arguments_from_launch,
    describe,
    describe_fleet,
    launch_arguments,
    parse_bool,
)
from octo_ros.ros.launcher import write_params_file


def _parameter_folder() -> tuple[Path, RegisterEventHandler]:
    """Parameters go through files written with every string quoted: launch_ros would dump a
    dict with PyYAML, which leaves e.g. "y" bare and rcl reads it as a boolean. The nodes read
    their files when they start; the folder goes when the launch ends."""
    params_dir = Path(tempfile.mkdtemp(prefix="octo_ros_launch_"))
    return params_dir, RegisterEventHandler(OnShutdown(
        on_shutdown=lambda event, context: shutil.rmtree(params_dir, ignore_errors=True)))


def _node(spec: NodeSpec, params_dir: Path, namespace: str | None) -> Node:
    return Node(
        package="octo_ros",
        executable=spec.executable,
        name=spec.name,
        namespace=namespace,
        parameters=[str(write_params_file(spec, params_dir))],
        remappings=list(spec.remappings),
        output="screen",
        emulate_tty=True,
    )


def _shutdown_on_exit(node: Node, spec: NodeSpec) -> RegisterEventHandler:
    return RegisterEventHandler(OnProcessExit(
        target_action=node, on_exit=[Shutdown(reason=f"{spec.label} exited: it is required")]))


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
        params_dir, cleanup = _parameter_folder()
        actions = [cleanup]
        for spec in specs:
            node = _node(spec, params_dir, spec.namespace)
            actions.append(node)
            if spec.required:
                actions.append(_shutdown_on_exit(node, spec))
        return actions

    return LaunchDescription([*arguments, OpaqueFunction(function=nodes)])


def fleet_launch_description() -> LaunchDescription:
    """One policy server and K robot graphs, each robot's in a GroupAction under
    PushRosNamespace(<its name>). A required node of a robot graph that exits stops that graph's
    other nodes (the other robots are still served); the server's exit shuts the launch down."""
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in launch_arguments("fleet").items()]
    arguments.append(DeclareLaunchArgument("sim", default_value="false", choices=["true", "false"],
                                           description="simulated robots (each robot's simulator in its graph)"))

    def nodes(context):
        configurations = dict(context.launch_configurations)
        sim = parse_bool("sim", configurations.pop("sim"))
        specs = describe_fleet(sim=sim, arguments=arguments_from_launch(configurations, "fleet"))
        params_dir, cleanup = _parameter_folder()
        actions = [cleanup]
        groups: dict[str, list[tuple[NodeSpec, Node]]] = {}
        for spec in specs:
            if spec.group:  # its namespace comes from the group's PushRosNamespace
                groups.setdefault(spec.group, []).append((spec, _node(spec, params_dir, None)))
            else:
                node = _node(spec, params_dir, spec.namespace)
                actions += [node, _shutdown_on_exit(node, spec)] if spec.required else [node]
        for group, members in groups.items():
            handlers = [RegisterEventHandler(OnProcessExit(target_action=node, on_exit=[
                LogInfo(msg=f"{spec.label} exited: it is required in {group}, stopping {group}'s graph"),
                *[EmitEvent(event=ShutdownProcess(process_matcher=matches_action(other)))
                  for _, other in members if other is not node]]))
                for spec, node in members if spec.required]
            actions.append(GroupAction([PushRosNamespace(group), *[node for _, node in members], *handlers]))
        return actions

    return LaunchDescription([*arguments, OpaqueFunction(function=nodes)])
