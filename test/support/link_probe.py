"""Run inside the robot's network namespace (where the test's own nodes cannot see): sets the
policy's instruction across the link, then writes one JSON line per adapter status, action chunk,
joint command and joint state it receives, each with its wall-clock receive time, and once the QoS
the window and chunk endpoints offer, until SIGINT.

    python -m support.link_probe OUT.jsonl INSTRUCTION
"""
from __future__ import annotations

import json
import sys
import time

from interbotix_xs_msgs.msg import JointGroupCommand
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from octo_ros.ros.support import run_node
from octo_ros.timebase import ns_to_seconds, stamp_to_ns
from octo_ros_msgs.msg import ActionChunk
from octo_ros_msgs.srv import SetInstruction


class LinkProbe(Node):
    def __init__(self):
        super().__init__("link_probe")
        out_path, self.instruction = sys.argv[1], sys.argv[2]
        self.out = open(out_path, "w", buffering=1)
        self.create_subscription(String, "/widowx_adapter/status", self._on_status, 50)
        self.create_subscription(ActionChunk, "/action_chunk", self._on_chunk, 50)
        self.create_subscription(JointGroupCommand, "/wx250s/commands/joint_group", self._on_command, 50)
        self.create_subscription(JointState, "/wx250s/joint_states", self._on_state, 50)
        self.qos_written = False
        self.create_timer(1.0, self._write_qos)
        self.client = self.create_client(SetInstruction, "/policy/set_instruction")
        self.pending = None
        self.timer = self.create_timer(0.5, self._set_instruction)

    def _write(self, kind: str, **values) -> None:
        self.out.write(json.dumps({"kind": kind, "t": time.time(), **values}) + "\n")

    def _set_instruction(self) -> None:  # until the policy across the link has said yes
        if self.pending is None and self.client.service_is_ready():
            self.pending = self.client.call_async(SetInstruction.Request(instruction=self.instruction))
        elif self.pending is not None and self.pending.done():
            reply = self.pending.result()
            self._write("instruction", success=bool(reply and reply.success))
            if reply and reply.success:
                self.destroy_timer(self.timer)
            self.pending = None

    def _write_qos(self) -> None:
        """Reliability and durability as discovery reports them (history depth is not announced)."""
        endpoints = {"window_publishers": self.get_publishers_info_by_topic("/observation_window"),
                     "window_subscriptions": self.get_subscriptions_info_by_topic("/observation_window"),
                     "chunk_publishers": self.get_publishers_info_by_topic("/action_chunk")}
        if self.qos_written or not all(endpoints.values()):
            return
        self.qos_written = True
        self._write("qos", **{key: [{"node": e.node_name, "reliability": e.qos_profile.reliability.name,
                                     "durability": e.qos_profile.durability.name} for e in found]
                              for key, found in endpoints.items()})

    def _on_state(self, msg: JointState) -> None:
        self._write("state", names=list(msg.name))

    def _on_status(self, msg: String) -> None:
        self._write("status", status=msg.data)

    def _on_chunk(self, msg: ActionChunk) -> None:
        self._write("chunk", stamp=ns_to_seconds(stamp_to_ns(msg.header.stamp)), sequence=int(msg.sequence))

    def _on_command(self, msg: JointGroupCommand) -> None:
        self._write("command", cmd=[float(v) for v in msg.cmd])

    def close(self) -> None:
        self.out.close()


if __name__ == "__main__":
    run_node(LinkProbe, "link_probe")
