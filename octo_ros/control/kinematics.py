"""Product-of-exponentials kinematics for 6-DoF arms (each robot's constants live in its room).

An arm is its screw axes in the space frame, the home pose of its end effector, its joint limits
and a sleep pose (``octo_ros.robots.interbotix.kinematics`` for wx250s/vx300s,
``octo_ros.robots.ur5.kinematics`` for the UR5).

IK is damped Newton iteration on the space-frame pose error, seeded from the caller's
joints (measured first, then the last command) and then the Interbotix default seeds
(all zeros, waist at ±120°); a solution must converge and respect the joint limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from transforms3d.euler import euler2mat

from octo_ros.control.safety import JointLimits


@dataclass(frozen=True)
class ArmKinematics:
    name: str
    screw_axes: np.ndarray  # (6, n) columns [ω; v] in the space frame at home
    home: np.ndarray  # (4, 4) end-effector pose at q = 0
    limits: JointLimits
    sleep: tuple[float, ...]


def skew(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _screw_terms(arm: ArmKinematics) -> tuple[np.ndarray, ...]:
    """Per-joint [ω], [ω]², v, [ω]v, [ω]²v for the batched Rodrigues formula (cached)."""
    cached = _SCREW_CACHE.get(arm.name)
    if cached is None:
        S = arm.screw_axes
        W = np.stack([skew(S[:3, i]) for i in range(S.shape[1])])
        W2 = W @ W
        v = S[3:].T
        cached = (W, W2, v, np.einsum("nij,nj->ni", W, v), np.einsum("nij,nj->ni", W2, v))
        _SCREW_CACHE[arm.name] = cached
    return cached


_SCREW_CACHE: dict[str, tuple[np.ndarray, ...]] = {}


def _joint_transforms(arm: ArmKinematics, q: np.ndarray) -> np.ndarray:
    """exp([S_i]θ_i) for every joint at once (revolute screws with unit ω, Rodrigues)."""
    W, W2, v, Wv, W2v = _screw_terms(arm)
    q = np.asarray(q, dtype=float)
    sn, cs = np.sin(q), np.cos(q)
    T = np.zeros((len(q), 4, 4))
    T[:, :3, :3] = np.eye(3) + sn[:, None, None] * W + (1.0 - cs)[:, None, None] * W2
    T[:, :3, 3] = q[:, None] * v + (1.0 - cs)[:, None] * Wv + (q - sn)[:, None] * W2v
    T[:, 3, 3] = 1.0
    return T


def forward_kinematics(arm: ArmKinematics, q) -> np.ndarray:
    T = np.eye(4)
    for Ti in _joint_transforms(arm, q):
        T = T @ Ti
    return T @ arm.home


def _fk_and_jacobian(arm: ArmKinematics, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """End-effector pose and the space Jacobian (columns [ω; v])."""
    S = arm.screw_axes
    n = S.shape[1]
    Ts = _joint_transforms(arm, q)
    prefix = np.empty((n, 4, 4))
    T = np.eye(4)
    for i in range(n):
        prefix[i] = T
        T = T @ Ts[i]
    R, p = prefix[:, :3, :3], prefix[:, :3, 3]
    w = np.einsum("nij,jn->ni", R, S[:3])
    # p × w, written out: np.cross costs more than the rest of this function on 3-vectors.
    pxw = np.stack(
        [p[:, 1] * w[:, 2] - p[:, 2] * w[:, 1], p[:, 2] * w[:, 0] - p[:, 0] * w[:, 2], p[:, 0] * w[:, 1] - p[:, 1] * w[:, 0]],
        axis=1,
    )
    v = pxw + np.einsum("nij,jn->ni", R, S[3:])
    return T @ arm.home, np.concatenate([w.T, v.T])


def rotation_log(R: np.ndarray) -> np.ndarray:
    """Rotation vector (axis · angle) of a rotation matrix, robust near 0 and π."""
    cos = min(1.0, max(-1.0, (np.trace(R) - 1.0) / 2.0))
    angle = math.acos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    if math.pi - angle < 1e-6:
        # R ≈ 2aaᵀ − I: take the axis from the largest diagonal entry.
        k = int(np.argmax(np.diag(R)))
        a = R[:, k] + np.eye(3)[k]
        a /= np.linalg.norm(a)
        return a * angle
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2.0 * math.sin(angle))
    return w * angle


def rotation_exp(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    W = skew(np.asarray(rotvec) / angle)
    return np.eye(3) + math.sin(angle) * W + (1.0 - math.cos(angle)) * (W @ W)


def apply_delta(T: np.ndarray, delta_xyz, delta_rpy) -> np.ndarray:
    """Bridge delta on a 4×4 pose: translation in the base frame; rotation ``Rz·Ry·Rx`` (static xyz
    Euler) about the end-effector position with base-aligned axes (``R_new = R_delta · R``)."""
    out = np.eye(4)
    out[:3, :3] = euler2mat(*delta_rpy, axes="sxyz") @ T[:3, :3]
    out[:3, 3] = T[:3, 3] + np.asarray(delta_xyz, dtype=float)
    return out


def interpolate_pose(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """Pose ``fraction`` of the way from ``start`` to ``end``: linear in position, geodesic in rotation."""
    if fraction >= 1.0:
        return end.copy()
    T = np.eye(4)
    T[:3, 3] = start[:3, 3] + fraction * (end[:3, 3] - start[:3, 3])
    T[:3, :3] = start[:3, :3] @ rotation_exp(fraction * rotation_log(start[:3, :3].T @ end[:3, :3]))
    return T


def pose_error(T: np.ndarray, T_target: np.ndarray) -> tuple[float, float]:
    """(position error m, orientation error rad) between two poses."""
    dp = float(np.linalg.norm(T_target[:3, 3] - T[:3, 3]))
    dr = float(np.linalg.norm(rotation_log(T_target[:3, :3] @ T[:3, :3].T)))
    return dp, dr


def wrap_angles(q: np.ndarray) -> np.ndarray:
    return (np.asarray(q) + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class IKResult:
    success: bool
    q: np.ndarray | None
    reason: str = ""
    position_error: float = math.inf
    rotation_error: float = math.inf


# Convergence: well inside the 1 mm / 0.01 rad acceptance; Interbotix uses 1e-3 for both.
_IK_POS_TOL = 1e-5
_IK_ROT_TOL = 1e-5
# A returned solution reaches the target within these (m, rad); commands derived from a clipped
# target can therefore sit at most IK_POSITION_TOLERANCE outside the workspace box.
IK_POSITION_TOLERANCE = 2 * _IK_POS_TOL
IK_ROTATION_TOLERANCE = 2 * _IK_ROT_TOL
_IK_MAX_ITER = 40  # per seed, as in Bridge's set_ee_pose_matrix_fast
_IK_DAMPING = 1e-4
_IK_MAX_JOINT_STEP = 0.5  # rad per iteration, keeps Newton from jumping across branches


def _newton(arm: ArmKinematics, T_target: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, float, float]:
    q = np.array(seed, dtype=float)
    p_t, R_t = T_target[:3, 3], T_target[:3, :3]
    for _ in range(_IK_MAX_ITER):
        T, J = _fk_and_jacobian(arm, q)
        p, R = T[:3, 3], T[:3, :3]
        e_w = rotation_log(R_t @ R.T)
        e_p = p_t - p
        ep, ew = float(np.linalg.norm(e_p)), float(np.linalg.norm(e_w))
        if ep < _IK_POS_TOL and ew < _IK_ROT_TOL:
            return q, ep, ew
        # Geometric Jacobian: end-effector point velocity = v + ω × p.
        Jg = np.vstack([J[:3], J[3:] - skew(p) @ J[:3]])
        e = np.concatenate([e_w, e_p])
        dq = Jg.T @ np.linalg.solve(Jg @ Jg.T + _IK_DAMPING**2 * np.eye(6), e)
        biggest = float(np.max(np.abs(dq)))
        if biggest > _IK_MAX_JOINT_STEP:
            dq *= _IK_MAX_JOINT_STEP / biggest
        q = q + dq
    T = forward_kinematics(arm, q)
    ep, ew = pose_error(T, T_target)
    return q, ep, ew


def default_seeds(arm: ArmKinematics) -> list[np.ndarray]:
    n = arm.screw_axes.shape[1]
    seeds = [np.zeros(n)]
    for waist in (math.radians(120), math.radians(-120)):
        s = np.zeros(n)
        s[0] = waist
        seeds.append(s)
    return seeds


def solve_ik(arm: ArmKinematics, T_target: np.ndarray, seeds=()) -> IKResult:
    """Joint angles reaching ``T_target`` within the joint limits, trying ``seeds`` then defaults."""
    if not np.all(np.isfinite(T_target)):
        return IKResult(False, None, "IK target is not finite")
    best_err = (math.inf, math.inf)
    limit_hit = False
    for seed in [*seeds, *default_seeds(arm)]:
        if seed is None or not np.all(np.isfinite(seed)):
            continue
        q, ep, ew = _newton(arm, T_target, seed)
        if ep < IK_POSITION_TOLERANCE and ew < IK_ROTATION_TOLERANCE:
            q = wrap_angles(q)
            if arm.limits.within_position(q):
                return IKResult(True, q, "", ep, ew)
            limit_hit = True
        elif ep + ew < sum(best_err):
            best_err = (ep, ew)
    if limit_hit:
        return IKResult(False, None, "IK solutions violate the joint limits")
    return IKResult(
        False,
        None,
        f"IK did not converge (best error {best_err[0] * 1000:.1f} mm, {best_err[1]:.3f} rad)",
        *best_err,
    )
