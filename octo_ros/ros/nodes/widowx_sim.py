"""widowx_sim: a simulated WidowX 250 6DOF behind the Interbotix xs_sdk topics, with a camera.

Under ``<robot_name>/`` (default ``wx250s``), in the node's namespace as the real xs_sdk:
  sub ``commands/joint_group``  interbotix_xs_msgs/JointGroupCommand (group ``arm``: 6 rad)
  sub ``commands/joint_single`` interbotix_xs_msgs/JointSingleCommand (``gripper``: effort in pwm mode)
  pub ``joint_states``          sensor_msgs/JointState at ``update_rate`` (7 joints + fingers)
Camera: ``camera_topic`` (default ``camera/image_raw``), rgb8, sensor-data QoS, rendered at
``render_rate``. ``<robot_name>/reset`` (std_srvs/Trigger) returns to the initial pose.
Tasks (``episode_task``, ``~/reset_episode``, ``~/task_status``; octo_ros.robots.widowx.sim.TASKS):
``reach_block`` lays out its blocks (the arm stays where it is; an operator drives it to the start).
Joint dynamics are ``octo_ros.robots.interbotix.driver_standin`` (modes, profiles, limits).
"""
from __future__ import annotations

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from octo_ros.robots.interbotix.driver_standin import InterbotixSimConfig
from octo_ros.robots.widowx.sim import TASKS, WidowXSim, WidowXSimConfig
from octo_ros.ros.messages import image_to_msg, joint_state_to_msg
from octo_ros.ros.nodes._sim_support import SimNodeBase
from octo_ros.ros.support import run_node
from octo_ros.timebase import stamp_to_ns


class WidowXSimNode(SimNodeBase):
    def __init__(self):
        super().__init__("widowx_sim")
        p = self.declare_parameter
        self.robot_name = p("robot_name", "wx250s").value.strip("/")
        model = p("robot_model", "wx250s").value
        rate = float(p("update_rate", 100.0).value)
        initial = [float(v) for v in p("initial_pose", [0.0]).value]
        if len(initial) not in (1, 6):
            raise ValueError("initial_pose needs 6 joint angles (or [0.0]-style placeholder for the sleep pose)")
        drv = InterbotixSimConfig(
            arm=model, update_rate_hz=rate,
            arm_mode=p("arm_mode", "position").value,
            arm_profile_type=p("arm_profile_type", "velocity").value,
            arm_profile_velocity=float(p("arm_profile_velocity", 0.0).value),
            gripper_mode=p("gripper_mode", "pwm").value,
        )
        cfg = WidowXSimConfig(
            arm=model, update_rate_hz=rate, driver=drv,
            initial_q=tuple(initial) if len(initial) == 6 else None,
            image_width=int(p("image_width", 320).value), image_height=int(p("image_height", 240).value),
        )
        self.camera_topic = p("camera_topic", "camera/image_raw").value
        self.frame_id = p("camera_frame_id", "camera_color_optical_frame").value
        self.start = self.steady_now()
        self.sim = WidowXSim(cfg, start=0.0)
        ns = self.robot_name
        # relative, like the real xs_sdk driver (namespace <robot_name> under the including launch's)
        self.js_pub = self.create_publisher(JointState, f"{ns}/joint_states", 10)
        self.create_subscription(JointGroupCommand, f"{ns}/commands/joint_group", self._on_group, 10)
        self.create_subscription(JointSingleCommand, f"{ns}/commands/joint_single", self._on_single, 10)
        self.create_service(Trigger, f"{ns}/reset", self._on_reset)
        self.declare_episodes(TASKS, lambda task, seed: self.sim.set_task(task, seed).instruction, self.sim.task_status)
        self.img_pub = self.image_publisher(self.camera_topic)
        self.create_steady_timer(rate, self._tick)
        self.create_steady_timer(1.0, self.publish_sim_diagnostics)
        self.start_render_thread(self._render_once)
        self.get_logger().info(
            f"WidowX sim /{ns} ({model}) at {rate:g} Hz, camera {self.camera_topic} "
            f"{cfg.image_width}x{cfg.image_height} at {self.render_rate:g} Hz, {'sim' if self.sim_time else 'wall'} time")

    def _on_group(self, msg: JointGroupCommand) -> None:
        with self.lock:
            n = len(self.sim.driver.violations)
            self.sim.command_joint_group(msg.name, list(msg.cmd))
            self._log(n)

    def _on_single(self, msg: JointSingleCommand) -> None:
        with self.lock:
            n = len(self.sim.driver.violations)
            self.sim.command_joint_single(msg.name, msg.cmd)
            self._log(n)

    def _log(self, n: int) -> None:
        for v in self.sim.driver.violations[n:]:
            self.get_logger().warn(f"command rejected or clipped: {v}", throttle_duration_sec=1.0)

    def _on_reset(self, request, response):
        with self.lock:
            self.sim.reset()
        response.success, response.message = True, "at the initial pose"
        return response

    def _tick(self) -> None:
        with self.lock:
            self.sim.update(self.steady_now() - self.start)
            sample = self.sim.joint_states()
        self.publish_clock(sample.stamp)
        self.js_pub.publish(joint_state_to_msg(sample, self.stamp(sample.stamp)))

    def _render_once(self, _ctx) -> None:
        with self.lock:
            q, finger, t = self.sim.arm_positions(), self.sim.finger_position(), self.sim.time
        img = self.sim.render(q, finger)  # pure function of (q, finger): safe outside the lock
        self.img_pub.publish(image_to_msg(img, stamp_to_ns(self.stamp(t)), self.frame_id))
        self.frames_published += 1

    def sim_values(self) -> dict:
        return {"sim_time": f"{self.sim.time:.3f}", "violations": len(self.sim.driver.violations)}


def main() -> None:
    run_node(WidowXSimNode, "widowx_sim")


if __name__ == "__main__":
    main()
