"""Simulated UR5 camera scene (no rclpy).

A UR arm is driven through ur_rtde, a library living inside the adapter's process, so the arm's
*dynamics* stay with the adapter: ``octo_ros.robots.ur5.controller_standin.FakeURController`` (servoL
tracking, limits, protective stop, watchdog) stands in for the controller there. What this module
adds is the visible robot: a rendered table-top scene showing the arm at a joint configuration, or at a TCP
pose (solved with IK, seeded with the previous solution so the drawn arm moves continuously),
with a Robotiq-style gripper opened by a fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from octo_ros.control.kinematics import forward_kinematics, rotation_exp, solve_ik
from octo_ros.robots.ur5.kinematics import UR5, UR5_READY
from octo_ros.sim.reach import ReachScene, ReachTaskConfig, sample_scene
from octo_ros.sim.render import Box, Capsule, PinholeCamera, TableScene, chain_frames, render_scene
from octo_ros.sim.tasks import TaskStatus

ARM_COLOR = (176, 190, 200)
JOINT_COLOR = (40, 110, 170)
GRIPPER_COLOR = (45, 45, 48)

DEFAULT_OBJECTS = (
    Box((0.45, 0.05, 0.03), (0.03, 0.03, 0.03), (210, 50, 40), yaw=0.4),
    Box((0.55, -0.20, 0.04), (0.025, 0.05, 0.04), (240, 190, 40), yaw=-0.3),
    Box((0.40, -0.05, 0.005), (0.09, 0.07, 0.005), (70, 150, 200)),
)

# The drawn two-finger gripper: its root 0.06 m and its fingertips 0.12 m beyond the flange (flange z).
GRIPPER_ROOT_OFFSET = 0.06
FINGERTIP_OFFSET = 0.12

# Inside ur5_adapter's default workspace box (TCP = flange with the sim's tcp_offset 0, so the
# flange stays 0.12 m above the fingertips) and in view of the scene camera.
TASKS = {
    "reach_block": ReachTaskConfig(block_low=(0.34, -0.20), block_high=(0.54, 0.20),
                                   start_low=(0.36, -0.12, 0.12), start_high=(0.48, 0.12, 0.22),
                                   block_half=0.03, min_separation=0.12, success_xy=0.02, success_height=0.035),
}
DEFAULT_TASK = "reach_block"


def pose_to_matrix(pose) -> np.ndarray:
    """ur_rtde pose [x, y, z, rx, ry, rz] (m, rotation vector) → 4×4."""
    T = np.eye(4)
    T[:3, :3] = rotation_exp(np.asarray(pose[3:6], float))
    T[:3, 3] = np.asarray(pose[:3], float)
    return T


@dataclass
class UR5SceneConfig:
    image_width: int = 640
    image_height: int = 480
    camera_eye: tuple[float, float, float] = (1.35, -0.75, 0.85)
    camera_target: tuple[float, float, float] = (0.3, 0.0, 0.15)
    camera_fovy_deg: float = 50.0
    tcp_offset: float = 0.0  # m along the flange z axis from the flange to the TCP used in poses
    objects: tuple[Box, ...] = field(default_factory=lambda: DEFAULT_OBJECTS)


class UR5Scene:
    """The UR5's visible state (joints + gripper opening) and its camera."""

    def __init__(self, config: UR5SceneConfig | None = None, initial_q=UR5_READY):
        self.config = config or UR5SceneConfig()
        self.task: ReachScene | None = None
        self.set_objects(self.config.objects)
        self.initial_q = tuple(float(v) for v in initial_q)
        self.reset()

    def set_objects(self, objects) -> None:
        self.scene = TableScene(x_range=(-0.35, 1.0), y_range=(-0.7, 0.7), objects=tuple(objects),
                                table_color=(190, 190, 186), grid_color=(170, 170, 166))

    def set_task(self, task: str, seed: int) -> ReachScene:
        """Lay out episode ``seed`` of ``task`` (its blocks replace the scene's objects). The arm
        stays where it is: it belongs to the controller, not to this scene."""
        if task not in TASKS:
            raise ValueError(f"unknown UR5 task {task!r}; known: {sorted(TASKS)}")
        self.task = sample_scene(task, TASKS[task], seed)
        self.set_objects(self.task.blocks)
        return self.task

    def tip_position(self) -> np.ndarray:
        """Between the drawn fingertips, from the forward kinematics of the shown joints."""
        T = forward_kinematics(UR5, self.q)
        return T[:3, 3] + T[:3, 2] * FINGERTIP_OFFSET

    def task_status(self, time: float) -> TaskStatus | None:
        """The task's check on the shown state at ``time`` (None without a task)."""
        return None if self.task is None else self.task.status(self.tip_position(), time)

    def reset(self) -> None:
        self.q = np.array(self.initial_q, float)
        self.gripper_closed = 0.0  # fraction closed, 0 = open (Robotiq POS / 255)
        self.ik_failures = 0

    def set_joint_positions(self, q) -> None:
        q = np.asarray(q, float)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            raise ValueError(f"expected 6 finite joint positions, got {q!r}")
        self.q = q.copy()

    def set_gripper(self, fraction_closed: float) -> None:
        if math.isfinite(fraction_closed):
            self.gripper_closed = min(1.0, max(0.0, float(fraction_closed)))

    def flange_from_tcp(self, T_tcp: np.ndarray) -> np.ndarray:
        off = np.eye(4)
        off[2, 3] = self.config.tcp_offset
        return T_tcp @ np.linalg.inv(off)

    def set_tcp_pose(self, pose) -> bool:
        """Show the arm at a TCP pose (ur_rtde convention); keeps the last joints if IK fails."""
        T = self.flange_from_tcp(pose_to_matrix(pose))
        result = solve_ik(UR5, T, seeds=[self.q, np.array(self.initial_q), np.array(UR5_READY)])
        if not result.success:
            self.ik_failures += 1
            return False
        # wrap each joint to the branch nearest the previous solution (continuous drawing)
        q = np.asarray(result.q, float)
        self.q = q + 2 * math.pi * np.round((self.q - q) / (2 * math.pi))
        return True

    def tcp_pose_matrix(self) -> np.ndarray:
        off = np.eye(4)
        off[2, 3] = self.config.tcp_offset
        return forward_kinematics(UR5, self.q) @ off

    def camera(self) -> PinholeCamera:
        c = self.config
        return PinholeCamera(c.camera_eye, c.camera_target, c.camera_fovy_deg, c.image_width, c.image_height)

    def capsules(self) -> list[Capsule]:
        return ur5_capsules(self.q, self.gripper_closed)

    def render(self) -> np.ndarray:
        return render_scene(self.camera(), self.scene, self.capsules())


