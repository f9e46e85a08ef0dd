"""What every robot adapter does the same way: accept chunks (feeding the chunk
watchdog) and the operator controls (dry-run, latched e-stop).

A subclass owns ``executor`` (ChunkExecutor), ``supervisor`` (SafetySupervisor) and
``_segment`` (the interpolation segment in progress), and re-anchors its commanded
state to the measured one in ``_anchor_to_measured``.
"""
from __future__ import annotations

from octo_ros.control.chunking import ChunkAcceptance, ChunkExecutor
from octo_ros.control.safety import SafetySupervisor


class AdapterBase:
    executor: ChunkExecutor
    supervisor: SafetySupervisor
    _segment: object | None

    def add_chunk(self, actions, stamp: float, now: float) -> ChunkAcceptance:
        result = self.executor.add_chunk(actions, stamp, now)
        if result.accepted:
            self.supervisor.watchdog.feed("chunk", stamp)
        return result

    def set_dry_run(self, dry_run: bool) -> None:
        if self.supervisor.dry_run and not dry_run:
            self._anchor_to_measured()  # the previewed target may have drifted from the robot
        self.supervisor.dry_run = dry_run

    def estop(self, reason: str) -> None:
        self.supervisor.trigger_estop(reason)
        self.executor.clear()
        self._segment = None

    def reset_estop(self) -> None:
        self.supervisor.reset_estop()
        self._anchor_to_measured()

    def _anchor_to_measured(self, keep_chunks: bool = False) -> None:
        raise NotImplementedError
