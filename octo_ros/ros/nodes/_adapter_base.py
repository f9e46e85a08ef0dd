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
Times given to the core are seconds on the node clock; stamps of chunks and states are converted
to the same seconds.

Safety limits are never taken from defaults: each node lists its limit parameters in
``LIMIT_PARAMETERS``; while any of them was not given (a parameter file that did not reach the
node, e.g. keyed for another namespace), the node previews in dry-run but refuses to arm.
Invalid values are refused by the core config dataclasses, so the node does not start.
"""
from __future__ import annotations

import json

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from octo_ros.control.chunking import ChunkExecutionConfig
from octo_ros.control.realtime import REALTIME_PRIORITY, validate_priority
from octo_ros.control.safety import ControlOutput, ControlStatus, SafetyConfig, reason_kind
from octo_ros.ros.messages import chunk_from_msg
from octo_ros.ros.support import (
    DECLARE_GIVEN,
    ERROR,
    OK,
    WARN,
    Diagnostics,
    WarningThrottle,
    declare_config,
    given_parameters,
    parameter,
)
from octo_ros.timebase import ns_to_seconds, stamp_to_ns
from octo_ros_msgs.msg import ActionChunk


def stamp_seconds(stamp, fallback: float) -> float:
    """A header stamp in seconds; ``fallback`` (the node's now) when the stamp is unset."""
    ns = stamp_to_ns(stamp)
    return ns_to_seconds(ns) if ns > 0 else fallback


def joint_index(names) -> dict[str, int]:
    """Joint name -> its index in a JointState; ValueError for duplicated names (which value is meant?)."""
    index = {str(n): i for i, n in enumerate(names)}
    if len(index) != len(names):
        dup = sorted({str(n) for n in names if list(names).count(n) > 1})
        raise ValueError(f"duplicated joint names {dup}")
    return index


def execution_config(node, defaults: ChunkExecutionConfig) -> ChunkExecutionConfig:
    """Chunk execution from parameters, defaulting to the robot's config (``defaults``)."""
    return declare_config(node, defaults, ("step_period_s", "mode", "exec_horizon", "ensemble_horizon", "exp_weight",
                                           "max_future_stamp_s", "reorder_action_dimensions"),
                          names={"mode": "execution_mode"})


def safety_config(node, defaults: SafetyConfig) -> SafetyConfig:
    return declare_config(node, defaults, ("chunk_timeout_s", "state_timeout_s"))


class AdapterNodeBase(Node):
    """Chunk input, operator services, status and diagnostics; subclasses own the robot side.

    Subclasses set ``self.adapter`` (the pure core), ``self.step_period_s`` and ``self.action_dim``
    and then call :meth:`start` with their control period.
    """

    adapter = None
    # the parameters that are safety limits (with the chunk and state timeouts every adapter has)
    LIMIT_PARAMETERS: tuple[str, ...] = ()

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **DECLARE_GIVEN, **kwargs)
        self.initial_dry_run = bool(parameter(self, "dry_run", SafetyConfig.dry_run))
        validate_priority(parameter(self, "realtime_priority", REALTIME_PRIORITY))  # run_node applies it
        self.warnings = WarningThrottle(self)
        self.diagnostics = Diagnostics(self)
        self.last_output: ControlOutput | None = None
        self.chunks_accepted = 0
        self.chunks_rejected = 0
        self.commands_sent = 0
        self.ticks = 0
        self.clamped_ticks = 0  # since the last diagnostics report: ticks whose command a safety limit changed
        self._last_reason_kind = ""
        self._tick_warnings: list[tuple[str, str]] = []  # logged off the control tick (logging blocks)
        self.scheduling = None  # set by run_node(realtime=True): what the OS granted the control loop

    # --------------------------------------------------------------- set-up
    def start(self, control_period_s: float) -> None:
        self.preview_setup()
        self.status_publisher = self.create_publisher(String, "~/status", 10)
        self.create_subscription(ActionChunk, "action_chunk", self._on_chunk, 10)
        self.create_subscription(ActionChunk, "teleop/action_chunk", self._on_chunk, 10)
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
        given = given_parameters(self)
        self.unset_limits = [n for n in ("chunk_timeout", "state_timeout", *self.LIMIT_PARAMETERS) if n not in given]
        if self.unset_limits:
            self.get_logger().error(f"safety limits not set: {', '.join(self.unset_limits)}; previewing with the "
                                    "core defaults, arming refused until they are given (config/<robot>.yaml)")
        if not self.initial_dry_run:
            reason = self.arming_refusal() or self.apply_dry_run(False)
            if reason:
                self.get_logger().error(f"dry_run:=false refused: {reason}; staying in dry-run")
        for line in self.adapter.describe():
            self.get_logger().info(line)

    def now_s(self) -> float:
        return ns_to_seconds(self.get_clock().now().nanoseconds)

    # --------------------------------------------------------------- hooks
    def preview_setup(self) -> None:
        raise NotImplementedError

    def control_cycle(self, now: float) -> ControlOutput:
        """One control period: step the core and send what it says to send."""
        raise NotImplementedError

    def arming_refusal(self) -> str:
        """Why the robot may not be armed whatever its state ('' when it may)."""
        if self.unset_limits:
            return f"safety limits not set ({', '.join(self.unset_limits)}): they are never taken from defaults"
        return ""

    def apply_dry_run(self, dry_run: bool) -> str:
        """Switch dry-run; '' on success, else why it was refused."""
        self.adapter.set_dry_run(dry_run)
        return ""

    def trigger_estop(self, reason: str) -> None:
        was_armed = not self.dry_run
        self.adapter.estop(reason)
        if was_armed:
            self.stop_motion()

    def stop_motion(self) -> None:
        """Make the robot stop where it is now (e-stop, shutdown). Sending less is not
        enough: a position-controlled driver keeps moving to the last goal it was given."""

    def reset_estop(self) -> str:
        self.adapter.reset_estop()
        return ""

    @property
    def dry_run(self) -> bool:
        return self.adapter.supervisor.dry_run

    def extra_diagnostics(self) -> dict:
        return {}

    def gripper_convention(self) -> str:
        """The gripper mapping in words, as logged at start (recorded with each episode)."""
        return self.adapter.gripper.describe()

    def effective_parameters(self) -> str:
        """Every parameter of the node with the value it runs with, as JSON (recorded with each episode)."""
        return json.dumps({name: p.value for name, p in sorted(self.get_parameters_by_prefix("").items())})

    def close(self) -> None:
        """Called once on shutdown, before the node is destroyed: an armed robot is stopped."""
        if not self.dry_run and not self.adapter.supervisor.estopped:
            self.stop_motion()

    # --------------------------------------------------------------- callbacks
    def _on_chunk(self, msg: ActionChunk) -> None:
        now = self.now_s()
        try:
            chunk = chunk_from_msg(msg)
        except ValueError as err:
            self.chunks_rejected += 1
            self.warnings.warn("chunk:malformed", f"action_chunk rejected: {err}")
            return
        if abs(chunk.step_period_s - self.step_period_s) > 1e-6:
            self.chunks_rejected += 1
            self.warnings.warn("chunk:step_period", f"action_chunk {chunk.sequence} rejected: step_period "
                               f"{chunk.step_period_s:g} s, this adapter executes {self.step_period_s:g} s steps")
            return
        result = self.adapter.add_chunk(chunk.actions, ns_to_seconds(chunk.stamp_ns), now, chunk.source,
                                        names=chunk.dimension_names)
        if result.accepted:
            self.chunks_accepted += 1
            if result.note:
                self.warnings.warn("chunk:note", f"action_chunk {chunk.sequence}: {result.note}")
        else:
            self.chunks_rejected += 1
            self.warnings.warn("chunk:" + " ".join(result.reason.split()[:3]),
                               f"action_chunk {chunk.sequence} rejected: {result.reason}")

    def _on_tick(self) -> None:
        now = self.now_s()
        out = self.control_cycle(now)
        self.ticks += 1
        if out.send:
            self.commands_sent += 1
        if out.notes:
            self.clamped_ticks += 1
        kind = reason_kind(out.reason)
        if out.status is not ControlStatus.MOVE and out.reason and kind != self._last_reason_kind:
            self._tick_warnings.append((f"{out.status.value}:{kind}", f"{out.status.value}: {out.reason}"))
        self._last_reason_kind = kind
        self.last_output = out
        self.status_publisher.publish(String(data=f"{out.status.value}: {out.reason}"))
        if out.target.size:
            self.publish_preview(out, now)

    def publish_preview(self, out: ControlOutput, now: float) -> None:
        raise NotImplementedError

    def _log_tick_warnings(self) -> None:
        pending, self._tick_warnings = self._tick_warnings, []
        for key, text in pending:
            self.warnings.warn(key, text)

    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name != "source":
                continue
            try:
                before = self.adapter.source
                self.adapter.set_source(param.value)
            except ValueError as err:
                return SetParametersResult(successful=False, reason=str(err))
            if param.value != before:
                self.get_logger().warning(f"chunk source {before} -> {param.value}: holding until its first chunk")
        return SetParametersResult(successful=True)

    def _on_set_dry_run(self, request, response):
        reason = (not request.data and self.arming_refusal()) or self.apply_dry_run(bool(request.data))
        response.success = not reason
        state = "ON (commands computed, not sent)" if self.dry_run else "OFF (commands go to the robot)"
        response.message = f"dry-run {state}" if not reason else f"refused: {reason}; dry-run {state}"
        if reason:  # one severity per logging call site: rclpy raises on a change
            self.get_logger().warning(response.message)
        else:
            self.get_logger().info(response.message)
        return response

    def _on_estop(self, request, response):
        self.trigger_estop("operator e-stop (~/estop)")
        response.success, response.message = True, "e-stop latched; call ~/reset_estop to resume"
        self.get_logger().error(response.message)
        return response

    def _on_reset_estop(self, request, response):
        reason = self.reset_estop()
        response.success = not reason
        response.message = "e-stop reset; holding at the measured state" if not reason else f"refused: {reason}"
        self.get_logger().warning(response.message)
        return response

    def _publish_diagnostics(self) -> None:
        out = self.last_output
        if out is None:
            level, message = WARN, "starting"
        else:
            level = {ControlStatus.MOVE: OK, ControlStatus.HOLD: WARN, ControlStatus.ESTOP: ERROR}[out.status]
            message = out.status.value + (f": {out.reason}" if out.reason else "")
        values = {"status": out.status.value if out else "none", "reason": out.reason if out else "",
                  "dry_run": self.dry_run, "source": self.adapter.source, "estopped": self.adapter.supervisor.estopped,
                  "chunks_accepted": self.chunks_accepted, "chunks_rejected": self.chunks_rejected,
                  "commands_sent": self.commands_sent, "ticks": self.ticks,
                  # recorded with the episode; `octo-ros review` plots the ticks with clamps
                  "safety_clamps": self.clamped_ticks, "last_clamp": "; ".join(out.notes) if out else "",
                  "scheduling": self.scheduling.describe() if self.scheduling else "not set"}
        self.clamped_ticks = 0
        values.update(self.extra_diagnostics())
        # evidence the recorder stores with each episode
        values.update(adapter_config=self.effective_parameters(), gripper_convention=self.gripper_convention())
        self.diagnostics.publish(level, message, values)
