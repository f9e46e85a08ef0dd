"""The graph description, the launch files built from it, and the in-repo launcher."""
import ast
import io
import os
import sys
import tempfile
import time

import pytest
import yaml
from support.launch_standins import no_stand_ins, stand_in_launch
from support.ros_harness import REPO_ROOT

from octo_ros.ros.graph import ADAPTERS, LAUNCH_ARGUMENTS, ROBOTS, SIMULATORS, describe
from octo_ros.ros.launcher import GraphProcess


def _console_scripts():
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    entry_points = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    return {line.split("=")[0].strip() for line in entry_points["console_scripts"]}


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("sim", [False, True])
def test_description_of_each_robot(robot, sim):
    specs = describe(robot, sim=sim, arguments={"checkpoint": "/models/octo", "dry_run": "false"})
    names = [s.name for s in specs]
    expected = ["observation_buffer", "policy", ADAPTERS[robot]] + ([SIMULATORS[robot]] if sim else [])
    assert names == expected
    assert {s.executable for s in specs} <= _console_scripts(), "every node must be startable with ros2 run"
    by_name = {s.name: s for s in specs}
    assert by_name["policy"].parameters["checkpoint"] == "/models/octo"
    assert by_name[ADAPTERS[robot]].parameters["dry_run"] is False
    assert len(by_name["policy"].parameters["action_dimension_names"]) == {"bimanual": 14}.get(robot, 7)
    # the robot side stops first
    assert min(specs, key=lambda s: s.stop_order).name == ADAPTERS[robot]


@pytest.mark.parametrize("robot", ROBOTS)
def test_teleop_argument_adds_the_teleop_node_and_selects_its_chunks(robot):
    specs = {s.name: s for s in describe(robot, sim=True, arguments={"teleop": "true", "record": "true"})}
    adapter = ADAPTERS[robot]
    # demonstrations need no model: without a checkpoint there is no policy (nor its buffer)
    assert list(specs) == [adapter, "teleop", SIMULATORS[robot], "recorder"]
    assert specs[adapter].parameters["source"] == "teleop"
    teleop = specs["teleop"].parameters
    assert teleop["robot"] == robot and teleop["step_period"] == specs[adapter].parameters["step_period"]
    policy = describe(robot, arguments={"checkpoint": "/models/octo"})[1].parameters
    assert teleop["action_dimension_names"] == policy["action_dimension_names"]
    assert "teleop/action_chunk" in specs["recorder"].parameters["topics"]
    assert "teleop" in _console_scripts()
    with_model = [s.name for s in describe(robot, arguments={"teleop": "true", "checkpoint": "/models/octo",
                                                             "teleop.linear_scale": "0.2"})]
    assert with_model == ["observation_buffer", "policy", adapter, "teleop"]  # switch with the adapter's source
    assert "teleop" not in [s.name for s in describe(robot)]


def test_launch_arguments_and_overrides():
    default = describe("widowx")
    assert next(s for s in default if s.name == "widowx_adapter").parameters["dry_run"] is True, "dry-run by default"
    specs = describe("widowx", arguments={"record": "true", "namespace": "/left_cell", "policy.dtype": "bfloat16",
                                         "dataset_statistics_key": "fractal20220817_data"})
    assert [s.name for s in specs][-1] == "recorder"
    assert all(s.namespace == "left_cell" for s in specs)
    policy = next(s for s in specs if s.name == "policy")
    assert policy.parameters["dtype"] == "bfloat16"
    assert policy.parameters["dataset_statistics_key"] == "fractal20220817_data"
    with pytest.raises(ValueError, match="unknown launch argument 'checkpiont'"):
        describe("widowx", arguments={"checkpiont": "x"})
    with pytest.raises(ValueError, match="not a boolean"):
        describe("widowx", arguments={"dry_run": "maybe"})
    with pytest.raises(ValueError, match="unknown robot 'franka'"):
        describe("franka")
    with pytest.raises(ValueError, match="nodes not in the widowx graph"):
        describe("widowx", arguments={"aloha_sim.task": "insertion"})


