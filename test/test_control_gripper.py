import math
from dataclasses import replace

import pytest

from octo_ros.control.gripper import GripperConfig, GripperMapper
from octo_ros.robots.bimanual.adapter import aloha_joint
from octo_ros.robots.ur5.robotiq import robotiq_socket
from octo_ros.robots.widowx.adapter import interbotix_pwm


def test_octo_on_interbotix_pwm():
    g = GripperMapper(interbotix_pwm())
    assert g.command == 250.0  # starts open
    u = g.update(0.2)
    assert u.command == -250.0 and u.changed and not u.is_open
    assert not g.update(0.1).changed
    assert g.update(0.5).command == 250.0  # Octo: below 0.5 closes, 0.5 opens
    assert "model 1 → gripper OPEN" in g.describe() and "model 0 → gripper CLOSED" in g.describe()


def test_octo_on_robotiq_maps_open_to_pos_0():
    g = GripperMapper(robotiq_socket())
    assert g.update(1.0).command == 0.0
    assert g.update(0.0).command == 255.0
    assert "model 1 → gripper OPEN (Robotiq POS 0)" in g.describe()


def test_inverted_model_convention():
    cfg = GripperConfig(model_open=0.0, model_closed=1.0, robot_label="Robotiq POS", robot_unit="",
                        robot_open=0.0, robot_closed=255.0, robot_integer=True)
    g = GripperMapper(cfg)
    assert g.update(0.9).command == 255.0  # 0.9 means "closed" in this convention
    assert g.update(0.1).command == 0.0
    assert g.describe().startswith("model 0 → gripper OPEN")


def test_sticky_debounce_needs_n_consecutive_steps():
    g = GripperMapper(replace(interbotix_pwm(), sticky_steps=3))
    assert [g.update(v).is_open for v in (0.0, 0.0, 1.0, 0.0, 0.0, 0.0)] == [True, True, True, True, True, False]


def test_continuous_aloha_joint_mapping_and_clipping():
    g = GripperMapper(aloha_joint(open_rad=1.6214, close_rad=0.6197))
    assert g.update(1.0).command == pytest.approx(1.6214)
    assert g.update(0.0).command == pytest.approx(0.6197)
    assert g.update(0.5).command == pytest.approx((1.6214 + 0.6197) / 2)
    assert g.update(7.0).command == pytest.approx(1.6214)
    assert "continuous" in g.describe()


def test_original_aloha_constants_differ():
    g = GripperMapper(aloha_joint(open_rad=1.4910, close_rad=-0.6213))
    assert g.update(0.0).command == pytest.approx(-0.6213)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_model_value_keeps_command(bad):
    g = GripperMapper(robotiq_socket())
    g.update(0.0)
    u = g.update(bad)
    assert u.command == 255.0 and not u.changed


def test_invalid_config_rejected():
    with pytest.raises(ValueError):
        replace(interbotix_pwm(), threshold=1.5)
    with pytest.raises(ValueError):
        replace(interbotix_pwm(), sticky_steps=0)
