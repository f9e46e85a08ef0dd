"""Two machines on one: the WidowX robot graph (simulator, observation buffer, adapter armed) in
one network namespace, the policy in another, joined by a veth pair; DDS discovers across that
link as a lab's two machines would (the other machine as a static peer, or multicast discovery
on the subnet), UDP only: Fast DDS's shared-memory transport would carry the data past the link,
both namespaces being one host. The link is cut and restored; the adapter's status stream and the
joint commands it sends, recorded inside the robot namespace, say when it held and what it ran."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support.netns import NetnsLink, netns_unavailable
from support.ros_harness import REPO_ROOT

from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.ros.graph import describe
from octo_ros.ros.launcher import GraphProcess
from octo_ros.ros.support import CHUNK_LIVELINESS_LEASE_S

UNAVAILABLE = netns_unavailable()
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"network namespaces unavailable: {UNAVAILABLE}")

ROBOT_NODES = ("observation_buffer", "widowx_adapter", "widowx_sim")


def lab_environment(peer: str | None) -> dict[str, str]:
    """What a lab sets on each machine: the shared ROS_DOMAIN_ID (this session's), UDP transport, and
    discovery of the other machine: as a static peer, or (None) by multicast on the subnet."""
    env = dict(os.environ, FASTDDS_BUILTIN_TRANSPORTS="UDPv4",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "test")]))
    if peer:
        env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_STATIC_PEERS=peer)
    else:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SUBNET"
        env.pop("ROS_STATIC_PEERS", None)
    return env


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The untrained checkpoint, with statistics ("small_steps") that keep its random actions to
    millimetres: the arm stays inside the workspace box, so after the link returns the adapter
    moves again (with the untrained statistics it soon holds at the box's edge for good)."""
    path = make_untrained_checkpoint(tmp_path_factory.mktemp("multihost"), cameras=("primary",))
    statistics_file = path / "dataset_statistics.json"
    statistics = json.loads(statistics_file.read_text())
    small = json.loads(json.dumps(statistics["untrained"]))
    small["action"]["mean"][:6] = [0.0] * 6
    small["action"]["std"][:6] = [0.001] * 6
    statistics_file.write_text(json.dumps({**statistics, "small_steps": small}))
    return path


@pytest.fixture
def link():
    with NetnsLink() as pair:  # the namespaces go on the way out, pass or fail
        yield pair


class Probe:
    """support.link_probe inside a namespace, and what it recorded."""

    def __init__(self, link: NetnsLink, ns: str, env: dict, path):
        self.path = path
        self.proc = subprocess.Popen(link.prefix(ns) + [sys.executable, "-m", "support.link_probe", str(path),
                                                        "pick up the spoon"], env=env, cwd=REPO_ROOT)

    def read(self, kind: str, after: float = float("-inf")) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        if lines and not lines[-1].endswith("}"):
            lines.pop()  # being written
        return [r for r in map(json.loads, lines) if r["kind"] == kind and r["t"] > after]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)


