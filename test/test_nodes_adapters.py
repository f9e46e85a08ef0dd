"""The robot adapter nodes over real DDS against their simulated drivers: dry-run, motion in the
direction of the actions, hold when chunks stop, and the latched e-stop."""
import threading
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from support.configs import adapter_parameters

from octo_ros.control.kinematics import forward_kinematics, solve_ik
from octo_ros.control.teleop import DELTA_ACTION_NAMES
from octo_ros.robots.bimanual.adapter import ACTION_NAMES as ALOHA_ACTION_NAMES
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS, ARMS
from octo_ros.robots.widowx.adapter import BRIDGE_START_STATE, pose_from_bridge_state
from octo_ros.ros.messages import ns_to_stamp
from octo_ros.timebase import stamp_to_ns
from octo_ros_msgs.msg import ActionChunk


class Collect:
    """Every message of one topic, with its arrival time; thread-safe."""

    def __init__(self, node, msg_type, topic, qos=10):
        self._lock = threading.Lock()
        self.items: list[tuple[float, object]] = []
        node.create_subscription(msg_type, topic, self._cb, qos)

    def _cb(self, msg):
        with self._lock:
            self.items.append((time.monotonic(), msg))

    def __len__(self):
        with self._lock:
            return len(self.items)

    def last(self):
        with self._lock:
            return self.items[-1][1]

    def since(self, t: float) -> list:
        with self._lock:
            return [m for (at, m) in self.items if at >= t]


class ChunkStream:
    """Publishes ``action_chunk`` every ``period`` while ``action`` is set: H copies of the action,
    stamped with the current time (the freshest possible observation)."""

    def __init__(self, node, step_period: float, horizon: int, period: float | None = None):
        self.node = node
        self.step_period = step_period
        self.horizon = horizon
        self.action: np.ndarray | None = None
        self.sequence = 0
        self.last_publish = -1.0
        self.pub = node.create_publisher(ActionChunk, "/action_chunk", 10)
        node.create_timer(period or step_period, self._publish)

    def _publish(self):
        action = self.action
        if action is None:
            return
        msg = ActionChunk(sequence=self.sequence, horizon=self.horizon, action_dim=len(action),
                          step_period=self.step_period,
                          dimension_names=list(DELTA_ACTION_NAMES if len(action) == 7 else ALOHA_ACTION_NAMES))
        msg.header.stamp = ns_to_stamp(self.node.get_clock().now().nanoseconds)
        actions = np.tile(np.asarray(action, dtype=np.float32), (self.horizon, 1))
        msg.actions = actions.ravel().tolist()
        msg.normalized = actions.ravel().tolist()
        self.pub.publish(msg)
        self.sequence += 1
        self.last_publish = time.monotonic()
        self.last_stamp_ns = stamp_to_ns(msg.header.stamp)

    def stop(self) -> float:
        """Stop publishing; returns the (monotonic) time of the last chunk published."""
        self.action = None
        time.sleep(0.05)
        return self.last_publish


def _arrivals(collect: Collect) -> list[float]:
    with collect._lock:
        return [at for at, _ in collect.items]


def assert_holds_after_stop(ros, chunks, probe, commands_at, preview, target, chunk_span: float, period: float,
                            settle: float = 0.0):
    """(c) After the last chunk, the adapter's target stops changing once the chunk's actions are
    used up (``chunk_span`` after its stamp, plus ``settle`` for an interpolated step that speed caps
    stretch) plus two control periods, and it reports hold.

    Timed on the adapter's own clock (the stamps of its ``~/command_preview``, taken in its
    control tick), so delivery delays on a loaded machine do not count."""
    chunks.stop()
    last_chunk_ns = chunks.last_stamp_ns
    time.sleep(chunk_span + 0.6)
    assert commands_at(), "no commands at all"
    with preview._lock:
        previews = [m for _, m in preview.items]
    moves = [stamp_to_ns(m.header.stamp) for m, prev in zip(previews[1:], previews[:-1])
             if np.any(target(m) != target(prev))]
    assert moves, "the target never changed"
    late_s = (moves[-1] - last_chunk_ns) / 1e9
    assert late_s <= chunk_span + settle + 2 * period + 0.02, (
        f"the target kept changing {late_s:.3f} s after the last chunk's stamp (its actions span {chunk_span} s)")
    assert _status(probe.status).startswith("hold"), _status(probe.status)
    n = len(commands_at())
    time.sleep(0.5)
    assert len(commands_at()) == n, "no new targets while holding"


