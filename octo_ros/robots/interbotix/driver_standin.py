"""Simulated Interbotix X-series driver core (what ``xs_sdk_sim`` does, without ROS).

Behaviour modelled on Interbotix/interbotix_ros_core ``interbotix_xs_sdk/scripts/xs_sdk_sim.py``
and the real ``xs_sdk``:

* commands arrive per group (``commands/joint_group``, order = the group's joints) or per joint
  (``commands/joint_single``, used for the gripper) and are interpreted by operating mode:
  ``position`` (rad), ``linear_position`` (gripper finger distance, m), ``pwm`` / ``current``
  (effort, the gripper opens for positive values), ``velocity`` (rad/s);
* joints are advanced at the driver's update rate; in position mode a time profile spreads the
  move over ``profile_velocity`` ms (linear, like the simulator), a velocity profile caps the speed
  (register units of 0.229 rpm, 0 = unlimited);
* unlike the stock simulator, it honours the URDF joint position and velocity limits (the real
  motors enforce EEPROM limits), rejects non-finite commands, and records every violation so
  tests can assert that an adapter never asked for one;
* joint states list the group joints, ``gripper`` (rad), then ``left_finger`` / ``right_finger``
  (m, right = −left), as xs_sdk publishes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from octo_ros.robots.interbotix.kinematics import ARM_JOINTS, ARMS, JOINT_STATE_NAMES

# Velocity-profile register unit (Dynamixel X-series): 0.229 rev/min.
_PROFILE_VELOCITY_UNIT = 0.229 * 2.0 * math.pi / 60.0
# xs_sdk_sim moves an effort-mode joint by cmd/2000 rad per 30 Hz timer tick.
_EFFORT_TO_RAD_S = 30.0 / 2000.0


@dataclass(frozen=True)
class GripperGeometry:
    """Swing-arm gripper geometry and finger range (interbotix_xsarm_control/config/<model>.yaml, URDF)."""

    horn_radius: float
    arm_length: float
    finger_lower: float  # left_finger position (m)
    finger_upper: float

    def finger_from_angle(self, angle: float) -> float:
        a1 = self.horn_radius * math.sin(angle)
        c = math.sqrt(max(self.horn_radius**2 - a1**2, 0.0))
        return a1 + math.sqrt(max(self.arm_length**2 - c**2, 0.0))

    def angle_from_finger(self, finger: float) -> float:
        # Inverse of finger_from_angle: a1 + sqrt(L² − h² + a1²) = f  →  a1 = (f² − L² + h²) / 2f.
        a1 = (finger**2 - self.arm_length**2 + self.horn_radius**2) / (2.0 * finger)
        return math.asin(max(-1.0, min(1.0, a1 / self.horn_radius)))


GRIPPERS = {
    "wx250s": GripperGeometry(horn_radius=0.014, arm_length=0.024, finger_lower=0.015, finger_upper=0.037),
    "vx300s": GripperGeometry(horn_radius=0.022, arm_length=0.036, finger_lower=0.021, finger_upper=0.057),
}


@dataclass
class InterbotixSimConfig:
    arm: str = "wx250s"
    update_rate_hz: float = 100.0  # xs_sdk joint_state_publisher.update_rate for wx250s/vx300s
    # Default modes (interbotix_xsarm_control/config/modes.yaml): arm position + 2000 ms / 300 ms
    # time profile, gripper pwm.
    arm_mode: str = "position"
    arm_profile_type: str = "time"
    arm_profile_velocity: float = 2000.0
    gripper_mode: str = "pwm"
    finger_speed_limit: float = 1.0  # m/s (URDF finger velocity limit)
    # Gripper joint range (rad); None derives it from the finger range. ALOHA's custom fingers
    # open further than the stock geometry allows (e.g. ALOHA 2 follower open = 1.6214 rad).
    gripper_joint_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class JointStateSample:
    stamp: float
    name: tuple[str, ...]
    position: tuple[float, ...]
    velocity: tuple[float, ...]
    effort: tuple[float, ...]


@dataclass
class _Motor:
    position: float
    mode: str
    profile_type: str = "velocity"
    profile_velocity: float = 0.0
    velocity: float = 0.0
    goal: float | None = None
    move_from: float = 0.0
    move_start: float = 0.0
    effort_cmd: float = 0.0
    velocity_cmd: float = 0.0


class InterbotixSimDriver:
    """Pure-Python xs_sdk stand-in; advance it with ``update(now)``."""

    POSITION_MODES = ("position", "ext_position", "current_based_position", "linear_position")

    def __init__(self, config: InterbotixSimConfig, start: float = 0.0, initial_q=None):
        self.config = config
        self.kin = ARMS[config.arm]
        self.geometry = GRIPPERS[config.arm]
        self.dt = 1.0 / config.update_rate_hz
        self.time = start
        self.violations: list[str] = []
        q0 = self.kin.sleep if initial_q is None else initial_q
        self.motors = {
            name: _Motor(float(q), config.arm_mode, config.arm_profile_type, config.arm_profile_velocity)
            for name, q in zip(ARM_JOINTS, q0)
        }
        self.groups = {"arm": ARM_JOINTS, "all": (*ARM_JOINTS, "gripper")}
        self._gripper_range = config.gripper_joint_range or (
            self.geometry.angle_from_finger(self.geometry.finger_lower),
            self.geometry.angle_from_finger(self.geometry.finger_upper),
        )
        self.motors["gripper"] = _Motor(0.0, config.gripper_mode)

    # services -----------------------------------------------------------------------
    def set_operating_modes(self, cmd_type: str, name: str, mode: str, profile_type: str = "velocity",
                            profile_velocity: float = 0.0) -> None:
        for joint in self._resolve(cmd_type, name):
            m = self.motors[joint]
            m.mode, m.profile_type, m.profile_velocity = mode, profile_type, float(profile_velocity)
            m.goal, m.effort_cmd, m.velocity_cmd, m.velocity = None, 0.0, 0.0, 0.0

    def robot_info(self, cmd_type: str, name: str) -> dict:
        joints = self._resolve(cmd_type, name)
        lim = self.kin.limits
        lower, upper, vel, names = [], [], [], []
        for j in joints:
            if j == "gripper":  # the driver reports the left_finger for a gripper
                names.append("left_finger")
                lower.append(self.geometry.finger_lower)
                upper.append(self.geometry.finger_upper)
                vel.append(self.config.finger_speed_limit)
            else:
                i = ARM_JOINTS.index(j)
                names.append(j)
                lower.append(lim.lower[i])
                upper.append(lim.upper[i])
                vel.append(lim.velocity[i])
        return {"joint_names": names, "joint_lower_limits": lower, "joint_upper_limits": upper,
                "joint_velocity_limits": vel, "mode": self.motors[joints[0]].mode}

    # command topics ---------------------------------------------------------------
    def command_joint_group(self, name: str, cmd) -> bool:
        joints = self.groups.get(name)
        if joints is None:
            self.violations.append(f"unknown group {name!r}")
            return False
        if len(cmd) != len(joints):
            self.violations.append(f"group {name!r} expects {len(joints)} values, got {len(cmd)}")
            return False
        if not all(math.isfinite(c) for c in cmd):
            self.violations.append(f"non-finite command for group {name!r}")
            return False
        for joint, value in zip(joints, cmd):
            self._write(joint, float(value))
        return True

    def command_joint_single(self, name: str, cmd: float) -> bool:
        if name not in self.motors:
            self.violations.append(f"unknown joint {name!r}")
            return False
        if not math.isfinite(cmd):
            self.violations.append(f"non-finite command for {name!r}")
            return False
        self._write(name, float(cmd))
        return True

    def _write(self, joint: str, value: float) -> None:
        m = self.motors[joint]
        if m.mode in self.POSITION_MODES:
            if joint == "gripper":
                if m.mode == "linear_position":
                    value = self.geometry.angle_from_finger(value / 2.0)
                lo, hi = self._gripper_range
            else:
                i = ARM_JOINTS.index(joint)
                lo, hi = self.kin.limits.lower[i], self.kin.limits.upper[i]
                if m.profile_type == "time" and m.profile_velocity > 0:
                    moving_time = m.profile_velocity / 1000.0
                    speed = abs(value - m.position) / moving_time
                    if speed > self.kin.limits.velocity[i] + 1e-9:
                        self.violations.append(f"{joint}: {speed:.2f} rad/s over the velocity limit")
            if not lo - 1e-9 <= value <= hi + 1e-9:
                self.violations.append(f"{joint}: goal {value:.4f} outside [{lo:.4f}, {hi:.4f}]")
            m.goal = min(hi, max(lo, value))
            m.move_from, m.move_start = m.position, self.time
        elif m.mode in ("pwm", "current"):
            m.effort_cmd = value
        elif m.mode == "velocity":
            m.velocity_cmd = value

    # simulation -----------------------------------------------------------------------
    def update(self, now: float) -> None:
        while self.time + self.dt <= now + 1e-12:
            self.time += self.dt
            for joint in self.motors:
                self._advance(joint)

    def _advance(self, joint: str) -> None:
        m, dt = self.motors[joint], self.dt
        if joint == "gripper":
            lo, hi = self._gripper_range
            finger_now = self.geometry.finger_from_angle(m.position)
            vmax = math.inf
        else:
            i = ARM_JOINTS.index(joint)
            lo, hi = self.kin.limits.lower[i], self.kin.limits.upper[i]
            vmax = self.kin.limits.velocity[i]
        if m.mode in self.POSITION_MODES:
            if m.goal is None:
                m.velocity = 0.0
                return
            desired = m.goal
            if m.profile_type == "time" and m.profile_velocity > 0:
                frac = min(1.0, (self.time - m.move_start) / (m.profile_velocity / 1000.0))
                desired = m.move_from + frac * (m.goal - m.move_from)
            elif m.profile_type == "velocity" and m.profile_velocity > 0:
                vmax = min(vmax, m.profile_velocity * _PROFILE_VELOCITY_UNIT)
            new = m.position + float(np.clip(desired - m.position, -vmax * dt, vmax * dt))
        elif m.mode in ("pwm", "current"):
            new = m.position + float(np.clip(m.effort_cmd * _EFFORT_TO_RAD_S, -vmax, vmax)) * dt
        else:
            new = m.position + float(np.clip(m.velocity_cmd, -vmax, vmax)) * dt
        new = min(hi, max(lo, new))
        if joint == "gripper" and self.config.gripper_joint_range is None:  # finger speed limit
            dmax = self.config.finger_speed_limit * dt
            finger_new = self.geometry.finger_from_angle(new)
            if abs(finger_new - finger_now) > dmax:
                finger_new = finger_now + math.copysign(dmax, finger_new - finger_now)
                new = self.geometry.angle_from_finger(finger_new)
        m.velocity = (new - m.position) / dt
        m.position = new

    def joint_states(self) -> JointStateSample:
        names = JOINT_STATE_NAMES
        g = self.motors["gripper"]
        finger = self.geometry.finger_from_angle(g.position)
        pos = [self.motors[j].position for j in ARM_JOINTS] + [g.position, finger, -finger]
        vel = [self.motors[j].velocity for j in ARM_JOINTS] + [g.velocity, 0.0, 0.0]
        return JointStateSample(self.time, names, tuple(pos), tuple(vel), (0.0,) * len(names))

    def _resolve(self, cmd_type: str, name: str) -> tuple[str, ...]:
        if cmd_type == "group":
            return self.groups[name]
        if name not in self.motors:
            raise KeyError(f"unknown joint {name!r}")
        return (name,)
