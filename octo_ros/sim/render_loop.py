"""A simulator's render thread (no rclpy): renders at its own rate, off the node's executor, so a
slow render (tens of ms) never blocks the joint-state / control loop."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable


class RenderLoop:
    """Calls ``render_once(ctx)`` ``rate_hz`` times a second on its own thread until :meth:`stop`;
    ``ctx`` is what ``setup()`` returns on that thread (None without one), handed to ``teardown(ctx)``
    when the loop ends. A render that raises is reported with ``on_error(exc)`` and the loop goes on;
    a late render does not make the next ones come faster."""

    def __init__(self, rate_hz: float, render_once: Callable[[Any], None], on_error: Callable[[Exception], None],
                 setup: Callable[[], Any] | None = None, teardown: Callable[[Any], None] | None = None):
        self.period_s = 1.0 / rate_hz
        self._render_once, self._on_error = render_once, on_error
        self._setup, self._teardown = setup, teardown
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_render_s = float("nan")  # how long the last render took

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="sim-render", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _loop(self) -> None:
        ctx = self._setup() if self._setup is not None else None
        try:
            next_t = time.monotonic()
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    self._render_once(ctx)
                except Exception as exc:  # keep the sim alive; report it
                    self._on_error(exc)
                self.last_render_s = time.monotonic() - t0
                next_t = max(next_t + self.period_s, time.monotonic())
                self._stop.wait(max(0.0, next_t - time.monotonic()))
        finally:
            if self._teardown is not None:
                self._teardown(ctx)
