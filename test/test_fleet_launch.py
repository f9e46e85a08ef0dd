"""The fleet: one policy server and K robot graphs, each in its namespace, as described
(graph.describe_fleet), as launch/fleet.launch.py builds it, and as `octo-ros launch fleet` runs it."""
import io
import time

import pytest
import yaml
from support.launch_standins import no_stand_ins, stand_in_launch

from octo_ros.ros.graph import ADAPTERS, FLEET_ARGUMENTS, SIMULATORS, NodeSpec, describe, describe_fleet
from octo_ros.ros.launcher import GraphProcess

FLEET = {"robots": "widowx,widowx,ur5", "checkpoint": "/models/octo"}


def test_fleet_is_one_server_and_a_graph_per_robot_in_its_namespace():
    specs = describe_fleet(sim=True, arguments={**FLEET, "record": "true"})
    server, *robots = specs
    assert (server.name, server.namespace, server.group) == ("policy", "", "")
    assert server.parameters["robots"] == ["widowx_0", "widowx_1", "ur5_0"]
    assert server.parameters["checkpoint"] == "/models/octo"
    keys = {name: server.parameters[name]["dataset_statistics_key"] for name in server.parameters["robots"]}
    assert keys == {"widowx_0": "bridge_dataset", "widowx_1": "bridge_dataset", "ur5_0": "berkeley_autolab_ur5"}
    assert len(server.parameters["ur5_0"]["action_dimension_names"]) == 7
    for name, robot in (("widowx_0", "widowx"), ("widowx_1", "widowx"), ("ur5_0", "ur5")):
        graph = [s for s in robots if s.group == name]
        assert [s.name for s in graph] == ["observation_buffer", ADAPTERS[robot], SIMULATORS[robot], "recorder"]
        assert all(s.namespace == name and s.required for s in graph)
        # the same nodes and parameters as that robot's own graph, without its policy
        alone = {s.name: s.parameters for s in describe(robot, sim=True, arguments={
            "checkpoint": "/models/octo", "record": "true", "namespace": name})}
        assert {s.name: s.parameters for s in graph} == {k: v for k, v in alone.items() if k != "policy"}
    assert len({s.label for s in specs}) == len(specs), "one label per node"


def test_fleet_names_and_overrides():
    specs = describe_fleet(arguments={**FLEET, "names": "cell1,cell2,lab/cell3", "policy.dtype": "bfloat16",
                                      "widowx_adapter.control_period": "0.1", "cell2.widowx_adapter.dry_run": "false",
                                      "cell2.policy.dataset_statistics_key": "fractal20220817_data"})
    server = specs[0]
    assert server.parameters["robots"] == ["cell1", "cell2", "lab/cell3"] and server.parameters["dtype"] == "bfloat16"
    assert server.parameters["cell2"]["dataset_statistics_key"] == "fractal20220817_data"
    assert server.parameters["lab"]["cell3"]["dataset_statistics_key"] == "berkeley_autolab_ur5"  # lab.cell3.*
    adapters = {s.group: s.parameters for s in specs if s.name == "widowx_adapter"}
    assert adapters["cell1"]["control_period"] == adapters["cell2"]["control_period"] == 0.1
    assert adapters["cell1"]["dry_run"] is True and adapters["cell2"]["dry_run"] is False
    assert [s.group for s in specs if s.name == "ur5_adapter"] == ["lab/cell3"]


@pytest.mark.parametrize("arguments,message", [
    ({}, "names no robot"),
    ({"robots": "widowx,franka"}, "unknown robot 'franka'"),
    ({"robots": "widowx,ur5", "names": "a"}, "1 names for 2 robots"),
    ({"robots": "widowx,ur5", "names": "a,a"}, "must be distinct"),
    ({"robots": "widowx", "names": "policy"}, "must be distinct and not 'policy'"),
    ({"robots": "widowx", "names": "9lives"}, "not a robot namespace"),
    ({"robots": "widowx,bimanual"}, "different policy step periods"),
    ({"robots": "widowx", "robtos": "ur5"}, r"unknown launch argument 'robtos' \(did you mean 'robots'\?\)"),
    ({"robots": "widowx", "aloha_sim.task": "insertion"}, "nor a node of their graphs"),
    ({"robots": "widowx", "widowx_0.ur5_adapter.robot_ip": "10.0.0.2"}, "nodes not in the widowx graph"),
])
def test_fleet_refuses_what_it_cannot_launch(arguments, message):
    with pytest.raises(ValueError, match=message):
        describe_fleet(arguments=arguments)


