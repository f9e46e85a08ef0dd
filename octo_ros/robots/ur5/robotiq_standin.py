"""In-repo fake of the Robotiq_Grippers URCap socket server (port 63352 on a UR controller).

Serves the ASCII protocol on 127.0.0.1 and simulates a 2F gripper: activation takes time
(STA 0 → 1 → 3), GTO only moves an activated gripper, the fingers travel from POS towards the
requested position PRE at a rate set by SPE, and an optional object at a given position stops a
closing stroke with OBJ = 2 (contact while closing). Unknown commands are answered with ``?``
[the real URCap's reply to malformed input is not documented; clients must not send any].
"""

from __future__ import annotations

import socket
import threading
import time

# 2F-85 full stroke ≈ 0.7 s at full speed; slowest ≈ 20 mm/s over 85 mm ≈ 4 s.
_FULL_STROKE_FAST_S = 0.7
_FULL_STROKE_SLOW_S = 4.0
_ACTIVATION_S = 0.3  # shortened calibration stroke so tests stay fast
WRITABLE = ("ACT", "GTO", "ATR", "ADR", "POS", "SPE", "FOR")


class FakeRobotiqServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, object_at: int | None = None):
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self.object_at = object_at
        self.received: list[str] = []
        self._lock = threading.Lock()
        self._vars = {"ACT": 0, "GTO": 0, "ATR": 0, "ADR": 0, "POS": 0, "PRE": 0, "SPE": 255, "FOR": 150,
                      "STA": 0, "OBJ": 0, "FLT": 0}
        self._pos = 0.0
        self._activation_started: float | None = None
        self._last_update = time.monotonic()
        self._running = True
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def close(self) -> None:
        self._running = False
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # device model ---------------------------------------------------------------------
    def _update(self) -> None:
        now = time.monotonic()
        dt, self._last_update = now - self._last_update, now
        v = self._vars
        if v["ACT"] == 1 and v["STA"] != 3:
            if self._activation_started is None:
                self._activation_started = now
                v["STA"] = 1
            elif now - self._activation_started >= _ACTIVATION_S:
                v["STA"] = 3
        if v["STA"] == 3 and v["GTO"] == 1:
            stroke_s = _FULL_STROKE_SLOW_S + (_FULL_STROKE_FAST_S - _FULL_STROKE_SLOW_S) * v["SPE"] / 255.0
            step = 255.0 / stroke_s * dt
            goal = float(v["PRE"])
            if self.object_at is not None and goal > self._pos and goal > self.object_at:
                goal = float(self.object_at)  # fingers stop on the object
            self._pos = min(goal, self._pos + step) if goal > self._pos else max(goal, self._pos - step)
            if abs(self._pos - goal) < 0.5:  # within one count: the device reports the integer POS it reached
                self._pos = goal
                contact = goal != v["PRE"]
                v["OBJ"] = 2 if contact else 3
            else:
                v["OBJ"] = 0
        v["POS"] = int(round(self._pos))

    def _handle(self, line: str) -> bytes:
        parts = line.split()
        with self._lock:
            self._update()
            if len(parts) >= 3 and parts[0] == "SET" and len(parts) % 2 == 1:
                pairs = list(zip(parts[1::2], parts[2::2]))
                if all(k in WRITABLE and val.isdigit() and 0 <= int(val) <= 255 for k, val in pairs):
                    for k, val in pairs:
                        self._set(k, int(val))
                    return b"ack"
            elif len(parts) == 2 and parts[0] == "GET" and parts[1] in self._vars:
                return f"{parts[1]} {self._vars[parts[1]]}\n".encode()
        return b"?\n"

    def _set(self, name: str, value: int) -> None:
        v = self._vars
        if name == "POS":
            v["PRE"] = value  # the request; POS reports the measured position
            return
        if name == "ACT" and value == 0:
            v.update(STA=0, GTO=0, OBJ=0)
            self._activation_started = None
        if name == "GTO" and value == 1:
            v["OBJ"] = 0
        v[name] = value

    # sockets -----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while self._running:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while self._running:
                try:
                    data = conn.recv(1024)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = raw.decode("ascii", "replace").strip()
                    if line:
                        self.received.append(line)
                        conn.sendall(self._handle(line))