def _status(collect: Collect) -> str:
    return collect.last().data if len(collect) else ""


def _positions(js: JointState, names) -> np.ndarray:
    idx = {n: i for i, n in enumerate(js.name)}
    return np.array([js.position[idx[n]] for n in names])


class AdapterProbe:
    def __init__(self, ros, node, adapter: str):
        self.ros = ros
        self.status = Collect(node, String, f"/{adapter}/status")
        self.set_dry_run_client = node.create_client(SetBool, f"/{adapter}/set_dry_run")
        self.estop_client = node.create_client(Trigger, f"/{adapter}/estop")
        self.reset_client = node.create_client(Trigger, f"/{adapter}/reset_estop")

    def set_dry_run(self, value: bool):
        response = self.ros.call(self.set_dry_run_client, SetBool.Request(data=value))
        assert response.success, response.message
        return response

    def estop(self):
        response = self.ros.call(self.estop_client, Trigger.Request())
        assert response.success, response.message

    def reset_estop(self):
        response = self.ros.call(self.reset_client, Trigger.Request())
        assert response.success, response.message

    def wait_status(self, prefix: str, timeout: float, since: float | None = None):
        def seen():
            msgs = self.status.since(since) if since is not None else ([self.status.last()] if len(self.status) else [])
            return any(m.data.startswith(prefix) for m in msgs)

        self.ros.wait_for(seen, timeout, f"adapter status '{prefix}'")


# ----------------------------------------------------------------------------------- WidowX
WX = ARMS["wx250s"]


def _wx_xyz(q) -> np.ndarray:
    return forward_kinematics(WX, np.asarray(q, float))[:3, 3]


def spawn_widowx_sim_at_start(ros):
    """The simulated WidowX at Bridge's start pose (inside the workspace box), camera barely rendered."""
    start_q = solve_ik(WX, pose_from_bridge_state(BRIDGE_START_STATE)).q
    return ros.spawn_module("widowx_sim", "octo_ros.ros.nodes.widowx_sim", params={
        "initial_pose": [float(v) for v in start_q], "image_width": 64, "image_height": 48,
        "render_rate": 1.0, "update_rate": 50.0})


