"""ur5_adapter: Octo/berkeley_autolab_ur5 7-D delta action chunks → a UR5 through ur_rtde servoL.

The RTDE connection lives in this process (``backend``: ``rtde`` = ur_rtde to ``robot_ip``, the real
robot; ``fake`` = ``octo_ros.robots.ur5.controller_standin.FakeURController`` in-process, for simulation and tests).
Each control period (``control_frequency``, 125 Hz for a CB-series UR5): read the TCP pose, step the
core (``octo_ros.robots.ur5.adapter.URRTDEBackend``), stream servoL only when armed, and publish
  ``tcp_pose``       geometry_msgs/PoseStamped, the measured TCP in the base frame (``base_frame``)
  ``joint_states``   sensor_msgs/JointState: the six UR joints when the receive interface reports them,
                     plus ``gripper`` = the Robotiq POS last sent (0 = open … 255 = closed)
(what ``ur5_sim`` draws). ``~/command_preview`` is a geometry_msgs/PoseStamped of the servoL target.
The Robotiq 2F gripper (URCap socket ``robotiq_host``:``robotiq_port``; empty host = no gripper) is
driven from a worker thread, never from the servo loop. Leaving dry-run (``~/set_dry_run`` false)
runs the pre-flight checks (robot mode, safety mode, program running) and arms the RTDE watchdog.
On shutdown: servoStop + stopScript. Shared interface: see ``_adapter_base``.
"""
from __future__ import annotations

import rclpy
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState

from octo_ros.control.safety import ControlOutput
from octo_ros.robots.ur5.adapter import PREVIEW_WORKSPACE, URConfig, URRTDEBackend, rtde_connection
from octo_ros.robots.ur5.controller_standin import STANDIN_INITIAL_POSE
from octo_ros.robots.ur5.kinematics import UR_JOINTS
from octo_ros.robots.ur5.robotiq import ROBOTIQ_PORT, RobotiqSocketGripper, RobotiqWorker
from octo_ros.ros.messages import ns_to_stamp, pose_to_msg
from octo_ros.ros.nodes._adapter_base import AdapterNodeBase
from octo_ros.ros.support import declare_config, execution_config, parameter, run_node, safety_config
from octo_ros.timebase import seconds_to_ns


class UR5AdapterNode(AdapterNodeBase):
    PREVIEW_TYPE = PoseStamped
    LIMIT_PARAMETERS = ("workspace_low", "workspace_high", "max_step_translation", "max_step_rotation",
                        "max_linear_speed", "max_angular_speed")

    def __init__(self, **kwargs):
        super().__init__("ur5_adapter", **kwargs)
        backend = parameter(self, "backend", "rtde")
        robot_ip = parameter(self, "robot_ip", "")
        defaults = URConfig(*PREVIEW_WORKSPACE)
        config = declare_config(
            self, defaults, ("workspace_low", "workspace_high", "control_frequency_hz", "max_step_translation_m",
                             "max_step_rotation_rad", "max_linear_speed_m_s", "max_angular_speed_rad_s",
                             "servo_lookahead_s", "servo_gain", "rtde_watchdog_min_hz"),
            names={"rtde_watchdog_min_hz": "rtde_watchdog_min_frequency"},
            execution=execution_config(self, defaults.execution), safety=safety_config(self, defaults.safety))
        self.base_frame = parameter(self, "base_frame", "base")
        robotiq_host = parameter(self, "robotiq_host", "")
        robotiq_port = parameter(self, "robotiq_port", ROBOTIQ_PORT)
        robot_ip, connect = rtde_connection(
            backend, robot_ip, parameter(self, "fake_initial_pose", list(STANDIN_INITIAL_POSE)))
        self.backend_name = backend
        self.robot = self.backend = URRTDEBackend(config, robot_ip, connect=connect)  # pre-flight checks, watchdog
        self.adapter = self.backend.adapter
        self.step_period_s = config.execution.step_period_s
        self.get_logger().info(f"UR backend {backend} ({robot_ip}); servoL at {config.control_frequency_hz:g} Hz")
        self.gripper_worker = None
        if robotiq_host:
            self.gripper_worker = RobotiqWorker(RobotiqSocketGripper(robotiq_host, robotiq_port), self.get_logger())
        self.gripper_sent = float(config.gripper.robot_open)  # what the gripper was last told (POS)
        self.tcp_pub = self.create_publisher(PoseStamped, "tcp_pose", 10)
        self.js_pub = self.create_publisher(JointState, "joint_states", 10)
        self.servo_calls = 0
        self.start(config.control_period_s)

    # ----------------------------------------------------------------- control
    def control_cycle(self, now: float) -> ControlOutput:
        cycle = self.backend.cycle(now)
        out = cycle.output
        if cycle.servo_sent:
            self.servo_calls += 1
        if out.send_gripper and out.gripper is not None:
            self.gripper_sent = float(out.gripper)
            if self.gripper_worker is not None:
                self.gripper_worker.request(out.gripper)
        self._publish_robot_state(now)
        return out

    def _publish_robot_state(self, now: float) -> None:
        measured = self.backend.measured()
        if measured is None:
            return
        pose, q = measured
        stamp_ns = seconds_to_ns(now)
        if pose is not None:
            self.tcp_pub.publish(pose_to_msg(pose, stamp_ns, self.base_frame))
        js = JointState()
        js.header.stamp = ns_to_stamp(stamp_ns)
        if q is not None:
            js.name, js.position = list(UR_JOINTS), q
        js.name.append("gripper")
        js.position.append(self.gripper_sent)
        self.js_pub.publish(js)

    def publish_preview(self, out: ControlOutput, now: float) -> None:
        self.preview_pub.publish(pose_to_msg(out.target, seconds_to_ns(now), self.base_frame))

    # ----------------------------------------------------------------- operator
    def stop_motion(self) -> None:
        # the arm: servoStop now (the controller's fastest stop), not at the next control cycle;
        # a gripper move queued before the e-stop must not run after it
        self.backend.stop_now()
        if self.gripper_worker is not None:
            self.gripper_worker.cancel()

    def extra_diagnostics(self) -> dict:
        values = {"backend": self.backend_name, "servo_calls": self.servo_calls, "gripper_pos": self.gripper_sent}
        if self.gripper_worker is not None and self.gripper_worker.error:
            values["gripper_error"] = self.gripper_worker.error
        return values

    def close(self) -> None:
        try:
            super().close()
            self.backend.shutdown()  # servoStop + stopScript
            # not the node's logger: its /rosout publisher is gone once the context is shut down
            rclpy.logging.get_logger("octo_ros.ur5_adapter").info("shut down: servo stopped, RTDE control script stopped")
        finally:
            if self.gripper_worker is not None:
                self.gripper_worker.close()


def main() -> None:
    run_node(UR5AdapterNode, "ur5_adapter", realtime=True)


if __name__ == "__main__":
    main()
