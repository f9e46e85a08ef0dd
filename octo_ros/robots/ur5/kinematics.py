"""UR5 kinematics: the published UR5 (CB3) DH parameters, turned into product-of-exponentials
screw axes so the project's FK/IK in ``octo_ros.control.kinematics`` applies."""

from __future__ import annotations

import math

import numpy as np

from octo_ros.control.kinematics import ArmKinematics
from octo_ros.control.safety import JointLimits

UR_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")

# UR5 (CB3) DH parameters, Universal Robots' published table: a (m), d (m), alpha (rad).
UR5_DH_A = (0.0, -0.425, -0.39225, 0.0, 0.0, 0.0)
UR5_DH_D = (0.089159, 0.0, 0.0, 0.10915, 0.09465, 0.0823)
UR5_DH_ALPHA = (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)

# A common "ready" configuration (upper arm up, forearm horizontal, tool pointing down), with the
# base turned so the arm reaches over +x, where the table and the fake controller's poses are.
UR5_READY = (math.pi, -math.pi / 2, math.pi / 2, -math.pi / 2, -math.pi / 2, 0.0)


def dh_transform(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ct, st, ca, sa = math.cos(theta), math.sin(theta), math.cos(alpha), math.sin(alpha)
    return np.array([[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st], [0.0, sa, ca, d], [0.0, 0.0, 0.0, 1.0]])


def dh_forward(q) -> np.ndarray:
    """Flange pose in the base frame by the DH chain (the reference the screw axes are built from)."""
    T = np.eye(4)
    for a, d, alpha, theta in zip(UR5_DH_A, UR5_DH_D, UR5_DH_ALPHA, q):
        T = T @ dh_transform(a, d, alpha, float(theta))
    return T


def _ur5_kinematics() -> ArmKinematics:
    T = np.eye(4)
    axes = []
    for a, d, alpha in zip(UR5_DH_A, UR5_DH_D, UR5_DH_ALPHA):
        w, p = T[:3, 2].copy(), T[:3, 3].copy()  # joint i turns about z of frame i−1
        axes.append(np.concatenate([w, -np.cross(w, p)]))
        T = T @ dh_transform(a, d, alpha, 0.0)
    return ArmKinematics(
        name="ur5",
        screw_axes=np.array(axes).T,
        home=T,
        limits=JointLimits(UR_JOINTS, (-2 * math.pi,) * 6, (2 * math.pi,) * 6, (math.pi,) * 6),
        sleep=UR5_READY,
    )


UR5 = _ur5_kinematics()
