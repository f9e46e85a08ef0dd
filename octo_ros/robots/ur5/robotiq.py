"""Robotiq 2F gripper over the Robotiq_Grippers URCap socket (TCP port 63352, ASCII).

Protocol (ur_rtde guides "Use with Robotiq Gripper"; the community robotiq_gripper.py):
``SET <VAR> <int> [<VAR> <int> ...]\\n`` → ``ack``; ``GET <VAR>\\n`` → ``<VAR> <int>``.
Variables: ACT (activate), GTO (go to), ATR (auto-release), POS (0 = open … 255 = closed),
SPE and FOR (0–255); read-only STA (3 = activated), PRE (echo of the requested position),
OBJ (0 moving, 1/2 stopped on contact while opening/closing, 3 at requested position), FLT.

The model-side convention (Octo 1 = open → POS 0) lives in ``robotiq_socket()`` below; this
class only speaks the protocol. Calls block for a network round trip: run them off the servo loop.
"""

from __future__ import annotations

import socket
import threading
import time

from octo_ros.control.gripper import GripperConfig

ROBOTIQ_PORT = 63352
STA_ACTIVATED = 3


def robotiq_socket() -> GripperConfig:
    return GripperConfig(
        robot_label="Robotiq POS", robot_unit="", robot_open=0.0, robot_closed=255.0, robot_integer=True
    )


class RobotiqError(RuntimeError):
    pass


class RobotiqSocketGripper:
    def __init__(self, host: str, port: int = ROBOTIQ_PORT, timeout_s: float = 2.0):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._sock: socket.socket | None = None

    def connect(self) -> None:
        self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    # protocol ---------------------------------------------------------------------------
    def set_vars(self, **values: int) -> None:
        """Write variables in one command, e.g. ``set_vars(POS=0, SPE=255, FOR=150, GTO=1)``."""
        if not values:
            raise ValueError("nothing to set")
        for name, value in values.items():
            if not (name.isalpha() and name.isupper() and isinstance(value, int) and 0 <= value <= 255):
                raise ValueError(f"invalid Robotiq variable {name}={value!r}")
        line = "SET " + " ".join(f"{k} {v}" for k, v in values.items())
        reply = self._exchange(line, lambda buf: buf.strip() != b"")
        if reply.strip() != b"ack":
            raise RobotiqError(f"{line!r} answered {reply!r}")

    def get_var(self, name: str) -> int:
        reply = self._exchange(f"GET {name}", lambda buf: buf.endswith(b"\n") or len(buf.split()) >= 2)
        parts = reply.decode("ascii", "replace").split()
        if len(parts) != 2 or parts[0] != name or not parts[1].lstrip("-").isdigit():
            raise RobotiqError(f"GET {name} answered {reply!r}")
        return int(parts[1])

    def _exchange(self, line: str, complete) -> bytes:
        if self._sock is None:
            raise RobotiqError("not connected")
        self._sock.sendall(line.encode("ascii") + b"\n")
        buf = b""
        while not complete(buf):
            chunk = self._sock.recv(1024)
            if not chunk:
                raise RobotiqError("connection closed by the gripper")
            buf += chunk
        return buf

    # operations -----------------------------------------------------------------------
    def activate(self, timeout_s: float = 5.0) -> None:
        """Reset, then activate and wait for STA = 3 (the gripper runs its calibration stroke)."""
        self.set_vars(ACT=0)
        self.set_vars(ATR=0)
        self.set_vars(ACT=1, SPE=255, FOR=255)
        deadline = time.monotonic() + timeout_s
        while self.get_var("STA") != STA_ACTIVATED:
            if time.monotonic() > deadline:
                raise RobotiqError("activation timed out")
            time.sleep(0.01)

    def is_active(self) -> bool:
        return self.get_var("STA") == STA_ACTIVATED

    def move(self, position: int, speed: int = 255, force: int = 150) -> None:
        """Start a move to POS ``position`` (0 = open … 255 = closed); returns without waiting."""
        clip = lambda v: int(min(255, max(0, round(v))))  # noqa: E731
        self.set_vars(POS=clip(position), SPE=clip(speed), FOR=clip(force), GTO=1)

    def position(self) -> int:
        return self.get_var("POS")

    def object_status(self) -> int:
        return self.get_var("OBJ")

    def fault(self) -> int:
        return self.get_var("FLT")


class RobotiqWorker:
    """Sends Robotiq positions from a thread of its own, never from the servo loop: only the newest
    request is kept. ``logger``: anything with ``info`` and ``error`` (the node's logger)."""

    def __init__(self, gripper: RobotiqSocketGripper, logger):
        self._gripper = gripper
        self._logger = logger
        self._cond = threading.Condition()
        self._pending: int | None = None
        self._running = True
        self.error = ""
        self._thread = threading.Thread(target=self._loop, name="robotiq-gripper", daemon=True)
        self._thread.start()

    def request(self, position: float) -> None:
        with self._cond:
            self._pending = int(round(position))
            self._cond.notify()

    def _loop(self) -> None:
        try:
            self._gripper.connect()
            self._gripper.activate()
            self._logger.info(f"Robotiq gripper at {self._gripper.host}:{self._gripper.port} activated")
        except (OSError, RuntimeError) as err:
            self.error = f"Robotiq gripper unavailable: {err}"
            self._logger.error(self.error)
            return
        while True:
            with self._cond:
                while self._running and self._pending is None:
                    self._cond.wait()
                if not self._running:
                    break
                position, self._pending = self._pending, None
            try:
                self._gripper.move(position)
            except (OSError, RuntimeError) as err:
                self.error = f"Robotiq move failed: {err}"
                self._logger.error(self.error)
        self._gripper.close()

    def cancel(self) -> None:
        """Drop a move that was requested but not started."""
        with self._cond:
            self._pending = None

    def close(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()
        self._thread.join(timeout=3.0)
