"""The evaluator's ROS side (octo_ros.ros.evaluate): the operator of `octo-ros collect`
(task status, the services that lay out, arm and record) plus the adapter's status, the chunks,
the commands sent to the robot, the arm's reset and the instruction."""
from __future__ import annotations

import time

from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from std_msgs.msg import String

from octo_ros.evaluation import HoldTracker
from octo_ros.robots.bimanual.adapter import BimanualConfig
from octo_ros.robots.widowx.adapter import WidowXConfig
from octo_ros.ros.evaluate import LOG_NAME, NodeDied
from octo_ros.ros.graph import ADAPTERS, SIMULATORS
from octo_ros.ros.operator import Operator
from octo_ros.timebase import stamp_to_ns
from octo_ros_msgs.msg import ActionChunk


def widowx_driver_namespace(specs) -> str:
    """The xs_sdk namespace the graph's WidowX adapter drives (relative to the graph's)."""
    adapter = next(spec for spec in specs if spec.name == ADAPTERS["widowx"])
    return str(adapter.parameters.get("robot_name", WidowXConfig.robot_name)).strip("/")


class Evaluator(Operator):
    """This process's ROS side: the operator's (task status, services that lay out, arm and record)
    plus the adapter's status, the chunks and the commands, the arm's reset, the instruction."""

    def __init__(self, robot: str, graph):
        self.chunk_stamp_ns = 0
        self.commands = 0
        self.holds: HoldTracker | None = None
        self.known_dead: set[str] = set()  # deaths already reported: the recorder may still be asked to stop
        super().__init__(robot, graph, (ADAPTERS[robot], SIMULATORS[robot]), node_name="octo_ros_evaluate")
        self.node.create_subscription(String, f"{self.adapter}/status", self._on_adapter, 50)
        self.node.create_subscription(ActionChunk, "action_chunk", self._on_chunk, 10)
        adapter = next(s for s in graph.specs if s.name == ADAPTERS[robot])
        if robot == "bimanual":  # the adapter commands both followers every tick: count the left one's
            left = str(adapter.parameters.get("left_namespace", BimanualConfig().left.namespace)).strip("/")
            self.node.create_subscription(JointGroupCommand, f"{left}/commands/joint_group", self._on_command, 50)
            return
        commands = f"{widowx_driver_namespace(graph.specs)}/commands"
        self.node.create_subscription(JointGroupCommand, f"{commands}/joint_group", self._on_command, 50)
        self.joints = self.node.create_publisher(JointGroupCommand, f"{commands}/joint_group", 10)
        self.gripper = self.node.create_publisher(JointSingleCommand, f"{commands}/joint_single", 10)
        self.gripper_open_pwm = float(adapter.parameters.get("gripper_pwm", WidowXConfig().gripper.robot_open))

    def _on_adapter(self, msg) -> None:
        with self._lock:
            if self.holds is not None:
                self.holds.update(time.monotonic(), msg.data)

    def _on_chunk(self, msg) -> None:
        with self._lock:
            self.chunk_stamp_ns = max(self.chunk_stamp_ns, stamp_to_ns(msg.header.stamp))

    def _on_command(self, _msg) -> None:
        with self._lock:
            self.commands += 1

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def check_alive(self) -> None:
        """NodeDied when a node died that was not known dead already."""
        self.graph.check()
        if set(self.graph.failed) - self.known_dead:
            raise NodeDied(list(self.graph.failed))

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:g} s waiting for {what} (see {LOG_NAME})")
            time.sleep(0.01)

    def trigger(self, name: str) -> str:
        from std_srvs.srv import Trigger

        reply = self.call(Trigger, name, Trigger.Request())
        if not reply.success:
            raise RuntimeError(f"{name} refused: {reply.message}")
        return reply.message

    def move_arm(self, q) -> None:
        """WidowX: arm joints to ``q`` and the gripper open (PWM), as the demonstrations start."""
        self.joints.publish(JointGroupCommand(name="arm", cmd=[float(v) for v in q]))
        self.gripper.publish(JointSingleCommand(name="gripper", cmd=self.gripper_open_pwm))

    def instruct(self, instruction: str) -> None:
        from octo_ros_msgs.srv import SetInstruction

        reply = self.call(SetInstruction, "policy/set_instruction", SetInstruction.Request(instruction=instruction))
        if not reply.success:
            raise RuntimeError(f"the policy refused the instruction: {reply.message}")
