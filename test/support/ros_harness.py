"""Real rclpy nodes for tests: in-process nodes on a background executor and
nodes in child processes, all torn down cleanly.

The ROS domain is chosen once per test session (see ``claim_ros_domain``), so
concurrent test sessions on one machine never see each other's topics.
"""
from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

REPO_ROOT = Path(__file__).resolve().parents[2]

# Valid ROS_DOMAIN_IDs whose ports do not clash with ephemeral ports on Linux.
_DOMAINS = range(1, 102)
_domain_lock = None


def claim_ros_domain() -> int:
    """Pick a ROS_DOMAIN_ID no other test session on this machine holds, and
    configure localhost-only discovery for this process and its children."""
    global _domain_lock
    ids = list(_DOMAINS)
    random.Random(os.getpid()).shuffle(ids)
    lock_dir = Path(tempfile.gettempdir()) / "octo_ros_test_domains"
    lock_dir.mkdir(exist_ok=True)
    for domain in ids:
        handle = open(lock_dir / f"{domain}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _domain_lock = handle  # held until this process exits
        os.environ["ROS_DOMAIN_ID"] = str(domain)
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
        return domain
    raise RuntimeError(f"all ROS domains {_DOMAINS.start}..{_DOMAINS.stop - 1} are taken by other test sessions")


class NodeProcess:
    """A ROS node (or any Python program) running in a child process."""

    def __init__(self, name: str, argv: list[str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "w")
        # pytest puts the repository and test/ on its own sys.path (pytest.ini), not in the
        # environment: a child importing test helpers (``-m support.…``) needs them there.
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), str(REPO_ROOT / "test"), os.environ.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": path},
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (what Ctrl-C sends), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class RosHarness:
    """One test's ROS world: its own rclpy context, an executor spinning on a
    background thread, and child-process nodes."""

    def __init__(self, tmp_path: Path):
        self._tmp = tmp_path
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self._nodes: list[Node] = []
        self.processes: list[NodeProcess] = []
        self._thread = threading.Thread(target=self._spin, name="ros-harness-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down under us
                if self.context.ok():
                    raise

    def add_node(self, node: Node) -> Node:
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name: str, **kwargs) -> Node:
        return self.add_node(Node(name, context=self.context, **kwargs))

    def spawn(self, name: str, args: list[str]) -> NodeProcess:
        """Run ``python <args>`` in a child process (same venv, same ROS domain)."""
        proc = NodeProcess(name, [sys.executable, *args], self._tmp / f"{name}.log")
        self.processes.append(proc)
        return proc

    def spawn_module(self, name: str, module: str, *ros_args: str, params: dict | None = None) -> NodeProcess:
        """Run ``python -m module --ros-args -p k:=v ...`` (a node's main())."""
        argv = ["-m", module, "--ros-args", "-r", f"__node:={name}"]
        for key, value in (params or {}).items():
            argv += ["-p", f"{key}:={_param_text(value)}"]
        return self.spawn(name, argv + list(ros_args))

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for proc in self.processes:
                if not proc.alive():
                    raise AssertionError(f"{proc.name} exited ({proc.proc.returncode}) while waiting for {what}:\n{proc.output()}")
            time.sleep(0.02)
        logs = "\n".join(f"--- {p.name} ---\n{p.output()[-3000:]}" for p in self.processes)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")

    def call(self, client, request, timeout: float = 10.0):
        """Call a service from a test and return its response."""
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f"service {client.srv_name} not available after {timeout} s")
        future = client.call_async(request)
        self.wait_for(future.done, timeout, f"a response from {client.srv_name}")
        return future.result()

    def close(self) -> None:
        for proc in self.processes:
            proc.stop()
        for node in self._nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=5)
        if self._thread.is_alive():
            raise AssertionError("the harness executor thread did not stop")


def _param_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) if not isinstance(v, str) else f"'{v}'" for v in value) + "]"
    return str(value) if value != "" else "''"
