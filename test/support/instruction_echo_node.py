"""A child-process node for the interface tests: serves ~/set_instruction and, for
every accepted instruction, publishes an ActionChunk whose actions encode the
instruction's characters (so the receiver can check the payload end to end)."""
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from octo_ros_msgs.msg import ActionChunk
from octo_ros_msgs.srv import SetInstruction


class InstructionEcho(Node):
    def __init__(self):
        super().__init__("instruction_echo")
        self.sequence = 0
        self.publisher = self.create_publisher(ActionChunk, "chunks", 10)
        self.create_service(SetInstruction, "~/set_instruction", self.on_set_instruction)

    def on_set_instruction(self, request, response):
        text = request.instruction
        if not text.strip():
            response.success = False
            response.message = "instruction is empty"
            return response
        codes = [float(ord(c)) for c in text]
        chunk = ActionChunk()
        chunk.header.stamp = self.get_clock().now().to_msg()
        chunk.sequence = self.sequence
        chunk.task = f"language: {text}"
        chunk.horizon = len(codes)
        chunk.action_dim = 1
        chunk.dimension_names = ["char"]
        chunk.normalized = codes
        chunk.actions = [c * 2 for c in codes]
        self.publisher.publish(chunk)
        self.sequence += 1
        response.success = True
        response.message = f"published chunk {chunk.sequence}"
        return response


def main():
    rclpy.init(args=sys.argv)
    node = InstructionEcho()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
