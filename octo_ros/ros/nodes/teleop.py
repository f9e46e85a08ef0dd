"""teleop: operator inputs → the robot's policy actions, published as horizon-1 ``ActionChunk``s.

The adapter executes them like the policy's (same chunk execution, safety limits, dry-run gate,
e-stop) once its ``source`` parameter is ``teleop``; the recorder records them like the policy's.

``robot`` (required): ``widowx`` or ``ur5`` (delta end effector) or ``bimanual`` (ALOHA leaders).

Delta end effector (``octo_ros.control.teleop``), frames as the adapters integrate deltas (WidowX
``wx250s/base_link``: x forward, y left, z up; UR5: the RTDE base frame):
  sub ``twist_topic``    geometry_msgs/Twist (default ``spacenav/twist``; sensor-data QoS, which
                         reliable publishers match too), scaled by ``linear_scale`` (m/s per unit)
                         and ``angular_scale`` (rad/s per unit) after the ``deadband``
  sub ``gripper_topic``  std_msgs/Float64 (default ``teleop/gripper``): 1 = open, 0 = closed
  Joy buttons ``gripper_open_button`` / ``gripper_close_button`` (-1: none)
Bimanual (``octo_ros.robots.bimanual.teleop``):
  sub ``leader_topics``  two sensor_msgs/JointState (default ``[leader_left/joint_states,
                         leader_right/joint_states]``), leader gripper constants
                         ``{left,right}_gripper_open/close`` (rad)
Every robot:
  sub ``joy_topic``      sensor_msgs/Joy (default ``spacenav/joy``): buttons, pressed = released → pressed
  pub ``teleop/action_chunk``  octo_ros_msgs/ActionChunk: horizon 1, ``source`` teleop,
                         ``action_dimension_names``, ``step_period`` (= the adapter's), stamped
                         with the time the input was sampled; at least twice per step (see
                         ``octo_ros.control.teleop``), and on every leader state; ``normalized``
                         is NaN (no model produced it)
  episode buttons ``start_episode_button``, ``success_button``, ``failure_button``,
  ``discard_button`` (-1: none) call ``<recorder>/start_episode`` (with ``instruction``) and
  ``<recorder>/stop_episode`` with that outcome
  pub ``/diagnostics``
"""
from __future__ import annotations

import math

import numpy as np
from diagnostic_msgs.msg import KeyValue
from geometry_msgs.msg import Twist
from rclpy.node import Node
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float64

from octo_ros.control.teleop import (
    DELTA_ACTION_NAMES,
    PUBLISHES_PER_STEP,
    START_EPISODE,
    ButtonPresses,
    EpisodeButtons,
    TwistTeleop,
    TwistTeleopConfig,
)
from octo_ros.datatypes import TELEOP_SOURCE, ActionChunk
from octo_ros.robots.bimanual.adapter import ACTION_NAMES as BIMANUAL_ACTION_NAMES
from octo_ros.robots.bimanual.teleop import SIDES, LeaderTeleop, LeaderTeleopConfig
from octo_ros.ros.messages import chunk_to_msg
from octo_ros.ros.support import OK, SENSOR_QOS, WARN, Diagnostics, WarningThrottle, run_node
from octo_ros.timebase import ns_to_seconds, seconds_to_ns, stamp_seconds
from octo_ros_msgs.msg import ActionChunk as ActionChunkMsg
from octo_ros_msgs.srv import StartEpisode, StopEpisode

DELTA_ROBOTS = ("widowx", "ur5")
ROBOTS = (*DELTA_ROBOTS, "bimanual")


