"""aloha_sim: gym-aloha's bimanual MuJoCo scene behind the real ALOHA follower interfaces.

Per follower namespace (``arm_namespaces``, default ``follower_left``, ``follower_right``):
  sub ``<ns>/commands/joint_group``  interbotix_xs_msgs/JointGroupCommand (group ``arm``: 6 rad, or ``all``: 7)
  sub ``<ns>/commands/joint_single`` interbotix_xs_msgs/JointSingleCommand (``gripper``: joint angle rad)
  pub ``<ns>/joint_states``          sensor_msgs/JointState (6 joints, gripper rad, left/right_finger m)
Cameras (sensor-data QoS, rgb8): MuJoCo camera ``cameras[i]`` on ``camera_topics[i]``
(default ``top`` → ``cam_high/image_raw``). ``~/reset`` (std_srvs/Trigger) puts both arms back
at the start pose. Tasks (``episode_task``, ``~/reset_episode``, ``~/task_status``;
octo_ros.robots.bimanual.sim.TASKS): ``lift_cube`` puts the arms at the start pose and the cube at
its seeded pose, judged by gym-aloha's reward. ``/clock`` when ``sim_time`` is true. ``/diagnostics`` at 1 Hz.
"""
from __future__ import annotations

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from octo_ros.robots.bimanual.sim import ARMS, TASKS, AlohaRenderer, AlohaSim, AlohaSimConfig
from octo_ros.ros.messages import image_to_msg, joint_state_to_msg
from octo_ros.ros.nodes._sim_support import SimNodeBase
from octo_ros.ros.support import declare_config, run_node
from octo_ros.timebase import stamp_to_ns

# Real ALOHA camera names for gym-aloha's cameras (Octo's ALOHA example feeds ``top`` as primary).
REAL_CAMERA_NAMES = {"top": "cam_high", "angle": "cam_low", "left_wrist": "cam_left_wrist",
                     "right_wrist": "cam_right_wrist"}


class AlohaSimNode(SimNodeBase):
    def __init__(self):
        super().__init__("aloha_sim")
        p = self.declare_parameter
        self.namespaces = list(p("arm_namespaces", ["follower_left", "follower_right"]).value)
        if len(self.namespaces) != 2:
            raise ValueError("arm_namespaces needs two entries: left, right")
        cfg = declare_config(self, AlohaSimConfig(), ("task", "control_rate_hz", "max_joint_speed", "gripper_joint_open",
                                                      "gripper_joint_close", "gripper_position_open",
                                                      "gripper_position_close"))
        self.cameras = list(p("cameras", ["top"]).value)
        topics = list(p("camera_topics", [""]).value)
        topics = [t for t in topics if t]
        if not topics:
            topics = [f"{REAL_CAMERA_NAMES.get(c, c)}/image_raw" for c in self.cameras]
        if len(topics) != len(self.cameras):
            raise ValueError("camera_topics must be empty or match cameras one to one")
        self.width = int(p("image_width", 320).value)
        self.height = int(p("image_height", 240).value)
        self.render_quality = p("render_quality", "fast").value
        self.frame_prefix = p("frame_id_prefix", "").value
        self.sim = AlohaSim(cfg)
        missing = [c for c in self.cameras if c not in {self.sim.model.camera(i).name for i in range(self.sim.model.ncam)}]
        if missing:
            raise ValueError(f"unknown cameras {missing}")
        self.sim_offset = 0.0  # sim seconds before the last reset (stamps stay monotonic)
        self.start = self.steady_now()

        self.js_pubs = {}
        for arm, ns in zip(ARMS, self.namespaces):
            # relative, like the real followers' xs_sdk drivers (in the graph's namespace)
            self.js_pubs[arm] = self.create_publisher(JointState, f"{ns}/joint_states", 10)
            self.create_subscription(JointGroupCommand, f"{ns}/commands/joint_group",
                                     lambda m, a=arm: self._on_group(a, m), 10)
            self.create_subscription(JointSingleCommand, f"{ns}/commands/joint_single",
                                     lambda m, a=arm: self._on_single(a, m), 10)
        self.img_pubs = [self.image_publisher(t) for t in topics]
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.declare_episodes(TASKS, self._lay_out_episode, lambda: self.sim.task_status(self.now_sim()))
        self.create_steady_timer(cfg.control_rate_hz, self._tick)
        self.create_steady_timer(1.0, self.publish_sim_diagnostics)
        self.start_render_thread(self._render_once, self._render_setup, self._render_teardown)
        self.get_logger().info(
            f"ALOHA sim ({cfg.task}) at {cfg.control_rate_hz:g} Hz, cameras {dict(zip(self.cameras, topics))} "
            f"{self.width}x{self.height} at {self.render_rate:g} Hz, {'sim' if self.sim_time else 'wall'} time")

    def now_sim(self) -> float:
        return self.sim_offset + self.sim.time

    # commands ---------------------------------------------------------------------------------
    def _on_group(self, arm: str, msg: JointGroupCommand) -> None:
        with self.lock:
            n = len(self.sim.violations)
            self.sim.command_joint_group(arm, msg.name, list(msg.cmd))
            self._log_violations(n)

    def _on_single(self, arm: str, msg: JointSingleCommand) -> None:
        with self.lock:
            n = len(self.sim.violations)
            self.sim.command_joint_single(arm, msg.name, msg.cmd)
            self._log_violations(n)

    def _log_violations(self, n: int) -> None:
        for v in self.sim.violations[n:]:
            self.get_logger().warn(f"command rejected or clipped: {v}", throttle_duration_sec=1.0)

    def _restart(self, reset) -> None:
        """``reset()`` the sim (its time restarts at 0) with stamps staying monotonic (under the lock)."""
        self.sim_offset += self.sim.time
        reset()
        # restart the real-time reference so the sim does not jump ahead after a reset
        self.start = self.steady_now() - self.sim_offset

    def _on_reset(self, request, response):
        with self.lock:
            self._restart(self.sim.reset)
        response.success, response.message = True, "both arms at the start pose"
        return response

    def _lay_out_episode(self, task: str, seed: int) -> str:
        self._restart(lambda: self.sim.set_task(task, seed))
        return TASKS[task].instruction

    # loop -----------------------------------------------------------------------------------
    def _tick(self) -> None:
        with self.lock:
            self.sim.advance_to(self.steady_now() - self.start - self.sim_offset)
            t = self.now_sim()
            samples = {arm: self.sim.joint_states(arm) for arm in ARMS}
        stamp = self.stamp(t)
        self.publish_clock(t)
        for arm in ARMS:
            self.js_pubs[arm].publish(joint_state_to_msg(samples[arm], stamp))

    def _render_setup(self):
        return AlohaRenderer(self.sim.model, self.width, self.height, quality=self.render_quality)

    def _render_teardown(self, renderer) -> None:
        if renderer is not None:
            renderer.close()

    def _render_once(self, renderer) -> None:
        with self.lock:
            qpos, t = self.sim.snapshot(), self.now_sim()
        stamp = self.stamp(t)
        for cam, pub in zip(self.cameras, self.img_pubs):
            pub.publish(image_to_msg(renderer.render(qpos, cam), stamp_to_ns(stamp), f"{self.frame_prefix}{cam}"))
        self.frames_published += 1

    def sim_values(self) -> dict:
        return {"sim_time": f"{self.now_sim():.3f}", "violations": len(self.sim.violations)}


def main() -> None:
    run_node(AlohaSimNode, "aloha_sim")


if __name__ == "__main__":
    main()
