"""Hostile inputs against one running graph (issue #12 acceptance): the observation buffer, the
policy, the WidowX adapter armed against its simulator, the UR5 adapter armed against the
controller stand-in, the bimanual adapter and the recorder, all real processes over DDS, started
once for the module. Each case sends one hostile input and asserts the node's message about it,
that the node is still alive (and still working: the recorder records a numbered stream without a
gap), and that no command any adapter sent left its limits."""
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import KeyValue
from geometry_msgs.msg import PoseStamped
from interbotix_xs_msgs.msg import JointGroupCommand
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from support.configs import adapter_parameters
from support.ros_harness import RosHarness

from octo_ros.control.kinematics import solve_ik
from octo_ros.control.teleop import DELTA_ACTION_NAMES
from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.recording.bag import is_complete, read_episode_metadata, repair_bag
from octo_ros.robots.bimanual.adapter import ACTION_NAMES as ALOHA_NAMES
from octo_ros.robots.interbotix.kinematics import ARMS
from octo_ros.robots.widowx.adapter import BRIDGE_START_STATE, pose_from_bridge_state
from octo_ros.ros.messages import image_to_msg, ns_to_stamp
from octo_ros.ros.support import LATCHED_QOS, SENSOR_QOS
from octo_ros_msgs.msg import ActionChunk, ObservationWindow
from octo_ros_msgs.srv import SetInstruction, StartEpisode, StopEpisode

HOUR_NS = 3600 * 10**9
IMAGE = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
GOOD_JPEG = cv2.imencode(".jpg", IMAGE)[1].tobytes()
WX = ARMS["wx250s"]
UR_BOX = (np.array(adapter_parameters("ur5")["workspace_low"]), np.array(adapter_parameters("ur5")["workspace_high"]))


def _jpeg_claiming(width, height) -> bytes:
    data = bytearray(GOOD_JPEG)
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 7], data[sof + 7:sof + 9] = height.to_bytes(2, "big"), width.to_bytes(2, "big")
    return bytes(data[:sof + 300]) + b"\xff\xd9"


