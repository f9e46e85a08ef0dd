"""Small pieces every octo_ros node uses: QoS profiles, parameters declared from the core's
config dataclasses, throttled warnings keyed by what went wrong, and diagnostics."""
from __future__ import annotations

import dataclasses
import enum
import gc
import json
import signal
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Mapping, TypeVar

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.signals import SignalHandlerOptions

from octo_ros.control.chunking import ChunkExecutionConfig
from octo_ros.control.realtime import make_current_thread_realtime, validate_priority
from octo_ros.control.safety import ControlStatus, SafetyConfig
from octo_ros.timebase import ns_to_seconds, seconds_to_ns
from octo_ros_msgs.msg import ActionChunk

# Cameras and joint states: best effort, keep last 5 (rclpy's sensor-data profile).
SENSOR_QOS = qos_profile_sensor_data
# "Latched" topics (goal image, instruction): a late subscriber still gets the last message.
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Observation windows (buffer -> policy) and action chunks (policy -> adapter), possibly across a
# network: newest wins (keep last 1: after a stall only the newest is sent again, never a backlog).
# Reliable, not best effort: a window is hundreds of kB, sent as many UDP datagrams, and best effort
# loses the whole window with any one of them (at 1 % packet loss most windows); reliable resends
# only the missing fragments, and a newer window replaces one still being repaired, so nothing
# queues behind it. Chunks are small; reliable keeps a lost one from costing a whole step. (The
# depth that matters across a link is the writer's: it bounds what is resent after a stall.)
WINDOW_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
# Chunks also assert liveliness with a short lease: an adapter's liveliness monitor (a second
# subscription requesting that lease: DDS reports liveliness only against a finite requested one)
# sees a cut link or a dead policy within the lease and holds, instead of running out its plan.
# Publishers that offer no lease (tools, tests) still match the adapter's data subscription.
CHUNK_LIVELINESS_LEASE_S = 0.15
CHUNK_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                       liveliness=LivelinessPolicy.AUTOMATIC,
                       liveliness_lease_duration=Duration(nanoseconds=int(CHUNK_LIVELINESS_LEASE_S * 1e9)))
# Everything else the recorder subscribes to: reliable, deep enough for bursts between flushes.
RELIABLE_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
QOS_BY_KIND = {"sensor": SENSOR_QOS, "latched": LATCHED_QOS, "reliable": RELIABLE_QOS}


def watch_chunk_liveliness(node, topic: str, on_change) -> None:
    """The liveliness monitor of ``topic``'s chunk publishers: ``on_change(info)`` with rclpy's
    LivelinessChangedStatus. Publishers offering no lease (tools, tests) do not match it."""
    node.create_subscription(ActionChunk, topic, lambda _: None, CHUNK_QOS, event_callbacks=SubscriptionEventCallbacks(
        liveliness=on_change, incompatible_qos=lambda _: None))

OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE
# The diagnostic levels by the words the pure cores report them with.
LEVELS = {"ok": OK, "warn": WARN, "error": ERROR}
# An adapter's diagnostic level by its last control status (None: no tick yet).
CONTROL_LEVELS = {None: WARN, ControlStatus.MOVE: OK, ControlStatus.HOLD: WARN, ControlStatus.ESTOP: ERROR}


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
    """Publishes the node's DiagnosticStatus on /diagnostics (``name``: the node's fully
    qualified name unless given)."""

    def __init__(self, node: Node, hardware_id: str = "", name: str = ""):
        self._node = node
        self.name = name or f"{node.get_namespace().rstrip('/')}/{node.get_name()}".lstrip("/")
        self._hardware_id = hardware_id
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def publish(self, level: int, message: str, values: Mapping[str, object]) -> None:
        self.publish_statuses([(self.name, level, message, values)])

    def publish_statuses(self, statuses: Iterable[tuple[str, int, str, Mapping[str, object]]]) -> None:
        """Several (name, level, message, values) in one array: a node speaking for several
        components (the policy server: each robot it serves)."""
        array = DiagnosticArray(status=[
            DiagnosticStatus(level=bytes([level]) if isinstance(level, int) else level, name=name, message=message,
                             hardware_id=self._hardware_id, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
            for name, level, message, values in statuses])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)


# Node keyword arguments of every node that reads its parameters through parameter(): what it
# was started with is declared at construction, so given_parameters() can tell it from a default.
DECLARE_GIVEN = {"automatically_declare_parameters_from_overrides": True}

# Unit suffixes of core config fields that their ROS parameters do not carry (SI units throughout).
_UNIT_SUFFIXES = ("_m_s", "_rad_s", "_hz", "_rad", "_s", "_m")

T = TypeVar("T")


_GIVEN: "weakref.WeakKeyDictionary[Node, set[str]]" = weakref.WeakKeyDictionary()


