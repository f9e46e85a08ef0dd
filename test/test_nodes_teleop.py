"""The teleop node over real DDS with the real adapters and simulators: Twist + Joy → delta chunks
that move the simulated end effector by speed × dt in the twist's direction, gripper buttons in the
robot's convention, ALOHA leaders → followers within a control period, a source switch while
armed holds first, and episode labels from Joy buttons landing in the bag metadata."""
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Twist
from interbotix_xs_msgs.msg import JointSingleCommand
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float64
from support.configs import adapter_parameters, node_parameters
from test_nodes_adapters import (
    ALOHA_START,
    SIM_GRIPPER,
    AdapterProbe,
    ChunkStream,
    Collect,
    _positions,
    spawn_widowx_sim_at_start,
)

from octo_ros.control.kinematics import forward_kinematics, rotation_log
from octo_ros.recording.bag import read_episode_metadata
from octo_ros.recording.reading import load_episode
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS, ARMS
from octo_ros.ros.messages import ns_to_stamp
from octo_ros.timebase import stamp_to_ns
from octo_ros_msgs.msg import ActionChunk
from octo_ros_msgs.srv import StartEpisode

WX = ARMS["wx250s"]
SPEED = 0.5 * 0.1  # twist 0.5 × linear_scale 0.1 m/s per unit
STEP = 0.2


class TwistSource:
    """Publishes the current twist at 20 Hz (as a SpaceMouse held still does) and Joy presses."""

    def __init__(self, node):
        self.twist = Twist()
        self.pub = node.create_publisher(Twist, "/spacenav/twist", 10)
        self.joy = node.create_publisher(Joy, "/spacenav/joy", 10)
        node.create_timer(0.05, lambda: self.pub.publish(self.twist))

    def set(self, linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0)):
        t = Twist()
        t.linear.x, t.linear.y, t.linear.z = (float(v) for v in linear)
        t.angular.x, t.angular.y, t.angular.z = (float(v) for v in angular)
        self.twist = t

    def press(self, button: int, buttons: int = 6):
        pressed = [0] * buttons
        pressed[button] = 1
        self.joy.publish(Joy(buttons=pressed))
        time.sleep(0.1)
        self.joy.publish(Joy(buttons=[0] * buttons))


def _set_source(ros, node, adapter: str, source: str):
    client = node.create_client(SetParameters, f"/{adapter}/set_parameters")
    value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=source)
    response = ros.call(client, SetParameters.Request(parameters=[Parameter(name="source", value=value)]))
    return response.results[0]


def _pose(js) -> np.ndarray:
    return forward_kinematics(WX, np.asarray(js.position[:6], float))