@no_stand_ins
@pytest.mark.parametrize("launch_file,robot,sim", [
    ("widowx.launch.py", "widowx", False), ("ur5.launch.py", "ur5", False),
    ("bimanual.launch.py", "bimanual", False), ("sim.launch.py", "ur5", True), ("sim.launch.py", "bimanual", True)])
def test_launch_file_nodes_equal_the_description(monkeypatch, launch_file, robot, sim):
    given = {"checkpoint": "/models/octo", "record": "true", "policy.dtype": "bfloat16"}
    if launch_file == "sim.launch.py":
        given["robot"] = robot
    declared, actions = stand_in_launch(monkeypatch, launch_file, given)
    assert set(LAUNCH_ARGUMENTS) <= set(declared)
    assert ("robot" in declared) == (launch_file == "sim.launch.py")
    assert ("robot_ip" in declared) == (launch_file == "ur5.launch.py")
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    specs = describe(robot, sim=sim, arguments={k: v for k, v in given.items() if k != "robot"})
    assert [n.kwargs["name"] for n in nodes] == [s.name for s in specs]
    for node, spec in zip(nodes, specs):
        assert node.kwargs["package"] == "octo_ros"
        assert node.kwargs["executable"] == spec.executable
        (params_file,) = node.kwargs["parameters"]
        assert yaml.safe_load(open(params_file)) == {"/**": {"ros__parameters": spec.parameters}}
        assert node.kwargs["remappings"] == list(spec.remappings)
        assert node.kwargs["namespace"] == spec.namespace
    assert next(s for s in specs if s.name == "policy").parameters["dtype"] == "bfloat16", "node.parameter:=value"


@no_stand_ins
def test_launch_file_takes_robot_ip_and_node_parameters(monkeypatch):
    _, actions = stand_in_launch(monkeypatch, "ur5.launch.py", {
        "robot_ip": "192.168.1.10", "ur5_adapter.max_linear_speed": "0.1", "tokenizer": "/models/t5-base"})
    params = {a.kwargs["name"]: yaml.safe_load(open(a.kwargs["parameters"][0]))["/**"]["ros__parameters"]
              for a in actions if type(a).__name__ == "Node"}
    assert params["ur5_adapter"]["robot_ip"] == "192.168.1.10"
    assert params["ur5_adapter"]["max_linear_speed"] == 0.1
    assert params["policy"]["tokenizer"] == "/models/t5-base"


@no_stand_ins
def test_launch_file_rejects_a_mistyped_argument(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown launch argument 'checkpiont' \(did you mean 'checkpoint'\?\); "
                                         r"valid: checkpoint, .*node\.parameter:=value"):
        stand_in_launch(monkeypatch, "widowx.launch.py", {"checkpiont": "/models/octo"})
    with pytest.raises(ValueError, match="nodes not in the widowx graph"):
        stand_in_launch(monkeypatch, "widowx.launch.py", {"widowx_adaptor.dry_run": "false"})
    # an including launch file's own arguments and launch_ros's are visible here too: not ours to refuse
    stand_in_launch(monkeypatch, "widowx.launch.py", {"use_rviz": "true", "ros_namespace": "/cell1"})


@no_stand_ins
def test_a_dead_node_shuts_the_launch_down(monkeypatch):
    _, actions = stand_in_launch(monkeypatch, "sim.launch.py", {"robot": "widowx"})
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    handlers = [a.args[0] for a in actions if type(a).__name__ == "RegisterEventHandler"]
    exits = {h.kwargs["target_action"].kwargs["name"]: h.kwargs["on_exit"]
             for h in handlers if type(h).__name__ == "OnProcessExit"}
    assert set(exits) == {n.kwargs["name"] for n in nodes}, "every node is required in the default graphs"
    for name, on_exit in exits.items():
        assert [type(a).__name__ for a in on_exit] == ["Shutdown"]
        assert name in on_exit[0].kwargs["reason"]


