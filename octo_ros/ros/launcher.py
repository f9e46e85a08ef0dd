"""Run a node graph (octo_ros.ros.graph) as child processes, where `ros2 launch` is
not available: each node a process, its output prefixed with the node name,
Ctrl-C stopping everything in order (the robot side first), and a node that dies
reported and, when it is required (as every node of the default graphs is) and
--keep-going is not given, bringing its group down: the graph, or in a fleet that robot's graph
(the policy server's group is the whole fleet)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence, TextIO

import yaml

from octo_ros.ros.graph import NodeSpec


def node_command(spec: NodeSpec, params_file: Path) -> list[str]:
    """The command line that starts ``spec`` like `ros2 run` would."""
    argv = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        argv += ["-r", f"__ns:=/{spec.namespace}"]
    for source, target in spec.remappings:
        argv += ["-r", f"{source}:={target}"]
    if spec.parameters:
        argv += ["--params-file", str(params_file)]
    return argv


class _ParamsDumper(yaml.SafeDumper):
    """Quotes every string: rcl's YAML parser reads bare y/n/on/off as booleans."""


_ParamsDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="'"))


def write_params_file(spec: NodeSpec, directory: Path) -> Path:
    """``spec``'s parameters as a ROS 2 parameter file for that one node. Keyed ``/**``
    (every node): a namespace pushed by an including launch file (PushRosNamespace) is
    only known when the node starts, and a key naming the node would no longer match."""
    path = directory / f"{spec.label.replace('/', '.')}.yaml"
    path.write_text(yaml.dump({"/**": {"ros__parameters": spec.parameters}}, Dumper=_ParamsDumper, sort_keys=False))
    return path


class GraphProcess:
    """A running graph. Use as a context manager, or call start()/stop()."""

    def __init__(self, specs: Sequence[NodeSpec], out: TextIO | None = None, keep_going: bool = False,
                 env: dict[str, str] | None = None, command_prefix: Sequence[str] = ()):
        self.specs = list(specs)
        # put before every node's command line, e.g. `ip netns exec NAME` (it execs the node: signals reach it)
        self.command_prefix = list(command_prefix)
        self.out = out if out is not None else sys.stdout  # read now: sys.stdout may have been replaced since import
        self.keep_going = keep_going
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}
        self._readers: list[threading.Thread] = []
        self._print_lock = threading.Lock()
        self._params_dir = tempfile.TemporaryDirectory(prefix="octo_ros_launch_")
        self.failed: list[str] = []

    def _say(self, name: str, line: str) -> None:
        with self._print_lock:
            self.out.write(f"[{name}] {line}\n")
            self.out.flush()

    def _pump(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            self._say(name, raw.decode(errors="replace").rstrip("\n"))
        stream.close()

    def start(self) -> "GraphProcess":
        directory = Path(self._params_dir.name)
        for spec in self.specs:
            argv = self.command_prefix + node_command(spec, write_params_file(spec, directory))
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=self.env, start_new_session=True)
            self.processes[spec.label] = proc
            reader = threading.Thread(target=self._pump, args=(spec.label, proc.stdout), daemon=True,
                                      name=f"launch-{spec.label}")
            reader.start()
            self._readers.append(reader)
            self._say("launch", f"started {spec.label} (pid {proc.pid})")
        return self

    def check(self) -> list[str]:
        """Labels (``NodeSpec.label``) of nodes that have exited; reports each once."""
        dead = []
        for name, proc in self.processes.items():
            if proc.poll() is not None and name not in self.failed:
                self.failed.append(name)
                self._say("launch", f"{name} exited with code {proc.returncode}")
                dead.append(name)
        return dead

    def wait(self, duration: float | None = None, poll: float = 0.1) -> bool:
        """Run until ``duration`` elapses (None: forever) or a required node of no group dies
        (unless keep_going); a required node of a group (a fleet's robot) stops that group, the
        others run on. Returns False if a node died."""
        specs = {spec.label: spec for spec in self.specs}
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            for label in self.check():
                spec = specs[label]
                if not spec.required or self.keep_going:
                    continue
                if not spec.group:
                    return False
                self._say("launch", f"{label} is required in {spec.group}: stopping {spec.group}'s graph")
                self._stop([s for s in self.specs if s.group == spec.group], timeout=10.0)
            if self.processes and len(self.failed) == len(self.processes):
                return False
            time.sleep(poll)
        return not self.failed

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT the nodes in stop order, waiting for each to exit."""
        self._stop(self.specs, timeout)
        for reader in self._readers:
            reader.join(timeout=2)
        self._params_dir.cleanup()

    def _stop(self, specs: Sequence[NodeSpec], timeout: float) -> None:
        for order in sorted({spec.stop_order for spec in specs}):
            group = [s.label for s in specs if s.stop_order == order]
            for name in group:
                proc = self.processes.get(name)
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            for name in group:
                proc = self.processes.get(name)
                if proc is None:
                    continue
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._say("launch", f"{name} did not stop within {timeout} s: killing it")
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def __enter__(self) -> "GraphProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run(specs: Sequence[NodeSpec], duration: float | None = None, keep_going: bool = False) -> int:
    """Run a graph in the foreground until Ctrl-C, ``duration`` or a node dies."""
    graph = GraphProcess(specs, keep_going=keep_going)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        graph.start()
        healthy = graph.wait(duration)
    except KeyboardInterrupt:
        healthy = True
        graph._say("launch", "Ctrl-C: stopping the graph (robot side first)")
    finally:
        graph.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0 if healthy else 1


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``key:=value`` command-line items (as `ros2 launch` takes them) into a dict."""
    out = {}
    for item in items:
        key, sep, value = item.partition(":=")
        if not sep or not key:
            raise ValueError(f"'{item}' is not key:=value")
        out[key] = value
    return out


def _cmd_launch(args) -> int:
    from octo_ros.ros.graph import FLEET, describe, describe_fleet

    try:
        arguments = parse_assignments(args.assignments)
        if args.robot == FLEET:
            specs = describe_fleet(sim=args.sim, arguments=arguments)
        else:
            specs = describe(args.robot, sim=args.sim, arguments=arguments)
    except ValueError as err:
        print(f"octo-ros launch: {err}", file=sys.stderr)
        return 2
    return run(specs, duration=args.duration, keep_going=args.keep_going)


def register(subparsers) -> None:
    from octo_ros.ros.graph import FLEET, FLEET_ARGUMENTS, LAUNCH_ARGUMENTS, ROBOT_ARGUMENTS, ROBOTS

    p = subparsers.add_parser(
        "launch", help="run a robot's node graph as child processes (where `ros2 launch` is unavailable)",
        description="Runs the same graph as launch/<robot>.launch.py. Arguments: "
        + ", ".join(f"{k} (default '{d}')" for k, (d, _) in LAUNCH_ARGUMENTS.items())
        + "".join(f"; {robot} also " + ", ".join(extra) for robot, extra in ROBOT_ARGUMENTS.items())
        + "; or node.parameter:=value. `launch fleet` runs launch/fleet.launch.py, one policy server and "
        "several robot graphs, each in its namespace: " + ", ".join(FLEET_ARGUMENTS)
        + "; or policy.parameter, <name>.node.parameter, node.parameter:=value.")
    p.add_argument("robot", choices=(*ROBOTS, FLEET))
    p.add_argument("--sim", action="store_true", help="start the simulated robot(s) too")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--keep-going", action="store_true", help="keep the graph up when a required node dies")
    p.add_argument("assignments", nargs="*", metavar="key:=value")
    p.set_defaults(func=_cmd_launch)
