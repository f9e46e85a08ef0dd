"""Small pieces every octo_ros node uses: QoS profiles, throttled warnings keyed by
what went wrong, and diagnostics."""
from __future__ import annotations

import gc
import signal
import threading
import time
from typing import Callable, Mapping

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.exceptions import ParameterException
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.signals import SignalHandlerOptions

from octo_ros.control.realtime import make_current_thread_realtime, validate_priority

# Cameras and joint states: best effort, keep last 5 (rclpy's sensor-data profile).
SENSOR_QOS = qos_profile_sensor_data
# "Latched" topics (goal image, instruction): a late subscriber still gets the last message.
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Observation windows into the policy: only the newest matters, two cover a window arriving mid-take.
WINDOW_QOS = QoSProfile(depth=2)
# Everything else the recorder subscribes to: reliable, deep enough for bursts between flushes.
RELIABLE_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
QOS_BY_KIND = {"sensor": SENSOR_QOS, "latched": LATCHED_QOS, "reliable": RELIABLE_QOS}

OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE


class WarningThrottle:
    """Logs a warning at most once per ``period_s`` for each key (e.g. topic and
    problem), saying how many were suppressed in between."""

    def __init__(self, node: Node, period_s: float = 2.0):
        self._logger = node.get_logger()
        self._period = period_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def warn(self, key: str, text: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self._period:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        suppressed = self._suppressed.pop(key, 0)
        suffix = f" ({suppressed} more since the last report)" if suppressed else ""
        self._logger.warning(text + suffix)
        self._last[key] = now


class Diagnostics:
    """Publishes one DiagnosticStatus for the node on /diagnostics (``name``: the node's
    fully qualified name unless given)."""

    def __init__(self, node: Node, hardware_id: str = "", name: str = ""):
        self._node = node
        self._name = name or f"{node.get_namespace().rstrip('/')}/{node.get_name()}".lstrip("/")
        self._hardware_id = hardware_id
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def publish(self, level: int, message: str, values: Mapping[str, object]) -> None:
        status = DiagnosticStatus(level=bytes([level]) if isinstance(level, int) else level, name=self._name,
                                  message=message, hardware_id=self._hardware_id,
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)


def given_parameters(node: Node) -> set[str]:
    """The names of the parameters this node was started with (command line, parameter files),
    as opposed to those left at their declared defaults."""
    # rclpy keeps every given parameter in _parameter_overrides (no public accessor)
    return set(getattr(node, "_parameter_overrides", {}))


def run_node(make_node: Callable[[], Node], name: str, threads: int = 1, realtime: bool = False) -> None:
    """main() of an octo_ros node: build it (bad parameters or files: a fatal log that
    says why, exit code 1), spin until Ctrl-C, SIGTERM or shutdown, then let it release what
    it holds (its ``close()``, when it has one) and destroy it.

    ``realtime``: the thread that spins (and so runs the node's control timer) gets real-time
    scheduling at the node's ``realtime_priority`` parameter (``octo_ros.control.realtime``); the
    node's ``scheduling`` says what was granted.

    The node spins on its own thread; this one only waits for a signal. rclpy's SIGINT handler
    is off (it would end the context at once, while worker threads still publish and ``close()``
    still has to stop the robot), and a Python handler that raised in the spinning thread could
    land anywhere in rclpy (a traceback out of ``take_message``). A signal while the node is
    built stops the building; the first one after that wakes the spinning thread (a guard
    condition) to stop after its current callback; any later one is ignored, so that
    ``ros2 launch``'s SIGTERM, sent when SIGINT was not enough, never cuts ``close()`` short. The
    context ends only after ``close()``."""
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    wake = None  # the spinning thread's guard condition
    building = True

    def on_signal(signum, frame):
        if building:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        if not stop.is_set():
            stop.set()
            if wake is not None:
                wake.trigger()

    signal.signal(signal.SIGINT, on_signal)  # also where the shell started us with SIGINT ignored
    signal.signal(signal.SIGTERM, on_signal)  # what ros2 launch sends when SIGINT was not enough
    try:
        node = make_node()
        if realtime:  # a bad priority is a start-up error; the spinning thread applies it
            validate_priority(node.get_parameter("realtime_priority").value)
    except KeyboardInterrupt:  # stopped while starting up
        rclpy.try_shutdown()
        return
    except Exception as err:  # noqa: BLE001 - any start-up failure: one FATAL line saying why, exit code 1
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        if not isinstance(err, (ValueError, KeyError, OSError, RuntimeError, ParameterException)) or not text:
            text = f"{type(err).__name__}: {text}" if text else type(err).__name__
        rclpy.logging.get_logger(name).fatal(" ".join(text.split()))
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    building = False
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)
    wake = node.create_guard_condition(lambda: None)
    if stop.is_set():  # a signal came before the guard condition existed
        wake.trigger()
    failure: list[BaseException] = []

    def spin() -> None:
        try:
            if realtime:
                node.scheduling = make_current_thread_realtime(node.get_parameter("realtime_priority").value)
                log = node.get_logger().info if node.scheduling.realtime else node.get_logger().warning
                log(node.scheduling.describe())
            while not stop.is_set():
                executor.spin_once()
        except ExternalShutdownException:
            pass
        except BaseException as err:  # noqa: BLE001 - re-raised by the main thread after close()
            failure.append(err)
        finally:
            executor.remove_node(node)
            executor.shutdown()  # waits for callbacks still running on executor threads
            stop.set()

    spinner = threading.Thread(target=spin, name=f"{name}-spin")
    spinner.start()
    stop.wait()
    spinner.join()
    close = getattr(node, "close", None)
    if close is not None:
        close()
    node.destroy_node()
    rclpy.try_shutdown()
    # stopped: a late signal must not kill the exiting interpreter (which restores the default
    # handlers) and turn the exit code into -SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # the interpreter's final collection then skips what is alive now (torch's module tree):
    # a node with torch loaded exits in about a third of the time (bench/shutdown.py)
    gc.freeze()
    if failure:
        raise failure[0]