def test_widowx_adapter_drives_the_simulated_widowx(ros):
    spawn_widowx_sim_at_start(ros)
    adapter = ros.spawn_module("widowx_adapter", "octo_ros.ros.nodes.widowx_adapter", params={
        **adapter_parameters("widowx"), "control_period": 0.1})
    node = ros.node("widowx_adapter_probe")
    probe = AdapterProbe(ros, node, "widowx_adapter")
    js = Collect(node, JointState, "/wx250s/joint_states")
    preview = Collect(node, JointState, "/widowx_adapter/command_preview")
    group = Collect(node, JointGroupCommand, "/wx250s/commands/joint_group")
    Collect(node, JointSingleCommand, "/wx250s/commands/joint_single")
    chunks = ChunkStream(node, step_period=0.2, horizon=4)
    ros.wait_for(lambda: len(js) > 0 and len(preview) > 0, 20.0, "joint states and a command preview")
    probe.wait_status("hold", 5.0)
    assert "chunk" in _status(probe.status)  # holding because no chunk came yet
    q0 = _positions(js.last(), ARM_JOINTS)
    x0 = _wx_xyz(q0)

    # (a) dry-run (the default): the preview moves forward (+x), the robot does not.
    chunks.action = np.array([0.01, 0, 0, 0, 0, 0, 1.0])
    ros.wait_for(lambda: _wx_xyz(preview.last().position[:6])[0] > x0[0] + 0.02, 10.0, "preview moving forward")
    assert not group.items, "dry-run must not send joint commands"
    np.testing.assert_allclose(_positions(js.last(), ARM_JOINTS), q0, atol=1e-3)
    assert "dry-run ON" in adapter.output()

    # (b) armed: the simulated arm moves in +x, little in y/z.
    probe.set_dry_run(False)
    ros.wait_for(lambda: len(group) > 0, 5.0, "joint group commands")
    ros.wait_for(lambda: _wx_xyz(_positions(js.last(), ARM_JOINTS))[0] > x0[0] + 0.03, 10.0, "arm moving forward")
    moved = _wx_xyz(_positions(js.last(), ARM_JOINTS)) - x0
    assert abs(moved[1]) < 0.3 * moved[0] and abs(moved[2]) < 0.3 * moved[0], moved
    assert all(m.name == "arm" and len(m.cmd) == 6 for _, m in group.items)

    # (c) chunks stop: hold once the last chunk's actions are used up (4 steps), within two periods.
    assert_holds_after_stop(ros, chunks, probe, lambda: _arrivals(group), preview, lambda m: np.asarray(m.position),
                            chunk_span=4 * 0.2, period=0.1)

    # (d) e-stop latches: chunks no longer move the robot until reset.
    probe.estop()
    chunks.action = np.array([0.0, 0.01, 0, 0, 0, 0, 1.0])  # now +y
    time.sleep(1.0)
    probe.wait_status("estop", 2.0)
    q_stopped = _positions(js.last(), ARM_JOINTS)
    n = len(group)
    time.sleep(1.0)
    assert len(group) == n
    np.testing.assert_allclose(_positions(js.last(), ARM_JOINTS), q_stopped, atol=1e-3)
    assert _status(probe.status).startswith("estop")
    probe.reset_estop()
    y_before = _wx_xyz(q_stopped)[1]
    ros.wait_for(lambda: _wx_xyz(_positions(js.last(), ARM_JOINTS))[1] > y_before + 0.02, 10.0, "arm moving left after reset")
    chunks.stop()
    assert adapter.stop() == 0


# ----------------------------------------------------------------------------------- bimanual
ALOHA_START = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])  # octo_ros.robots.bimanual.sim.START_ARM_POSE
SIM_GRIPPER = (1.4910, -0.6213)  # the simulated followers' gripper joint open / close (rad)


