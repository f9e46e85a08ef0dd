"""The simulator nodes' scripted-task episodes over real DDS: ``episode_task`` / ``episode_seed``,
``~/reset_episode`` and ``~/task_status``, the check computed from the simulated state."""
import math
import threading

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from interbotix_xs_msgs.msg import JointGroupCommand
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_srvs.srv import Trigger

from octo_ros.control.kinematics import solve_ik
from octo_ros.robots.bimanual.sim import sample_cube_pose
from octo_ros.robots.interbotix.kinematics import WX250S
from octo_ros.robots.ur5.sim import TASKS as UR5_TASKS
from octo_ros.robots.widowx.adapter import pose_from_bridge_state
from octo_ros.robots.widowx.sim import TASKS as WIDOWX_TASKS
from octo_ros.ros.messages import task_status_from_msg
from octo_ros.sim.reach import sample_scene


class Statuses:
    def __init__(self, node, topic):
        self.items = []
        self._lock = threading.Lock()
        node.create_subscription(DiagnosticStatus, topic, self._cb, 10)

    def _cb(self, msg):
        with self._lock:
            self.items.append(task_status_from_msg(msg))

    def last(self):
        with self._lock:
            return self.items[-1] if self.items else None


def set_params(ros, node, target, **values):
    client = node.create_client(SetParameters, f"/{target}/set_parameters")
    params = []
    for name, value in values.items():
        if isinstance(value, str):
            v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        else:
            v = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        params.append(Parameter(name=name, value=v))
    return ros.call(client, SetParameters.Request(parameters=params), timeout=20.0).results


def test_widowx_sim_episodes_are_seeded_and_judged_from_the_arm(ros):
    ros.spawn_module("widowx_sim", "octo_ros.ros.nodes.widowx_sim", params={
        "image_width": 64, "image_height": 48, "render_rate": 2.0, "episode_task": "reach_block", "episode_seed": 3,
        "initial_pose": [0.0, 0.022, 0.1831, 0.0, 1.3657, 0.0]})
    node = ros.node("widowx_task_probe")
    status = Statuses(node, "/widowx_sim/task_status")
    ros.wait_for(lambda: status.last() is not None, 30.0, "a task status")
    scene = sample_scene("reach_block", WIDOWX_TASKS["reach_block"], 3)
    first = status.last()
    assert (first.task, first.seed, first.instruction, first.success) == ("reach_block", 3, scene.instruction, False)
    np.testing.assert_allclose(first.values["target"], scene.target_top)

    # a bad parameter is refused with a reason and the node keeps its task
    refused = set_params(ros, node, "widowx_sim", episode_task="stack_blocks")[0]
    assert not refused.successful and "stack_blocks" in refused.reason
    assert set_params(ros, node, "widowx_sim", episode_seed=5)[0].successful
    reply = ros.call(node.create_client(Trigger, "/widowx_sim/reset_episode"), Trigger.Request(), timeout=20.0)
    scene = sample_scene("reach_block", WIDOWX_TASKS["reach_block"], 5)
    assert reply.success and reply.message == scene.instruction
    ros.wait_for(lambda: status.last().seed == 5, 10.0, "the status of seed 5")

    # move the simulated arm over the named block: the sim's own check turns true
    top = scene.target_top
    q = solve_ik(WX250S, pose_from_bridge_state((top[0], top[1], top[2] + 0.012, 0.0, 0.0, 0.0))).q
    group = node.create_publisher(JointGroupCommand, "/wx250s/commands/joint_group", 10)
    ros.wait_for(lambda: group.get_subscription_count() > 0, 10.0, "the command subscriber")
    group.publish(JointGroupCommand(name="arm", cmd=[float(v) for v in q]))
    goal = top + (0, 0, 0.012)
    ros.wait_for(lambda: np.linalg.norm(np.subtract(status.last().values["tip"], goal)) < 2e-3, 15.0, "the tip at the goal")
    assert status.last().success


def test_ur5_sim_judges_the_drawn_fingertips(ros):
    ros.spawn_module("ur5_sim", "octo_ros.ros.nodes.ur5_sim", params={
        "image_width": 64, "image_height": 48, "render_rate": 2.0, "episode_task": "reach_block", "episode_seed": 1})
    node = ros.node("ur5_task_probe")
    status = Statuses(node, "/ur5_sim/task_status")
    ros.wait_for(lambda: status.last() is not None, 30.0, "a task status")
    assert not status.last().success
    top = sample_scene("reach_block", UR5_TASKS["reach_block"], 1).target_top
    pose = PoseStamped()
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = top[0], top[1], top[2] + 0.12 + 0.015
    pose.pose.orientation.w, pose.pose.orientation.y = 0.0, 1.0  # rotation vector (0, pi, 0): tool pointing down
    pub = node.create_publisher(PoseStamped, "tcp_pose", 10)
    ros.wait_for(lambda: pub.get_subscription_count() > 0, 10.0, "the tcp_pose subscriber")
    ros.wait_for(lambda: pub.publish(pose) or status.last().success, 15.0, "success with the fingertips over the block")
    assert math.isclose(status.last().values["tip"][2], top[2] + 0.015, abs_tol=2e-3)


def test_aloha_sim_episode_places_the_seeded_cube(ros):
    pytest.importorskip("gym_aloha")
    ros.spawn_module("aloha_sim", "octo_ros.ros.nodes.aloha_sim", params={
        "image_width": 64, "image_height": 48, "render_rate": 2.0, "episode_task": "lift_cube", "episode_seed": 4})
    node = ros.node("aloha_task_probe")
    status = Statuses(node, "/aloha_sim/task_status")
    ros.wait_for(lambda: status.last() is not None, 30.0, "a task status")
    cube = sample_cube_pose(4)
    last = status.last()
    assert (last.task, last.seed, last.reward, last.success) == ("lift_cube", 4, 0.0, False)
    np.testing.assert_allclose(last.values["cube"][:2], cube[:2], atol=1e-3)
    assert set_params(ros, node, "aloha_sim", episode_seed=9)[0].successful
    assert ros.call(node.create_client(Trigger, "/aloha_sim/reset_episode"), Trigger.Request(), timeout=20.0).success
    ros.wait_for(lambda: status.last().seed == 9, 10.0, "the status of seed 9")
    np.testing.assert_allclose(status.last().values["cube"][:2], sample_cube_pose(9)[:2], atol=1e-3)
