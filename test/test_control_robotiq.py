import time

import pytest

from octo_ros.control.gripper import GripperMapper
from octo_ros.robots.ur5.robotiq import RobotiqError, RobotiqSocketGripper, robotiq_socket
from octo_ros.robots.ur5.robotiq_standin import FakeRobotiqServer


@pytest.fixture
def server():
    with FakeRobotiqServer() as s:
        yield s


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_activation_and_octo_open_maps_to_pos_0(server):
    mapper = GripperMapper(robotiq_socket(), initially_open=False)
    with RobotiqSocketGripper("127.0.0.1", server.port) as g:
        assert not g.is_active()
        g.activate()
        assert g.is_active()
        g.move(int(mapper.update(0.0).command))  # model 0 = closed → POS 255
        assert wait_for(lambda: g.position() == 255)
        assert g.object_status() == 3
        g.move(int(mapper.update(1.0).command))  # model 1 = open → POS 0
        assert wait_for(lambda: g.position() == 0)
    assert "SET POS 0 SPE 255 FOR 150 GTO 1" in server.received


def test_object_contact_reported_while_closing():
    with FakeRobotiqServer(object_at=120) as s, RobotiqSocketGripper("127.0.0.1", s.port) as g:
        g.activate()
        g.move(255)
        assert wait_for(lambda: g.object_status() == 2)
        assert g.position() == 120


def test_move_without_activation_does_nothing(server):
    with RobotiqSocketGripper("127.0.0.1", server.port) as g:
        g.move(255)
        time.sleep(0.2)
        assert g.position() == 0


def test_invalid_values_rejected_client_side(server):
    with RobotiqSocketGripper("127.0.0.1", server.port) as g:
        with pytest.raises(ValueError):
            g.set_vars(POS=300)
        with pytest.raises(RobotiqError):
            g.get_var("XYZ")  # fake answers "?"
