"""Minimal stand-ins for `launch`/`launch_ros` that record what a launch file builds, for the
launch-file tests where the real packages are not installed (they are on a workstation)."""
import runpy
import sys
import types

import pytest

from support.ros_harness import REPO_ROOT


def _real_launch_ros() -> bool:
    try:
        import launch_ros  # noqa: F401
        return True
    except ImportError:
        return False


no_stand_ins = pytest.mark.skipif(_real_launch_ros(), reason="launch_ros is installed: the stand-ins would hide it")


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class OpaqueFunction(Recorded):
    def execute(self, context):
        return self.kwargs["function"](context)


def stand_in_launch_modules() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name) for name in
               ("launch", "launch.actions", "launch.event_handlers", "launch.events", "launch.events.process",
                "launch_ros", "launch_ros.actions")}
    modules["launch"].LaunchDescription = type("LaunchDescription", (Recorded,), {})
    for name in ("DeclareLaunchArgument", "RegisterEventHandler", "Shutdown", "EmitEvent", "GroupAction", "LogInfo"):
        setattr(modules["launch.actions"], name, type(name, (Recorded,), {}))
    modules["launch.actions"].OpaqueFunction = OpaqueFunction
    for name in ("OnProcessExit", "OnShutdown"):
        setattr(modules["launch.event_handlers"], name, type(name, (Recorded,), {}))
    modules["launch.events"].matches_action = lambda action: ("matches_action", action)
    modules["launch.events.process"].ShutdownProcess = type("ShutdownProcess", (Recorded,), {})
    for name in ("Node", "PushRosNamespace"):
        setattr(modules["launch_ros.actions"], name, type(name, (Recorded,), {}))
    return modules


def stand_in_launch(monkeypatch, launch_file, configurations):
    """Build ``launch_file`` with the stand-ins and run its OpaqueFunction in a context holding
    ``configurations`` on top of the declared defaults (as `ros2 launch` does): the declared
    argument names and the actions the launch file returns."""
    for name, module in stand_in_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "octo_ros.ros.launch_description", raising=False)
    description = runpy.run_path(str(REPO_ROOT / "launch" / launch_file))["generate_launch_description"]()
    *declared, opaque = description.args[0]
    context = types.SimpleNamespace(launch_configurations={
        d.args[0]: d.kwargs["default_value"] for d in declared})
    context.launch_configurations.update(configurations)
    return [d.args[0] for d in declared], opaque.execute(context)