def wait_for(predicate, timeout: float, what: str, graphs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for graph in graphs:
            assert not graph.check(), f"{graph.failed} exited while waiting for {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_multicast_discovery_finds_the_robot_across_the_link(link, tmp_path):
    """ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET (Kilted's default): SPDP multicast crosses the veth."""
    sim = describe("widowx", sim=True)
    robot = GraphProcess([s for s in sim if s.name == "widowx_sim"], env=lab_environment(None),
                         command_prefix=link.prefix(link.robot), out=open(tmp_path / "robot.log", "w"))
    probe = None
    try:
        robot.start()
        probe = Probe(link, link.gpu, lab_environment(None), tmp_path / "probe.jsonl")
        wait_for(lambda: len(probe.read("state")) >= 5, 60, "the robot's joint states on the GPU box", [robot])
    finally:
        if probe is not None:
            probe.stop()
        robot.stop()


def test_netem_delay_and_loss(link):
    reason = link.netem("delay 5ms loss 1%")
    if reason:
        pytest.skip(f"this kernel cannot emulate delay and loss ({reason}); bench/fleet.py measures the plain link")
    # shaped both ways: the link still carries traffic (the graph test runs on the plain link)
    done = subprocess.run(link.prefix(link.robot) + ["tc", "qdisc", "show", "dev", link.robot_dev],
                          capture_output=True, text=True, check=True)
    assert "netem" in done.stdout and "delay 5ms" in done.stdout


def test_link_cut_holds_the_adapter_and_no_stale_step_runs_after_it_returns(link, checkpoint, tmp_path):
    arguments = {"checkpoint": str(checkpoint), "dataset_statistics_key": "small_steps", "dry_run": "false"}
    # the GPU box runs the policy; the robot PC the rest of the graph (README: one GPU box, several robots)
    specs = {s.name: s for s in describe("widowx", sim=True, arguments=arguments)}
    robot_specs = describe("widowx", sim=True, arguments={**arguments, "policy": "false"})
    assert [s.name for s in robot_specs] == list(ROBOT_NODES)
    adapter = specs["widowx_adapter"].parameters
    period = adapter.get("control_period", 0.2)
    policy = GraphProcess([specs["policy"]], env=lab_environment(link.ROBOT_ADDRESS),
                          command_prefix=link.prefix(link.gpu), out=open(tmp_path / "gpu.log", "w"))
    robot = GraphProcess(robot_specs, env=lab_environment(link.GPU_ADDRESS),
                         command_prefix=link.prefix(link.robot), out=open(tmp_path / "robot.log", "w"))
    probe = None
    try:
        policy.start()
        robot.start()
        probe = Probe(link, link.robot, robot.env, tmp_path / "probe.jsonl")
        graphs = (policy, robot)
        wait_for(lambda: len(probe.read("chunk")) >= 3 and probe.read("command") and probe.read("qos"), 240,
                 "chunks across the link and commands to the simulated arm", graphs)
        cut = time.time()
        link.set_link(False)
        time.sleep(2.5)  # longer than the chunk timeout (1 s): every chunk from before the cut is stale
        restored = time.time()
        link.set_link(True)
        wait_for(lambda: len([c for c in probe.read("chunk", restored) if c["stamp"] > restored]) >= 2
                 and probe.read("command", restored), 60, "chunks and commands after the link returned", graphs)
    finally:
        if probe is not None:
            probe.stop()
        robot.stop()
        policy.stop()

    (qos,) = probe.read("qos")
    for role in ("window_publishers", "window_subscriptions", "chunk_publishers"):
        assert all(e["reliability"] == "RELIABLE" for e in qos[role]), qos

    # Cut: the chunk publisher's liveliness lease (CHUNK_QOS) runs out on the robot side, and the
    # adapter drops the plan it still had and holds within two control periods of the cut.
    hold_by = cut + 2 * period
    down = [s for s in probe.read("status", cut) if s["t"] <= restored]
    late_moves = [s for s in down if s["t"] > hold_by and not s["status"].startswith("hold")]
    late_commands = [c for c in probe.read("command", hold_by) if c["t"] <= restored]
    last_move = max([s["t"] for s in down if s["status"].startswith("move")], default=cut)
    print(f"cut -> last move {last_move - cut:.3f} s (lease {CHUNK_LIVELINESS_LEASE_S} s, control period {period} s)")
    assert not late_moves and not late_commands, (
        f"{len(late_commands)} commands and {len(late_moves)} moves later than {hold_by - cut:.3f} s after the cut")
    first_hold = next(s["status"] for s in down if s["status"].startswith("hold"))
    assert first_hold.startswith("hold: policy chunk publisher lost"), first_hold  # not the plan running out

    # Return: every step executed comes from a chunk computed from an observation taken after the
    # cut; chunks from before it (resent by the reliable writer) are dropped by their stamps.
    fresh = min(c["t"] for c in probe.read("chunk", restored) if c["stamp"] > cut)
    early = [c for c in probe.read("command", restored) if c["t"] < fresh]
    assert not early, f"{len(early)} commands after the link returned, before any fresh chunk arrived"
    moves = [s for s in probe.read("status", restored) if s["status"].startswith("move")]
    assert moves and moves[0]["t"] >= fresh
