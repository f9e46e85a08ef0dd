"""What every robot adapter does the same way: accept chunks (feeding the chunk watchdog) and
measured states (feeding the state watchdog), the operator controls (dry-run, latched e-stop),
and the start of every control tick:

* the supervisor's verdict (e-stop, stale chunk or state → hold);
* re-anchoring: the commanded state is reset to the measured one at start-up, when leaving
  dry-run, on e-stop reset, and on the first tick allowed to move after a hold (or after a gap in
  the measured states) during which the robot may have moved — a driver restarted with the arm
  elsewhere must not be sent a target computed from where the arm was before;
* the tracking-error guard (armed only): hold while the measured state is further from the
  commanded one than the robot could trail it by;
* gripper re-sync: after every re-anchoring the next armed tick that sends a target also sends
  the current gripper command, even when the policy's gripper value did not change (a gripper
  command chosen in dry-run, or before an e-stop or an outage, may never have reached the robot);
* one chunk source at a time (``policy`` or ``teleop``, ``ActionChunk.source``): chunks from the
  other one are refused, and a switch holds until the new source's first chunk, which re-anchors.

A subclass calls :meth:`_init_core`, owns its commanded/measured state and implements the hooks
at the end of this class.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from octo_ros.control.chunking import (
    ChunkAcceptance,
    ChunkExecutionConfig,
    ChunkExecutor,
    StepDecision,
    StepKind,
)
from octo_ros.control.kinematics import apply_delta
from octo_ros.control.safety import (
    ControlOutput,
    ControlStatus,
    Gate,
    SafetyConfig,
    SafetySupervisor,
    WorkspaceBox,
    all_finite,
    clamp_components,
)
from octo_ros.datatypes import POLICY_SOURCE, TELEOP_SOURCE

CHUNK_SOURCES = (POLICY_SOURCE, TELEOP_SOURCE)


class AdapterBase:
    NO_STATE_REASON = "no joint state yet"

    def _init_core(self, safety: SafetyConfig, execution: ChunkExecutionConfig, action_names: tuple[str, ...]) -> None:
        # Chunks and states share one clock-skew tolerance for stamps ahead of "now".
        self.supervisor = SafetySupervisor(safety, max_future_stamp_s=execution.max_future_stamp_s)
        self.action_names = tuple(action_names)  # the action layout this adapter executes
        self.reorder_action_dimensions = execution.reorder_action_dimensions
        self.executor = ChunkExecutor(execution, len(action_names))
        self._segment: object | None = None  # the interpolation segment in progress
        self._reanchor_pending = False  # re-anchor on the next tick allowed to move
        self._gripper_resync = False  # send the gripper command with the next sent target
        self.last_state_error = ""  # why the last measured state was refused ('' when it was not)
        self.tracking_fault = ""  # this tick's tracking-error hold reason ('' when none)
        self.source = POLICY_SOURCE  # whose chunks are executed
        self._source_switch = ""  # the source switched to, until the hold that follows a switch
        self._source_lost = ""  # why the executed source's publishers are gone, until its next chunk

    # inputs --------------------------------------------------------------------------
    def add_chunk(self, actions, stamp: float, now: float, source: str = POLICY_SOURCE,
                  names: tuple[str, ...] | None = None) -> ChunkAcceptance:
        """``names``: the chunk's action dimension names (a received chunk always passes them, empty
        when it has none); None only for actions built in this adapter's layout in-process."""
        if source != self.source:
            return ChunkAcceptance(False, f"chunk from source {source!r}; this adapter executes {self.source!r} chunks")
        note = ""
        shape = np.shape(actions)
        right_width = len(shape) == 2 and shape[1] == len(self.action_names)  # else the executor names the shape
        if names is not None and right_width and tuple(names) != self.action_names:
            names, layout = tuple(names), list(self.action_names)
            if not names:
                return ChunkAcceptance(False, f"chunk has no action dimension names; this adapter's layout is {layout}")
            if sorted(names) != sorted(layout) or len(set(names)) != len(names):
                return ChunkAcceptance(False, f"action dimension names {list(names)} do not match this adapter's "
                                              f"layout {layout}")
            if not self.reorder_action_dimensions:
                return ChunkAcceptance(False, f"action dimension names {list(names)} are a permutation of this "
                                              f"adapter's layout {layout}; refused (set reorder_action_dimensions "
                                              "to execute it reordered)")
            actions = np.asarray(actions, dtype=float)[:, [names.index(n) for n in layout]]
            note = f"action dimensions reordered from {list(names)} to {layout}"
        result = self.executor.add_chunk(actions, stamp, now)
        if result.accepted:
            self._source_lost = ""
            self.supervisor.watchdog.feed("chunk", stamp, now)
            return ChunkAcceptance(True, note=note)
        return result

    def _accept_state(self, stamp: float, now: float | None, store: Callable[[], float | None]) -> bool:
        """Refuse a state stamped in the future (beyond the chunks' tolerance), else ``store()`` it.

        ``store`` records the measurement and returns the stamp to feed the state watchdog with (None
        while the state is incomplete). ``now`` None (a caller without a clock) skips the arrival
        check; the gate still refuses a state stamped ahead of the tick's clock."""
        clock = stamp if now is None else now
        watchdog = self.supervisor.watchdog
        reason = watchdog.check_stamp(stamp, clock)
        if reason:
            self.last_state_error = f"state {reason}"
            return False
        self.last_state_error = ""
        feed_stamp = store()
        if feed_stamp is not None:
            if watchdog.is_stale("state", clock):  # the first state, or the first after an outage
                self._reanchor_pending = True
            watchdog.feed("state", feed_stamp, clock)
            if not self._anchored:
                self._anchor_to_measured(keep_chunks=True)
        return True

    def _reject_state(self, why: str) -> bool:
        self.last_state_error = why
        return False

    def _accept_measured(self, values, shape: tuple[int, ...], what: str, stamp: float, now: float | None,
                         store: Callable[[np.ndarray], None]) -> bool:
        """A measured state of one piece (``values``, ``shape``) stamped ``stamp``: refused when it is
        misshapen or not finite (``what`` names it in the reason), else ``store(array)`` through
        :meth:`_accept_state` (the watchdog is fed with ``stamp``)."""
        array = np.asarray(values, dtype=float)
        if array.shape != shape or not all_finite(array) or not np.isfinite(stamp):
            return self._reject_state(f"non-finite or misshapen {what}")

        def feed() -> float:
            store(array)
            return stamp

        return self._accept_state(stamp, now, feed)

    def _describe_end_effector(self, head: str, limits: str) -> list[str]:
        """The start-up lines of an end-effector adapter (``config`` with a workspace box, ``gripper``):
        ``head``, its chunk execution and dry-run; the box and ``limits``; the gripper mapping."""
        c = self.config
        return [
            f"{head}, {c.execution.mode.value}, dry-run {'ON' if self.supervisor.dry_run else 'OFF'}",
            f"workspace box low {tuple(c.workspace_low)} high {tuple(c.workspace_high)} m; {limits}",
            "gripper: " + self.gripper.describe(),
        ]

    def gripper_convention(self) -> str:
        """The gripper mapping in words, as logged at start (recorded with each episode)."""
        return self.gripper.describe()

    # operator controls -----------------------------------------------------------------
    def set_dry_run(self, dry_run: bool) -> None:
        if self.supervisor.dry_run and not dry_run:
            self._anchor_to_measured()  # the previewed target may have drifted from the robot
        self.supervisor.dry_run = dry_run

    def set_source(self, source: str) -> None:
        """Execute chunks from ``source`` only. A switch drops the other source's chunks and holds: the
        chunk watchdog restarts ("no chunk received yet" until the new source's first chunk), and the
        first tick allowed to move re-anchors on the measured state and holds there ("holding first");
        the new source moves the robot from the tick after. ValueError for an unknown source."""
        if source not in CHUNK_SOURCES:
            raise ValueError(f"unknown chunk source {source!r} (choose one of {', '.join(CHUNK_SOURCES)})")
        if source == self.source:
            return
        self.source = source
        self.executor.clear()
        self._segment = None
        self.supervisor.watchdog.clear("chunk")
        self._reanchor_pending = True
        self._source_switch = source if self._anchored else ""  # nothing commanded yet: nothing to hold

    def chunk_source_lost(self, source: str, why: str) -> None:
        """Every publisher of ``source``'s chunks is gone (DDS liveliness: the link or the policy is
        down). When it is the executed source: drop the plan and hold from the next tick, not when the
        plan's last step has run out; the next chunk accepted moves the robot again, from the
        measured state."""
        if source != self.source:
            return
        self.executor.clear()
        self._segment = None
        self._reanchor_pending = True
        self._source_lost = why

    def estop(self, reason: str) -> None:
        self.supervisor.trigger_estop(reason)
        self.executor.clear()
        self._segment = None

    def reset_estop(self) -> None:
        self.supervisor.reset_estop()
        self._anchor_to_measured()

    # tick -----------------------------------------------------------------------------
    def _begin_tick(self, now: float) -> tuple[Gate, ControlOutput | None]:
        """The common start of ``step(now)``: (verdict, the output when the tick ends here, else None)."""
        gate = self.supervisor.gate(now)
        self.tracking_fault = ""
        if not gate.may_move:
            self._reanchor_pending = True  # stale state, stale chunks or e-stop: the robot may move meanwhile
        elif self._reanchor_pending:
            self._anchor_to_measured(keep_chunks=True)
        if not self._anchored:
            return gate, ControlOutput(ControlStatus.HOLD, gate.reason or self.NO_STATE_REASON, np.zeros(0), False)
        if not gate.may_move:
            return gate, self._hold(gate.status, gate.reason)
        if self._source_lost:
            return gate, self._hold(ControlStatus.HOLD, self._source_lost)
        if self._source_switch:  # one tick at the re-anchored state before the new source moves the robot
            reason, self._source_switch = f"chunk source switched to {self._source_switch}: holding first", ""
            return gate, self._hold(ControlStatus.HOLD, reason)
        if not self.supervisor.dry_run:  # a preview is not tracked: the robot does not follow it
            self.tracking_fault = self._tracking_error()
            if self.tracking_fault:
                return gate, self._hold(ControlStatus.HOLD, self.tracking_fault)
        return gate, None

    def _begin_end_effector_tick(self, now: float, outside_box: str) -> tuple[Gate, StepDecision | None,
                                                                                ControlOutput | None]:
        """The start of an end-effector adapter's ``step(now)``: :meth:`_begin_tick`, then a hold
        (``outside_box``) while the step target is outside the workspace box, then the executor's
        decision. (verdict, the decision, the output when the tick ends here, else None)."""
        gate, early = self._begin_tick(now)
        if early is not None:
            return gate, None, early
        if not self.box.contains(self._target_position()):
            return gate, None, self._hold(ControlStatus.HOLD, outside_box)
        decision = self.executor.tick(now)
        if decision.kind is StepKind.HOLD:
            return gate, None, self._hold(ControlStatus.HOLD, decision.reason)
        return gate, decision, None

    def _move(self, gate: Gate, target: np.ndarray, notes=(), gripper_changed: bool = False) -> ControlOutput:
        send_gripper = gate.may_send and self._gripper_send(gripper_changed)
        return ControlOutput(ControlStatus.MOVE, "", target, gate.may_send, self._gripper_command(), send_gripper,
                             tuple(notes))

    def _hold(self, status: ControlStatus, reason: str, gripper_changed: bool | None = None) -> ControlOutput:
        """Keep the commanded target. ``gripper_changed`` is given when the policy's gripper value was
        applied this tick: an armed HOLD then still sends the gripper (changed or due for re-sync)."""
        self.executor.interrupt()
        self._segment = None
        self._on_hold()
        send_gripper = (gripper_changed is not None and status is ControlStatus.HOLD and not self.supervisor.dry_run
                        and self._gripper_send(gripper_changed))
        return ControlOutput(status, reason, self._output_target(), False, self._gripper_command(), send_gripper)

    def _gripper_send(self, changed: bool) -> bool:
        """Whether a gripper command goes out with this armed command; consumes a pending re-sync."""
        send = self._gripper_command() is not None and (changed or self._gripper_resync)
        self._gripper_resync = False  # without a separate gripper command, the sent target carries it
        return send

    def _anchor_to_measured(self, keep_chunks: bool = False) -> None:
        """Make the measured state the commanded one (start-up, arming, e-stop reset, after an outage)."""
        if keep_chunks:
            self.executor.interrupt()
        else:
            self.executor.clear()
        self._segment = None
        self._reanchor_pending = False
        self._gripper_resync = True
        self._set_commanded_to_measured()

    # hooks ----------------------------------------------------------------------------
    @property
    def _anchored(self) -> bool:
        """A commanded state exists (a measured state has been received)."""
        raise NotImplementedError

    def _set_commanded_to_measured(self) -> None:
        """Commanded := measured (None when nothing was measured yet)."""
        raise NotImplementedError

    def _tracking_error(self) -> str:
        """'' when the measured state is within the tracking tolerance of the commanded one."""
        raise NotImplementedError

    def _output_target(self) -> np.ndarray:
        """The commanded target as ``ControlOutput.target``."""
        raise NotImplementedError

    def _gripper_command(self) -> float | None:
        """The separate gripper command in force (None when the target carries the gripper)."""
        return None

    def _on_hold(self) -> None:
        """Holding: forget anything that assumed the step would continue."""

    def _target_position(self) -> np.ndarray:
        """End-effector adapters: the position (m) of the step target deltas integrate on."""
        raise NotImplementedError


def integrate_delta(base: np.ndarray, action, box: WorkspaceBox, max_translation: float,
                    max_rotation: float) -> tuple[np.ndarray, list[str]]:
    """One Bridge-convention policy step on the pose ``base`` (the last step target, not the measured
    pose): per-step clamp of the delta, :func:`~octo_ros.control.kinematics.apply_delta`, then the
    position clipped to the workspace box. Returns the target and what the safety limits changed."""
    action = np.asarray(action, dtype=float)
    notes = []
    dxyz, clipped_t = clamp_components(action[:3], max_translation)
    drpy, clipped_r = clamp_components(action[3:6], max_rotation)
    if clipped_t or clipped_r:
        notes.append("per-step delta clamped")
    target = apply_delta(base, dxyz, drpy)
    target[:3, 3], clipped_box = box.clip(target[:3, 3])
    if clipped_box:
        notes.append("target clipped to workspace box")
    return target, notes