def _corrupt_jpeg() -> bytes:
    data = bytearray(GOOD_JPEG)
    data[len(data) // 2:len(data) // 2 + 2] = b"\xff\xd0"
    return bytes(data)


def _png_claiming(width, height) -> bytes:
    data = bytearray(cv2.imencode(".png", IMAGE)[1].tobytes())
    data[16:20], data[20:24] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    return bytes(data)


class Graph:
    def __init__(self, tmp):
        self.ros = RosHarness(tmp)
        ros = self.ros
        checkpoint = make_untrained_checkpoint(tmp / "ckpt")
        start_q = solve_ik(WX, pose_from_bridge_state(BRIDGE_START_STATE)).q
        self.procs = {
            "buffer": ros.spawn_module("observation_buffer", "octo_ros.ros.nodes.observation_buffer", params={
                "camera_inputs": ["image_primary"], "cameras.image_primary.topic": "/cam/image_raw/compressed",
                "cameras.image_primary.height": 64, "cameras.image_primary.width": 64,
                "joint_state_topic": "/joint_states", "proprio_joints": ["j1", "j2", "j3"], "rate_hz": 5.0,
                "max_image_pixels": 640 * 480}),
            "policy": ros.spawn_module("policy", "octo_ros.ros.nodes.policy", params={
                "checkpoint": str(checkpoint), "action_dimension_names": list(DELTA_ACTION_NAMES)}),
            "widowx_sim": ros.spawn_module("widowx_sim", "octo_ros.ros.nodes.widowx_sim", params={
                "initial_pose": [float(v) for v in start_q], "image_width": 64, "image_height": 48,
                "render_rate": 1.0, "update_rate": 50.0}),
            "widowx": ros.spawn_module("widowx_adapter", "octo_ros.ros.nodes.widowx_adapter", params={
                **adapter_parameters("widowx"), "dry_run": False}),
            "ur5": ros.spawn_module("ur5_adapter", "octo_ros.ros.nodes.ur5_adapter",  # its joint_states apart
                                    "-r", "joint_states:=/ur5/joint_states", params={
                                        **adapter_parameters("ur5"), "dry_run": False}),
            "bimanual": ros.spawn_module("bimanual_adapter", "octo_ros.ros.nodes.bimanual_adapter",
                                         params=adapter_parameters("bimanual")),
        }
        node = self.node = ros.node("hostile_graph_test")
        self._lock = threading.Lock()
        self.windows = 0
        self.wx_commands: list[np.ndarray] = []
        self.ur_previews: list[np.ndarray] = []
        self.bi_previews: list[np.ndarray] = []
        node.create_subscription(ObservationWindow, "/observation_window", self._on_window, 10)
        node.create_subscription(JointGroupCommand, "/wx250s/commands/joint_group",
                                 lambda m: self._keep(self.wx_commands, np.asarray(m.cmd, np.float32)), 100)
        node.create_subscription(PoseStamped, "/ur5_adapter/command_preview", lambda m: self._keep(
            self.ur_previews, np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])), 100)
        node.create_subscription(JointState, "/bimanual_adapter/command_preview",
                                 lambda m: self._keep(self.bi_previews, np.asarray(m.position, np.float32)), 100)
        self.camera = node.create_publisher(CompressedImage, "/cam/image_raw/compressed", SENSOR_QOS)
        self.joints = node.create_publisher(JointState, "/joint_states", SENSOR_QOS)
        self.wx_joints = node.create_publisher(JointState, "/wx250s/joint_states", SENSOR_QOS)
        self.chunks = node.create_publisher(ActionChunk, "/action_chunk", 10)
        self.instruction = node.create_publisher(String, "/instruction", LATCHED_QOS)
        self.goal = node.create_publisher(Image, "/goal_image", LATCHED_QOS)
        self.set_instruction = node.create_client(SetInstruction, "/policy/set_instruction")
        self.reset = node.create_client(Trigger, "/observation_buffer/reset")
        node.create_timer(0.1, self._stream_camera)
        node.create_timer(0.02, self._stream_joints)
        node.create_timer(0.2, self._stream_chunks)
        self.recording = Recording(ros, node, tmp / "bags")
        ros.wait_for(lambda: self.count() >= 2, 90, "windows from the good streams")
        ros.wait_for(lambda: len(self.wx_commands) >= 2 and len(self.ur_previews) >= 2, 60,
                     "armed adapters sending commands")

    def _keep(self, items, value):
        with self._lock:
            items.append(value)

    def _on_window(self, msg):
        with self._lock:
            self.windows += 1

    def count(self) -> int:
        with self._lock:
            return self.windows

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def compressed(self, data: bytes, stamp_ns: int | None = None, fmt: str = "jpeg") -> CompressedImage:
        msg = CompressedImage(format=fmt)
        msg.data = data
        msg.header.stamp = ns_to_stamp(self.now_ns() if stamp_ns is None else stamp_ns)
        return msg

    def _stream_camera(self):
        self.camera.publish(self.compressed(GOOD_JPEG))

    def _stream_joints(self):
        msg = JointState(name=["j1", "j2", "j3"], position=[0.1, 0.2, 0.3])
        msg.header.stamp = ns_to_stamp(self.now_ns())
        self.joints.publish(msg)

    def chunk(self, actions, names, step_period=0.2, stamp_ns=None) -> ActionChunk:
        actions = np.atleast_2d(np.asarray(actions, np.float64))
        msg = ActionChunk(horizon=actions.shape[0], action_dim=actions.shape[1], step_period=step_period,
                          dimension_names=list(names), source="policy")
        msg.header.stamp = ns_to_stamp(self.now_ns() if stamp_ns is None else stamp_ns)
        msg.actions = actions.astype(np.float32).ravel().tolist()
        msg.normalized = msg.actions
        return msg

    def _stream_chunks(self):  # good chunks: small motions the armed adapters execute
        t = time.monotonic()
        self.chunks.publish(self.chunk(np.tile([0.01 * np.sin(t), 0, 0, 0, 0, 0, 1.0], (4, 1)), DELTA_ACTION_NAMES))

    def limits_held(self) -> None:
        with self._lock:
            wx, ur, bi = list(self.wx_commands), list(self.ur_previews), list(self.bi_previews)
        lower, upper = np.array(WX.limits.lower), np.array(WX.limits.upper)
        for q in wx:
            assert q.shape == (6,) and np.all(np.isfinite(q)), q
            assert np.all(q.astype(float) >= lower) and np.all(q.astype(float) <= upper), f"WidowX command {q} outside its limits"
        for p in ur:
            assert np.all(p >= UR_BOX[0] - 1e-9) and np.all(p <= UR_BOX[1] + 1e-9), f"UR5 target {p} outside the box"
        for q in bi:
            assert np.all(np.isfinite(q)), q

    def close(self):
        self.ros.close()


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    g = Graph(tmp_path_factory.mktemp("hostile_graph"))
    yield g
    g.close()


