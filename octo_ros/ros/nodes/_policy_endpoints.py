"""The topics and services the policy node creates for one robot it serves (``/R/...``, or the
node's own relative names for ``R`` = '')."""
from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from octo_ros.ros import support
from octo_ros_msgs.msg import ActionChunk as ActionChunkMsg
from octo_ros_msgs.msg import ObservationWindow as ObservationWindowMsg
from octo_ros_msgs.msg import PolicyStatus
from octo_ros_msgs.srv import SetInstruction


class RobotEndpoints:
    """One served robot's topics and services: created when it joins, destroyed when it leaves."""

    def __init__(self, node, name: str):
        topics, private, group = f"/{name}/" if name else "", f"/{name}/policy/" if name else "~/", node.tasks_group
        latched, task = dict(qos_profile=support.LATCHED_QOS, callback_group=group), node.task_input
        self.chunks = node.create_publisher(ActionChunkMsg, topics + "action_chunk", support.CHUNK_QOS)
        own = [node.create_publisher(PolicyStatus, private + "status", 10)] if name else []
        self.status_publishers = [node.status_publisher, *own]  # ~/status, and /R/policy/status
        self.entities = [self.chunks, *own, node.create_subscription(
            ObservationWindowMsg, topics + "observation_window", lambda m: node.on_window(name, m), support.WINDOW_QOS),
            node.create_subscription(String, topics + "instruction", lambda m: task(name, "instruction topic", m.data),
                                     **latched),
            node.create_subscription(Image, topics + "goal_image", lambda m: task(name, "goal_image", goal=m), **latched),
            node.create_service(SetInstruction, private + "set_instruction", lambda request, response: task(
                name, "instruction (~/set_instruction)", request.instruction, response=response), callback_group=group),
            node.create_service(Trigger, private + "clear_task", lambda _, response: task(
                name, "~/clear_task", clear=True, response=response), callback_group=group)]

    def destroy(self, node: Node) -> None:
        for entity in self.entities:  # node.destroy_publisher, destroy_subscription, destroy_service
            getattr(node, f"destroy_{type(entity).__name__.lower()}")(entity)
