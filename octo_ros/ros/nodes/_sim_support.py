"""Shared plumbing for the simulator nodes (aloha_sim, widowx_sim, ur5_sim).

* Pacing: timers run on the steady clock, so a sim that publishes ``/clock`` never waits on it.
* Time: with ``sim_time`` true (or the node started with ``use_sim_time:=true``) stamps are the
  simulation time and ``/clock`` (rosgraph_msgs/Clock) is published every control tick; otherwise
  stamps are the node's wall clock.
* A render thread calls a render callback at the policy rate, off the executor, so a slow render
  (tens of ms) never blocks the joint-state / control loop; it is stopped and joined on close.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState

from octo_ros.robots.interbotix.driver_standin import JointStateSample
from octo_ros.ros.messages import image_to_msg, ns_to_stamp
from octo_ros.ros.support import SENSOR_QOS, Diagnostics
from octo_ros.timebase import ns_to_seconds, seconds_to_ns, stamp_to_ns

STEADY = ClockType.STEADY_TIME


def seconds_to_stamp(t: float) -> Time:
    return ns_to_stamp(seconds_to_ns(t))


def image_msg(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    return image_to_msg(rgb, stamp_to_ns(stamp), frame_id)


def joint_state_msg(sample: JointStateSample, stamp: Time, prefix: str = "") -> JointState:
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = [prefix + n for n in sample.name]
    msg.position = [float(v) for v in sample.position]
    msg.velocity = [float(v) for v in sample.velocity]
    msg.effort = [float(v) for v in sample.effort]
    return msg


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
        self._render_stop = threading.Event()
        self._render_thread: threading.Thread | None = None
        self.frames_published = 0
        self.last_render_s = float("nan")
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

    # rendering thread ---------------------------------------------------------------------------
    def start_render_thread(self, render_once: Callable[[], None], setup=None, teardown=None) -> None:
        def loop():
            ctx = setup() if setup is not None else None
            try:
                period = 1.0 / self.render_rate
                next_t = time.monotonic()
                while not self._render_stop.is_set():
                    t0 = time.monotonic()
                    try:
                        render_once(ctx)
                    except Exception as exc:  # keep the sim alive; report it
                        self.get_logger().error(f"render failed: {exc!r}")
                    self.last_render_s = time.monotonic() - t0
                    next_t = max(next_t + period, time.monotonic())
                    self._render_stop.wait(max(0.0, next_t - time.monotonic()))
            finally:
                if teardown is not None:
                    teardown(ctx)

        self._render_thread = threading.Thread(target=loop, name="sim-render", daemon=True)
        self._render_thread.start()

    def stop_render_thread(self) -> None:
        self._render_stop.set()
        if self._render_thread is not None:
            self._render_thread.join(timeout=5.0)
            self._render_thread = None

    def close(self) -> None:
        self.stop_render_thread()
