"""Start-up validation of every adapter safety parameter (issue #12 item 1, #11 item 2).

A bad value is refused where the core config dataclass is built, with a message naming the
parameter, so the node does not start; a limit that was not given at all lets the node preview
in dry-run but never arm. In-process node construction covers every parameter; a few real node
starts check the FATAL line and exit code 1."""
import math
import subprocess
import sys

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter
from std_srvs.srv import SetBool
from support.configs import adapter_parameters
from support.ros_harness import REPO_ROOT

from octo_ros.control.chunking import ChunkExecutionConfig
from octo_ros.control.safety import LimitError, SafetyConfig
from octo_ros.robots.bimanual.adapter import ArmSideConfig, BimanualConfig
from octo_ros.robots.ur5.adapter import URConfig
from octo_ros.robots.widowx.adapter import WidowXAdapter, WidowXConfig, interbotix_pwm
from octo_ros.ros.nodes.bimanual_adapter import BimanualAdapterNode
from octo_ros.ros.nodes.ur5_adapter import UR5AdapterNode
from octo_ros.ros.nodes.widowx_adapter import WidowXAdapterNode

NODES = {"widowx": WidowXAdapterNode, "ur5": UR5AdapterNode, "bimanual": BimanualAdapterNode}


@pytest.fixture(scope="module")
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def make_node(context, robot: str, overrides: dict):
    params = [Parameter(k, value=v) for k, v in overrides.items()]
    return NODES[robot](context=context, parameter_overrides=params)


# (robot, parameter, bad value, words the refusal must contain)
BAD = [
    ("widowx", "max_step_translation", -0.05, "max_step_translation = -0.05"),
    ("widowx", "max_step_translation", 0.0, "max_step_translation = 0.0"),
    ("widowx", "max_step_translation", 50.0, "another unit"),  # mm
    ("widowx", "max_step_rotation", -0.25, "max_step_rotation = -0.25"),
    ("widowx", "max_step_rotation", 0.0, "max_step_rotation = 0.0"),
    ("widowx", "max_step_rotation", 15.0, "another unit"),  # degrees
    ("widowx", "max_step_rotation", math.nan, "max_step_rotation = nan"),
    ("widowx", "workspace_low", [0.45, -0.15, -0.01], "must be below workspace_high"),
    ("widowx", "workspace_high", [0.45, 0.25], "workspace_high"),
    ("widowx", "workspace_high", [450.0, 250.0, 250.0], "another unit"),
    ("widowx", "gripper_pwm", -250.0, "gripper_pwm = -250.0"),
    ("widowx", "gripper_pwm", 0.0, "gripper_pwm = 0.0"),
    ("widowx", "gripper_pwm", 2000.0, "gripper_pwm"),
    ("widowx", "control_period", 0.0, "control_period = 0.0"),
    ("widowx", "control_period", 0.5, "control_period = 0.5"),  # longer than the 0.2 s step
    ("widowx", "chunk_timeout", -1.0, "chunk_timeout = -1.0"),
    ("widowx", "chunk_timeout", 1000.0, "another unit"),  # ms
    ("widowx", "state_timeout", 0.0, "state_timeout = 0.0"),
    ("widowx", "step_period", -0.2, "step_period = -0.2"),
    ("widowx", "max_future_stamp", -0.05, "max_future_stamp = -0.05"),
    ("ur5", "max_linear_speed", -0.25, "max_linear_speed = -0.25"),
    ("ur5", "max_linear_speed", 250.0, "another unit"),  # mm/s
    ("ur5", "max_angular_speed", 0.0, "max_angular_speed = 0.0"),
    ("ur5", "max_angular_speed", 90.0, "another unit"),  # deg/s
    ("ur5", "max_step_translation", -0.05, "max_step_translation = -0.05"),
    ("ur5", "max_step_rotation", 0.0, "max_step_rotation = 0.0"),
    ("ur5", "workspace_low", [0.6, -0.3, 0.05], "must be below workspace_high"),
    ("ur5", "workspace_high", [0.6, 0.3, math.inf], "workspace_high"),
    ("ur5", "control_frequency", 0.0, "control_frequency = 0.0"),
    ("ur5", "control_frequency", 2.0, "policy rate"),
    ("ur5", "servo_lookahead", 0.5, "servo_lookahead = 0.5"),
    ("ur5", "servo_gain", 50.0, "servo_gain = 50.0"),
    ("ur5", "rtde_watchdog_min_frequency", 0.0, "rtde_watchdog_min_frequency = 0.0"),
    ("ur5", "state_timeout", -0.25, "state_timeout = -0.25"),
    ("bimanual", "left_gripper_open", 92.9, "left_gripper_open = 92.9"),  # degrees
    ("bimanual", "right_gripper_close", math.nan, "right_gripper_close = nan"),
    ("bimanual", "right_gripper_open", 0.6197, "right_gripper_open and right_gripper_close"),
    ("bimanual", "gripper_velocity_limit", 0.0, "gripper_velocity_limit = 0.0"),
    ("bimanual", "gripper_velocity_limit", -3.14, "gripper_velocity_limit = -3.14"),
    ("bimanual", "control_period", 0.05, "control_period = 0.05"),  # longer than the 0.02 s step
    ("bimanual", "chunk_timeout", 0.0, "chunk_timeout = 0.0"),
]


