"""Shared plumbing for the simulator nodes (aloha_sim, widowx_sim, ur5_sim).

* Pacing: timers run on the steady clock, so a sim that publishes ``/clock`` never waits on it.
* Time: with ``sim_time`` true (or the node started with ``use_sim_time:=true``) stamps are the
  simulation time and ``/clock`` (rosgraph_msgs/Clock) is published every control tick; otherwise
  stamps are the node's wall clock.
* Scripted-task episodes (``declare_episodes``): parameters ``episode_task`` (empty: no task, the
  static scene) and ``episode_seed``; ``~/reset_episode`` (std_srvs/Trigger) lays out episode
  ``episode_seed`` of ``episode_task`` and answers its instruction; ``~/task_status``
  (diagnostic_msgs/DiagnosticStatus, octo_ros.ros.messages.task_status_to_msg) reports the task's
  success check, computed from the simulator's own state, at ``task_status_rate``.
* A render thread (octo_ros.sim.render_loop.RenderLoop) calls a render callback at ``render_rate``,
  off the executor; it is stopped and joined on close.
"""
from __future__ import annotations

import threading
from typing import Callable

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from octo_ros.ros.messages import ns_to_stamp, task_status_to_msg
from octo_ros.ros.support import OK, SENSOR_QOS, Diagnostics
from octo_ros.sim.render_loop import RenderLoop
from octo_ros.sim.tasks import TaskStatus, episode_problem
from octo_ros.timebase import ns_to_seconds, seconds_to_ns

STEADY = ClockType.STEADY_TIME


def seconds_to_stamp(t: float) -> Time:
    return ns_to_stamp(seconds_to_ns(t))


class SimNodeBase(Node):
    """Parameters and helpers every simulator node shares."""

    def __init__(self, name: str):
        super().__init__(name)
        self.steady = Clock(clock_type=STEADY)
        use_sim_time = bool(self.get_parameter("use_sim_time").value)
        self.sim_time = bool(self.declare_parameter("sim_time", use_sim_time).value)
        self.render_rate = float(self.declare_parameter("render_rate", 10.0).value)
        if not self.render_rate > 0:
            raise ValueError("render_rate must be > 0")
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", 10) if self.sim_time else None
        self.diagnostics = Diagnostics(self, hardware_id="simulation", name=f"{self.get_name()}: simulator")
        self.render_loop: RenderLoop | None = None
        self.frames_published = 0
        self.lock = threading.Lock()

    # time ---------------------------------------------------------------------------------
    def stamp(self, sim_seconds: float) -> Time:
        """Stamp for data of simulation time ``sim_seconds``."""
        if self.sim_time:
            return seconds_to_stamp(sim_seconds)
        return self.get_clock().now().to_msg()

    def publish_clock(self, sim_seconds: float) -> None:
        if self.clock_pub is not None:
            self.clock_pub.publish(ClockMsg(clock=seconds_to_stamp(sim_seconds)))

    def steady_now(self) -> float:
        return ns_to_seconds(self.steady.now().nanoseconds)

    def create_steady_timer(self, rate_hz: float, callback: Callable[[], None]):
        return self.create_timer(1.0 / rate_hz, callback, clock=self.steady)

    def image_publisher(self, topic: str):
        return self.create_publisher(Image, topic, SENSOR_QOS)

    # scripted-task episodes ---------------------------------------------------------------------
    def declare_episodes(self, tasks, lay_out: Callable[[str, int], str], status: Callable[[], TaskStatus | None]) -> None:
        """``tasks``: the names ``episode_task`` may take; ``lay_out(task, seed)`` (called under
        ``self.lock``) starts that episode and returns its instruction; ``status()`` (under the lock)
        is the current check, None without a task."""
        self._tasks = tuple(tasks)
        self._lay_out, self._task_status = lay_out, status
        p = self.declare_parameter
        p("episode_task", "")
        p("episode_seed", 0)
        rate = float(p("task_status_rate", 20.0).value)
        if not rate > 0:
            raise ValueError("task_status_rate must be > 0")
        problem = episode_problem(self._tasks, self.get_parameter("episode_task").value,
                                  self.get_parameter("episode_seed").value)
        if problem:
            raise ValueError(problem)
        self.add_on_set_parameters_callback(self._on_episode_parameters)
        self.task_status_pub = self.create_publisher(DiagnosticStatus, "~/task_status", 10)
        self.create_service(Trigger, "~/reset_episode", self._on_reset_episode)
        self.create_steady_timer(rate, self._publish_task_status)
        if self.get_parameter("episode_task").value:
            self._reset_episode()

    def _on_episode_parameters(self, params) -> SetParametersResult:
        values = {param.name: param.value for param in params}
        problem = episode_problem(self._tasks, values.get("episode_task"), values.get("episode_seed"))
        return SetParametersResult(successful=not problem, reason=problem)

    def _reset_episode(self) -> str:
        task, seed = self.get_parameter("episode_task").value, int(self.get_parameter("episode_seed").value)
        if not task:
            raise ValueError("episode_task is empty: set it to one of " + ", ".join(self._tasks))
        with self.lock:
            instruction = self._lay_out(task, seed)
        self.get_logger().info(f"episode {task} seed {seed}: {instruction!r}")
        return instruction

    def _on_reset_episode(self, request, response):
        try:
            response.message = self._reset_episode()
            response.success = True
        except ValueError as exc:
            response.success, response.message = False, str(exc)
        return response

    def _publish_task_status(self) -> None:
        with self.lock:
            status = self._task_status()
        if status is not None:
            self.task_status_pub.publish(task_status_to_msg(status, f"{self.get_name()}: task"))

    # rendering thread ---------------------------------------------------------------------------
    def start_render_thread(self, render_once: Callable[[object], None], setup=None, teardown=None) -> None:
        self.render_loop = RenderLoop(self.render_rate, render_once,
                                      lambda exc: self.get_logger().error(f"render failed: {exc!r}"), setup, teardown)
        self.render_loop.start()

    def stop_render_thread(self) -> None:
        if self.render_loop is not None:
            self.render_loop.stop()

    # diagnostics --------------------------------------------------------------------------------
    def sim_values(self) -> dict:
        """The simulator's own diagnostics values (called under ``lock``)."""
        return {}

    @property
    def last_render_s(self) -> float:
        return self.render_loop.last_render_s if self.render_loop is not None else float("nan")

    def publish_sim_diagnostics(self) -> None:
        with self.lock:
            values = {**self.sim_values(), "frames": self.frames_published, "render_s": f"{self.last_render_s:.4f}"}
        self.diagnostics.publish(OK, "running", values)

    def close(self) -> None:
        self.stop_render_thread()
