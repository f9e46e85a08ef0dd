"""Scripted ALOHA expert (no rclpy): what a person on the two leader arms would do to pick up
the cube with the right arm, planned from the simulator's ground truth (the cube pose at the start
of the episode), as ALOHA/ACT's scripted policies are.

The plan is a joint-space trajectory of both arms in the 14-D ALOHA layout the leader arms map to
([left 6 joints, left gripper (normalized, 1 = open), right 6, right gripper]): the right arm
moves above the cube with the gripper pointing down, descends, closes and lifts; the left arm stays
where it started. Poses are solved with damped least squares on the gym-aloha MuJoCo model itself
(its Jacobians), so the plan and the simulated arm share one kinematic description.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from octo_ros.robots.bimanual.sim import load_model
from octo_ros.robots.bimanual.teleop import SIDES, LeaderTeleopConfig
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS

LEADER_JOINTS = (*ARM_JOINTS, "gripper")  # what a leader's joint_states carry (and the teleop reads)

# The right gripper pointing straight down, its fingers closing along the world y axis (columns:
# the gripper_link x, y, z axes in the world frame).
GRASP_ROTATION = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class LiftPlanConfig:
    grasp_offset: float = 0.095  # m along gripper_link x: the point between the finger pads
    grasp_depth: float = 0.0  # m: that point this far below the cube's centre
    approach_height: float = 0.10  # m above the grasp point before descending
    lift_height: float = 0.12  # m
    move_s: float = 1.4  # start → above the cube
    descend_s: float = 0.8
    close_s: float = 0.6
    lift_s: float = 1.0
    sample_s: float = 0.05  # IK samples along straight segments
    # rad: the plan's clock runs only while the right arm is this close to the planned joints, so a
    # follower that lags (a stalled simulator, an adapter hold) is waited for, as by a person
    track_tolerance: float = 0.15
    settle_tolerance: float = 0.08  # rad: the arm this close to the grasp pose before the gripper closes
    # s: the most the plan advances per call, so a simulator that stalls and catches up never makes
    # it jump (a jump is a joint-space shortcut that may sweep the fingers into the cube)
    max_advance_s: float = 0.1


class ArmIK:
    """Damped-least-squares IK for one arm's grasp point and gripper orientation on the MuJoCo model."""

    def __init__(self, arm: str, grasp_offset: float, model: mujoco.MjModel | None = None):
        self.model = model or load_model("transfer_cube")
        self.data = mujoco.MjData(self.model)
        m = self.model
        joints = [m.joint(f"vx300s_{arm}/{j}") for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle",
                                                         "wrist_rotate")]
        self.qadr = np.array([m.jnt_qposadr[j.id] for j in joints])
        self.dadr = np.array([m.jnt_dofadr[j.id] for j in joints])
        self.lower = np.array([m.jnt_range[j.id][0] for j in joints])
        self.upper = np.array([m.jnt_range[j.id][1] for j in joints])
        self.body = m.body(f"vx300s_{arm}/gripper_link").id
        self.base = m.body(f"vx300s_{arm}").id
        self.offset = np.array([grasp_offset, 0.0, 0.0])

    def pointing_down_seed(self, point) -> np.ndarray:
        """A start for ``solve``: the waist turned towards ``point``, elbow up, wrist bent down, the
        wrist rotation undoing the waist's (so the fingers stay on the world y axis)."""
        self.pose(np.zeros(6))
        local = self.data.xmat[self.base].reshape(3, 3).T @ (np.asarray(point, float) - self.data.xpos[self.base])
        waist = float(np.arctan2(local[1], local[0]))
        return np.clip([waist, 0.0, 0.4, 0.0, 1.2, waist], self.lower, self.upper)

    def pose(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Grasp point (world) and gripper_link rotation at arm joints ``q``."""
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        R = self.data.xmat[self.body].reshape(3, 3)
        return self.data.xpos[self.body] + R @ self.offset, R.copy()

    def solve(self, point, rotation, seed, iterations: int = 200, tolerance: float = 1e-4) -> np.ndarray:
        m, d = self.model, self.data
        q = np.array(seed, float)
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        for _ in range(iterations):
            p, R = self.pose(q)
            e = np.concatenate([point - p, 0.5 * sum(np.cross(R[:, i], rotation[:, i]) for i in range(3))])
            if np.linalg.norm(e) < tolerance:
                break
            mujoco.mj_comPos(m, d)
            mujoco.mj_jac(m, d, jacp, jacr, p, self.body)
            J = np.vstack([jacp[:, self.dadr], jacr[:, self.dadr]])
            dq = J.T @ np.linalg.solve(J @ J.T + 1e-4 * np.eye(6), e)
            q = np.clip(q + dq, self.lower, self.upper)
        else:
            raise ValueError(f"no IK solution for the grasp point {np.round(point, 3).tolist()}")
        return q


class LiftCubeExpert:
    """The plan for one episode; ``action(t)`` is the 14-D leader-arm target ``t`` s after the start."""

    def __init__(self, cube_pose, start14, config: LiftPlanConfig | None = None, model: mujoco.MjModel | None = None):
        c = self.config = config or LiftPlanConfig()
        start14 = np.asarray(start14, float)
        ik = ArmIK("right", c.grasp_offset, model)
        q0 = start14[7:13]
        grasp = np.asarray(cube_pose[:3], float) - (0.0, 0.0, c.grasp_depth)
        above = grasp + (0.0, 0.0, c.approach_height)
        lifted = grasp + (0.0, 0.0, c.lift_height)
        q_above = ik.solve(above, GRASP_ROTATION, ik.pointing_down_seed(above))
        times, arm, grip = [0.0, c.move_s], [q0, q_above], [1.0, 1.0]
        t, q = c.move_s, q_above
        self.settle_time = c.move_s + c.descend_s  # at the grasp pose, before closing
        segments = ((above, grasp, c.descend_s, 1.0, 1.0), (grasp, grasp, c.close_s, 1.0, 0.0),
                    (grasp, lifted, c.lift_s, 0.0, 0.0))
        for a, b, duration, g0, g1 in segments:  # straight lines, IK-solved every sample_s
            n = max(1, int(round(duration / c.sample_s)))
            for k in range(1, n + 1):
                q = ik.solve(a + (b - a) * k / n, GRASP_ROTATION, q)
                times.append(t + duration * k / n)
                arm.append(q)
                grip.append(g0 + (g1 - g0) * k / n)
            t += duration
        self.times = np.array(times)
        self.right = np.array(arm)
        self.right_gripper = np.array(grip)
        self.left = start14[:7].copy()
        self.plan_time = 0.0
        self._last: float | None = None

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def follow(self, measured14, t: float) -> np.ndarray:
        """The leader target for the followers measured at ``measured14`` (ALOHA layout) at time
        ``t`` (s, the simulator's clock): the plan advanced by the time since the last call while
        the right arm tracks it."""
        dt = 0.0 if self._last is None else min(max(0.0, t - self._last), self.config.max_advance_s)
        self._last = t
        right = np.asarray(measured14, float)[7:13]
        lag = np.max(np.abs(right - self.action(self.plan_time)[7:13]))
        if lag <= self.config.track_tolerance:
            t = min(self.plan_time + dt, self.duration)
            if self.plan_time <= self.settle_time < t:  # close only once the arm is at the grasp pose
                settled = np.max(np.abs(right - self.action(self.settle_time)[7:13])) <= self.config.settle_tolerance
                t = t if settled else self.settle_time
            self.plan_time = t
        return self.action(self.plan_time)

    def action(self, t: float) -> np.ndarray:
        """The plan at ``t`` s after its start."""
        right = np.array([np.interp(t, self.times, self.right[:, j]) for j in range(6)])
        g = float(np.interp(t, self.times, self.right_gripper))
        return np.concatenate([self.left, right, [g]])


def leader_joint_positions(action14, config: LeaderTeleopConfig) -> dict[str, np.ndarray]:
    """The leader arms' joint positions (``LEADER_JOINTS``, rad) that the teleop node maps to
    ``action14``: the six joints as they are, the gripper joint unnormalized with the leader's constants."""
    a = np.asarray(action14, float)
    out = {}
    for k, side in enumerate(SIDES):
        open_rad, close_rad = config.gripper(side)
        arm = a[7 * k: 7 * k + 7].copy()
        arm[6] = close_rad + arm[6] * (open_rad - close_rad)
        out[side] = arm
    return out