def test_widowx_teleop_moves_by_speed_times_step_after_a_held_source_switch(ros):
    spawn_widowx_sim_at_start(ros)
    adapter = ros.spawn_module("widowx_adapter", "octo_ros.ros.nodes.widowx_adapter", params={
        **adapter_parameters("widowx"), "dry_run": False})
    ros.spawn_module("teleop", "octo_ros.ros.nodes.teleop", params={
        **node_parameters("widowx", "teleop"), "linear_scale": 0.1, "angular_scale": 0.5})
    node = ros.node("teleop_probe")
    probe = AdapterProbe(ros, node, "widowx_adapter")
    js = Collect(node, JointState, "/wx250s/joint_states")
    preview = Collect(node, JointState, "/widowx_adapter/command_preview")
    single = Collect(node, JointSingleCommand, "/wx250s/commands/joint_single")
    teleop_chunks = Collect(node, ActionChunk, "/teleop/action_chunk")
    policy = ChunkStream(node, step_period=STEP, horizon=4)
    operator = TwistSource(node)
    gripper = node.create_publisher(Float64, "/teleop/gripper", 10)
    ros.wait_for(lambda: len(js) and len(preview) and len(teleop_chunks), 30.0, "joint states, preview, teleop chunks")

    # The policy drives (source policy, the default): +y. The teleop's chunks are refused.
    operator.set(linear=(0.5, 0.0, 0.0))
    policy.action = np.array([0.0, 0.01, 0, 0, 0, 0, 1.0])
    y0 = _pose(js.last())[1, 3]
    ros.wait_for(lambda: _pose(js.last())[1, 3] > y0 + 0.03, 15.0, "the policy moving the arm +y")
    ros.wait_for(lambda: "chunk from source 'teleop'" in adapter.output(), 5.0, "teleop chunks refused")

    # Switch while armed: the adapter holds first, then executes the teleop's +x chunks.
    switched = time.monotonic()
    result = _set_source(ros, node, "widowx_adapter", "teleop")
    assert result.successful, result.reason
    assert not _set_source(ros, node, "widowx_adapter", "joystick").successful
    probe.wait_status("hold: chunk source switched to teleop: holding first", 5.0, since=switched)
    ros.wait_for(lambda: "chunk from source 'policy'" in adapter.output(), 5.0, "policy chunks refused")
    p_switch = _pose(js.last())[:3, 3]
    ros.wait_for(lambda: _pose(js.last())[0, 3] > p_switch[0] + 0.04, 15.0, "the teleop moving the arm +x")
    ros.wait_for(lambda: len(preview.since(switched + 1.0)) >= 6, 10.0, "six step targets")

    # Chunks: horizon 1, source teleop, the policy's names, dx = speed × step exactly.
    chunk = teleop_chunks.last()
    assert (chunk.source, chunk.horizon, chunk.step_period) == ("teleop", 1, STEP)
    assert list(chunk.dimension_names) == ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    np.testing.assert_allclose(chunk.actions, [SPEED * STEP, 0, 0, 0, 0, 0, 1.0], atol=1e-7)
    # Each step target (one preview per 0.2 s step) is speed × dt further along +x, nothing else.
    targets = [_pose(m) for m in preview.since(switched + 1.0)]
    steps = [b[:3, 3] - a[:3, 3] for a, b in zip(targets[:-1], targets[1:])]
    moving = [d for d in steps if np.linalg.norm(d) > 1e-4]
    assert len(moving) >= 3, steps  # the others held (e.g. joint states late on a loaded machine)
    np.testing.assert_allclose(moving, [[SPEED * STEP, 0.0, 0.0]] * len(moving), atol=1e-4)
    moved = _pose(js.last())[:3, 3] - p_switch  # the simulated arm went there: +x, not y/z
    assert abs(moved[1]) < 0.2 * moved[0] and abs(moved[2]) < 0.2 * moved[0], moved

    # +yaw twist: each step target rotates by +angular speed × dt about the base z axis.
    operator.set(angular=(0.0, 0.0, 0.4))
    turning = time.monotonic()
    ros.wait_for(lambda: len(preview.since(turning + 0.5)) >= 5, 10.0, "step targets while turning")
    targets = [_pose(m) for m in preview.since(turning + 0.5)]
    turns = [rotation_log(b[:3, :3] @ a[:3, :3].T) for a, b in zip(targets[:-1], targets[1:])]
    turns = [w for w in turns if np.linalg.norm(w) > 1e-4]
    assert turns
    np.testing.assert_allclose(turns, [[0.0, 0.0, 0.4 * 0.5 * STEP]] * len(turns), atol=2e-4)

    # Gripper buttons (spacenav: left = close, right = open) → the Interbotix PWM convention.
    operator.set()
    sent = len(single)
    operator.press(0)
    ros.wait_for(lambda: teleop_chunks.last().actions[6] == 0.0, 5.0, "a closing chunk")
    ros.wait_for(lambda: any(m.cmd < 0 for m in single.since(0)[sent:]), 5.0, "gripper close (−PWM)")
    sent = len(single)
    operator.press(1)
    ros.wait_for(lambda: teleop_chunks.last().actions[6] == 1.0, 5.0, "an opening chunk")
    ros.wait_for(lambda: any(m.cmd > 0 for m in single.since(0)[sent:]), 5.0, "gripper open (+PWM)")
    # ... or a std_msgs/Float64 in the model convention (0 = closed), e.g. from a trigger axis.
    sent = len(single)
    gripper.publish(Float64(data=0.0))
    ros.wait_for(lambda: teleop_chunks.last().actions[6] == 0.0, 5.0, "a closing chunk from teleop/gripper")
    ros.wait_for(lambda: any(m.cmd < 0 for m in single.since(0)[sent:]), 5.0, "gripper close (−PWM)")
    policy.stop()
    assert adapter.stop() == 0


