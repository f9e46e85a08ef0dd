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

from octo_ros.control import teleop
from octo_ros.robots.bimanual import teleop as bimanual
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
        self.buttons = teleop.ButtonPresses()
        if self.robot in DELTA_ROBOTS:
            self.mapping = teleop.TwistTeleop(declare_config(self, teleop.TwistTeleopConfig(), (
                "step_period_s", "linear_scale", "angular_scale", "deadband", "twist_timeout_s", "gripper_open_button",
                "gripper_close_button")))
            self.create_subscription(Twist, p("twist_topic", "spacenav/twist").value, self._on_twist, SENSOR_QOS)
            self.create_subscription(Float64, p("gripper_topic", "teleop/gripper").value, self._on_gripper, 10)
        else:
            self.mapping = bimanual.LeaderTeleop(declare_config(self, bimanual.LeaderTeleopConfig(), (
                "step_period_s", "left_gripper_open_rad", "left_gripper_close_rad", "right_gripper_open_rad",
                "right_gripper_close_rad", "leader_timeout_s")))
            topics = list(p("leader_topics", ["leader_left/joint_states", "leader_right/joint_states"]).value)
            if len(topics) != 2:
                raise ValueError(f"leader_topics needs the left and the right leader's topic, got {topics}")
            for side, topic in zip(bimanual.SIDES, topics):
                self.create_subscription(JointState, topic, lambda msg, side=side: self._on_leader(side, msg), SENSOR_QOS)
        names = self.mapping.ACTION_NAMES
        self.chunks = teleop.TeleopChunks(self.robot, self.mapping.config.step_period_s,
                                          p("action_dimension_names", list(names)).value, len(names))
        buttons = teleop.EpisodeButtons.PARAMETERS
        self.episode_buttons = declare_config(self, teleop.EpisodeButtons(), buttons, names=buttons)
        self.chunks.instruction = p("instruction", "").value
        recorder = p("recorder", "recorder").value.rstrip("/")
        self.recorder_clients = {service: self.create_client(srv_type, f"{recorder}/{service}")
                                 for service, srv_type in (("start_episode", StartEpisode), ("stop_episode", StopEpisode))}
        self.create_subscription(Joy, p("joy_topic", "spacenav/joy").value, self._on_joy, 10)
        self.chunk_pub = self.create_publisher(ActionChunkMsg, "teleop/action_chunk", 10)
        self.create_timer(self.chunks.publish_period_s, self._on_tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"teleop for {self.robot}: {len(self.chunks.dimension_names)}-D actions every "
            f"{self.chunks.publish_period_s:g} s (step {self.chunks.step_period_s:g} s) on "
            f"{self.resolve_topic_name('teleop/action_chunk')}; the adapter executes them with source:=teleop")

    def now_s(self) -> float:
        return ns_to_seconds(self.get_clock().now().nanoseconds)

    # --------------------------------------------------------------- inputs
    def _input(self, key: str, what: str, update, *args) -> bool:
        """``update(*args)``; False, counted and warned (throttled per ``key``) when it refuses the input."""
        try:
            update(*args)
        except ValueError as err:
            self.chunks.bad_inputs += 1
            self.warnings.warn(key, f"{what} ignored: {err}")
            return False
        return True

    def _on_twist(self, msg: Twist) -> None:
        lin, ang = msg.linear, msg.angular
        self._input("twist", "twist", self.mapping.on_twist, self.now_s(), (lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z))

    def _on_gripper(self, msg: Float64) -> None:
        self._input("gripper", "gripper command", self.mapping.on_gripper, msg.data)

    def _on_leader(self, side: str, msg: JointState) -> None:
        now = self.now_s()
        stamp = stamp_seconds(msg.header.stamp, now)
        if self._input(f"leader:{side}", "leader joint state", self.mapping.update, side, msg.name, msg.position, stamp):
            self._publish(now)  # at once: the follower is one control period behind its leader, not more

    def _on_joy(self, msg: Joy) -> None:
        pressed = self.buttons.update(msg.buttons)
        self.mapping.on_buttons(pressed)
        for event in self.episode_buttons.events(pressed):
            self._episode(event)

    # --------------------------------------------------------------- episodes
    def _episode(self, event: str) -> None:
        service, fields = teleop.episode_request(event, self.chunks.instruction)
        client = self.recorder_clients[service]
        if not client.service_is_ready():
            self.get_logger().error(f"{event}: {client.srv_name} is not available (is the recorder running?)")
            return
        metadata = [KeyValue(key=key, value=value) for key, value in fields.pop("metadata").items()]
        future = client.call_async(client.srv_type.Request(**fields, metadata=metadata))
        future.add_done_callback(lambda f, event=event: self._episode_done(event, f))

    def _episode_done(self, event: str, future) -> None:
        ok, text = teleop.episode_reply(event, future.result())
        (self.get_logger().info if ok else self.get_logger().error)(text)

    # --------------------------------------------------------------- output
    def _on_tick(self) -> None:
        now = self.now_s()
        if self.chunks.due(now):
            self._publish(now)

    def _publish(self, now: float) -> None:
        chunk = self.chunks.chunk(now, *self.mapping.sample(now))
        if chunk is not None:
            self.chunk_pub.publish(chunk_to_msg(chunk))

    def _publish_diagnostics(self) -> None:
        publishing, message, values = self.chunks.status()
        self.diagnostics.publish(OK if publishing else WARN, message, {"robot": self.robot, **values})


def main() -> None:
    run_node(TeleopNode, "teleop")


if __name__ == "__main__":
    main()
