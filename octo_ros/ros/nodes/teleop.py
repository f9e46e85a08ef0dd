"""teleop: operator inputs → the robot's policy actions, published as horizon-1 ``ActionChunk``s
that the adapter executes like the policy's (chunk execution, safety limits, dry-run gate, e-stop)
once its ``source`` is ``teleop``, and the recorder records like the policy's.

``robot`` (required): ``widowx`` or ``ur5`` (delta end effector, ``octo_ros.control.teleop``; frames
as the adapters integrate deltas) or ``bimanual`` (ALOHA leaders, ``octo_ros.robots.bimanual.teleop``).
  sub ``twist_topic``    geometry_msgs/Twist (``spacenav/twist``; sensor-data QoS, which reliable
                         publishers match too), ``linear_scale`` m/s and ``angular_scale`` rad/s per
                         unit after the ``deadband``; Joy ``gripper_open_button`` / ``gripper_close_button``
  sub ``gripper_topic``  std_msgs/Float64 (``teleop/gripper``): 1 = open, 0 = closed
  sub ``leader_topics``  bimanual: two sensor_msgs/JointState (``leader_{left,right}/joint_states``),
                         leader gripper constants ``{left,right}_gripper_open/close`` (rad)
  sub ``joy_topic``      sensor_msgs/Joy (``spacenav/joy``): a button acts when pressed
  pub ``teleop/action_chunk``  horizon 1, ``action_dimension_names``, ``step_period`` (= the
                         adapter's), stamped when sampled, at least twice per step and on every
                         leader state (``octo_ros.control.teleop.TeleopChunks``)
  Joy ``start_episode_button``, ``success_button``, ``failure_button``, ``discard_button`` (-1: none)
  call ``<recorder>/start_episode`` (with ``instruction``) / ``<recorder>/stop_episode`` with that outcome
  pub ``/diagnostics``
"""
from __future__ import annotations

from diagnostic_msgs.msg import KeyValue
from geometry_msgs.msg import Twist
from rclpy.node import Node
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float64

from octo_ros.control.teleop import (
    DELTA_ACTION_NAMES,
    START_EPISODE,
    ButtonPresses,
    EpisodeButtons,
    TeleopChunks,
    TwistTeleop,
    TwistTeleopConfig,
)
from octo_ros.robots.bimanual.adapter import ACTION_NAMES as BIMANUAL_ACTION_NAMES
from octo_ros.robots.bimanual.teleop import SIDES, LeaderTeleop, LeaderTeleopConfig
from octo_ros.ros.messages import chunk_to_msg
from octo_ros.ros.support import OK, SENSOR_QOS, WARN, Diagnostics, WarningThrottle, declare_config, run_node
from octo_ros.timebase import ns_to_seconds, stamp_seconds
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
        if self.robot in DELTA_ROBOTS:
            self.twist_core = TwistTeleop(declare_config(self, TwistTeleopConfig(), (
                "step_period_s", "linear_scale", "angular_scale", "deadband", "twist_timeout_s", "gripper_open_button",
                "gripper_close_button")))
            step_period_s, default_names = self.twist_core.config.step_period_s, DELTA_ACTION_NAMES
            self.create_subscription(Twist, p("twist_topic", "spacenav/twist").value, self._on_twist, SENSOR_QOS)
            self.create_subscription(Float64, p("gripper_topic", "teleop/gripper").value, self._on_gripper, 10)
        else:
            self.leader_core = LeaderTeleop(declare_config(self, LeaderTeleopConfig(), (
                "step_period_s", "left_gripper_open_rad", "left_gripper_close_rad", "right_gripper_open_rad",
                "right_gripper_close_rad", "leader_timeout_s")))
            step_period_s, default_names = self.leader_core.config.step_period_s, BIMANUAL_ACTION_NAMES
            topics = list(p("leader_topics", ["leader_left/joint_states", "leader_right/joint_states"]).value)
            if len(topics) != 2:
                raise ValueError(f"leader_topics needs the left and the right leader's topic, got {topics}")
            for side, topic in zip(SIDES, topics):
                self.create_subscription(JointState, topic, lambda msg, side=side: self._on_leader(side, msg), SENSOR_QOS)
        self.chunks = TeleopChunks(self.robot, step_period_s, p("action_dimension_names", list(default_names)).value,
                                   len(default_names))
        self.episode_buttons = declare_config(self, EpisodeButtons(), ("start", "success", "failure", "discard"), names={
            "start": "start_episode_button", "success": "success_button", "failure": "failure_button",
            "discard": "discard_button"})
        self.chunks.instruction = p("instruction", "").value
        recorder = p("recorder", "recorder").value.rstrip("/")
        self.start_client = self.create_client(StartEpisode, f"{recorder}/start_episode")
        self.stop_client = self.create_client(StopEpisode, f"{recorder}/stop_episode")
        self.create_subscription(Joy, p("joy_topic", "spacenav/joy").value, self._on_joy, 10)
        self.chunk_pub = self.create_publisher(ActionChunkMsg, "teleop/action_chunk", 10)
        self.create_timer(self.chunks.publish_period_s, self._on_tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"teleop for {self.robot}: {len(self.chunks.dimension_names)}-D actions every "
            f"{self.chunks.publish_period_s:g} s (step {step_period_s:g} s) on "
            f"{self.resolve_topic_name('teleop/action_chunk')}; the adapter executes them with source:=teleop")

    def now_s(self) -> float:
        return ns_to_seconds(self.get_clock().now().nanoseconds)

    # --------------------------------------------------------------- inputs
    def _bad_input(self, key: str, text: str) -> None:
        self.chunks.bad_inputs += 1
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
                instruction=self.chunks.instruction, metadata=[KeyValue(key="started_by", value="teleop joy button")])
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
        if self.chunks.due(now):
            self._publish(now)

    def _publish(self, now: float) -> None:
        if self.robot in DELTA_ROBOTS:
            chunk = self.chunks.chunk(now, self.twist_core.action(now))
        else:
            chunk = self.chunks.chunk(now, *self.leader_core.action(now))
        if chunk is not None:
            self.chunk_pub.publish(chunk_to_msg(chunk))

    def _publish_diagnostics(self) -> None:
        publishing, message, values = self.chunks.status()
        self.diagnostics.publish(OK if publishing else WARN, message, {"robot": self.robot, **values})


def main() -> None:
    run_node(TeleopNode, "teleop")


if __name__ == "__main__":
    main()