def test_bimanual_adapter_drives_the_simulated_aloha(ros):
    pytest.importorskip("gym_aloha")
    ros.spawn_module("aloha_sim", "octo_ros.ros.nodes.aloha_sim", params={
        "image_width": 64, "image_height": 48, "render_rate": 1.0})
    adapter = ros.spawn_module("bimanual_adapter", "octo_ros.ros.nodes.bimanual_adapter", params={
        **adapter_parameters("bimanual"), "left_gripper_open": SIM_GRIPPER[0], "left_gripper_close": SIM_GRIPPER[1],
        "right_gripper_open": SIM_GRIPPER[0], "right_gripper_close": SIM_GRIPPER[1]})
    node = ros.node("bimanual_adapter_probe")
    probe = AdapterProbe(ros, node, "bimanual_adapter")
    left = Collect(node, JointState, "/follower_left/joint_states")
    right = Collect(node, JointState, "/follower_right/joint_states")
    preview = Collect(node, JointState, "/bimanual_adapter/command_preview")
    left_cmd = Collect(node, JointGroupCommand, "/follower_left/commands/joint_group")
    right_cmd = Collect(node, JointGroupCommand, "/follower_right/commands/joint_group")
    grip_cmd = Collect(node, JointSingleCommand, "/follower_left/commands/joint_single")
    chunks = ChunkStream(node, step_period=0.02, horizon=50, period=0.2)
    ros.wait_for(lambda: len(left) > 0 and len(right) > 0 and len(preview) > 0, 30.0, "joint states and a preview")
    probe.wait_status("hold", 5.0)
    l0, r0 = _positions(left.last(), ARM_JOINTS), _positions(right.last(), ARM_JOINTS)
    np.testing.assert_allclose(l0, ALOHA_START, atol=0.05)

    def normalized(js):  # the measured gripper as the model's 0..1, so the grippers stay put
        g = _positions(js, ["gripper"])[0]
        return (g - SIM_GRIPPER[1]) / (SIM_GRIPPER[0] - SIM_GRIPPER[1])

    def action(left_waist):
        a = np.concatenate([l0, [normalized(left.last())], r0, [normalized(right.last())]])
        a[0] = left_waist
        return a

    # (a) dry-run: the preview's left waist turns to +0.3 rad, the robot's does not.
    chunks.action = action(0.3)
    ros.wait_for(lambda: preview.last().position[0] > 0.25, 10.0, "preview left waist at +0.3")
    assert list(preview.last().name[:7]) == [f"left_{j}" for j in ARM_JOINTS] + ["left_gripper"]
    assert not left_cmd.items and not right_cmd.items and not grip_cmd.items
    assert abs(_positions(left.last(), ARM_JOINTS)[0] - l0[0]) < 0.01

    # (b) armed: the left waist follows, the right arm stays.
    probe.set_dry_run(False)
    ros.wait_for(lambda: _positions(left.last(), ARM_JOINTS)[0] > 0.25, 10.0, "left waist at +0.3")
    np.testing.assert_allclose(_positions(right.last(), ARM_JOINTS), r0, atol=0.03)
    assert len(right_cmd) > 0 and len(grip_cmd) > 0

    # (c) chunks stop: hold once the 50-step (1 s) chunk is used up, within two 20 ms periods.
    assert_holds_after_stop(ros, chunks, probe, lambda: _arrivals(left_cmd), preview, lambda m: np.asarray(m.position),
                            chunk_span=50 * 0.02, period=0.02)

    # (d) e-stop latches.
    probe.estop()
    chunks.action = action(-0.3)
    time.sleep(1.0)
    assert _status(probe.status).startswith("estop")
    n = len(left_cmd)
    waist = _positions(left.last(), ARM_JOINTS)[0]
    time.sleep(0.6)
    assert len(left_cmd) == n
    assert abs(_positions(left.last(), ARM_JOINTS)[0] - waist) < 0.01
    probe.reset_estop()
    ros.wait_for(lambda: _positions(left.last(), ARM_JOINTS)[0] < -0.25, 10.0, "left waist at -0.3 after reset")
    chunks.stop()
    assert adapter.stop() == 0


# ----------------------------------------------------------------------------------- UR5
def _xyz(msg: PoseStamped) -> np.ndarray:
    p = msg.pose.position
    return np.array([p.x, p.y, p.z])


