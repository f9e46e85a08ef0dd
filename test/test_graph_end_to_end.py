"""`octo-ros launch <robot> --sim`: the whole graph (simulator → observation buffer →
Octo → adapter → simulator) runs over DDS for a few seconds, commands reach the
simulated robot and move it, and Ctrl-C brings everything down cleanly."""
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from geometry_msgs.msg import PoseStamped
from interbotix_xs_msgs.msg import JointGroupCommand
from sensor_msgs.msg import JointState
from support.ros_harness import REPO_ROOT

from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros_msgs.msg import ActionChunk
from octo_ros_msgs.srv import SetInstruction


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_untrained_checkpoint(tmp_path_factory.mktemp("e2e"), cameras=("primary",))


# robot -> (topic showing commands reaching the robot, its type, topic of the robot's motion, type)
ROBOTS = {
    "widowx": ("/wx250s/commands/joint_group", JointGroupCommand, "/wx250s/joint_states", JointState),
    "ur5": ("/ur5_adapter/command_preview", PoseStamped, "/tcp_pose", PoseStamped),
}


def _motion(msgs, msg_type):
    if msg_type is JointState:
        arm = [np.asarray(m.position[:6]) for m in msgs]
    else:
        arm = [np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]) for m in msgs]
    return float(np.abs(arm[-1] - arm[0]).max())


@pytest.mark.parametrize("robot", sorted(ROBOTS))
def test_launch_sim_graph_closes_the_loop(ros, checkpoint, robot):
    command_topic, command_type, state_topic, state_type = ROBOTS[robot]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "octo_ros.cli", "launch", robot, "--sim", f"checkpoint:={checkpoint}",
         "dry_run:=false", "dataset_statistics_key:=untrained"],  # image sizes and tokenizer: the checkpoint's
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = ros.node(f"e2e_{robot}")
    chunks, commands, states = [], [], []
    node.create_subscription(ActionChunk, "/action_chunk", chunks.append, 10)
    node.create_subscription(command_type, command_topic, commands.append, 10)
    node.create_subscription(state_type, state_topic, states.append, 10)
    client = node.create_client(SetInstruction, "/policy/set_instruction")
    try:
        reply = ros.call(client, SetInstruction.Request(instruction="pick up the spoon"), timeout=90)
        assert reply.success, reply.message
        ros.wait_for(lambda: len(chunks) >= 5, 60, f"action chunks on the {robot} graph")
        ros.wait_for(lambda: len(commands) >= 5, 30, f"commands reaching the simulated {robot}")
        start = len(states)
        time.sleep(3.0)
        assert _motion(states[start:], state_type) > 1e-4, f"the simulated {robot} did not move"
        children = psutil.Process(launcher.pid).children(recursive=True)
        assert len(children) >= 4, "observation_buffer, policy, adapter and simulator run as processes"
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, output[-3000:]
    tracebacks = [line for line in output.splitlines() if "Traceback" in line]
    assert not tracebacks, f"a node printed a traceback on a normal shutdown:\n{output[-6000:]}"
    assert "Ctrl-C: stopping the graph (robot side first)" in output
    assert f"[launch] started {robot}_adapter" in output
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"processes left running: {[p.pid for p in alive]}"