@pytest.mark.parametrize("robot, name, value, words", BAD, ids=[f"{r}-{n}={v}" for r, n, v, _ in BAD])
def test_bad_safety_parameter_refuses_to_start(context, robot, name, value, words):
    params = {**adapter_parameters(robot), name: value}
    with pytest.raises(ValueError) as err:
        make_node(context, robot, params)
    assert words in str(err.value)


@pytest.mark.parametrize("robot", sorted(NODES))
def test_configured_adapter_arms_and_unset_limits_refuse_to_arm(context, robot):
    node = make_node(context, robot, adapter_parameters(robot))
    try:
        assert node.unset_limits == []
        response = node._on_set_dry_run(SetBool.Request(data=False), SetBool.Response())
        assert response.success, response.message
    finally:
        node.close()
        node.destroy_node()
    # Without its parameter file every limit is unset: the node starts (dry-run preview), never arms.
    params = {"backend": "fake"} if robot == "ur5" else {}
    node = make_node(context, robot, params)
    try:
        assert set(node.unset_limits) >= set(node.LIMIT_PARAMETERS)
        response = node._on_set_dry_run(SetBool.Request(data=False), SetBool.Response())
        assert not response.success and node.dry_run
        assert "safety limits not set" in response.message and node.LIMIT_PARAMETERS[0] in response.message
    finally:
        node.close()
        node.destroy_node()


def test_negative_step_clamp_no_longer_becomes_a_constant_motion():
    """The reported failure: max_step_translation -0.05 turned zero actions into -0.05 m steps."""
    with pytest.raises(LimitError, match="max_step_translation = -0.05"):
        WidowXConfig(max_step_translation_m=-0.05)
    with pytest.raises(LimitError, match="max_angular_speed = 0"):
        URConfig((0.25, -0.3, 0.05), (0.6, 0.3, 0.45), max_angular_speed_rad_s=0.0)
    with pytest.raises(LimitError, match="chunk_timeout"):
        SafetyConfig(chunk_timeout_s=math.inf)
    with pytest.raises(LimitError, match="max_future_stamp"):
        ChunkExecutionConfig(max_future_stamp_s=math.nan)
    with pytest.raises(LimitError, match="gripper_pwm"):
        interbotix_pwm(-250.0)
    with pytest.raises(LimitError, match="left_gripper_open"):
        BimanualConfig(left=ArmSideConfig("follower_left", gripper_open_rad=93.0))
    assert WidowXAdapter(WidowXConfig()).config.max_step_translation_m == 0.05
    assert np.isfinite(URConfig((0.25, -0.3, 0.05), (0.6, 0.3, 0.45)).max_linear_speed_m_s)


START = [
    ("widowx", "max_step_translation", "-0.05"),
    ("ur5", "max_angular_speed", "0.0"),
    ("bimanual", "left_gripper_open", "92.9"),
]


@pytest.mark.parametrize("robot, name, value", START, ids=[f"{r}-{n}" for r, n, _ in START])
def test_real_node_start_with_a_bad_limit_is_one_fatal_line_and_exit_1(robot, name, value):
    argv = [sys.executable, "-m", f"octo_ros.ros.nodes.{robot}_adapter", "--ros-args",
            "--params-file", str(REPO_ROOT / "config" / f"{robot}.yaml"), "-p", f"{name}:={value}"]
    if robot == "ur5":
        argv += ["-p", "backend:=fake"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    fatal = [line for line in output.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1 and f"{name} = {value}" in fatal[0], output
    assert "Traceback" not in output
