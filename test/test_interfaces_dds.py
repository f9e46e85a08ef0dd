"""The project's own interfaces cross a process boundary over DDS."""
import numpy as np

from octo_ros_msgs.msg import ActionChunk
from octo_ros_msgs.srv import SetInstruction


def test_service_and_chunk_cross_processes(ros):
    ros.spawn("instruction_echo", ["test/support/instruction_echo_node.py"])
    node = ros.node("tester")
    received: list[ActionChunk] = []
    node.create_subscription(ActionChunk, "chunks", received.append, 10)
    client = node.create_client(SetInstruction, "instruction_echo/set_instruction")
    ros.wait_for(lambda: node.count_publishers("chunks") == 1, 15, "the echo node's publisher")

    response = ros.call(client, SetInstruction.Request(instruction="pick up the spoon"))
    assert response.success, response.message
    ros.wait_for(lambda: len(received) == 1, 10, "the chunk published for the instruction")

    chunk = received[0]
    assert chunk.task == "language: pick up the spoon"
    assert (chunk.horizon, chunk.action_dim) == (len("pick up the spoon"), 1)
    np.testing.assert_array_equal(np.asarray(chunk.normalized), [ord(c) for c in "pick up the spoon"])
    np.testing.assert_array_equal(np.asarray(chunk.actions), 2 * np.asarray(chunk.normalized))
    assert chunk.header.stamp.sec > 0


def test_service_rejects_bad_request_and_keeps_answering(ros):
    ros.spawn("instruction_echo", ["test/support/instruction_echo_node.py"])
    node = ros.node("tester")
    client = node.create_client(SetInstruction, "instruction_echo/set_instruction")

    rejected = ros.call(client, SetInstruction.Request(instruction="   "), timeout=15)
    assert not rejected.success
    assert rejected.message == "instruction is empty"

    accepted = ros.call(client, SetInstruction.Request(instruction="open the drawer"))
    assert accepted.success
    assert accepted.message == "published chunk 0"