class TeleopNode(Node):
    def __init__(self, **kwargs):
        super().__init__("teleop", **kwargs)
        p = self.declare_parameter
        self.robot = p("robot", "").value
        if self.robot not in ROBOTS:
            raise ValueError(f"parameter 'robot' must be one of {', '.join(ROBOTS)}, got {self.robot!r}")
        self.warnings = WarningThrottle(self)
        self.diagnostics = Diagnostics(self)
        self.buttons = ButtonPresses()
        self.published = 0
        self.bad_inputs = 0
        self.last_reason = "starting"
        if self.robot in DELTA_ROBOTS:
            d = TwistTeleopConfig()
            self.twist_core = TwistTeleop(TwistTeleopConfig(
                step_period_s=float(p("step_period", d.step_period_s).value),
                linear_scale=float(p("linear_scale", d.linear_scale).value),
                angular_scale=float(p("angular_scale", d.angular_scale).value),
                deadband=float(p("deadband", d.deadband).value),
                twist_timeout_s=float(p("twist_timeout", d.twist_timeout_s).value),
                gripper_open_button=int(p("gripper_open_button", d.gripper_open_button).value),
                gripper_close_button=int(p("gripper_close_button", d.gripper_close_button).value),
            ))
            self.step_period_s = self.twist_core.config.step_period_s
            default_names = DELTA_ACTION_NAMES
            self.create_subscription(Twist, p("twist_topic", "spacenav/twist").value, self._on_twist, SENSOR_QOS)
            self.create_subscription(Float64, p("gripper_topic", "teleop/gripper").value, self._on_gripper, 10)
        else:
            d = LeaderTeleopConfig()
            self.leader_core = LeaderTeleop(LeaderTeleopConfig(
                step_period_s=float(p("step_period", d.step_period_s).value),
                left_gripper_open_rad=float(p("left_gripper_open", d.left_gripper_open_rad).value),
                left_gripper_close_rad=float(p("left_gripper_close", d.left_gripper_close_rad).value),
                right_gripper_open_rad=float(p("right_gripper_open", d.right_gripper_open_rad).value),
                right_gripper_close_rad=float(p("right_gripper_close", d.right_gripper_close_rad).value),
                leader_timeout_s=float(p("leader_timeout", d.leader_timeout_s).value),
            ))
            self.step_period_s = self.leader_core.config.step_period_s
            default_names = BIMANUAL_ACTION_NAMES
            topics = list(p("leader_topics", ["leader_left/joint_states", "leader_right/joint_states"]).value)
            if len(topics) != 2:
                raise ValueError(f"leader_topics needs the left and the right leader's topic, got {topics}")
            for side, topic in zip(SIDES, topics):
                self.create_subscription(JointState, topic, lambda msg, side=side: self._on_leader(side, msg), SENSOR_QOS)
        self.dimension_names = tuple(p("action_dimension_names", list(default_names)).value)
        if len(self.dimension_names) != len(default_names):
            raise ValueError(f"action_dimension_names has {len(self.dimension_names)} names; "
                             f"{self.robot} actions have {len(default_names)}")
        e = EpisodeButtons()
        self.episode_buttons = EpisodeButtons(
            start=int(p("start_episode_button", e.start).value), success=int(p("success_button", e.success).value),
            failure=int(p("failure_button", e.failure).value), discard=int(p("discard_button", e.discard).value))
        self.instruction = p("instruction", "").value
        recorder = p("recorder", "recorder").value.rstrip("/")
        self.start_client = self.create_client(StartEpisode, f"{recorder}/start_episode")
        self.stop_client = self.create_client(StopEpisode, f"{recorder}/stop_episode")
        self.create_subscription(Joy, p("joy_topic", "spacenav/joy").value, self._on_joy, 10)
        self.chunk_pub = self.create_publisher(ActionChunkMsg, "teleop/action_chunk", 10)
        self.sequence = 0
        self.last_publish = -math.inf
        self.create_timer(self.step_period_s / PUBLISHES_PER_STEP, self._on_tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"teleop for {self.robot}: {len(self.dimension_names)}-D actions every "
            f"{self.step_period_s / PUBLISHES_PER_STEP:g} s (step {self.step_period_s:g} s) on "
            f"{self.resolve_topic_name('teleop/action_chunk')}; the adapter executes them with source:=teleop")

    def now_s(self) -> float:
        return ns_to_seconds(self.get_clock().now().nanoseconds)

    # --------------------------------------------------------------- inputs
    def _bad_input(self, key: str, text: str) -> None:
        self.bad_inputs += 1
        self.warnings.warn(key, text)

    def _on_twist(self, msg: Twist) -> None:
        lin, ang = msg.linear, msg.angular
        try:
            self.twist_core.on_twist(self.now_s(), (lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z))
        except ValueError as err:
            self._bad_input("twist", f"twist ignored: {err}")

    def _on_gripper(self, msg: Float64) -> None:
        try:
            self.twist_core.on_gripper(msg.data)
        except ValueError as err:
            self._bad_input("gripper", f"gripper command ignored: {err}")

    def _on_leader(self, side: str, msg: JointState) -> None:
        now = self.now_s()
        try:
            self.leader_core.update(side, msg.name, msg.position, stamp_seconds(msg.header.stamp, now))
        except ValueError as err:
            self._bad_input(f"leader:{side}", f"leader joint state ignored: {err}")
            return
        self._publish(now)  # at once: the follower is one control period behind its leader, not more

    def _on_joy(self, msg: Joy) -> None:
        pressed = self.buttons.update(msg.buttons)
        if not pressed:
            return
        if self.robot in DELTA_ROBOTS:
            self.twist_core.on_buttons(pressed)
        for event in self.episode_buttons.events(pressed):
            self._episode(event)

    # --------------------------------------------------------------- episodes
    def _episode(self, event: str) -> None:
        if event == START_EPISODE:
            client, request = self.start_client, StartEpisode.Request(
                instruction=self.instruction, metadata=[KeyValue(key="started_by", value="teleop joy button")])
        else:
            client, request = self.stop_client, StopEpisode.Request(
                outcome=event, metadata=[KeyValue(key="stopped_by", value="teleop joy button")])
        if not client.service_is_ready():
            self.get_logger().error(f"{event}: {client.srv_name} is not available (is the recorder running?)")
            return
        future = client.call_async(request)
        future.add_done_callback(lambda f, event=event: self._episode_done(event, f))

    def _episode_done(self, event: str, future) -> None:
        response = future.result()
        if response is None:
            self.get_logger().error(f"{event}: no response from the recorder")
        elif response.success:
            self.get_logger().info(f"{event}: {response.message}")
        else:
            self.get_logger().error(f"{event} refused: {response.message}")

    # --------------------------------------------------------------- output
    def _on_tick(self) -> None:
        now = self.now_s()
        if now - self.last_publish >= 0.9 * self.step_period_s / PUBLISHES_PER_STEP:  # leaders publish on arrival
            self._publish(now)

    def _publish(self, now: float) -> None:
        if self.robot in DELTA_ROBOTS:
            action, reason = self.twist_core.action(now), ""
        else:
            action, reason = self.leader_core.action(now)
        self.last_reason = reason
        if action is None:
            return
        actions = np.asarray(action, dtype=np.float32)[None, :]
        chunk = ActionChunk(stamp_ns=seconds_to_ns(now), sequence=self.sequence, actions=actions,
                            normalized=np.full_like(actions, math.nan), dimension_names=self.dimension_names,
                            step_period_s=self.step_period_s, task=self.instruction, source=TELEOP_SOURCE)
        self.chunk_pub.publish(chunk_to_msg(chunk))
        self.sequence += 1
        self.published += 1
        self.last_publish = now

    def _publish_diagnostics(self) -> None:
        level, message = (WARN, self.last_reason) if self.last_reason else (OK, "publishing")
        self.diagnostics.publish(level, message, {"robot": self.robot, "chunks_published": self.published,
                                                  "bad_inputs": self.bad_inputs})


def main() -> None:
    run_node(TeleopNode, "teleop")


if __name__ == "__main__":
    main()
