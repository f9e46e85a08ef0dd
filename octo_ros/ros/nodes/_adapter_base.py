"""What the three robot adapter nodes (widowx_adapter, bimanual_adapter, ur5_adapter) share.

Each adapter node:
  sub ``action_chunk``        octo_ros_msgs/ActionChunk → ``adapter.add_chunk`` (rejections logged, throttled)
  sub ``teleop/action_chunk`` the same, from the teleop node
  param ``source``            ``policy`` (default) or ``teleop``: whose chunks are executed (by
                              ``ActionChunk.source``); settable at run time, a switch holds first
  a control timer on the node clock (sim time works) → ``step(now)`` → robot commands only when ``out.send``
  pub ``~/command_preview``   what would be sent, every tick (dry-run or not)
  pub ``~/status``            std_msgs/String ``"<move|hold|estop>: <reason>"``, every tick
  srv ``~/set_dry_run``       std_srvs/SetBool (dry-run is on at start unless ``dry_run:=false``)
  srv ``~/estop``, ``~/reset_estop``  std_srvs/Trigger; the e-stop latches until reset
  pub ``/diagnostics``        at 1 Hz
Times given to the core are seconds on the node clock (stamps converted to the same). Safety limits
are never taken from defaults: while any of ``LIMIT_PARAMETERS`` was not given (a parameter file
that did not reach the node), the node previews in dry-run but refuses to arm. Invalid values are
refused by the core config dataclasses, so the node does not start.
"""
from __future__ import annotations

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from octo_ros.control.operation import TIMEOUT_LIMITS, AdapterOperation
from octo_ros.control.realtime import REALTIME_PRIORITY, validate_priority
from octo_ros.control.safety import SafetyConfig
from octo_ros.ros.messages import chunk_from_msg
from octo_ros.ros.support import (
    CONTROL_LEVELS,
    DECLARE_GIVEN,
    Diagnostics,
    WarningThrottle,
    given_parameters,
    parameter,
    parameters_json,
    watch_chunk_liveliness,
)
from octo_ros.timebase import ns_to_seconds
from octo_ros_msgs.msg import ActionChunk


class AdapterNodeBase(Node):
    """Chunk input, operator services, status and diagnostics; subclasses own the robot side: they
    set ``PREVIEW_TYPE``, ``self.adapter`` (the pure core) and ``self.step_period_s``, define
    ``control_cycle(now) -> ControlOutput``, ``publish_preview(out, now)``, ``stop_motion()`` (stop
    where the robot is now: sending less is not enough, a position-controlled driver keeps moving to
    its last goal) and ``extra_diagnostics() -> dict``, then call :meth:`start`. The logic is
    :class:`~octo_ros.control.operation.AdapterOperation`'s (``self.operation``).
    """

    adapter = None
    robot = None  # what arms and resets the robot when it has checks of its own (AdapterOperation's ``robot``)
    # the parameters that are safety limits (with the chunk and state timeouts every adapter has)
    LIMIT_PARAMETERS: tuple[str, ...] = ()

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **DECLARE_GIVEN, **kwargs)
        self.initial_dry_run = bool(parameter(self, "dry_run", SafetyConfig.dry_run))
        validate_priority(parameter(self, "realtime_priority", REALTIME_PRIORITY))  # run_node applies it
        self.warnings = WarningThrottle(self)
        self.diagnostics = Diagnostics(self)
        self.scheduling = None  # set by run_node(realtime=True): what the OS granted the control loop

    # --------------------------------------------------------------- set-up
    def start(self, control_period_s: float) -> None:
        unset = [n for n in (*TIMEOUT_LIMITS, *self.LIMIT_PARAMETERS) if n not in given_parameters(self)]
        self.operation = AdapterOperation(self.adapter, self.step_period_s, unset, self.robot)
        self.preview_pub = self.create_publisher(self.PREVIEW_TYPE, "~/command_preview", 10)
        self.status_publisher = self.create_publisher(String, "~/status", 10)
        for topic in ("action_chunk", "teleop/action_chunk"):
            self.create_subscription(ActionChunk, topic, self._on_chunk, 10)
        watch_chunk_liveliness(self, "action_chunk", self._on_policy_liveliness)
        # A parameter, not a service: it is set from YAML/launch like every other setting, read back
        # with `ros2 param get`, and changed with `ros2 param set` (std types only, no new srv).
        self.adapter.set_source(parameter(self, "source", self.adapter.source))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_service(SetBool, "~/set_dry_run", self._on_set_dry_run)
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset_estop", self._on_reset_estop)
        self.create_timer(control_period_s, self._on_tick)
        self.create_timer(0.2, self._log_tick_warnings)
        self.create_timer(1.0, self._publish_diagnostics)
        for error in self.operation.start_errors(self.initial_dry_run, self.now_s()):
            self.get_logger().error(error)
        for line in self.adapter.describe():
            self.get_logger().info(line)

    @property
    def unset_limits(self) -> list[str]:
        return self.operation.unset_limits

    def now_s(self) -> float:
        return ns_to_seconds(self.get_clock().now().nanoseconds)

    # --------------------------------------------------------------- hooks
    @property
    def dry_run(self) -> bool:
        return self.adapter.supervisor.dry_run

    def close(self) -> None:
        """Called once on shutdown, before the node is destroyed: an armed robot is stopped."""
        self.operation.stop_if_armed(self.stop_motion)

    # --------------------------------------------------------------- callbacks
    def _on_chunk(self, msg: ActionChunk) -> None:
        now = self.now_s()
        try:
            warning = self.operation.add_chunk(chunk_from_msg(msg), now)
        except ValueError as err:
            warning = self.operation.malformed_chunk(err)
        if warning:
            self.warnings.warn(*warning)

    def _on_policy_liveliness(self, info) -> None:
        warning = self.operation.policy_liveliness(info.alive_count, info.alive_count_change)
        if warning:
            self.get_logger().warn(warning)

    def _on_tick(self) -> None:
        now = self.now_s()
        out = self.control_cycle(now)
        self.status_publisher.publish(String(data=self.operation.record_tick(out)))
        if out.target.size:
            self.publish_preview(out, now)

    def _log_tick_warnings(self) -> None:
        for key, text in self.operation.take_tick_warnings():
            self.warnings.warn(key, text)

    def _on_set_parameters(self, params) -> SetParametersResult:
        refusal, switches = self.operation.source_parameters(params)
        for switched in switches:
            self.get_logger().warning(switched)
        return SetParametersResult(successful=not refusal, reason=refusal)

    def _on_set_dry_run(self, request, response):
        response.success, response.message = self.operation.request_dry_run(bool(request.data), self.now_s())
        if response.success:  # one severity per logging call site: rclpy raises on a change
            self.get_logger().info(response.message)
        else:
            self.get_logger().warning(response.message)
        return response

    def _on_estop(self, request, response):
        response.success, response.message = self.operation.operator_estop(self.stop_motion)
        self.get_logger().error(response.message)
        return response

    def _on_reset_estop(self, request, response):
        response.success, response.message = self.operation.request_reset_estop()
        self.get_logger().warning(response.message)
        return response

    def _publish_diagnostics(self) -> None:
        status, message, values = self.operation.diagnostics(self.scheduling.describe() if self.scheduling else "not set")
        values.update(self.extra_diagnostics())
        # evidence the recorder stores with each episode
        values.update(adapter_config=parameters_json(self), gripper_convention=self.adapter.gripper_convention())
        self.diagnostics.publish(CONTROL_LEVELS[status], message, values)
