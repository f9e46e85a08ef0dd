"""Simulated WidowX 250 6DOF (wx250s): the Interbotix driver simulation for the joints plus a
rendered table-top camera (no rclpy).

Joint dynamics, limits and the xs_sdk command semantics come from
``octo_ros.robots.interbotix.driver_standin.InterbotixSimDriver``; this module only owns the scene and the
camera: the arm is drawn from its product-of-exponentials kinematics
(``octo_ros.control.kinematics.WX250S``) over a table with a few objects, seen from a fixed
over-the-shoulder camera like the Bridge setup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from octo_ros.control.kinematics import forward_kinematics
from octo_ros.robots.interbotix.driver_standin import GRIPPERS, InterbotixSimConfig, InterbotixSimDriver, JointStateSample
from octo_ros.robots.interbotix.kinematics import ARMS
from octo_ros.sim.reach import ReachScene, ReachTaskConfig, sample_scene
from octo_ros.sim.render import Box, Capsule, PinholeCamera, TableScene, chain_frames, render_scene
from octo_ros.sim.tasks import TaskStatus

ARM_COLOR = (40, 40, 44)
JOINT_COLOR = (70, 70, 78)
FINGER_COLOR = (30, 30, 30)
ACCENT_COLOR = (215, 90, 30)

DEFAULT_OBJECTS = (
    Box((0.32, 0.10, 0.025), (0.025, 0.025, 0.025), (200, 40, 40), yaw=0.3),
    Box((0.38, -0.12, 0.03), (0.02, 0.04, 0.03), (40, 90, 200), yaw=-0.5),
    Box((0.25, -0.02, 0.004), (0.06, 0.06, 0.004), (60, 160, 80)),
)

# The task scenes lie inside widowx_adapter's workspace box (Octo's WidowX eval bounds) and in
# view of the camera; the tip starts around Bridge's start pose (0.3, 0, 0.15). The blocks take
# three of a triangle of slots (jittered by 1 cm): a policy trained from random weights on this
# CPU (tools/train_demo_policy.sh) has to learn which slot holds the named colour, not where on
# the table a block lies, which would take far more scenes than the demonstrations collected here.
TASKS = {
    "reach_block": ReachTaskConfig(block_low=(0.22, -0.10), block_high=(0.40, 0.18),
                                   start_low=(0.26, -0.05, 0.12), start_high=(0.34, 0.08, 0.18),
                                   block_half=0.025, min_separation=0.09,
                                   slots=((0.27, -0.06), (0.35, 0.05), (0.27, 0.15)), slot_jitter=0.01),
}
DEFAULT_TASK = "reach_block"


@dataclass
class WidowXSimConfig:
    arm: str = "wx250s"
    update_rate_hz: float = 100.0
    initial_q: tuple[float, ...] | None = None  # None: the sleep pose, where xs_sdk starts
    driver: InterbotixSimConfig | None = None  # None: xs_sdk defaults for ``arm``
    image_width: int = 640
    image_height: int = 480
    # Fixed camera: in front of and above the robot, looking at the workspace (Bridge-like).
    camera_eye: tuple[float, float, float] = (0.70, -0.32, 0.55)
    camera_target: tuple[float, float, float] = (0.30, 0.04, 0.0)
    camera_fovy_deg: float = 40.0
    objects: tuple[Box, ...] = field(default_factory=lambda: DEFAULT_OBJECTS)


class WidowXSim:
    """The simulated robot: xs_sdk driver core + scene. Advance with ``update(now)``."""

    def __init__(self, config: WidowXSimConfig | None = None, start: float = 0.0):
        self.config = config or WidowXSimConfig()
        self.kin = ARMS[self.config.arm]
        self.geometry = GRIPPERS[self.config.arm]
        self.task: ReachScene | None = None
        self.set_objects(self.config.objects)
        self.reset(start)

    def set_objects(self, objects) -> None:
        self.scene = TableScene(x_range=(-0.15, 0.75), y_range=(-0.5, 0.5), objects=tuple(objects))

    # task -----------------------------------------------------------------------------------
    def set_task(self, task: str, seed: int) -> ReachScene:
        """Lay out episode ``seed`` of ``task`` (its blocks replace the scene's objects)."""
        if task not in TASKS:
            raise ValueError(f"unknown WidowX task {task!r}; known: {sorted(TASKS)}")
        self.task = sample_scene(task, TASKS[task], seed)
        self.set_objects(self.task.blocks)
        return self.task

    def tip_position(self, q=None) -> np.ndarray:
        """The gripper tip (``ee_gripper_link``, between the fingertips) in the base frame."""
        q = self.arm_positions() if q is None else np.asarray(q, float)
        return forward_kinematics(self.kin, q)[:3, 3]

    def task_status(self) -> TaskStatus | None:
        """The task's check on the current state (None without a task)."""
        return None if self.task is None else self.task.status(self.tip_position(), self.time)

    # driver ---------------------------------------------------------------------------------
    def reset(self, start: float | None = None) -> None:
        """Back to the initial pose (sleep pose unless configured) with default operating modes."""
        start = self.driver.time if start is None else start
        q0 = self.config.initial_q if self.config.initial_q is not None else self.kin.sleep
        drv_cfg = self.config.driver or InterbotixSimConfig(arm=self.config.arm, update_rate_hz=self.config.update_rate_hz)
        self.driver = InterbotixSimDriver(drv_cfg, start=start, initial_q=q0)

    @property
    def time(self) -> float:
        return self.driver.time

    def update(self, now: float) -> None:
        self.driver.update(now)

    def command_joint_group(self, name: str, cmd) -> bool:
        return self.driver.command_joint_group(name, list(cmd))

    def command_joint_single(self, name: str, cmd: float) -> bool:
        return self.driver.command_joint_single(name, float(cmd))

    def joint_states(self) -> JointStateSample:
        return self.driver.joint_states()

    def arm_positions(self) -> np.ndarray:
        js = self.driver.joint_states()
        return np.array(js.position[:6])

    def finger_position(self) -> float:
        return float(self.driver.joint_states().position[7])

    # camera ---------------------------------------------------------------------------------
    def camera(self) -> PinholeCamera:
        c = self.config
        return PinholeCamera(c.camera_eye, c.camera_target, c.camera_fovy_deg, c.image_width, c.image_height)

    def capsules(self, q, finger: float) -> list[Capsule]:
        return arm_capsules(self.config.arm, q, finger)

    def render(self, q=None, finger: float | None = None) -> np.ndarray:
        """Camera image (H, W, 3) uint8 of the robot at ``q`` / ``finger`` (default: its current state)."""
        q = self.arm_positions() if q is None else np.asarray(q, float)
        finger = self.finger_position() if finger is None else float(finger)
        return render_scene(self.camera(), self.scene, self.capsules(q, finger))


def arm_capsules(arm_name: str, q, finger: float, base_xyz=(0.0, 0.0, 0.0)) -> list[Capsule]:
    """Links, wrist and the two fingers of an Interbotix arm as capsules (world frame)."""
    kin = ARMS[arm_name]
    base = np.asarray(base_xyz, float)
    pts, T_ee = chain_frames(kin, q)
    pts = pts + base
    p_ee = T_ee[:3, 3] + base
    R = T_ee[:3, :3]
    caps = [Capsule(tuple(base), tuple(base + (0, 0, 0.045)), 0.055, JOINT_COLOR)]  # base housing
    chain = [base + (0, 0, 0.045), *pts]
    for a, b in zip(chain[:-1], chain[1:]):
        if np.linalg.norm(b - a) > 1e-4:
            caps.append(Capsule(tuple(a), tuple(b), 0.022, ARM_COLOR))
    wrist = pts[-1]
    gripper_root = p_ee - R[:, 0] * 0.06
    caps.append(Capsule(tuple(wrist), tuple(gripper_root), 0.02, ARM_COLOR))
    # Gripper bar across the fingers, then the fingers themselves, open by ``finger`` each side.
    g = GRIPPERS[arm_name]
    half = max(g.finger_lower, min(g.finger_upper, finger))
    bar_a, bar_b = gripper_root + R[:, 1] * (g.finger_upper + 0.01), gripper_root - R[:, 1] * (g.finger_upper + 0.01)
    caps.append(Capsule(tuple(bar_a), tuple(bar_b), 0.012, ACCENT_COLOR))
    for side in (1.0, -1.0):
        root = gripper_root + side * R[:, 1] * half
        tip = p_ee + side * R[:, 1] * half
        caps.append(Capsule(tuple(root), tuple(tip), 0.008, FINGER_COLOR))
    return caps


def home_pose() -> tuple[float, ...]:
    """All joints zero (xs_sdk's ``go_to_home_pose``)."""
    return (0.0,) * 6


__all__ = ["DEFAULT_TASK", "TASKS", "WidowXSim", "WidowXSimConfig", "arm_capsules", "home_pose"]