@no_stand_ins
def test_fleet_launch_file_groups_each_robot_under_its_namespace(monkeypatch):
    declared, actions = stand_in_launch(monkeypatch, "fleet.launch.py", {**FLEET, "sim": "true", "record": "true"})
    assert set(FLEET_ARGUMENTS) | {"sim"} == set(declared)
    specs = describe_fleet(sim=True, arguments={**FLEET, "record": "true"})
    server = next(a for a in actions if type(a).__name__ == "Node")
    assert (server.kwargs["name"], server.kwargs["namespace"]) == ("policy", "")
    handlers = [a.args[0] for a in actions if type(a).__name__ == "RegisterEventHandler"]
    (server_exit,) = [h for h in handlers if type(h).__name__ == "OnProcessExit"]
    assert server_exit.kwargs["target_action"] is server
    assert [type(a).__name__ for a in server_exit.kwargs["on_exit"]] == ["Shutdown"], "the server takes the fleet down"

    groups = [a for a in actions if type(a).__name__ == "GroupAction"]
    assert len(groups) == 3
    for group, name in zip(groups, ["widowx_0", "widowx_1", "ur5_0"]):
        push, *entries = group.args[0]
        assert type(push).__name__ == "PushRosNamespace" and push.args == (name,)
        nodes = [e for e in entries if type(e).__name__ == "Node"]
        expected = [s for s in specs if s.group == name]
        assert [n.kwargs["name"] for n in nodes] == [s.name for s in expected]
        for node, spec in zip(nodes, expected):
            assert node.kwargs["namespace"] is None, "the group's PushRosNamespace names it"
            (params_file,) = node.kwargs["parameters"]
            assert yaml.safe_load(open(params_file)) == {"/**": {"ros__parameters": spec.parameters}}
        exits = [e.args[0] for e in entries if type(e).__name__ == "RegisterEventHandler"]
        assert {id(h.kwargs["target_action"]) for h in exits} == {id(n) for n in nodes}, "every node is required"
        for handler in exits:
            stopped = [a.kwargs["event"].kwargs["process_matcher"][1] for a in handler.kwargs["on_exit"]
                       if type(a).__name__ == "EmitEvent"]
            others = [n for n in nodes if n is not handler.kwargs["target_action"]]
            assert [id(n) for n in stopped] == [id(n) for n in others], "its own graph's other nodes, no other"
            assert not any(type(a).__name__ == "Shutdown" for a in handler.kwargs["on_exit"])


def test_launch_fleet_command_refuses_a_bad_fleet(capsys):
    from octo_ros.cli import main

    assert main(["launch", "fleet", "--sim", "robots:=widowx,bimanual"]) == 2
    assert "different policy step periods" in capsys.readouterr().err


def test_a_dead_node_stops_its_robot_graph_only(tmp_path):
    """A robot graph's required node that exits takes its own graph down; the other robot's
    graph runs on (the fleet keeps serving it); a node of no group still takes everything down."""
    sim = {"render_rate": 2.0, "image_width": 32, "image_height": 24}
    specs = [NodeSpec("widowx_sim", "widowx_sim", sim, namespace="a", group="a", stop_order=2),
             NodeSpec("policy", "policy", {"checkpoint": str(tmp_path / "missing")}, namespace="a", group="a"),
             NodeSpec("widowx_sim", "widowx_sim", sim, namespace="b", group="b", stop_order=2)]
    out = io.StringIO()
    with GraphProcess(specs, out=out) as graph:
        deadline = time.monotonic() + 60
        while "a/widowx_sim" not in graph.failed and time.monotonic() < deadline:
            graph.wait(duration=0.5)
        assert graph.failed[0] == "a/policy" and "a/widowx_sim" in graph.failed
        assert graph.processes["a/widowx_sim"].returncode == 0, "stopped cleanly (SIGINT)"
        assert graph.processes["b/widowx_sim"].poll() is None, "the other robot's graph runs on"
        assert "a/policy is required in a: stopping a's graph" in out.getvalue()
