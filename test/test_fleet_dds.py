"""The fleet end to end over DDS, as `octo-ros launch fleet --sim robots:=widowx,widowx,ur5` starts
it: one policy server and three simulated robot graphs (buffer, adapter, simulator) on one domain.
Each robot gets chunks of its own observations (stamped with its own windows) and its own
instruction; changing one robot's instruction changes only its chunks; the server batches windows
that are ready together; killing one robot's adapter stops that robot's graph and the server keeps
serving the others."""
import io
import signal
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray

from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.ros.graph import describe_fleet
from octo_ros.ros.launcher import GraphProcess
from octo_ros.timebase import stamp_to_ns
from octo_ros_msgs.msg import ActionChunk, ObservationWindow
from octo_ros_msgs.srv import SetInstruction

ROBOTS = {"widowx_0": "pick up the spoon", "widowx_1": "open the drawer", "ur5_0": "wipe the table"}


class Seen:
    """Stamps of one robot's windows and its chunks (stamp, task), thread-safe."""

    def __init__(self, node, robot):
        self.lock = threading.Lock()
        self.windows: set[int] = set()
        self.chunks: list[tuple[int, str]] = []
        node.create_subscription(ObservationWindow, f"/{robot}/observation_window", self._window, 10)
        node.create_subscription(ActionChunk, f"/{robot}/action_chunk", self._chunk, 10)

    def _window(self, msg):
        with self.lock:
            self.windows.add(stamp_to_ns(msg.header.stamp))

    def _chunk(self, msg):
        with self.lock:
            self.chunks.append((stamp_to_ns(msg.header.stamp), msg.task))

    def count(self) -> int:
        with self.lock:
            return len(self.chunks)

    def since(self, n: int) -> list[tuple[int, str]]:
        with self.lock:
            return self.chunks[n:]


def test_one_server_serves_three_simulated_robots(ros, tmp_path):
    checkpoint = make_untrained_checkpoint(tmp_path / "ck")
    arguments = {"robots": "widowx,widowx,ur5", "checkpoint": str(checkpoint), "policy.torch_threads": "1",
                 "policy.batching_window": "0.1",
                 "widowx_sim.image_width": "64", "widowx_sim.image_height": "48", "ur5_sim.image_width": "64",
                 "ur5_sim.image_height": "48", "observation_buffer.max_image_age_s": "2.0",
                 "observation_buffer.max_joint_lag_s": "0.5"}
    for robot in ROBOTS:  # the untrained checkpoint knows one dataset
        arguments[f"{robot}.policy.dataset_statistics_key"] = "untrained"
    specs = describe_fleet(sim=True, arguments=arguments)
    node = ros.node("fleet_probe", namespace="/probe")
    seen = {robot: Seen(node, robot) for robot in ROBOTS}
    diagnostics: dict[str, dict[str, str]] = {}
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diagnostics.update(
        {s.name: {kv.key: kv.value for kv in s.values} for s in m.status}), 50)
    out = io.StringIO()
    with GraphProcess(specs, out=out) as graph:
        def wait(predicate, timeout, what):
            deadline = time.monotonic() + timeout
            while not predicate():
                assert not graph.check(), f"{graph.failed} died waiting for {what}:\n{out.getvalue()[-4000:]}"
                assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{out.getvalue()[-4000:]}"
                time.sleep(0.1)

        def instruct(robot, text):
            client = node.create_client(SetInstruction, f"/{robot}/policy/set_instruction")
            wait(client.service_is_ready, 180, f"/{robot}/policy/set_instruction")
            future = client.call_async(SetInstruction.Request(instruction=text))
            wait(future.done, 60, f"{robot}'s instruction answered")
            assert future.result().success, future.result().message

        def served(robot, text, n=3, timeout=120):
            """The robot's next n chunks: of its own windows and its own instruction."""
            start = seen[robot].count()
            wait(lambda: len([c for c in seen[robot].since(start) if c[1] == f"language: {text}"]) >= n, timeout,
                 f"{n} chunks for {robot} of '{text}'")
            chunks = [c for c in seen[robot].since(start) if c[1] == f"language: {text}"]
            with seen[robot].lock:
                own = set(seen[robot].windows)
            others = set().union(*(seen[r].windows for r in ROBOTS if r != robot))
            assert all(stamp in own and stamp not in others for stamp, _ in chunks), f"{robot}: chunks of another's windows"
            return chunks

        for robot, text in ROBOTS.items():
            instruct(robot, text)
        for robot, text in ROBOTS.items():
            served(robot, text, timeout=300)

        # one robot's new instruction changes its chunks only
        instruct("widowx_0", "put the spoon in the bowl")
        served("widowx_0", "put the spoon in the bowl")
        for robot in ("widowx_1", "ur5_0"):
            start = seen[robot].count()
            served(robot, ROBOTS[robot])
            assert {task for _, task in seen[robot].since(start)} == {f"language: {ROBOTS[robot]}"}

        # windows ready together went through one call
        wait(lambda: "batch_sizes" in diagnostics.get("policy", {}), 10, "the server's batch sizes")
        sizes = {int(size): int(count) for size, count in (e.split(":") for e in diagnostics["policy"]["batch_sizes"].split())}
        assert max(sizes) > 1, diagnostics["policy"]

        # widowx_1's adapter dies: its graph stops, widowx_0 and ur5_0 are still served
        graph.processes["widowx_1/widowx_adapter"].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 60
        while graph.processes["widowx_1/observation_buffer"].poll() is None:
            graph.wait(duration=0.2)
            assert time.monotonic() < deadline, "widowx_1's graph still up"
        graph.check()  # reports the nodes the group stop ended
        assert {"widowx_1/widowx_adapter", "widowx_1/observation_buffer", "widowx_1/widowx_sim"} <= set(graph.failed)
        assert "widowx_1/widowx_adapter is required in widowx_1: stopping widowx_1's graph" in out.getvalue()
        time.sleep(1.0)
        gone = seen["widowx_1"].count()
        served("widowx_0", "put the spoon in the bowl")
        served("ur5_0", ROBOTS["ur5_0"])
        assert seen["widowx_1"].count() == gone, "no chunks for a robot without observations"
        assert graph.processes["policy"].poll() is None
    assert "Traceback" not in out.getvalue()