def given_parameters(node: Node) -> set[str]:
    """The parameters this node was started with (command line, parameter files), as opposed to
    those left at their declared defaults. Needs the node built with :data:`DECLARE_GIVEN`."""
    if node not in _GIVEN:  # the first call comes before any parameter() declared one
        _GIVEN[node] = set(node.get_parameters_by_prefix("")) - {"use_sim_time"}
    return _GIVEN[node]


def parameter(node: Node, name: str, default: Any) -> Any:
    """The value of parameter ``name``: the one the node was started with, else ``default`` (the
    parameter is declared with it). A given value must have the default's type; ValueError
    names the parameter otherwise."""
    if name not in given_parameters(node):
        if node.has_parameter(name):  # read before
            return node.get_parameter(name).value
        return node.declare_parameter(name, default).value
    value = node.get_parameter(name).value
    expected = Parameter.Type.from_parameter_value(default)
    if Parameter.Type.from_parameter_value(value) != expected:
        raise ValueError(f"parameter '{name}' must be {expected.name.lower()} (like {default!r}), got {value!r}")
    return value


def optional_parameter(node: Node, name: str, type_: Parameter.Type) -> Any:
    """The value of parameter ``name`` of type ``type_`` when the node was started with it, else
    None (declared without a value); ValueError names a value of another type."""
    if name not in given_parameters(node):
        return node.declare_parameter(name, type_).value
    value = node.get_parameter(name).value
    if Parameter.Type.from_parameter_value(value) != type_:
        raise ValueError(f"parameter '{name}' must be {type_.name.lower()}, got {value!r}")
    return value


def parameter_name(field_name: str) -> str:
    """A config field's ROS parameter name: the field name without its unit suffix
    (``control_period_s`` -> ``control_period``, ``max_step_translation_m`` -> ``max_step_translation``);
    integer nanoseconds are seconds (``slop_ns`` -> ``slop_s``)."""
    if field_name.endswith("_ns"):
        return field_name[:-3] + "_s"
    for suffix in _UNIT_SUFFIXES:
        if field_name.endswith(suffix):
            return field_name[: -len(suffix)]
    return field_name


def config_parameters(node: Node, defaults: Any, fields: Iterable[str], names: Mapping[str, str] | None = None,
                      prefix: str = "") -> dict[str, Any]:
    """{field: value} for ``fields`` of the core config ``defaults`` (an instance, or the dataclass
    itself for plain defaults), each read with :func:`parameter` (named ``prefix +
    parameter_name(field)`` unless ``names`` says otherwise) with the field's value in ``defaults``
    as its default: a default is stated once, in the core's config dataclass, and parameter files
    only override. Tuples are double arrays (string arrays when the default holds strings or
    is empty), enums their string values, ``*_ns`` seconds."""
    names = names or {}
    values = {}
    for field in fields:
        default = getattr(defaults, field)
        name = names.get(field) or prefix + parameter_name(field)
        if field.endswith("_ns"):
            values[field] = seconds_to_ns(parameter(node, name, ns_to_seconds(default)))
        elif isinstance(default, enum.Enum):
            values[field] = type(default)(parameter(node, name, default.value))
        elif isinstance(default, tuple) and all(isinstance(v, str) for v in default):
            # rcl cannot type an empty array: an empty default is declared as ['']
            given = tuple(parameter(node, name, list(default) or [""]))
            values[field] = given if default or given != ("",) else ()
        elif isinstance(default, tuple):
            values[field] = tuple(float(v) for v in parameter(node, name, [float(v) for v in default]))
        else:
            values[field] = type(default)(parameter(node, name, default))
    return values


def declare_config(node: Node, defaults: T, fields: Iterable[str], names: Mapping[str, str] | None = None,
                   **fixed: Any) -> T:
    """``defaults`` with ``fields`` read from parameters (:func:`config_parameters`) and ``fixed`` set."""
    return dataclasses.replace(defaults, **config_parameters(node, defaults, fields, names), **fixed)


def execution_config(node: Node, defaults: ChunkExecutionConfig) -> ChunkExecutionConfig:
    """An adapter's chunk execution from parameters, defaulting to the robot's config (``defaults``)."""
    return declare_config(node, defaults, ("step_period_s", "mode", "exec_horizon", "ensemble_horizon", "exp_weight",
                                           "max_future_stamp_s", "reorder_action_dimensions"),
                          names={"mode": "execution_mode"})


def safety_config(node: Node, defaults: SafetyConfig) -> SafetyConfig:
    """An adapter's chunk and state timeouts from parameters (the robot's limits are its own fields)."""
    return declare_config(node, defaults, ("chunk_timeout_s", "state_timeout_s"))


def parameters_json(node: Node) -> str:
    """Every parameter of the node with the value it runs with, as JSON (evidence recorded with episodes)."""
    return json.dumps({name: p.value for name, p in sorted(node.get_parameters_by_prefix("").items())})


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
