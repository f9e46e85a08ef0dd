"""bimanual_adapter: 14-D ALOHA joint action chunks → two Interbotix followers through xs_sdk topics.

Per follower namespace (``left_namespace`` / ``right_namespace``, default ``follower_left`` /
``follower_right``):
  sub ``/<ns>/joint_states``            sensor_msgs/JointState (six arm joints and ``gripper``, rad)
  pub ``/<ns>/commands/joint_group``    interbotix_xs_msgs/JointGroupCommand ``arm``: 6 rad, only when armed
  pub ``/<ns>/commands/joint_single``   interbotix_xs_msgs/JointSingleCommand ``gripper``: joint angle rad,
                                        only when armed
Commands stream at ``control_period`` (50 Hz). Action layout: [left 6 joints, left gripper (1 = open),
right 6 joints, right gripper]; the gripper is unnormalized with each arm's ``<side>_gripper_open`` /
``<side>_gripper_close`` joint angles (ALOHA 2 follower constants by default).
Plus the shared adapter interface (see ``_adapter_base``): ``action_chunk`` in, ``~/command_preview``
(sensor_msgs/JointState, ``left_waist`` … ``right_gripper``, rad), ``~/status``, ``~/set_dry_run``,
``~/estop``, ``~/reset_estop``, ``/diagnostics``. Core: ``octo_ros.robots.bimanual.adapter.BimanualAdapter``.
"""
from __future__ import annotations

from dataclasses import replace

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from sensor_msgs.msg import JointState

from octo_ros.control.operation import joint_index
from octo_ros.control.safety import ControlOutput
from octo_ros.robots.bimanual.adapter import (
    BimanualAdapter,
    BimanualConfig,
)
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS
from octo_ros.ros.messages import ns_to_stamp
from octo_ros.ros.nodes._adapter_base import AdapterNodeBase
from octo_ros.ros.support import SENSOR_QOS, config_parameters, declare_config, execution_config, run_node, safety_config
from octo_ros.timebase import seconds_to_ns, stamp_seconds

SIDES = ("left", "right")


class BimanualAdapterNode(AdapterNodeBase):
    PREVIEW_TYPE = JointState
    LIMIT_PARAMETERS = ("left_gripper_open", "left_gripper_close", "right_gripper_open", "right_gripper_close",
                        "gripper_velocity_limit")

    def __init__(self, **kwargs):
        super().__init__("bimanual_adapter", **kwargs)
        defaults = BimanualConfig()
        both_arms = config_parameters(self, defaults.left, ("arm", "gripper_velocity_limit"), names={"arm": "robot_model"})
        sides = {}
        for side in SIDES:
            arm = getattr(defaults, side)
            values = config_parameters(self, arm, ("namespace", "gripper_open_rad", "gripper_close_rad"), prefix=f"{side}_")
            sides[side] = replace(arm, **values | {"namespace": values["namespace"].strip("/")}, **both_arms)
        config = declare_config(self, defaults, ("control_period_s",), left=sides["left"], right=sides["right"],
                                execution=execution_config(self, defaults.execution),
                                safety=safety_config(self, defaults.safety))
        self.adapter = BimanualAdapter(config)
        self.step_period_s = config.execution.step_period_s
        self.namespaces = {side: sides[side].namespace for side in SIDES}
        self.group_pubs, self.single_pubs = {}, {}
        self.bad_states = 0
        self.measured: dict[str, tuple[list[float], float]] = {}  # side -> (arm joints, gripper)
        for side, ns in self.namespaces.items():
            self.group_pubs[side] = self.create_publisher(JointGroupCommand, f"{ns}/commands/joint_group", 10)
            self.single_pubs[side] = self.create_publisher(JointSingleCommand, f"{ns}/commands/joint_single", 10)
            self.create_subscription(JointState, f"{ns}/joint_states",
                                     lambda msg, side=side: self._on_joint_states(side, msg), SENSOR_QOS)
        self.preview_names = [f"{side}_{j}" for side in SIDES for j in (*ARM_JOINTS, "gripper")]
        self.start(config.control_period_s)

    def _on_joint_states(self, side: str, msg: JointState) -> None:
        topic = self.resolve_topic_name(f"{self.namespaces[side]}/joint_states")
        try:
            index = joint_index(msg.name)
        except ValueError as err:
            self.bad_states += 1
            self.warnings.warn(f"state:{side}:duplicates", f"{topic} ignored: {err}")
            return
        try:
            q = [msg.position[index[j]] for j in ARM_JOINTS]
            gripper = msg.position[index["gripper"]]
        except (KeyError, IndexError):
            self.bad_states += 1
            self.warnings.warn(f"state:{side}:joints", f"{topic} lacks the arm joints or 'gripper'")
            return
        self.measured[side] = ([float(v) for v in q], float(gripper))
        now = self.now_s()
        if not self.adapter.update_joint_state(side, q, gripper, stamp_seconds(msg.header.stamp, now), now=now):
            self.bad_states += 1
            self.warnings.warn(f"state:{side}:invalid", f"{topic} ignored: {self.adapter.last_state_error}")

    def control_cycle(self, now: float) -> ControlOutput:
        out = self.adapter.step(now)
        if out.send:
            for side, command in zip(SIDES, self.adapter.arm_commands(out)):
                self.group_pubs[side].publish(JointGroupCommand(name="arm", cmd=[float(v) for v in command.arm]))
                self.single_pubs[side].publish(JointSingleCommand(name="gripper", cmd=float(command.gripper)))
        return out

    def stop_motion(self) -> None:
        for side, (arm, gripper) in self.measured.items():  # each arm's measured state as its goal
            self.group_pubs[side].publish(JointGroupCommand(name="arm", cmd=arm))
            self.single_pubs[side].publish(JointSingleCommand(name="gripper", cmd=gripper))

    def publish_preview(self, out: ControlOutput, now: float) -> None:
        msg = JointState(name=self.preview_names, position=[float(v) for v in out.target])
        msg.header.stamp = ns_to_stamp(seconds_to_ns(now))
        self.preview_pub.publish(msg)

    def extra_diagnostics(self) -> dict:
        return {"namespaces": f"{self.namespaces['left']}, {self.namespaces['right']}", "bad_joint_states": self.bad_states}


def main() -> None:
    run_node(BimanualAdapterNode, "bimanual_adapter", realtime=True)


if __name__ == "__main__":
    main()
