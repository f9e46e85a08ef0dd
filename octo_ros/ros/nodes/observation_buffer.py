"""observation_buffer: camera frames + joint states → synchronised Octo observation windows.

Subscribes to one topic per model image input (sensor_msgs/Image, or
sensor_msgs/CompressedImage when the topic ends in /compressed; sensor-data QoS)
and to joint states: ``joint_state_topic``, or several topics ``joint_state_topics``
whose joint names get the matching ``joint_state_prefixes`` (e.g. two ALOHA followers
with equal joint names: ``left_``, ``right_``). ``proprio_joints`` (prefixed names)
selects the proprio vector; ``proprio_normalization.<joint>: [close, open]`` maps a
joint to (x - close) / (open - close). At ``rate_hz`` publishes ``observation_window``
(octo_ros_msgs/ObservationWindow) when every stream is fresh, and nothing
otherwise. ``~/reset`` (std_srvs/Trigger) starts a new window (padded again).
Each camera is resized to ``cameras.<input>.{height,width}`` when set, else to the size
the ``checkpoint``'s example batch gives that input, else to Octo's default for it; a size
set against the checkpoint's is refused (the model cannot take it).
"""
from __future__ import annotations

import threading
from dataclasses import replace

from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import Trigger

from octo_ros.perception.buffer_status import BufferStatus, camera_size, check_normalized_joints, describe
from octo_ros.perception.image_codec import PerceptionInputError
from octo_ros.perception.observation import (
    CameraInputConfig,
    ObservationBuffer,
    ObservationConfig,
    ObservationStatus,
    ProprioLayout,
    stamp_to_ns,
)
from octo_ros.ros.messages import window_to_msg
from octo_ros.ros.support import (
    DECLARE_GIVEN,
    LEVELS,
    SENSOR_QOS,
    WINDOW_QOS,
    Diagnostics,
    WarningThrottle,
    config_parameters,
    optional_parameter,
    parameter,
    run_node,
)
from octo_ros_msgs.msg import ObservationWindow as ObservationWindowMsg


class ObservationBufferNode(Node):
    def __init__(self, **kwargs):
        super().__init__("observation_buffer", **DECLARE_GIVEN, **kwargs)
        inputs = parameter(self, "camera_inputs", ["image_primary"])
        checkpoint = parameter(self, "checkpoint", "")
        model_sizes, model_crops = {}, {}
        if checkpoint:
            # here, not at the top: it loads the model package (torch), for a checkpoint only
            from octo_ros.inference.checkpoint_info import checkpoint_average_crop, checkpoint_image_sizes

            model_sizes, model_crops = checkpoint_image_sizes(checkpoint), checkpoint_average_crop(checkpoint)
        cameras = []
        for name in inputs:
            camera = CameraInputConfig.standard(name, parameter(self, f"cameras.{name}.topic", f"{name}/image_raw"))
            if name in model_crops:  # the checkpoint says how it was trained; a given parameter still wins
                camera = replace(camera, average_crop=model_crops[name])
            camera = replace(camera, **config_parameters(self, camera, ("average_crop",), prefix=f"cameras.{name}."),
                             **self._camera_size(name, model_sizes.get(name)))
            cameras.append(camera)
        layout = ProprioLayout.from_parameters({
            name: parameter(self, name, default) for name, default in (
                ("joint_state_topic", ""), ("joint_state_topics", [""]), ("joint_state_prefixes", [""]),
                ("proprio_joints", [""]))} | {"proprio_normalization": self._proprio_normalization()})
        config = ObservationConfig(
            cameras=tuple(cameras), joint_names=layout.joint_names, joint_state_sources=layout.sources,
            proprio_normalization=layout.normalization,
            **config_parameters(self, ObservationConfig, ("rate_hz", "window_size", "slop_ns", "max_image_age_ns",
                                                          "max_joint_state_age_ns", "max_joint_lag_ns",
                                                          "max_future_stamp_ns", "max_image_pixels")))
        self.buffer = ObservationBuffer(config)
        self._lock = threading.Lock()
        self.warnings = WarningThrottle(self)
        self.diagnostics = Diagnostics(self)
        self.status = BufferStatus()

        for camera in cameras:
            name, topic = camera.input_name, camera.topic
            msg_type = CompressedImage if topic.rstrip("/").endswith("/compressed") else Image
            self.create_subscription(msg_type, topic, lambda msg, n=name, t=topic: self._on_image(n, t, msg), SENSOR_QOS)
        for source in config.joint_state_sources:
            self.create_subscription(JointState, source.topic, lambda msg, t=source.topic: self._on_joint_state(t, msg),
                                     SENSOR_QOS)
        self.publisher = self.create_publisher(ObservationWindowMsg, "observation_window", WINDOW_QOS)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(1.0 / config.rate_hz, self._on_tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(describe(config))

    def _camera_size(self, name: str, model_size: tuple[int, int] | None) -> dict:
        """``{height, width}`` as set, else the checkpoint's; {} for the core's default."""
        return camera_size(name, optional_parameter(self, f"cameras.{name}.height", Parameter.Type.INTEGER),
                           optional_parameter(self, f"cameras.{name}.width", Parameter.Type.INTEGER), model_size)

    def _proprio_normalization(self) -> dict:
        """``proprio_normalization.<joint>: [close, open]`` as given (joints of ``proprio_joints`` only)."""
        joints = [j for j in parameter(self, "proprio_joints", [""]) if j]
        given, norm = self.get_parameters_by_prefix("proprio_normalization"), {}
        for joint in (j for j in given if j in joints):
            name = f"proprio_normalization.{joint}"
            try:
                norm[joint] = list(optional_parameter(self, name, Parameter.Type.DOUBLE_ARRAY))
            except ValueError as err:
                raise ValueError(f"{name} must be [close, open] as doubles, e.g. [0.0440, 0.0579]: {err}") from None
        check_normalized_joints(given, joints)
        return norm

    def _on_image(self, input_name: str, topic: str, msg) -> None:
        try:
            with self._lock:
                self.buffer.add_image_msg(input_name, msg, now_ns=self.get_clock().now().nanoseconds)
        except PerceptionInputError as err:
            self.warnings.warn(f"{topic}:{type(err).__name__}", f"{err}; frame dropped")

    def _on_joint_state(self, topic: str, msg: JointState) -> None:
        try:
            with self._lock:
                self.buffer.add_joint_state(stamp_to_ns(msg.header.stamp), msg.name, msg.position, topic,
                                            now_ns=self.get_clock().now().nanoseconds)
        except PerceptionInputError as err:
            self.warnings.warn(f"{topic}:{type(err).__name__}", f"{err}; joint state dropped")

    def _on_reset(self, request, response):
        with self._lock:
            self.buffer.reset()  # frames, last stamps and window: no earlier message blocks the streams
        response.success = True
        response.message = "observation buffer reset: frames, joint states and the window cleared"
        return response

    def _on_tick(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        with self._lock:
            result = self.buffer.assemble(now_ns)
        for level, line in self.status.tick(now_ns, result):
            if level == "warning":  # one call site per severity: rclpy refuses a severity change at a call site
                self.get_logger().warning(line)
            else:
                self.get_logger().info(line)
        if not isinstance(result, ObservationStatus):
            self.publisher.publish(window_to_msg(result))

    def _publish_diagnostics(self) -> None:
        level, message, values = self.status.diagnostics(self.buffer.drop_counts)
        self.diagnostics.publish(LEVELS[level], message, values)


def main() -> None:
    run_node(ObservationBufferNode, "observation_buffer")


if __name__ == "__main__":
    main()