def test_ur5_teleop_moves_the_tcp_along_the_twist(ros):
    ros.spawn_module("ur5_adapter", "octo_ros.ros.nodes.ur5_adapter", params={**adapter_parameters("ur5"), "source": "teleop"})
    ros.spawn_module("teleop", "octo_ros.ros.nodes.teleop", params={**node_parameters("ur5", "teleop"), "linear_scale": 0.1})
    node = ros.node("teleop_ur5_probe")
    tcp = Collect(node, PoseStamped, "/tcp_pose")
    operator = TwistSource(node)
    ros.wait_for(lambda: len(tcp), 30.0, "tcp_pose")
    AdapterProbe(ros, node, "ur5_adapter").set_dry_run(False)  # armed while its servo loop runs (RTDE watchdog)
    operator.set(linear=(0.0, 0.5, 0.0))  # +y of the UR base frame
    p0 = tcp.last()
    ros.wait_for(lambda: tcp.last().pose.position.y > p0.pose.position.y + 0.03, 15.0, "TCP moving +y")
    start = tcp.last()
    time.sleep(1.0)
    end = tcp.last()
    dt = (stamp_to_ns(end.header.stamp) - stamp_to_ns(start.header.stamp)) / 1e9
    dy = end.pose.position.y - start.pose.position.y
    assert 0.7 * SPEED < dy / dt < 1.15 * SPEED, (dy, dt)  # speed × dt; a loaded machine may hold a step
    assert abs(end.pose.position.x - start.pose.position.x) < 0.002 and abs(end.pose.position.z - start.pose.position.z) < 0.002


LEADER_GRIPPER = (0.8298, -0.0552)  # the ALOHA 2 leaders' gripper joint open / close (rad)


def test_bimanual_followers_follow_the_leaders_within_a_control_period(ros):
    pytest.importorskip("gym_aloha")
    ros.spawn_module("aloha_sim", "octo_ros.ros.nodes.aloha_sim", params={
        "image_width": 64, "image_height": 48, "render_rate": 1.0})
    ros.spawn_module("bimanual_adapter", "octo_ros.ros.nodes.bimanual_adapter", params={
        **adapter_parameters("bimanual"), "dry_run": False, "source": "teleop",
        "left_gripper_open": SIM_GRIPPER[0], "left_gripper_close": SIM_GRIPPER[1],
        "right_gripper_open": SIM_GRIPPER[0], "right_gripper_close": SIM_GRIPPER[1]})
    ros.spawn_module("teleop", "octo_ros.ros.nodes.teleop", params=node_parameters("bimanual", "teleop"))
    node = ros.node("teleop_leader_probe")
    probe = AdapterProbe(ros, node, "bimanual_adapter")
    chunks = Collect(node, ActionChunk, "/teleop/action_chunk")
    left = Collect(node, JointState, "/follower_left/joint_states")
    preview = Collect(node, JointState, "/bimanual_adapter/command_preview")
    grip = Collect(node, JointSingleCommand, "/follower_right/commands/joint_single")
    pubs = {side: node.create_publisher(JointState, f"/leader_{side}/joint_states", 10) for side in ("left", "right")}
    rate = 0.05  # rad/s on the left waist: well inside the velocity limits, so the command is the leader's
    ramp_start = [None]

    def leaders():  # 50 Hz, like the leader arms' driver; the left waist ramps, the right gripper half open
        now_ns = node.get_clock().now().nanoseconds
        waist = 0.0 if ramp_start[0] is None else rate * (now_ns - ramp_start[0]) / 1e9
        for side, q0, gripper in (("left", [waist, *ALOHA_START[1:]], LEADER_GRIPPER[0]),
                                  ("right", list(ALOHA_START), sum(LEADER_GRIPPER) / 2)):
            msg = JointState(name=[*ARM_JOINTS, "gripper"], position=[float(v) for v in q0] + [gripper])
            msg.header.stamp = ns_to_stamp(now_ns)
            pubs[side].publish(msg)

    node.create_timer(0.02, leaders)
    probe.wait_status("move", 40.0)  # the followers track the (still) leaders
    ramp_start[0] = node.get_clock().now().nanoseconds
    ros.wait_for(lambda: len(left) and _positions(left.last(), ARM_JOINTS)[0] > 0.05, 15.0,
                 "the simulated left follower following")  # the probe may not have its first joint state yet
    # How far behind its leader each command is, on stamps: the teleop stamps a chunk with the time
    # the leader sample reached it (and publishes it then), the adapter its preview with its tick.
    # Counted: ticks commanding a chunk's action as it is (holds because the simulator's joint states
    # arrive late on a loaded machine, "state stale", and the rate-limited catch-up after them are
    # the adapter's safety path, not the teleop's).
    def lags():
        received = {}  # waist value -> when the teleop got that leader sample (its first chunk with it)
        for c in chunks.since(0):
            received.setdefault(float(np.float32(c.actions[0])), stamp_to_ns(c.header.stamp))
        ticks = [m for m in preview.since(0) if stamp_to_ns(m.header.stamp) > ramp_start[0]]
        return np.array([(stamp_to_ns(m.header.stamp) - received[m.position[0]]) / 1e9
                         for m, prev in zip(ticks[1:], ticks[:-1])
                         if m.position[0] != prev.position[0] and m.position[0] in received])

    ros.wait_for(lambda: len(lags()) >= 20, 30.0, "20 ticks commanding a leader pose")
    lags = lags()
    assert np.median(lags) <= 0.02, np.percentile(lags, [50, 90, 100])  # the newest leader pose each period
    # The right gripper half open on the leader is half open on the follower (the sim's joint constants).
    ros.wait_for(lambda: len(grip) and abs(grip.last().cmd - sum(SIM_GRIPPER) / 2) < 1e-3, 10.0,
                 "the right gripper commanded half open")
    np.testing.assert_allclose(preview.last().position[7:13], ALOHA_START, atol=1e-6)


