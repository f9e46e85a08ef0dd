"""observation_buffer: camera frames + joint states → synchronised Octo observation windows.

Subscribes to one topic per model image input (sensor_msgs/Image, or
sensor_msgs/CompressedImage when the topic ends in /compressed; sensor-data QoS)
and to joint states; at ``rate_hz`` publishes ``observation_window``
(octo_ros_msgs/ObservationWindow) when every stream is fresh, and nothing
otherwise. ``~/reset`` (std_srvs/Trigger) starts a new window (padded again).
"""
from __future__ import annotations

import threading

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import Trigger

from octo_ros.messages import window_to_msg
from octo_ros.perception.observation import (
    ObservationBuffer,
    ObservationConfig,
    ObservationStatus,
    StatusKind,
    stamp_to_ns,
)
from octo_ros.perception.image_codec import PerceptionInputError
from octo_ros.ros_support import ERROR, OK, SENSOR_QOS, WARN, Diagnostics, WarningThrottle, run_node
from octo_ros_msgs.msg import ObservationWindow as ObservationWindowMsg


class ObservationBufferNode(Node):
    def __init__(self, **kwargs):
        super().__init__("observation_buffer", **kwargs)
        inputs = self.declare_parameter("camera_inputs", ["image_primary"]).value
        cameras = {}
        for name in inputs:
            cameras[name] = {
                "topic": self.declare_parameter(f"cameras.{name}.topic", f"{name}/image_raw").value,
                "height": self.declare_parameter(f"cameras.{name}.height", 256 if name == "image_primary" else 128).value,
                "width": self.declare_parameter(f"cameras.{name}.width", 256 if name == "image_primary" else 128).value,
                "average_crop": self.declare_parameter(f"cameras.{name}.average_crop", name == "image_primary").value,
            }
        joint_topic = self.declare_parameter("joint_state_topic", "joint_states").value
        self.proprio_joints = tuple(self.declare_parameter("proprio_joints", [""]).value)
        if self.proprio_joints == ("",):
            self.proprio_joints = ()
        config = ObservationConfig.from_dict({
            "rate_hz": self.declare_parameter("rate_hz", 5.0).value,
            "window_size": self.declare_parameter("window_size", 2).value,
            "slop_s": self.declare_parameter("slop_s", 0.02).value,
            "max_image_age_s": self.declare_parameter("max_image_age_s", 0.5).value,
            "max_joint_state_age_s": self.declare_parameter("max_joint_state_age_s", 0.25).value,
            "max_joint_lag_s": self.declare_parameter("max_joint_lag_s", 0.1).value,
            "cameras": cameras,
            "joint_state": {"topic": joint_topic, "joints": list(self.proprio_joints)},
        })
        self.buffer = ObservationBuffer(config)
        self._lock = threading.Lock()
        self.warnings = WarningThrottle(self)
        self.diagnostics = Diagnostics(self)
        self.windows_published = 0
        self.last_status: ObservationStatus | None = None

        for name, spec in cameras.items():
            topic = spec["topic"]
            msg_type = CompressedImage if topic.rstrip("/").endswith("/compressed") else Image
            self.create_subscription(msg_type, topic, lambda msg, n=name, t=topic: self._on_image(n, t, msg), SENSOR_QOS)
        self.create_subscription(JointState, joint_topic, self._on_joint_state, SENSOR_QOS)
        self.publisher = self.create_publisher(ObservationWindowMsg, "observation_window", 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(1.0 / config.rate_hz, self._on_tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"windows of {config.window_size} steps at {config.rate_hz} Hz from "
            + ", ".join(f"{n} <- {c['topic']}" for n, c in cameras.items())
            + f"; joint states from {joint_topic}" + (f" (proprio: {', '.join(self.proprio_joints)})" if self.proprio_joints else ""))

    def _on_image(self, input_name: str, topic: str, msg) -> None:
        try:
            with self._lock:
                self.buffer.add_image_msg(input_name, msg)
        except PerceptionInputError as err:
            self.warnings.warn(f"{topic}:{type(err).__name__}", f"{err}; frame dropped")

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            with self._lock:
                self.buffer.add_joint_state(stamp_to_ns(msg.header.stamp), msg.name, msg.position)
        except PerceptionInputError as err:
            topic = self.buffer.config.joint_state_topic
            self.warnings.warn(f"{topic}:{type(err).__name__}", f"{err}; joint state dropped")

    def _on_reset(self, request, response):
        with self._lock:
            self.buffer.restart_window()
        response.success = True
        response.message = "observation window restarted"
        return response

    def _on_tick(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        with self._lock:
            result = self.buffer.assemble(now_ns)
        if isinstance(result, ObservationStatus):
            if result.kind is StatusKind.STALE and (self.last_status is None or self.last_status.kind is not StatusKind.STALE):
                self.get_logger().warning(f"observation stale, publishing nothing: {result.reason}")
            self.last_status = result
            return
        if self.last_status is not None and self.last_status.kind is StatusKind.STALE:
            self.get_logger().info("observation streams fresh again: publishing windows")
        self.last_status = None
        self.publisher.publish(window_to_msg(result, self.proprio_joints))
        self.windows_published += 1

    def _publish_diagnostics(self) -> None:
        status = self.last_status
        if status is None:
            level, message = (OK, "publishing windows") if self.windows_published else (WARN, "waiting for data")
        elif status.kind is StatusKind.STALE:
            level, message = ERROR, f"stale: {status.reason}"
        else:
            level, message = WARN, str(status)
        values = {"windows_published": self.windows_published}
        values.update({f"dropped {stream}": n for stream, n in self.buffer.drop_counts.items()})
        self.diagnostics.publish(level, message, values)


def main() -> None:
    run_node(ObservationBufferNode, "observation_buffer")


if __name__ == "__main__":
    main()