def _wait_message(graph, proc: str, text: str, before: int, timeout=15.0):
    p = graph.procs[proc]
    graph.ros.wait_for(lambda: p.output().count(text) > before, timeout, f"{proc} saying {text!r}")


def _run_case(graph, proc: str, text: str, send):
    """Send one hostile input (retrying past the 2 s warning throttle) until ``proc`` says ``text``."""
    p = graph.procs[proc]
    before = p.output().count(text)
    deadline = time.monotonic() + 30
    while True:
        send(graph)
        try:
            _wait_message(graph, proc, text, before, timeout=2.5)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    assert p.alive(), p.output()[-2000:]
    graph.limits_held()


# ------------------------------------------------------------------ observation buffer
def _frame(data, stamp_offset=0, fmt="jpeg"):
    return lambda g: g.camera.publish(g.compressed(data, g.now_ns() + stamp_offset, fmt))


def _joints(names, positions, stamp_offset=0):
    def send(g):
        msg = JointState(name=list(names), position=[float(v) for v in positions])
        msg.header.stamp = ns_to_stamp(g.now_ns() + stamp_offset)
        g.joints.publish(msg)
    return send


BUFFER_CASES = [
    ("frame +1 h", _frame(GOOD_JPEG, HOUR_NS), "stamped in the future"),
    ("joint state +1 h", _joints(["j1", "j2", "j3"], [0, 0, 0], HOUR_NS), "stamped in the future"),
    ("jpeg bomb 8192", _frame(_jpeg_claiming(8192, 8192)), "8192x8192 = 67108864 pixels exceeds"),
    ("jpeg bomb 16384", _frame(_jpeg_claiming(16384, 16384)), "16384x16384 = 268435456 pixels exceeds"),
    ("jpeg 4k over the limit", _frame(_jpeg_claiming(3840, 2160)), "3840x2160 = 8294400 pixels exceeds"),
    ("png bomb", _frame(_png_claiming(20000, 20000), fmt="png"), "20000x20000 = 400000000 pixels exceeds"),
    ("corrupt jpeg", _frame(_corrupt_jpeg()), "Corrupt JPEG data"),
    ("truncated jpeg", _frame(GOOD_JPEG[: len(GOOD_JPEG) // 2]), "truncated JPEG"),
    ("empty payload", _frame(b""), "empty data"),
    ("gif payload", _frame(b"GIF89a" + bytes(40)), "neither JPEG nor PNG"),
    ("header without size", _frame(b"\xff\xd8\xff" + bytes(40) + b"\xff\xd9"), "no image size in the header"),
    ("frame an hour old", _frame(GOOD_JPEG, -HOUR_NS), "out-of-order stamp"),
    ("duplicated joint names", _joints(["j1", "j1", "j2", "j3"], [float("nan"), 0.5, 0, 0]),
     "duplicated joint names ['j1']"),
    ("float32 overflow", _joints(["j1", "j2", "j3"], [1e39, 0, 0]), "not finite as float32"),
    ("nan joint", _joints(["j1", "j2", "j3"], [float("nan"), 0, 0]), "non-finite positions for joints ['j1']"),
    ("names without positions", _joints(["j1", "j2", "j3"], [0.0]), "3 names but 1 positions"),
    ("missing joints", _joints(["j1"], [0.0]), "missing joints ['j2', 'j3']"),
]


@pytest.mark.parametrize("case, send, text", BUFFER_CASES, ids=[c[0] for c in BUFFER_CASES])
def test_buffer(graph, case, send, text):
    count = graph.count()
    _run_case(graph, "buffer", text, send)
    graph.ros.wait_for(lambda: graph.count() >= count + 2, 30, f"windows after {case}")


def test_buffer_reset_service_answers_and_windows_go_on(graph):
    response = graph.ros.call(graph.reset, Trigger.Request())
    assert response.success and "reset" in response.message
    count = graph.count()
    graph.ros.wait_for(lambda: graph.count() >= count + 2, 20, "windows after ~/reset")


# ------------------------------------------------------------------ policy
def _instruct(text):
    def send(g):
        g.set_instruction.call_async(SetInstruction.Request(instruction=text))
    return send


def _topic(text):
    return lambda g: g.instruction.publish(String(data=text))


def _goal(rgb, encoding="rgb8"):
    def send(g):
        msg = image_to_msg(rgb, g.now_ns())
        msg.encoding = encoding
        g.goal.publish(msg)
    return send


POLICY_CASES = [
    ("service 100 kB", _instruct("x" * 100_000), "100000 characters long"),
    ("topic 100 kB", _topic("y" * 100_000), "100000 characters long"),
    ("service ansi", _instruct("pick \x1b[31mred\x1b[0m"), r"control characters (\x1b)"),
    ("topic ansi", _topic("pick \x1b[2Jclear"), r"control characters (\x1b)"),
    ("service bell", _instruct("a\x07b"), r"control characters (\x07)"),  # (a NUL cannot arrive: DDS strings end there)
    ("topic carriage return", _topic("open\rclose"), r"control characters (\r)"),
    ("service empty", _instruct("   "), "instruction is empty"),
    ("goal too large", _goal(np.zeros((512, 512, 3), np.uint8)), "262144 pixels exceeds the maximum"),
    ("goal wrong size", _goal(np.zeros((32, 48, 3), np.uint8)), "goal image for image_primary is 48x32"),
    ("goal unknown encoding", _goal(np.zeros((8, 8, 3), np.uint8), "yuv422"), "unsupported image encoding 'yuv422'"),
]


@pytest.mark.parametrize("case, send, text", POLICY_CASES, ids=[c[0] for c in POLICY_CASES])
def test_policy(graph, case, send, text):
    _run_case(graph, "policy", text, send)
    assert "\x1b" not in graph.procs["policy"].output(), "an escape sequence reached the log"
    response = graph.ros.call(graph.set_instruction, SetInstruction.Request(instruction=""), timeout=30)
    assert not response.success and "task unchanged" in response.message  # the service still answers


# ------------------------------------------------------------------ adapters
def _chunk(actions, names, **kw):
    return lambda g: g.chunks.publish(g.chunk(actions, names, **kw))


def _wx_state(names, positions):
    def send(g):
        msg = JointState(name=list(names), position=[float(v) for v in positions])
        msg.header.stamp = ns_to_stamp(g.now_ns())
        g.wx_joints.publish(msg)
    return send


ZERO7 = np.tile([0, 0, 0, 0, 0, 0, 1.0], (4, 1))
ZERO14 = np.zeros((50, 14))
HUGE7 = np.tile([1e30, -1e30, 1e30, 1e30, -1e30, 1e30, 1.0], (4, 1))
SWAPPED = ALOHA_NAMES[7:] + ALOHA_NAMES[:7]
WX_JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
ADAPTER_CASES = [
    ("widowx", "reversed names", _chunk(ZERO7, DELTA_ACTION_NAMES[::-1]), "are a permutation of this adapter's layout"),
    ("ur5", "reversed names", _chunk(ZERO7, DELTA_ACTION_NAMES[::-1]), "are a permutation of this adapter's layout"),
    ("widowx", "a0..a6", _chunk(ZERO7, [f"a{i}" for i in range(7)]), "do not match this adapter's layout"),
    ("ur5", "a0..a6", _chunk(ZERO7, [f"a{i}" for i in range(7)]), "do not match this adapter's layout"),
    ("widowx", "unnamed", _chunk(ZERO7, []), "chunk has no action dimension names"),
    ("ur5", "unnamed", _chunk(ZERO7, []), "chunk has no action dimension names"),
    ("bimanual", "arms swapped", _chunk(ZERO14, SWAPPED, step_period=0.02), "are a permutation of this adapter's layout"),
    ("bimanual", "unnamed", _chunk(ZERO14, [], step_period=0.02), "chunk has no action dimension names"),
    ("bimanual", "7-D chunk", _chunk(ZERO7, DELTA_ACTION_NAMES, step_period=0.02), "is not (H, 14)"),
    ("widowx", "nan actions", _chunk(np.full((4, 7), np.nan), DELTA_ACTION_NAMES), "non-finite"),
    ("ur5", "inf actions", _chunk(np.full((4, 7), np.inf), DELTA_ACTION_NAMES), "non-finite"),
    ("widowx", "future stamp", _chunk(ZERO7, DELTA_ACTION_NAMES, stamp_ns=None), "in the future"),
    ("ur5", "wrong step period", _chunk(ZERO7, DELTA_ACTION_NAMES, step_period=0.1), "step_period 0.1"),
    ("widowx", "6-D chunk", _chunk(np.zeros((4, 6)), DELTA_ACTION_NAMES[:6]), "is not (H, 7)"),
    ("widowx", "duplicated joint names", _wx_state(WX_JOINTS + ["waist"], [0.0] * 7), "duplicated joint names ['waist']"),
    ("widowx", "nan joint state", _wx_state(WX_JOINTS, [float("nan")] + [0.0] * 5), "non-finite or misshapen joint state"),
    ("widowx", "missing arm joints", _wx_state(WX_JOINTS[:3], [0.0] * 3), "lacks the arm joints"),
    ("bimanual", "nan actions", _chunk(np.full((50, 14), np.nan), ALOHA_NAMES, step_period=0.02), "non-finite"),
    ("ur5", "6-D chunk", _chunk(np.zeros((4, 6)), DELTA_ACTION_NAMES[:6]), "is not (H, 7)"),
    ("bimanual", "wrong step period", _chunk(ZERO14, ALOHA_NAMES, step_period=0.2), "step_period 0.2"),
    ("ur5", "values for another shape", lambda g: g.chunks.publish(_reshaped(g.chunk(ZERO7, DELTA_ACTION_NAMES))),
     "actions has 28 values, expected 5x7"),
    ("widowx", "negative step period", _chunk(ZERO7, DELTA_ACTION_NAMES, step_period=-0.2), "is not positive"),
]


def _reshaped(msg):
    msg.horizon = 5  # 28 values sent for a declared 5 x 7
    return msg



def _future(case):
    """The future-stamp case needs a stamp one hour ahead of the test's clock at send time."""
    if case[1] != "future stamp":
        return case
    return (*case[:2], lambda g: g.chunks.publish(g.chunk(ZERO7, DELTA_ACTION_NAMES, stamp_ns=g.now_ns() + HOUR_NS)),
            case[3])


ADAPTER_CASES = [_future(c) for c in ADAPTER_CASES]


@pytest.mark.parametrize("robot, case, send, text", ADAPTER_CASES, ids=[f"{c[0]}-{c[1]}" for c in ADAPTER_CASES])
def test_adapter(graph, robot, case, send, text):
    _run_case(graph, robot, text, send)
    sent = len(graph.wx_commands) if robot == "widowx" else len(graph.ur_previews)
    if robot != "bimanual":  # the armed adapters go on executing the good chunks
        graph.ros.wait_for(lambda: (len(graph.wx_commands) if robot == "widowx" else len(graph.ur_previews)) > sent,
                           15, f"{robot} commands after {case}")


def test_huge_actions_are_clamped_inside_the_limits(graph):
    before = len(graph.wx_commands), len(graph.ur_previews)
    for _ in range(5):
        graph.chunks.publish(graph.chunk(HUGE7, DELTA_ACTION_NAMES))
        time.sleep(0.2)
    graph.ros.wait_for(lambda: len(graph.wx_commands) > before[0] and len(graph.ur_previews) > before[1], 15,
                       "commands after huge actions")
    assert graph.procs["widowx"].alive() and graph.procs["ur5"].alive()
    graph.limits_held()


# ------------------------------------------------------------------ recorder
SEQ_TYPE = "sensor_msgs/msg/JointState"


class Recording:
    """The recorder of the graph: a 50 Hz numbered JointState stream it records, an image topic for the
    huge message, and a topic configured as JointState that is published as String (all reliable)."""

    TOPICS = {"/rec/seq": SEQ_TYPE, "/rec/image": "sensor_msgs/msg/Image", "/rec/typed": SEQ_TYPE}

    def __init__(self, ros, node, out):
        self.ros, self.node, self.out = ros, node, out
        self.spawn()
        self.seq = 0
        self.seq_pub = node.create_publisher(JointState, "/rec/seq", 100)
        self.image_pub = node.create_publisher(Image, "/rec/image", 10)
        self.start = node.create_client(StartEpisode, "/recorder/start_episode")
        self.stop = node.create_client(StopEpisode, "/recorder/stop_episode")
        node.create_timer(0.02, self._stream_seq)
        ros.wait_for(lambda: self.seq_pub.get_subscription_count() >= 1 and self.image_pub.get_subscription_count() >= 1,
                     60, "the recorder subscribing")

    def spawn(self):
        self.proc = self.ros.spawn_module("recorder", "octo_ros.ros.nodes.recorder", params={
            "topics": list(self.TOPICS), "topic_types": list(self.TOPICS.values()), "output_dir": str(self.out),
            "topic_qos": ["reliable"] * len(self.TOPICS), "robot": "hostile", "flush_period": 0.2})

    def _stream_seq(self):
        msg = JointState(name=["seq"], position=[float(self.seq)])
        msg.header.stamp = ns_to_stamp(self.node.get_clock().now().nanoseconds)
        self.seq += 1
        self.seq_pub.publish(msg)

    def start_episode(self, instruction="hostile", **metadata):
        request = StartEpisode.Request(instruction=instruction)
        request.metadata = [KeyValue(key=k, value=v) for k, v in metadata.items()]
        return self.ros.call(self.start, request, timeout=20)

    def stop_episode(self, outcome="success"):
        return self.ros.call(self.stop, StopEpisode.Request(outcome=outcome), timeout=20)

    def published_after(self, count: int) -> None:
        """Wait until ``count`` more messages of the numbered stream went out (its rate sags under load)."""
        target = self.seq + count
        self.ros.wait_for(lambda: self.seq >= target, 30, f"{count} messages on /rec/seq")

    def episode(self, **stop):
        """One good episode; returns the stop response (asserted successful)."""
        started = self.start_episode()
        assert started.success, started.message
        self.published_after(5)
        stopped = self.stop_episode(**stop)
        assert stopped.success, stopped.message
        return stopped

    def answering(self) -> None:
        """After the recorder process was replaced: wait until the new one answers a call. DDS drops a
        response the server sends before it matched the client's response reader; under load that
        matching can take longer than the RMW waits for it, so the call is repeated (discarding
        nothing: no episode runs yet) until one answer comes back."""
        deadline = time.monotonic() + 60
        while True:
            future = self.stop.call_async(StopEpisode.Request(outcome="discard"))
            try:
                self.ros.wait_for(future.done, 5, "an answer from the new recorder")
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def stop_any(self):
        """After a failed case: leave no episode running for the next one."""
        self.ros.call(self.stop, StopEpisode.Request(outcome="discard"), timeout=20)

    def said(self, text: str) -> int:
        return self.proc.output().count(text)

    def alive_and_recording(self):
        """The recorder is up and a fresh episode keeps every message of the numbered stream."""
        assert self.proc.alive(), self.proc.output()[-2000:]
        bag = Path(self.episode().bag_path)
        assert_no_gap(bag)
        return bag


@pytest.fixture
def rec(graph):
    yield graph.recording
    graph.limits_held()


def bag_messages(bag: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with AnyReader([bag]) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    return out


def assert_no_gap(bag: Path, minimum=2) -> list[int]:
    """The numbered stream is in the bag without a gap: nothing received was lost."""
    seqs = [int(m.position[0]) for m in bag_messages(bag).get("/rec/seq", [])]
    assert len(seqs) >= minimum, f"{bag.name}: {len(seqs)} messages of /rec/seq"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{bag.name}: /rec/seq has gaps: {seqs}"
    return seqs


def test_recorder_stop_without_start(rec):
    response = rec.stop_episode()
    assert not response.success and response.message == "no episode is recording"
    rec.alive_and_recording()


def test_recorder_start_while_recording_keeps_the_running_episode(rec):
    first = rec.start_episode()
    assert first.success, first.message
    rec.published_after(3)
    second = rec.start_episode(instruction="another")
    assert not second.success and "is already recording; stop it first" in second.message
    assert second.bag_path == first.bag_path
    refused_at = rec.seq
    rec.published_after(5)
    assert rec.stop_episode().success
    seqs = assert_no_gap(Path(first.bag_path))
    assert seqs[0] < refused_at < seqs[-1], f"the episode did not run on through the refused start: {seqs}"
    rec.alive_and_recording()


def test_recorder_start_stop_storm(rec):
    bags = []
    for _ in range(6):
        started = rec.start_episode()
        assert started.success, started.message
        stopped = rec.stop_episode()
        assert stopped.success, stopped.message
        bags.append(Path(stopped.bag_path))
    assert len(set(bags)) == 6, "two episodes share a bag"
    for bag in bags:
        assert is_complete(bag), bag
        assert read_episode_metadata(bag)["outcome"] == "success"
    rec.alive_and_recording()


def test_recorder_outcome_and_instruction_are_escaped_in_the_log(rec):
    started = rec.start_episode(instruction="pick \x1b[31mred\x1b[0m")
    assert started.success, started.message
    time.sleep(0.2)
    stopped = rec.stop_episode(outcome="fail\x1b[2Jure")
    assert stopped.success, stopped.message
    assert "\x1b" not in rec.proc.output(), "an escape sequence reached the recorder's log"
    assert r"fail\x1b[2Jure" in rec.proc.output()
    meta = read_episode_metadata(Path(stopped.bag_path))
    assert meta["outcome"] == "fail\x1b[2Jure" and meta["instruction"] == "pick \x1b[31mred\x1b[0m"  # stored as given
    rec.alive_and_recording()


def test_recorder_huge_message_is_recorded_whole(rec):
    pixels = np.random.default_rng(1).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)  # 12 MiB
    started = rec.start_episode()
    assert started.success, started.message
    rec.image_pub.publish(image_to_msg(pixels, rec.node.get_clock().now().nanoseconds))
    time.sleep(2.0)
    stopped = rec.stop_episode()
    assert stopped.success, stopped.message
    bag = Path(stopped.bag_path)
    images = bag_messages(bag).get("/rec/image", [])
    assert len(images) == 1 and images[0].height == 2048 and bytes(images[0].data) == pixels.tobytes()
    assert_no_gap(bag)
    rec.alive_and_recording()


def test_recorder_names_a_topic_published_with_another_type(rec):
    pub = rec.node.create_publisher(String, "/rec/typed", 10)
    try:
        before = rec.said("/rec/typed is published as std_msgs/msg/String")
        started = rec.start_episode()
        assert started.success, started.message
        for _ in range(10):
            pub.publish(String(data="not a joint state"))
            time.sleep(0.05)
        rec.ros.wait_for(lambda: rec.said("/rec/typed is published as std_msgs/msg/String") > before, 10,
                         "the recorder naming the type mismatch")
        stopped = rec.stop_episode()
        assert stopped.success, stopped.message
        meta = read_episode_metadata(Path(stopped.bag_path))
        assert "/rec/typed" in meta["notes"].get("topics_without_messages", ""), meta["notes"]
        assert "std_msgs/msg/String" in meta["notes"].get("topics_of_another_type", ""), meta["notes"]
        assert_no_gap(Path(stopped.bag_path))
    finally:  # the String publisher stays (destroying it under the spinning executor races)
        rec.stop_any()
    rec.alive_and_recording()


def test_recorder_output_dir_replaced_by_a_file(rec):
    moved = rec.out.with_name(rec.out.name + "_moved")
    rec.out.rename(moved)
    rec.out.write_text("not a directory")
    try:
        response = rec.start_episode()
        assert not response.success and f"cannot create output directory {rec.out}" in response.message
        assert "cannot start an episode" in rec.proc.output()
    finally:
        rec.out.unlink()
        moved.rename(rec.out)
    rec.alive_and_recording()


def test_recorder_bag_removed_mid_episode_is_restored(rec):
    started = rec.start_episode()
    assert started.success, started.message
    bag = Path(started.bag_path)
    rec.published_after(10)
    time.sleep(0.4)  # two flush periods: on disk
    shutil.rmtree(bag)
    rec.published_after(5)
    stopped = rec.stop_episode()
    assert not stopped.success and "removed while recording" in stopped.message and "restored" in stopped.message
    repair_bag(bag)
    assert_no_gap(bag, minimum=5)  # what was flushed before the removal came back
    rec.alive_and_recording()


def test_recorder_sigkill_mid_episode_then_repair(rec):  # last: it replaces the recorder process
    started = rec.start_episode()
    assert started.success, started.message
    bag = Path(started.bag_path)
    rec.published_after(20)
    killed, killed_ns = rec.proc, rec.node.get_clock().now().nanoseconds
    os.killpg(killed.proc.pid, signal.SIGKILL)
    killed.proc.wait(10)
    rec.ros.processes.remove(killed)  # dead on purpose
    killed.log_path.rename(killed.log_path.with_name("recorder_killed.log"))  # the new one logs to recorder.log
    rec.spawn()
    rec.ros.wait_for(lambda: rec.said(f"unfinished bag {bag} (a recorder died)") > 0 and rec.said("recording /rec/seq"),
                     30, "the new recorder up, naming the unfinished bag")
    time.sleep(0.5)  # its subscriptions matched
    rec.answering()
    report = repair_bag(bag)
    assert report.messages > 0, report
    assert read_episode_metadata(bag)["outcome"] == "incomplete"
    seqs_stamps = [m.header.stamp for m in bag_messages(bag)["/rec/seq"]]
    assert_no_gap(bag, minimum=10)
    lost_s = (killed_ns - (seqs_stamps[-1].sec * 10**9 + seqs_stamps[-1].nanosec)) / 1e9
    assert lost_s < 1.0, f"the last {lost_s:.2f} s before the SIGKILL were lost"
    rec.alive_and_recording()