def test_episode_labels_from_joy_buttons_land_in_the_bag_metadata_and_bad_input_is_refused(ros, tmp_path):
    ros.spawn_module("recorder", "octo_ros.ros.nodes.recorder", params={
        "topics": ["teleop/action_chunk"], "topic_types": ["octo_ros_msgs/msg/ActionChunk"],
        "output_dir": str(tmp_path / "bags"), "robot": "widowx"})
    teleop = ros.spawn_module("teleop", "octo_ros.ros.nodes.teleop", params={
        "robot": "widowx", "start_episode_button": 2, "success_button": 3, "failure_button": 4, "discard_button": 5,
        "instruction": "put the spoon in the pot"})
    node = ros.node("teleop_episode_probe")
    operator = TwistSource(node)
    chunks = Collect(node, ActionChunk, "/teleop/action_chunk")
    ros.wait_for(lambda: len(chunks) > 0, 30.0, "teleop chunks")
    # bad input: named in the log, ignored; the node keeps publishing finite (here: still) actions
    operator.set(linear=(float("nan"), 0.0, 0.0))
    ros.wait_for(lambda: "twist ignored: twist has non-finite components" in teleop.output(), 10.0, "the NaN twist refused")
    operator.set()
    seen = len(chunks)
    ros.wait_for(lambda: len(chunks) > seen + 3, 5.0, "chunks after the bad twist")
    assert all(np.all(np.isfinite(c.actions)) and not np.any(c.actions[:6]) for c in chunks.since(0)[seen:])
    assert node.create_client(StartEpisode, "/recorder/start_episode").wait_for_service(timeout_sec=30.0)
    for _ in range(10):  # until the teleop node has discovered the recorder's services too
        refused = teleop.output().count("is not available")
        operator.press(2)
        ros.wait_for(lambda: "start: recording" in teleop.output() or teleop.output().count("is not available") > refused,
                     10.0, "the start button handled")
        if "start: recording" in teleop.output():
            break
        time.sleep(0.5)
    for i, label in enumerate(("discard", "success")):
        if i:
            operator.press(2)
        ros.wait_for(lambda: teleop.output().count("start: recording") == i + 1, 10.0, "episode started")
        time.sleep(1.0)
        operator.press({"discard": 5, "success": 3}[label])
        ros.wait_for(lambda: f"{label}: stopped" in teleop.output(), 10.0, f"episode stopped ({label})")
    bags = sorted(p for p in (tmp_path / "bags").iterdir() if p.is_dir())  # named by start time
    assert len(bags) == 2, bags
    for bag, label in zip(bags, ("discard", "success")):
        meta = read_episode_metadata(bag)
        assert meta["outcome"] == label and meta["instruction"] == "put the spoon in the pot"
        episode = load_episode(bag)
        assert episode.chunks is not None and len(episode.chunks.actions) >= 5  # ~10 per second
