"""One policy node serving three robot namespaces over real DDS: each robot's chunks are those
of its own observations, instruction and dataset statistics (checked against an unbatched
reference computed here with the plain OctoPolicy API), batches larger than one are formed,
a robot whose window source is killed leaves the others served, robots join and leave through
the ``robots`` parameter, and what does not fit the checkpoint is refused by name."""
import signal
import time

import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from std_msgs.msg import String
from support.fleet_windows import start_window_source, synthetic_window, two_dataset_checkpoint

from octo_ros.inference.runtime import model_batch
from octo_ros.model.policy import OctoPolicy
from octo_ros.ros.messages import chunk_from_msg
from octo_ros.ros.support import LATCHED_QOS
from octo_ros_msgs.msg import ActionChunk, PolicyStatus
from octo_ros_msgs.srv import SetInstruction

NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
KEYS = {"cell1": "untrained", "cell2": "other", "cell3": "untrained", "cell4": "untrained"}
SEEDS = {"cell1": 1, "cell2": 2, "cell3": 3, "cell4": 4}
TEXTS = {"cell1": "pick up the spoon", "cell2": "open the drawer", "cell3": "wipe the table", "cell4": "close the drawer"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return two_dataset_checkpoint(tmp_path_factory.mktemp("server") / "ck", head="l1")  # deterministic head


@pytest.fixture(scope="module")
def reference_policy(checkpoint):
    return OctoPolicy.load(str(checkpoint), tokenizer=str(checkpoint / "spiece.model"))


class Fleet:
    def __init__(self, ros, checkpoint, policy):
        self.ros, self.policy = ros, policy
        self.server = ros.spawn_module("policy_server", "octo_ros.ros.nodes.policy", params={
            "checkpoint": str(checkpoint), "action_dimension_names": NAMES, "dataset_statistics_key": "untrained",
            "robots": ["cell1", "cell2", "cell3"], "cell2.dataset_statistics_key": "other", "batching_window": 0.25})
        self.node = ros.node("fleet_test")
        self.chunks: dict[str, list] = {}
        self.statuses: list[PolicyStatus] = []
        self.node.create_subscription(PolicyStatus, "/policy_server/status", self.statuses.append, 50)
        self.set_parameters = self.node.create_client(SetParameters, "/policy_server/set_parameters")
        for robot in KEYS:
            self.watch(robot)

    def watch(self, robot):
        self.chunks[robot] = []
        self.node.create_subscription(ActionChunk, f"/{robot}/action_chunk", lambda m: self.chunks[robot].append(m), 50)

    def instruct(self, robot, text):
        client = self.node.create_client(SetInstruction, f"/{robot}/policy/set_instruction")
        response = self.ros.call(client, SetInstruction.Request(instruction=text), timeout=120)
        assert response.success, response.message
        return response

    def next_chunks(self, robot, n, timeout=60.0):
        start = len(self.chunks[robot])
        self.ros.wait_for(lambda: len(self.chunks[robot]) >= start + n, timeout, f"{n} more chunks for {robot}")
        return [chunk_from_msg(m) for m in self.chunks[robot][start:start + n]]

    def reference(self, robot, chunk, text):
        """The robot's own unbatched call on the window the chunk is stamped with."""
        window = synthetic_window(SEEDS[robot], chunk.stamp_ns)  # what the robot's source published at that stamp
        key = KEYS[robot]
        obs = model_batch(window, self.policy.observation_keys, self.policy.window_size, self.policy.proprio_statistics(key))
        return self.policy.sample_actions(obs, self.policy.create_tasks(texts=[text]), dataset_key=key).unnormalized[0]

    def check(self, robot, chunks, text):
        for chunk in chunks:
            assert chunk.task == f"language: {text}" and chunk.dimension_names == tuple(NAMES)
            # equal to float32 rounding (the GEMMs block differently for another batch size)
            np.testing.assert_allclose(chunk.actions, self.reference(robot, chunk, text), atol=1e-4)

    def server_subscribes(self, topic):
        return any(i.node_name == "policy_server" for i in self.node.get_subscriptions_info_by_topic(topic))

    def set_parameter(self, name, value):
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.ros.call(self.set_parameters, request, timeout=30).results[0]


def test_one_server_three_robots(ros, checkpoint, reference_policy):
    fleet = Fleet(ros, checkpoint, reference_policy)
    sources = {robot: start_window_source(fleet.node, robot, SEEDS[robot]) for robot in ("cell1", "cell2")}
    killed = ros.spawn("cell3_windows", ["-m", "support.fleet_windows", "cell3", str(SEEDS["cell3"])])
    fleet.instruct("cell1", TEXTS["cell1"])
    fleet.instruct("cell2", TEXTS["cell2"])
    fleet.node.create_publisher(String, "/cell3/instruction", LATCHED_QOS).publish(String(data=TEXTS["cell3"]))

    # each robot: its own windows, instruction and statistics; chunks stamped with its window
    for robot in ("cell1", "cell2", "cell3"):
        fleet.next_chunks(robot, 2, timeout=120)  # the task is in effect
        fleet.check(robot, fleet.next_chunks(robot, 3), TEXTS[robot])
    ros.wait_for(lambda: {s.header.frame_id for s in fleet.statuses if s.state == PolicyStatus.RUNNING}
                 >= {"cell1", "cell2", "cell3"}, 10, "a RUNNING status for each robot on ~/status")

    # changing one robot's instruction changes only its chunks
    fleet.instruct("cell1", "put the spoon in the bowl")
    fleet.next_chunks("cell1", 2)
    changed = fleet.next_chunks("cell1", 3)
    fleet.check("cell1", changed, "put the spoon in the bowl")
    assert min(np.abs(c.actions - fleet.reference("cell1", c, TEXTS["cell1"])).max() for c in changed) > 1e-3
    for robot in ("cell2", "cell3"):
        fleet.check(robot, fleet.next_chunks(robot, 3), TEXTS[robot])

    # the robots' windows arrived together: batches of more than one were formed
    diagnostics = _diagnostics(fleet, "policy_server")
    sizes = {int(size): int(count) for size, count in (e.split(":") for e in diagnostics["batch_sizes"].split())}
    assert max(sizes) > 1, diagnostics
    assert float(diagnostics["cell2.latency_p95_s"]) >= float(diagnostics["cell2.latency_p50_s"]) > 0
    robot_status = _diagnostics(fleet, "cell2/policy")  # what cell2's recorder reads (its namespace)
    assert robot_status["task"] == f"language: {TEXTS['cell2']}" and int(robot_status["chunks_published"]) >= 8

    # cell3's window source dies: cell1 and cell2 are still served, cell3 waits
    mark = len(fleet.statuses)
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait()
    ros.processes.remove(killed)  # dead on purpose
    killed.stop()
    ros.wait_for(lambda: any(s.header.frame_id == "cell3" and s.state == PolicyStatus.WAITING_FOR_OBSERVATION
                             for s in fleet.statuses[mark:]), 30, "cell3 waiting for observations")
    time.sleep(0.5)  # its last chunk, computed before the server saw no more windows, has arrived
    after = len(fleet.chunks["cell3"])
    for robot in ("cell1", "cell2"):
        fleet.check(robot, fleet.next_chunks(robot, 4), TEXTS[robot] if robot == "cell2" else "put the spoon in the bowl")
    assert len(fleet.chunks["cell3"]) == after, "no chunks without observations"

    # cell3 leaves, cell4 joins while the server runs
    assert fleet.set_parameter("robots", ["cell1", "cell2", "cell4"]).successful
    ros.wait_for(lambda: not fleet.server_subscribes("/cell3/observation_window"), 10, "cell3's subscription gone")
    assert fleet.server_subscribes("/cell4/observation_window") and fleet.server_subscribes("/cell1/observation_window")
    sources["cell4"] = start_window_source(fleet.node, "cell4", SEEDS["cell4"])
    fleet.instruct("cell4", TEXTS["cell4"])
    fleet.next_chunks("cell4", 2)
    fleet.check("cell4", fleet.next_chunks("cell4", 3), TEXTS["cell4"])
    fleet.check("cell2", fleet.next_chunks("cell2", 2), TEXTS["cell2"])

    # refused, naming the mismatch; nothing changes
    bad_name = fleet.set_parameter("robots", ["cell1", "cell 5"])
    assert not bad_name.successful and "'cell 5' is not a robot namespace" in bad_name.reason
    bad_names = fleet.set_parameter("cell2.action_dimension_names", ["x", "y"])
    assert not bad_names.successful and "robot 'cell2'" in bad_names.reason and "has 2 names" in bad_names.reason
    bad_key = fleet.set_parameter("cell4.dataset_statistics_key", "bridge")
    assert not bad_key.successful and "unknown dataset key 'bridge'" in bad_key.reason
    fleet.check("cell2", fleet.next_chunks("cell2", 2), TEXTS["cell2"])
    assert fleet.server.alive() and "Traceback" not in fleet.server.output()


def _diagnostics(fleet, name):
    from diagnostic_msgs.msg import DiagnosticArray

    found = {}
    sub = fleet.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: found.update(
        {s.name: {kv.key: kv.value for kv in s.values} for s in m.status}), 10)
    fleet.ros.wait_for(lambda: name in found, 5, f"/diagnostics of {name}")
    fleet.node.destroy_subscription(sub)
    return found[name]