def test_ur5_adapter_drives_the_fake_ur_controller(ros):
    adapter = ros.spawn_module("ur5_adapter", "octo_ros.ros.nodes.ur5_adapter", params=adapter_parameters("ur5"))
    node = ros.node("ur5_adapter_probe")
    probe = AdapterProbe(ros, node, "ur5_adapter")
    tcp = Collect(node, PoseStamped, "/tcp_pose")
    js = Collect(node, JointState, "/joint_states")
    preview = Collect(node, PoseStamped, "/ur5_adapter/command_preview")
    chunks = ChunkStream(node, step_period=0.2, horizon=4)
    ros.wait_for(lambda: len(tcp) > 0 and len(preview) > 0 and len(js) > 0, 20.0, "tcp_pose, joint_states, preview")
    probe.wait_status("hold", 5.0)
    p0 = _xyz(tcp.last())
    np.testing.assert_allclose(p0, [0.4, -0.1, 0.3], atol=1e-6)  # the fake controller's start pose
    assert "gripper" in js.last().name and tcp.last().header.frame_id == "base"

    # Rejected chunks are logged with the reason and do not move anything.
    bad = ActionChunk(horizon=4, action_dim=6, step_period=0.2, actions=[0.01] * 24, normalized=[0.0] * 24)
    bad.header.stamp = ns_to_stamp(node.get_clock().now().nanoseconds)
    late = ActionChunk(horizon=1, action_dim=7, step_period=0.1, actions=[0.0] * 7, normalized=[0.0] * 7)
    late.header.stamp = bad.header.stamp
    chunks.pub.publish(bad)
    chunks.pub.publish(late)
    ros.wait_for(lambda: "is not (H, 7)" in adapter.output() and "step_period 0.1" in adapter.output(), 5.0,
                 "rejected chunks logged")

    # (a) dry-run: the preview moves +x, the (fake) robot does not.
    chunks.action = np.array([0.01, 0, 0, 0, 0, 0, 1.0])
    ros.wait_for(lambda: _xyz(preview.last())[0] > p0[0] + 0.02, 10.0, "preview moving forward")
    np.testing.assert_allclose(_xyz(tcp.last()), p0, atol=1e-6)

    # (b) armed: the TCP moves +x.
    probe.set_dry_run(False)
    ros.wait_for(lambda: _xyz(tcp.last())[0] > p0[0] + 0.03, 10.0, "TCP moving forward")
    moved = _xyz(tcp.last()) - p0
    assert abs(moved[1]) < 0.2 * moved[0] and abs(moved[2]) < 0.2 * moved[0], moved

    # (c) chunks stop: hold once the 4-step chunk is used up, within two 8 ms periods (+ DDS slack).
    def target_changes():  # arrival times of previews whose target differs from the one before
        with preview._lock:
            items = list(preview.items)
        return [at for (at, m), (_, prev) in zip(items[1:], items[:-1]) if np.any(_xyz(m) != _xyz(prev))]

    # Looser than for the Interbotix adapters: the last servoL segment is speed-capped, and on a loaded
    # machine a gap in the 125 Hz state feed makes the adapter re-anchor its target to the measured TCP
    # (a preview change without new motion), which was seen up to ~0.7 s after the chunk ran out.
    assert_holds_after_stop(ros, chunks, probe, target_changes, preview, _xyz, chunk_span=4 * 0.2, period=1 / 125,
                            settle=1.0)
    p_hold = _xyz(tcp.last())
    time.sleep(0.3)
    np.testing.assert_allclose(_xyz(tcp.last()), p_hold, atol=1e-4)

    # (d) e-stop latches.
    probe.estop()
    chunks.action = np.array([0.0, 0.01, 0, 0, 0, 0, 1.0])  # now +y
    time.sleep(1.0)
    assert _status(probe.status).startswith("estop")
    p_stop = _xyz(tcp.last())
    time.sleep(0.6)
    np.testing.assert_allclose(_xyz(tcp.last()), p_stop, atol=1e-4)
    probe.reset_estop()
    ros.wait_for(lambda: _xyz(tcp.last())[1] > p_stop[1] + 0.02, 10.0, "TCP moving +y after reset")
    chunks.stop()
    assert adapter.stop() == 0
    assert "RTDE control script stopped" in adapter.log_path.read_text()


def test_dry_run_refused_then_granted_keeps_the_adapter_alive(ros):
    """One service logs a refusal (warning) and a success (info): rclpy refuses a severity change at
    one logging call site, which killed the adapter on the second call."""
    params = {k: v for k, v in adapter_parameters("widowx").items() if k != "max_step_translation"}
    adapter = ros.spawn_module("widowx_adapter", "octo_ros.ros.nodes.widowx_adapter", params=params)  # arming refused
    node = ros.node("widowx_dry_run_probe")
    client = node.create_client(SetBool, "/widowx_adapter/set_dry_run")
    refused = ros.call(client, SetBool.Request(data=False), timeout=20.0)
    assert not refused.success and "refused" in refused.message
    for _ in range(2):
        granted = ros.call(client, SetBool.Request(data=True))
        assert granted.success and "dry-run ON" in granted.message
        refused = ros.call(client, SetBool.Request(data=False))
        assert not refused.success
    assert adapter.alive(), adapter.output()
    assert "Traceback" not in adapter.output()
