"""widowx_adapter: Octo/Bridge 7-D delta action chunks → a WidowX through the Interbotix xs_sdk topics.

Under ``<robot_name>/`` (default ``wx250s``), relative to the node's namespace as xs_sdk's names are:
  sub ``joint_states``             sensor_msgs/JointState (the six arm joints by name)
  pub ``commands/joint_group``     interbotix_xs_msgs/JointGroupCommand ``arm``: 6 rad, only when armed
  pub ``commands/joint_single``    interbotix_xs_msgs/JointSingleCommand ``gripper``: PWM, only when armed
Plus the shared adapter interface (see ``_adapter_base``): ``action_chunk`` in, ``~/command_preview``
(sensor_msgs/JointState: the six arm joints in rad, then ``gripper`` = the PWM command),
``~/status``, ``~/set_dry_run``, ``~/estop``, ``~/reset_estop``, ``/diagnostics``.
Mapping, safety limits and chunk execution are ``octo_ros.robots.widowx.adapter.WidowXAdapter``.
The arm must be inside the workspace box (e.g. at Bridge's start pose) before it moves.
"""
from __future__ import annotations

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from sensor_msgs.msg import JointState

from octo_ros.control.operation import joint_index
from octo_ros.control.safety import ControlOutput
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS
from octo_ros.robots.widowx.adapter import WidowXAdapter, WidowXConfig, interbotix_pwm
from octo_ros.ros.messages import ns_to_stamp
from octo_ros.ros.nodes._adapter_base import AdapterNodeBase
from octo_ros.ros.support import SENSOR_QOS, declare_config, execution_config, parameter, run_node, safety_config
from octo_ros.timebase import seconds_to_ns, stamp_seconds


class WidowXAdapterNode(AdapterNodeBase):
    PREVIEW_TYPE = JointState
    LIMIT_PARAMETERS = ("workspace_low", "workspace_high", "max_step_translation", "max_step_rotation", "gripper_pwm")

    def __init__(self, **kwargs):
        super().__init__("widowx_adapter", **kwargs)
        # left_finger (m) above this: the gripper is open (wx250s fingers: 0.015 closed – 0.037 m open)
        self.finger_open_above = float(parameter(self, "finger_open_above", 0.026))
        defaults = WidowXConfig()
        config = declare_config(
            self, defaults, ("arm", "robot_name", "control_period_s", "workspace_low", "workspace_high",
                             "max_step_translation_m", "max_step_rotation_rad"), names={"arm": "robot_model"},
            execution=execution_config(self, defaults.execution), safety=safety_config(self, defaults.safety),
            gripper=interbotix_pwm(parameter(self, "gripper_pwm", defaults.gripper.robot_open)))
        self.adapter = WidowXAdapter(config)
        self.step_period_s = config.execution.step_period_s
        self.robot_name = config.robot_name.strip("/")
        ns = self.robot_name
        self.joint_states_topic = self.resolve_topic_name(f"{ns}/joint_states")
        self.group_pub = self.create_publisher(JointGroupCommand, f"{ns}/commands/joint_group", 10)
        self.single_pub = self.create_publisher(JointSingleCommand, f"{ns}/commands/joint_single", 10)
        self.create_subscription(JointState, f"{ns}/joint_states", self._on_joint_states, SENSOR_QOS)
        self.bad_states = 0
        self.measured_q: list[float] | None = None
        self.start(config.control_period_s)

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            index = joint_index(msg.name)
        except ValueError as err:
            self.bad_states += 1
            self.warnings.warn("state:duplicates", f"{self.joint_states_topic} ignored: {err}")
            return
        try:
            q = [msg.position[index[j]] for j in ARM_JOINTS]
        except (KeyError, IndexError):
            self.bad_states += 1
            self.warnings.warn("state:joints", f"{self.joint_states_topic} lacks the arm joints {ARM_JOINTS}")
            return
        self.measured_q = [float(v) for v in q]
        finger = index.get("left_finger")
        gripper_open = None if finger is None else bool(msg.position[finger] > self.finger_open_above)
        now = self.now_s()
        if not self.adapter.update_joint_state(q, stamp_seconds(msg.header.stamp, now), gripper_open=gripper_open, now=now):
            self.bad_states += 1
            self.warnings.warn("state:invalid",
                               f"{self.joint_states_topic} ignored: {self.adapter.last_state_error}")

    def control_cycle(self, now: float) -> ControlOutput:
        out = self.adapter.step(now)
        if out.send:
            self.group_pub.publish(JointGroupCommand(name="arm", cmd=[float(v) for v in out.target]))
        if out.send_gripper and out.gripper is not None:
            self.single_pub.publish(JointSingleCommand(name="gripper", cmd=float(out.gripper)))
        return out

    def stop_motion(self) -> None:
        if self.measured_q is not None:  # the measured joints as the goal: the driver stops there
            self.group_pub.publish(JointGroupCommand(name="arm", cmd=self.measured_q))
        self.single_pub.publish(JointSingleCommand(name="gripper", cmd=0.0))  # PWM 0: the gripper stops

    def publish_preview(self, out: ControlOutput, now: float) -> None:
        msg = JointState(name=[*ARM_JOINTS, "gripper"])
        msg.header.stamp = ns_to_stamp(seconds_to_ns(now))
        msg.position = [float(v) for v in out.target] + [float(out.gripper if out.gripper is not None else 0.0)]
        self.preview_pub.publish(msg)

    def extra_diagnostics(self) -> dict:
        return {"robot_name": self.robot_name, "bad_joint_states": self.bad_states}


def main() -> None:
    run_node(WidowXAdapterNode, "widowx_adapter", realtime=True)


if __name__ == "__main__":
    main()