@no_stand_ins
def test_launch_leaves_no_parameter_folder_behind(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _, actions = stand_in_launch(monkeypatch, "bimanual.launch.py", {})
    assert all(os.path.isfile(a.kwargs["parameters"][0]) for a in actions if type(a).__name__ == "Node")
    (on_shutdown,) = [a.args[0].kwargs["on_shutdown"] for a in actions
                      if type(a).__name__ == "RegisterEventHandler" and type(a.args[0]).__name__ == "OnShutdown"]
    on_shutdown(None, None)  # launch calls it with the Shutdown event and the context
    assert not list(tmp_path.iterdir())


def test_description_marks_required_nodes():
    assert all(spec.required for robot in ROBOTS for spec in describe(robot, sim=True, arguments={"record": "true"}))


def test_package_declares_what_the_launch_files_import():
    package = (REPO_ROOT / "package.xml").read_text()
    for dependency in ("launch", "launch_ros", "ament_index_python"):
        assert f"<exec_depend>{dependency}</exec_depend>" in package



@pytest.mark.parametrize("robot", ROBOTS)
def test_policy_false_leaves_the_policy_to_another_machine(robot):
    """The robot PC of "one GPU box, several robots": everything but the policy, the buffer included
    (its windows go to the GPU box), sized from the checkpoint given here too."""
    specs = {s.name: s for s in describe(robot, sim=True, arguments={"policy": "false", "checkpoint": "/models/octo"})}
    assert list(specs) == ["observation_buffer", ADAPTERS[robot], SIMULATORS[robot]]
    assert specs["observation_buffer"].parameters["checkpoint"] == "/models/octo"
    with pytest.raises(ValueError, match="policy:='no way'"):
        describe(robot, arguments={"policy": "no way"})

def test_launcher_prefixes_output_and_reports_a_dead_node(tmp_path):
    from octo_ros.ros.graph import NodeSpec

    specs = [
        NodeSpec("widowx_sim", "widowx_sim", {"render_rate": 2.0}, stop_order=0),
        NodeSpec("policy", "policy", {"checkpoint": str(tmp_path / "missing")}),  # dies: no checkpoint there
    ]
    out = io.StringIO()
    graph = GraphProcess(specs, out=out)
    with graph:
        healthy = graph.wait(duration=60)
    text = out.getvalue()
    assert not healthy
    assert graph.failed == ["policy"]
    assert "[launch] policy exited with code 1" in text
    assert any(line.startswith("[policy] ") and "missing" in line for line in text.splitlines())
    assert any(line.startswith("[widowx_sim] ") for line in text.splitlines())
    assert all(p.poll() is not None for p in graph.processes.values()), "the graph must come down"
    assert graph.processes["widowx_sim"].returncode == 0, "the others are stopped cleanly (SIGINT)"


def test_launcher_keeps_the_graph_up_when_a_node_that_is_not_required_dies(tmp_path):
    from octo_ros.ros.graph import NodeSpec

    specs = [NodeSpec("widowx_sim", "widowx_sim", {"render_rate": 2.0}),
             NodeSpec("policy", "policy", {"checkpoint": str(tmp_path / "missing")}, required=False)]
    with GraphProcess(specs, out=io.StringIO()) as graph:
        deadline = time.monotonic() + 60
        while "policy" not in graph.failed and time.monotonic() < deadline:
            graph.wait(duration=0.5)
        assert graph.failed == ["policy"]
        assert graph.processes["widowx_sim"].poll() is None, "a node that is not required takes nothing down"


def test_params_file_keeps_strings_that_look_like_booleans(ros, tmp_path):
    """x, y, z... as action dimension names must reach the node as strings (rcl's YAML
    parser reads a bare y as a boolean)."""
    from rcl_interfaces.srv import GetParameters

    from octo_ros.ros.graph import NodeSpec
    from octo_ros.ros.launcher import node_command, write_params_file

    spec = NodeSpec("params_probe", "observation_buffer", {
        "camera_inputs": ["image_primary"], "proprio_joints": ["x", "y", "on", "no"]}, namespace="cell")
    argv = node_command(spec, write_params_file(spec, tmp_path))
    proc = ros.spawn("params_probe", argv[1:])
    client = ros.node("params_reader").create_client(GetParameters, "/cell/params_probe/get_parameters")
    reply = ros.call(client, GetParameters.Request(names=["proprio_joints"]), timeout=30)
    assert list(reply.values[0].string_array_value) == ["x", "y", "on", "no"]
    assert proc.alive()


def test_launch_command_rejects_unknown_arguments(capsys):
    from octo_ros.cli import main

    assert main(["launch", "widowx", "--sim", "checkpiont:=/x"]) == 2
    assert "unknown launch argument 'checkpiont'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["launch", "widowx", "--sim", "stray"])


def test_sim_overlay_merges_nested_parameters(tmp_path):
    (tmp_path / "widowx.yaml").write_text(
        "observation_buffer:\n  ros__parameters:\n    cameras:\n      image_primary: {topic: /real, height: 200, width: 200}\n"
        "policy:\n  ros__parameters: {action_dimension_names: ['x', 'y']}\n"
        "widowx_adapter:\n  ros__parameters: {robot_name: wx250s}\n")
    (tmp_path / "widowx_sim.yaml").write_text(
        "observation_buffer:\n  ros__parameters:\n    cameras:\n      image_primary: {topic: /sim}\n"
        "widowx_sim:\n  ros__parameters: {robot_name: wx250s}\n")
    specs = {s.name: s for s in describe("widowx", sim=True, config=tmp_path)}
    camera = specs["observation_buffer"].parameters["cameras"]["image_primary"]
    assert camera == {"topic": "/sim", "height": 200, "width": 200}, "the overlay changes only what it names"
    real = {s.name: s for s in describe("widowx", config=tmp_path)}
    assert real["observation_buffer"].parameters["cameras"]["image_primary"]["topic"] == "/real"


@pytest.mark.parametrize("robot", ["widowx", "ur5"])
def test_sim_camera_is_where_buffer_and_recorder_read_it(robot):
    specs = {s.name: s for s in describe(robot, sim=True, arguments={"record": "true"})}
    camera = specs[SIMULATORS[robot]].parameters["camera_topic"]
    assert specs["observation_buffer"].parameters["cameras"]["image_primary"]["topic"] == camera
    assert camera in specs["recorder"].parameters["topics"]
    assert "action_chunk" in specs["recorder"].parameters["topics"]  # relative: follows namespace:=


def test_params_file_reaches_a_node_under_a_pushed_namespace(ros, tmp_path):
    """An including launch file's PushRosNamespace('cell1') adds `-r __ns:=/cell1` to every
    node's command line after the parameter files were written: the files must still apply."""
    from rcl_interfaces.srv import GetParameters

    from octo_ros.ros.graph import NodeSpec
    from octo_ros.ros.launcher import node_command, write_params_file

    spec = NodeSpec("params_probe", "observation_buffer", {"camera_inputs": ["image_wrist"], "rate_hz": 7.0})
    argv = node_command(spec, write_params_file(spec, tmp_path)) + ["-r", "__ns:=/cell1"]
    proc = ros.spawn("params_probe", argv[1:])
    client = ros.node("params_reader").create_client(GetParameters, "/cell1/params_probe/get_parameters")
    reply = ros.call(client, GetParameters.Request(names=["camera_inputs", "rate_hz"]), timeout=30)
    assert list(reply.values[0].string_array_value) == ["image_wrist"]
    assert reply.values[1].double_value == 7.0
    assert proc.alive()


def test_graph_output_goes_to_the_stdout_of_the_moment(monkeypatch):
    """GraphProcess bound sys.stdout as a default argument at import: a caller that replaced
    sys.stdout later (pytest's capture, a redirected CLI) lost every node's output."""
    import io

    from octo_ros.ros.launcher import GraphProcess

    now = io.StringIO()
    monkeypatch.setattr(sys, "stdout", now)
    graph = GraphProcess([])
    graph._say("policy", "loaded")
    assert now.getvalue() == "[policy] loaded\n"
