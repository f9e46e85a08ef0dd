"""policy: one Octo checkpoint, loaded once, serving the robots in ``robots`` (robot namespaces;
'', the default, is the node's own relative names: one robot, as a local policy node). For robot
R: ``/R/observation_window`` -> ``/R/action_chunk``; the task from ``/R/policy/set_instruction``,
``/R/instruction``, ``/R/goal_image``, cleared by ``/R/policy/clear_task`` (a local node's names);
``R.dataset_statistics_key``, ``R.action_dimension_names`` (default: the node's). ``robots`` may be
set while it runs. Each robot's PolicyStatus on ``~/status`` (``header.frame_id``: the robot) and
``/R/policy/status``; ``/diagnostics`` per robot and the server's batch sizes. Core: inference.server.
"""
from __future__ import annotations

import dataclasses
import math

from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image

from octo_ros.inference import server as core
from octo_ros.inference.runtime import TaskError, log_text
from octo_ros.perception.image_codec import PerceptionInputError, decode_image_msg
from octo_ros.ros import support
from octo_ros.ros.messages import chunk_to_msg, policy_status_to_msg, window_from_msg
from octo_ros.ros.nodes._policy_endpoints import RobotEndpoints
from octo_ros_msgs.msg import ObservationWindow as ObservationWindowMsg
from octo_ros_msgs.msg import PolicyStatus


class PolicyNode(Node):
    def __init__(self, **kwargs):
        super().__init__("policy", **support.DECLARE_GIVEN, **kwargs)
        self.config = support.declare_config(self, core.PolicyConfig(), [f.name for f in dataclasses.fields(core.PolicyConfig)])
        policy, loaded, warning = core.load_policy(self.config)
        self.get_logger().info(loaded)
        if warning:
            self.get_logger().warning(warning)
        self.warnings = support.WarningThrottle(self)
        self.diagnostics = support.Diagnostics(self)
        self.server = core.PolicyServer(policy, self.config, self._publish_chunk, self._publish_status, self.warnings.warn)
        self.tasks_group = MutuallyExclusiveCallbackGroup()
        self.status_publisher = self.create_publisher(PolicyStatus, "~/status", 10)
        self.robots: dict[str, RobotEndpoints] = {}
        core.check_robot_names(self.config.robots)
        for name in self.config.robots:
            self._serve(name, self._robot_config(name))
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.create_timer(1.0, self._publish_statuses)
        self.server.start()

    # ------------------------------------------------------------------ robots joining and leaving
    def _robot_config(self, name: str, **changed) -> core.RobotConfig:
        """Robot ``name``'s settings: its parameters, else the node's (then ``changed``)."""
        config = core.RobotConfig.of(self.config)
        prefix = core.robot_parameter_prefix(name)
        given = support.config_parameters(self, config, core.ROBOT_FIELDS, prefix=prefix) if name else {}
        return dataclasses.replace(config, **{**given, **changed})

    def _serve(self, name: str, config: core.RobotConfig) -> None:
        described = self.server.serve(name, config)
        if name not in self.robots:
            self.robots[name] = RobotEndpoints(self, name)
        self.get_logger().info(f"serving {f'robot {name!r}' if name else 'this namespace'}: {described}")

    def _check_parameters(self, params) -> SetParametersResult:
        try:
            self.server.changes({p.name: p.value for p in params}, self._robot_config)
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        for name, config in self.server.changes({p.name: p.value for p in params}, self._robot_config).items():
            if config is not None:
                self._serve(name, config)
            elif name in self.robots:
                self.server.leave(name)
                self.robots.pop(name).destroy(self)
                self.get_logger().info(f"robot {name!r} left")

    # ------------------------------------------------------------------ input
    def task_input(self, robot: str, source: str, instruction: str | None = None, goal: Image | None = None,
                   clear: bool = False, response=None):
        """The one validation of a task, however it arrives: the task is set (or cleared), or
        nothing changes and the reason is logged (throttled per source); a service's ``response`` says which."""
        where = f" ({robot})" if robot else ""
        try:
            # a goal image is decoded no larger than the model's
            rgb = None if goal is None else decode_image_msg(goal, math.prod(self.server.goal_image_shape()[:2]))
            task = self.server.set_task(robot, instruction, rgb, clear)
        except (PerceptionInputError, TaskError) as err:
            success, message = False, f"{source}{where} rejected: {err}; task unchanged"
            self.warnings.warn(f"task:{robot}:{source}:{type(err).__name__}", message)
        else:
            self.get_logger().info(f"task{where}: {log_text(task.describe())}")
            self._publish_status(robot)
            success = True
            message = "task cleared: no actions until a new task is given" if clear else f"task: {log_text(task.describe())}"
        if response is not None:
            response.success, response.message = success, message
        return response

    def on_window(self, robot: str, msg: ObservationWindowMsg) -> None:
        try:
            self.server.put_window(robot, window_from_msg(msg))
        except (ValueError, PerceptionInputError) as err:
            self.warnings.warn(f"window:{robot}:{type(err).__name__}",
                               f"observation_window{f' ({robot})' if robot else ''}: {err}; window dropped")

    # ------------------------------------------------------------------ output
    def _publish_chunk(self, robot: str, chunk) -> None:
        endpoints = self.robots.get(robot)
        if endpoints is not None and self.context.ok():  # not after it left, nor while shutting down
            endpoints.chunks.publish(chunk_to_msg(chunk))

    def _publish_status(self, robot: str) -> None:
        status, endpoints = self.server.status(robot), self.robots.get(robot)
        if status is None or endpoints is None:
            return
        msg = policy_status_to_msg(status, self.server.policy.model_id, self.get_clock().now().to_msg())
        for publisher in endpoints.status_publishers:
            publisher.publish(msg)

    def _publish_statuses(self) -> None:
        for status in self.server.statuses():
            self._publish_status(status.name)
        self.diagnostics.publish_statuses(self.server.diagnostics(self.diagnostics.name))

    def close(self) -> None:
        self.server.close()


def main() -> None:
    # two threads: task services and observation windows are served while inference runs
    support.run_node(PolicyNode, "policy", threads=2)


if __name__ == "__main__":
    main()
