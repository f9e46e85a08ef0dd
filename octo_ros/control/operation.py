"""What every adapter node does around its core (:class:`~octo_ros.control.adapter.AdapterBase`),
without ROS: received chunks checked and handed to the core, each control tick counted, the
operator's requests answered in words, and the diagnostics an adapter reports.

Warnings come back as ``(key, text)`` for the node's throttled log (one key per kind of problem);
answers as ``(success, message)``. The node keeps the ROS side: topics, services, the control
timer and what it sends to its robot.
"""
from __future__ import annotations

from octo_ros.control.safety import ControlOutput, ControlStatus, reason_kind
from octo_ros.datatypes import POLICY_SOURCE, ActionChunk
from octo_ros.timebase import ns_to_seconds

Warning = tuple[str, str]

# the safety-limit parameters every adapter has (each robot adds its own)
TIMEOUT_LIMITS = ("chunk_timeout", "state_timeout")


def joint_index(names) -> dict[str, int]:
    """Joint name -> its index in a JointState; ValueError for duplicated names (which value is meant?)."""
    index = {str(n): i for i, n in enumerate(names)}
    if len(index) != len(names):
        dup = sorted({str(n) for n in names if list(names).count(n) > 1})
        raise ValueError(f"duplicated joint names {dup}")
    return index


