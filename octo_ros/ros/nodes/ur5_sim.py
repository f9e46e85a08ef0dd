"""ur5_sim: the UR5's camera. The arm itself is simulated inside the ur5 adapter's process
(``octo_ros.robots.ur5.controller_standin.FakeURController`` stands in for ur_rtde there); this node draws it
from what the adapter publishes about it, over a table-top scene.

  sub ``tcp_pose_topic``     geometry_msgs/PoseStamped, the TCP in the robot base frame → IK → drawn arm
                             (the newest pose only, solved when a frame or a task status needs it)
  sub ``joint_states_topic`` sensor_msgs/JointState: the six UR joints (``shoulder_pan_joint`` …), used
                             directly when present; entry ``gripper_joint`` sets the gripper opening,
                             (value − gripper_open_value) / (gripper_closed_value − gripper_open_value)
                             = fraction closed (defaults: Robotiq POS, 0 = open … 255 = closed)
  pub ``camera_topic``       sensor_msgs/Image rgb8, sensor-data QoS, at ``render_rate``
Tasks (``episode_task``, ``~/reset_episode``, ``~/task_status``; octo_ros.robots.ur5.sim.TASKS):
``reach_block`` lays out its blocks and judges the drawn arm's fingertips against them.
Stamps: the newest input's stamp when ``stamp_from_input`` (the default: the image shows the
state at that time), else the node clock.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from transforms3d.quaternions import quat2mat

from octo_ros.control.kinematics import rotation_log
from octo_ros.robots.ur5.kinematics import UR_JOINTS
from octo_ros.robots.ur5.sim import TASKS, UR5Scene, UR5SceneConfig, ur5_capsules
from octo_ros.ros.messages import image_to_msg
from octo_ros.ros.nodes._sim_support import SimNodeBase
from octo_ros.ros.support import run_node
from octo_ros.sim.render import render_scene
from octo_ros.timebase import ns_to_seconds, stamp_to_ns


class UR5SimNode(SimNodeBase):
    def __init__(self):
        super().__init__("ur5_sim")
        p = self.declare_parameter
        cfg = UR5SceneConfig(image_width=int(p("image_width", 320).value), image_height=int(p("image_height", 240).value),
                             tcp_offset=float(p("tcp_offset", 0.0).value))
        self.scene = UR5Scene(cfg)
        self.gripper_joint = p("gripper_joint", "gripper").value
        self.g_open = float(p("gripper_open_value", 0.0).value)
        self.g_closed = float(p("gripper_closed_value", 255.0).value)
        self.stamp_from_input = bool(p("stamp_from_input", True).value)
        self.frame_id = p("camera_frame_id", "camera_color_optical_frame").value
        self.last_input_stamp = None
        self.pending_pose = None  # the newest TCP pose, solved when it is shown or judged
        self.ik_failures_logged = 0
        self.create_subscription(PoseStamped, p("tcp_pose_topic", "tcp_pose").value, self._on_pose, 10)
        self.create_subscription(JointState, p("joint_states_topic", "joint_states").value, self._on_joints, 10)
        self.img_pub = self.image_publisher(p("camera_topic", "camera/image_raw").value)
        self.declare_episodes(TASKS, lambda task, seed: self.scene.set_task(task, seed).instruction,
                              lambda: self._solve_pending().task_status(ns_to_seconds(self.get_clock().now().nanoseconds)))
        self.create_steady_timer(1.0, self.publish_sim_diagnostics)
        self.start_render_thread(self._render_once)
        self.get_logger().info(f"UR5 camera sim at {self.render_rate:g} Hz")

    def _on_pose(self, msg: PoseStamped) -> None:
        o, q = msg.pose.position, msg.pose.orientation
        try:
            rotvec = rotation_log(quat2mat([q.w, q.x, q.y, q.z]))
        except ValueError:
            return
        with self.lock:
            # poses come at the controller rate (125 Hz and more): IK only for the newest one, when needed
            self.pending_pose = [o.x, o.y, o.z, *rotvec]
            self.last_input_stamp = msg.header.stamp

    def _solve_pending(self) -> UR5Scene:
        """The scene at the newest TCP pose (call under the lock)."""
        pose, self.pending_pose = self.pending_pose, None
        if pose is not None and not self.scene.set_tcp_pose(pose):
            self.get_logger().warn(f"no IK solution for TCP pose {pose[0]:.3f} {pose[1]:.3f} {pose[2]:.3f}",
                                   throttle_duration_sec=2.0)
        return self.scene

    def _on_joints(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        with self.lock:
            if all(j in index for j in UR_JOINTS) and len(msg.position) == len(msg.name):
                try:
                    self.scene.set_joint_positions([msg.position[index[j]] for j in UR_JOINTS])
                except ValueError:
                    return
                self.pending_pose = None  # measured joints beat a solved pose
                self.last_input_stamp = msg.header.stamp
            if self.gripper_joint in index and index[self.gripper_joint] < len(msg.position):
                v = msg.position[index[self.gripper_joint]]
                self.scene.set_gripper((v - self.g_open) / (self.g_closed - self.g_open))
                self.last_input_stamp = msg.header.stamp

    def _render_once(self, _ctx) -> None:
        with self.lock:
            q, g, stamp = self._solve_pending().q.copy(), self.scene.gripper_closed, self.last_input_stamp
        img = render_scene(self.scene.camera(), self.scene.scene, ur5_capsules(q, g))
        if stamp is None or not self.stamp_from_input:
            stamp = self.get_clock().now().to_msg()
        self.img_pub.publish(image_to_msg(img, stamp_to_ns(stamp), self.frame_id))
        self.frames_published += 1

    def sim_values(self) -> dict:
        return {"q": np.round(self.scene.q, 3).tolist(), "ik_failures": self.scene.ik_failures}


def main() -> None:
    run_node(UR5SimNode, "ur5_sim")


if __name__ == "__main__":
    main()
