"""Interbotix X-series arm constants shared by the WidowX and the ALOHA arms (wx250s, vx300s).

Screw axes (space frame ``<robot>/base_link``) and the home pose ``M`` of
``<robot>/ee_gripper_link`` are the published Modern-Robotics descriptions
(Interbotix/interbotix_ros_toolboxes ``interbotix_xs_modules/xs_robot/mr_descriptions.py``).
Joint limits and velocity limits are the URDF values (interbotix_ros_manipulators
``interbotix_xsarm_descriptions/urdf/<model>.urdf.xacro``).
"""

from __future__ import annotations

import math

import numpy as np

from octo_ros.control.kinematics import ArmKinematics
from octo_ros.control.safety import JointLimits

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
# What xs_sdk's joint_states carries for an arm with its gripper (gripper in rad, fingers in m):
# the robot state (observation.state) of exported episodes.
JOINT_STATE_NAMES = (*ARM_JOINTS, "gripper", "left_finger", "right_finger")


def _deg(d: float) -> float:
    return math.radians(d)


WX250S = ArmKinematics(
    name="wx250s",
    screw_axes=np.array(
        [
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, -0.11065, 0.0, 0.0],
            [0.0, 1.0, 0.0, -0.36065, 0.0, 0.04975],
            [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
            [0.0, 1.0, 0.0, -0.36065, 0.0, 0.29975],
            [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
        ]
    ).T,
    home=np.array([[1.0, 0, 0, 0.458325], [0, 1.0, 0, 0], [0, 0, 1.0, 0.36065], [0, 0, 0, 1.0]]),
    limits=JointLimits(
        names=ARM_JOINTS,
        lower=(-math.pi + 1e-5, _deg(-108), _deg(-123), -math.pi, _deg(-100), -math.pi),
        upper=(math.pi - 1e-5, _deg(114), _deg(92), math.pi, _deg(123), math.pi),
        velocity=(math.pi,) * 6,
    ),
    sleep=(0.0, -1.80, 1.55, 0.0, 0.8, 0.0),
)

VX300S = ArmKinematics(
    name="vx300s",
    screw_axes=np.array(
        [
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, -0.12705, 0.0, 0.0],
            [0.0, 1.0, 0.0, -0.42705, 0.0, 0.05955],
            [1.0, 0.0, 0.0, 0.0, 0.42705, 0.0],
            [0.0, 1.0, 0.0, -0.42705, 0.0, 0.35955],
            [1.0, 0.0, 0.0, 0.0, 0.42705, 0.0],
        ]
    ).T,
    home=np.array([[1.0, 0, 0, 0.536494], [0, 1.0, 0, 0], [0, 0, 1.0, 0.42705], [0, 0, 0, 1.0]]),
    limits=JointLimits(
        names=ARM_JOINTS,
        lower=(-math.pi, _deg(-106), _deg(-101), -math.pi, _deg(-107), -math.pi),
        upper=(math.pi, _deg(72), _deg(92), math.pi, _deg(128), math.pi),
        velocity=(math.pi,) * 6,
    ),
    sleep=(0.0, -1.85, 1.55, 0.0, 0.8, 0.0),
)

ARMS = {"wx250s": WX250S, "vx300s": VX300S}
