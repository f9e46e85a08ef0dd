"""What the observation buffer says about its streams going stale and fresh again.

A stream that flaps (a camera dropping frames under load) would otherwise log a line at every
change, several per second. The first change after a quiet ``period_s`` is logged at once;
changes within the period are counted and summarized once per period: how often the window
went stale, for how long in all, and which streams."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FreshnessLog:
    period_s: float = 5.0
    stale_since: float | None = None  # None: fresh
    _last_line: float = float("-inf")
    _since: float | None = None  # start of the period being summarized
    _changes: int = 0
    _stale_s: float = 0.0
    _streams: Counter = field(default_factory=Counter)

    def update(self, now_s: float, stale_stream: str | None, reason: str = "") -> list[tuple[str, str]]:
        """The lines to log, as (``"warning"`` | ``"info"``, text), for one tick: ``stale_stream``
        is the stream that made the window stale, None when a window was published."""
        lines = []
        stale = stale_stream is not None
        if stale != (self.stale_since is not None):
            if stale:
                self.stale_since = now_s
            else:
                self._stale_s += now_s - self.stale_since
                duration, self.stale_since = now_s - self.stale_since, None
            if now_s - self._last_line >= self.period_s and not self._changes:  # quiet so far: say it now
                lines.append(("warning", f"observation stale, publishing nothing: {reason}") if stale
                             else ("info", f"observation streams fresh again after {duration:.1f} s: publishing windows"))
                self._last_line, self._since, self._stale_s = now_s, now_s, 0.0
                self._streams.clear()
            else:
                self._changes += 1
            if stale:
                self._streams[stale_stream] += 1
        if self._changes and now_s - self._last_line >= self.period_s:
            lines.append(("warning", self._summary(now_s)))
            self._last_line, self._since, self._changes, self._stale_s = now_s, now_s, 0, 0.0
            self._streams.clear()
        return lines

    def _summary(self, now_s: float) -> str:
        span = now_s - self._since
        stale_s = self._stale_s + (now_s - self.stale_since if self.stale_since is not None else 0.0)
        staled = sum(self._streams.values())
        streams = ", ".join(f"{name} {n}x" for name, n in self._streams.most_common())
        state = "stale now" if self.stale_since is not None else "fresh now"
        return (f"observation went stale {staled} times in the last {span:.1f} s (stale {stale_s:.1f} s in all"
                + (f"; {streams}" if streams else "") + f"); {state}")