class AdapterOperation:
    """Chunk intake, tick accounting, operator answers and diagnostics of one adapter core.

    ``unset_limits``: the safety-limit parameters the node was not given; while any is missing the
    robot previews in dry-run and arming is refused (limits are never taken from defaults).
    ``robot``: what arms and resets a robot that has its own checks (a UR's pre-flight checks):
    ``set_dry_run(dry_run, now)`` and ``reset_estop()``, each '' or why it refused; None: the core alone."""

    def __init__(self, adapter, step_period_s: float, unset_limits=(), robot=None):
        self.adapter = adapter
        self.robot = robot
        self.step_period_s = step_period_s
        self.unset_limits = list(unset_limits)
        self.last_output: ControlOutput | None = None
        self.chunks_accepted = 0
        self.chunks_rejected = 0
        self.commands_sent = 0
        self.ticks = 0
        self.clamped_ticks = 0  # since the last diagnostics report: ticks whose command a safety limit changed
        self._last_reason_kind = ""
        self._tick_warnings: list[Warning] = []  # logged off the control tick (logging blocks)

    @property
    def dry_run(self) -> bool:
        return self.adapter.supervisor.dry_run

    # --------------------------------------------------------------- limits
    def unset_limits_error(self) -> str:
        """The start-up error while safety limits were not given ('' when all were)."""
        if not self.unset_limits:
            return ""
        return (f"safety limits not set: {', '.join(self.unset_limits)}; previewing with the core defaults, "
                "arming refused until they are given (config/<robot>.yaml)")

    def arming_refusal(self) -> str:
        """Why the robot may not be armed whatever its state ('' when it may)."""
        if self.unset_limits:
            return f"safety limits not set ({', '.join(self.unset_limits)}): they are never taken from defaults"
        return ""

    def start_errors(self, dry_run: bool, now: float) -> list[str]:
        """The errors to log at start: limits not given, and (``dry_run`` false) why the robot could not be armed."""
        errors = [self.unset_limits_error()]
        if not dry_run:
            reason = self.arming_refusal() or self._switch_dry_run(False, now)
            errors.append(f"dry_run:=false refused: {reason}; staying in dry-run" if reason else "")
        return [e for e in errors if e]

    # --------------------------------------------------------------- chunks
    def malformed_chunk(self, err: ValueError) -> Warning:
        self.chunks_rejected += 1
        return "chunk:malformed", f"action_chunk rejected: {err}"

    def add_chunk(self, chunk: ActionChunk, now: float) -> Warning | None:
        """Hand a received chunk to the core at ``now``; the warning to log, if any."""
        if abs(chunk.step_period_s - self.step_period_s) > 1e-6:
            self.chunks_rejected += 1
            return "chunk:step_period", (f"action_chunk {chunk.sequence} rejected: step_period "
                                         f"{chunk.step_period_s:g} s, this adapter executes {self.step_period_s:g} s steps")
        result = self.adapter.add_chunk(chunk.actions, ns_to_seconds(chunk.stamp_ns), now, chunk.source,
                                        names=chunk.dimension_names)
        if result.accepted:
            self.chunks_accepted += 1
            return ("chunk:note", f"action_chunk {chunk.sequence}: {result.note}") if result.note else None
        self.chunks_rejected += 1
        return "chunk:" + " ".join(result.reason.split()[:3]), f"action_chunk {chunk.sequence} rejected: {result.reason}"

    def set_source(self, source: str) -> str:
        """Switch the chunk source (ValueError for an unknown one); the warning text when it changed, else ''."""
        before = self.adapter.source
        self.adapter.set_source(source)
        return f"chunk source {before} -> {source}: holding until its first chunk" if source != before else ""

    def source_parameters(self, params) -> tuple[str, list[str]]:
        """Apply a ``source`` in a parameter change (objects with ``name`` and ``value``): (why it was
        refused, '' when it was not; the warnings of the switches made before)."""
        switches = []
        for param in params:
            if param.name != "source":
                continue
            try:
                switched = self.set_source(param.value)
            except ValueError as err:
                return str(err), switches
            if switched:
                switches.append(switched)
        return "", switches

    def policy_liveliness(self, alive_count: int, alive_count_change: int) -> str:
        """A liveliness change of the policy's chunk publishers: the last one lost is a cut link or a
        dead policy, and the core drops its plan and holds. The warning to log, '' when none was lost."""
        if alive_count == 0 and alive_count_change < 0:
            why = "policy chunk publisher lost (DDS liveliness: link down or policy gone)"
            self.adapter.chunk_source_lost(POLICY_SOURCE, why)
            return f"hold: {why}"
        return ""

    # --------------------------------------------------------------- ticks
    def record_tick(self, out: ControlOutput) -> str:
        """Count one control tick's output; its ``~/status`` text. A new kind of hold or e-stop
        reason is queued for :meth:`take_tick_warnings`."""
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
        return f"{out.status.value}: {out.reason}"

    def take_tick_warnings(self) -> list[Warning]:
        pending, self._tick_warnings = self._tick_warnings, []
        return pending

    # --------------------------------------------------------------- operator
    def dry_run_answer(self, reason: str) -> tuple[bool, str]:
        """The answer to ``~/set_dry_run`` after the switch was tried (``reason``: why it was refused, or '')."""
        state = "ON (commands computed, not sent)" if self.dry_run else "OFF (commands go to the robot)"
        return not reason, f"dry-run {state}" if not reason else f"refused: {reason}; dry-run {state}"

    def request_dry_run(self, dry_run: bool, now: float) -> tuple[bool, str]:
        """Answer ``~/set_dry_run``: arming is refused while limits are unset, else the switch is tried."""
        return self.dry_run_answer((not dry_run and self.arming_refusal()) or self._switch_dry_run(dry_run, now))

    def _switch_dry_run(self, dry_run: bool, now: float) -> str:
        if self.robot is not None:
            return self.robot.set_dry_run(dry_run, now)
        self.adapter.set_dry_run(dry_run)
        return ""

    def request_reset_estop(self) -> tuple[bool, str]:
        """Answer ``~/reset_estop``."""
        if self.robot is not None:
            return self.reset_estop_answer(self.robot.reset_estop())
        self.adapter.reset_estop()
        return self.reset_estop_answer("")

    def operator_estop(self, stop_motion) -> tuple[bool, str]:
        """Answer ``~/estop``: latch the e-stop; an armed robot is stopped at once (``stop_motion()``)."""
        was_armed = not self.dry_run
        self.adapter.estop(self.OPERATOR_ESTOP)
        if was_armed:
            stop_motion()
        return self.ESTOP_ANSWER

    def stop_if_armed(self, stop_motion) -> None:
        """On shutdown: an armed robot that is not e-stopped (already stopped) is stopped."""
        if not self.dry_run and not self.adapter.supervisor.estopped:
            stop_motion()

    @staticmethod
    def reset_estop_answer(reason: str) -> tuple[bool, str]:
        return not reason, "e-stop reset; holding at the measured state" if not reason else f"refused: {reason}"

    ESTOP_ANSWER = (True, "e-stop latched; call ~/reset_estop to resume")
    OPERATOR_ESTOP = "operator e-stop (~/estop)"

    # --------------------------------------------------------------- diagnostics
    def diagnostics(self, scheduling: str) -> tuple[ControlStatus | None, str, dict]:
        """(the last tick's status, None before the first; the message; the values every adapter
        reports). Resets the clamp count: each report counts the ticks since the previous one."""
        out = self.last_output
        message = "starting" if out is None else out.status.value + (f": {out.reason}" if out.reason else "")
        values = {"status": out.status.value if out else "none", "reason": out.reason if out else "",
                  "dry_run": self.dry_run, "source": self.adapter.source, "estopped": self.adapter.supervisor.estopped,
                  "chunks_accepted": self.chunks_accepted, "chunks_rejected": self.chunks_rejected,
                  "commands_sent": self.commands_sent, "ticks": self.ticks,
                  # recorded with the episode; `octo-ros review` plots the ticks with clamps
                  "safety_clamps": self.clamped_ticks, "last_clamp": "; ".join(out.notes) if out else "",
                  "scheduling": scheduling}
        self.clamped_ticks = 0
        return (out.status if out else None), message, values