def ur5_capsules(q, fraction_closed: float) -> list[Capsule]:
    pts, T = chain_frames(UR5, q)
    caps = [Capsule((0.0, 0.0, 0.0), (0.0, 0.0, 0.06), 0.075, ARM_COLOR)]
    chain = [np.array([0.0, 0.0, 0.06]), *pts, T[:3, 3]]
    for i, (a, b) in enumerate(zip(chain[:-1], chain[1:])):
        if np.linalg.norm(b - a) > 1e-4:
            r = 0.055 if i < 3 else 0.045
            caps.append(Capsule(tuple(a), tuple(b), r, ARM_COLOR))
    for p in pts[1:]:  # blue joint caps, as on the real arm
        caps.append(Capsule(tuple(p), tuple(p + 1e-3), 0.05, JOINT_COLOR))
    # Two-finger gripper along the flange z axis; 85 mm stroke.
    R, flange = T[:3, :3], T[:3, 3]
    root = flange + R[:, 2] * GRIPPER_ROOT_OFFSET
    caps.append(Capsule(tuple(flange), tuple(root), 0.04, GRIPPER_COLOR))
    half = 0.0425 * (1.0 - fraction_closed) + 0.006
    for side in (1.0, -1.0):
        a = root + side * R[:, 1] * half
        caps.append(Capsule(tuple(a), tuple(a + R[:, 2] * (FINGERTIP_OFFSET - GRIPPER_ROOT_OFFSET)), 0.009, GRIPPER_COLOR))
    caps.append(Capsule(tuple(root + R[:, 1] * (half + 0.01)), tuple(root - R[:, 1] * (half + 0.01)), 0.012, GRIPPER_COLOR))
    return caps
