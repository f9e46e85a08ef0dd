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

from octo_ros.perception.freshness_log import FreshnessLog
from octo_ros.perception.image_codec import PerceptionInputError
from octo_ros.perception.observation import (
    CameraInputConfig,
    ObservationBuffer,
    ObservationConfig,
    ObservationStatus,
    ProprioLayout,
    StatusKind,
    stamp_to_ns,
)
from octo_ros.ros.messages import window_to_msg
from octo_ros.ros.support import (
    DECLARE_GIVEN,
    ERROR,
    OK,
    SENSOR_QOS,
    WARN,
    Diagnostics,
    WarningThrottle,
    config_parameters,
    optional_parameter,
    parameter,
    run_node,
)
from octo_ros.timebase import ns_to_seconds
from octo_ros_msgs.msg import ObservationWindow as ObservationWindowMsg


class ObservationBufferNode(Node):
    def __init__(self, **kwargs):
        super().__init__("observation_buffer", **DECLARE_GIVEN, **kwargs)
        inputs = parameter(self, "camera_inputs", ["image_primary"])
        checkpoint = parameter(self, "checkpoint", "")
        model_sizes = {}
        if checkpoint:
            # here, not at the top: it loads the model package (torch), for a checkpoint only
            from octo_ros.inference.checkpoint_info import checkpoint_image_sizes

            model_sizes = checkpoint_image_sizes(checkpoint)
        cameras = []
        for name in inputs:
            camera = CameraInputConfig.standard(name, parameter(self, f"cameras.{name}.topic", f"{name}/image_raw"))
            camera = replace(camera, **config_parameters(self, camera, ("average_crop",), prefix=f"cameras.{name}."),
                             **self._camera_size(name, model_sizes.get(name)))
            cameras.append(camera)
        layout = ProprioLayout.from_parameters({
            name: parameter(self, name, default) for name, default in (
                ("joint_state_topic", ""), ("joint_state_topics", [""]), ("joint_state_prefixes", [""]),
                ("proprio_joints", [""]))} | {"proprio_normalization": self._proprio_normalization()})
        self.proprio_joints = layout.joint_names
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
        self.windows_published = 0
        self.last_status: ObservationStatus | None = None
        self.freshness_log = FreshnessLog()

        for camera in cameras:
            name, topic = camera.input_name, camera.topic
            msg_type = CompressedImage if topic.rstrip("/").endswith("/compressed") else Image
            self.create_subscription(msg_type, topic, lambda msg, n=name, t=topic: self._on_image(n, t, msg), SENSOR_QOS)
        for source in config.joint_state_sources:
            self.create_subscription(JointState, source.topic, lambda msg, t=source.topic: self._on_joint_state(t, msg),
                                     SENSOR_QOS)
        self.publisher = self.create_publisher(ObservationWindowMsg, "observation_window", 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(1.0 / config.rate_hz, self._on_tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"windows of {config.window_size} steps at {config.rate_hz} Hz from "
            + ", ".join(f"{c.input_name} <- {c.topic}" for c in cameras)
            + "; joint states from " + ", ".join(f"{s.topic}" + (f" (as {s.prefix}*)" if s.prefix else "")
                                                 for s in config.joint_state_sources)
            + (f" (proprio: {', '.join(self.proprio_joints)})" if self.proprio_joints else "")
            + (f"; normalized [close, open]: {config.proprio_normalization}" if config.proprio_normalization else ""))

    def _camera_size(self, name: str, model_size: tuple[int, int] | None) -> dict:
        """``{height, width}`` as set, else the checkpoint's; {} for the core's default."""
        height = optional_parameter(self, f"cameras.{name}.height", Parameter.Type.INTEGER)
        width = optional_parameter(self, f"cameras.{name}.width", Parameter.Type.INTEGER)
        if (height is None) != (width is None):
            raise ValueError(f"set both cameras.{name}.height and cameras.{name}.width, or neither")
        if height is None:
            return {} if model_size is None else {"height": model_size[0], "width": model_size[1]}
        if model_size is not None and (height, width) != model_size:
            raise ValueError(f"cameras.{name} is {height}x{width} but the checkpoint takes "
                             f"{model_size[0]}x{model_size[1]} (height x width): leave the size unset")
        return {"height": height, "width": width}

    def _proprio_normalization(self) -> dict:
        """``proprio_normalization.<joint>: [close, open]`` as given (joints of ``proprio_joints`` only)."""
        joints = [j for j in parameter(self, "proprio_joints", [""]) if j]
        norm = {}
        for joint in self.get_parameters_by_prefix("proprio_normalization"):
            name = f"proprio_normalization.{joint}"
            if joint not in joints:
                continue
            try:
                norm[joint] = list(optional_parameter(self, name, Parameter.Type.DOUBLE_ARRAY))
            except ValueError as err:
                raise ValueError(f"{name} must be [close, open] as doubles, e.g. [0.0440, 0.0579]: {err}") from None
        unknown = sorted(f"proprio_normalization.{j}" for j in self.get_parameters_by_prefix("proprio_normalization")
                         if j not in joints)
        if unknown:
            raise ValueError(f"{unknown}: not joints of proprio_joints {joints}")
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
        stale = isinstance(result, ObservationStatus) and result.kind is StatusKind.STALE
        for level, line in self.freshness_log.update(ns_to_seconds(now_ns), (result.stream or "?") if stale else None,
                                                     result.reason if stale else ""):
            if level == "warning":  # one call site per severity: rclpy refuses a severity change at a call site
                self.get_logger().warning(line)
            else:
                self.get_logger().info(line)
        if isinstance(result, ObservationStatus):
            self.last_status = result
            return
        self.last_status = None
        self.publisher.publish(window_to_msg(result))
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
