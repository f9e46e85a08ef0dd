"""The node graph of each robot setup, as data: the single source of truth that
the ROS 2 launch files (launch/*.launch.py) and the in-repo launcher
(`octo-ros launch`) both build from.

Parameters come from ``config/<robot>.yaml`` (ROS 2 parameter-file layout), with
``config/<robot>_sim.yaml`` layered on top for the simulated robot, then the
launch arguments.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from octo_ros.perception.observation import ProprioLayout

ROBOTS = ("widowx", "ur5", "bimanual")
FLEET = "fleet"  # `octo-ros launch fleet`, launch/fleet.launch.py: one policy server, several robot graphs

# The robot-side node of each setup, and the simulator that stands in for the robot.
ADAPTERS = {"widowx": "widowx_adapter", "ur5": "ur5_adapter", "bimanual": "bimanual_adapter"}
SIMULATORS = {"widowx": "widowx_sim", "ur5": "ur5_sim", "bimanual": "aloha_sim"}

# Launch arguments shared by every launch file: name -> (default, description).
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "checkpoint": ("", "Octo checkpoint directory (official layout or converted); empty: the one in the config file"),
    "dataset_statistics_key": ("", "dataset whose statistics unnormalize the actions; empty: the config file's"),
    "tokenizer": ("", "T5 tokenizer for instructions: a spiece.model file or a folder holding one; empty: the "
                  "checkpoint folder's, else the local Hugging Face cache's t5-base"),
    "dry_run": ("true", "compute commands without sending them to the robot"),
    "record": ("false", "start the rollout recorder"),
    "teleop": ("false", "start the teleop node and let the adapter execute its chunks (source teleop); the policy "
               "and its observation buffer then start only when a checkpoint is given"),
    "namespace": ("", "namespace for every node of the graph"),
    "policy": ("true", "start the policy node; false: a policy on another machine (a GPU box) serves this robot's "
               "observation windows over DDS"),
}
# Launch arguments only one robot has.
ROBOT_ARGUMENTS: dict[str, dict[str, tuple[str, str]]] = {
    "ur5": {"robot_ip": ("", "IP address of the UR controller (ur_rtde); empty: the config file's")},
}
# Launch arguments that set one node parameter when given (not empty): name -> (node, parameter).
ARGUMENT_PARAMETERS = {
    "checkpoint": ("policy", "checkpoint"),
    "dataset_statistics_key": ("policy", "dataset_statistics_key"),
    "tokenizer": ("policy", "tokenizer"),
    "robot_ip": ("ur5_adapter", "robot_ip"),
}


def launch_arguments(robot: str | None) -> dict[str, tuple[str, str]]:
    """The launch arguments of ``robot``'s graph (None: those every robot has; "fleet": a fleet's)."""
    if robot == FLEET:
        return FLEET_ARGUMENTS
    return {**LAUNCH_ARGUMENTS, **ROBOT_ARGUMENTS.get(robot or "", {})}


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (a swap of neighbours counts one)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _near_misses(name: str, known) -> list[str]:
    return [k for k in known if _edit_distance(name, k) <= 2]


def unknown_argument_message(name: str, robot: str | None) -> str:
    known = launch_arguments(robot)
    near = _near_misses(name, known)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return f"unknown launch argument '{name}'{hint}; valid: {', '.join(known)}, or node.parameter:=value"


def arguments_from_launch(configurations: Mapping[str, Any], robot: str) -> dict[str, str]:
    """What :func:`describe` takes, from `ros2 launch`'s launch configurations: the launch
    arguments and every ``node.parameter``. The configurations also hold an including launch
    file's arguments and launch_ros's own (``ros_namespace``), which are not ours to refuse;
    a name a typo away from a valid argument (``checkpiont``) is refused."""
    known = launch_arguments(robot)
    chosen = {}
    for key, value in configurations.items():
        if not isinstance(value, str):  # launch_ros's global_params, ros_remaps
            continue
        if key in known or "." in key:
            chosen[key] = value
        elif _near_misses(key, known):
            raise ValueError(unknown_argument_message(key, robot))
    return chosen


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph: what `ros2 run octo_ros <executable>` starts, and how."""

    name: str
    executable: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    namespace: str = ""
    # `octo-ros launch` stops nodes in ascending order: the robot side first, so it holds
    # the robot before its inputs disappear. (`ros2 launch` signals all nodes at once;
    # every adapter stops an armed robot in its own shutdown either way.)
    stop_order: int = 1
    # its exit brings its group down (`ros2 launch`: OnProcessExit -> Shutdown, or ShutdownProcess
    # of the group's other nodes)
    required: bool = True
    # the robot graph it belongs to in a fleet (its namespace); '': the whole launch
    group: str = ""

    @property
    def module(self) -> str:
        return f"octo_ros.ros.nodes.{self.executable}"

    @property
    def label(self) -> str:
        """The node's name under its namespace: unique in a launch (a fleet has one buffer per robot)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def config_dir() -> Path:
    """config/ of the source tree, or share/octo_ros/config of an installed package."""
    source = Path(__file__).resolve().parents[2] / "config"
    if source.is_dir():
        return source
    from ament_index_python.packages import get_package_share_directory  # installed with colcon

    return Path(get_package_share_directory("octo_ros")) / "config"


def load_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """Read a ROS 2 parameter file into {node_name: {param: value}}."""
    document = yaml.safe_load(path.read_text()) or {}
    nodes: dict[str, dict[str, Any]] = {}
    for node_name, body in document.items():
        if not isinstance(body, Mapping) or "ros__parameters" not in body:
            raise ValueError(f"{path}: '{node_name}' has no ros__parameters section")
        nodes[node_name] = dict(body["ros__parameters"] or {})
    return nodes


def merge_parameters(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` on top of ``base``, merging nested maps (a map in the overlay
    changes only the keys it names); a copy, the inputs are left alone."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_parameters(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_bool(name: str, text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"launch argument {name}:={text!r} is not a boolean (use true or false)")


def describe(robot: str, sim: bool = False, arguments: Mapping[str, str] | None = None,
             config: Path | None = None) -> list[NodeSpec]:
    """The nodes to start for ``robot`` (real or simulated) with the given launch arguments.

    ``arguments`` holds launch arguments (see LAUNCH_ARGUMENTS) and per-node
    parameter overrides written ``node_name.parameter`` (values as text, parsed as YAML).
    """
    if robot not in ROBOTS:
        raise ValueError(f"unknown robot '{robot}' (choose one of {', '.join(ROBOTS)})")
    config = config or config_dir()
    known = launch_arguments(robot)
    args = {name: default for name, (default, _) in known.items()}
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in (arguments or {}).items():
        if key in known:
            args[key] = value
        elif "." in key:
            node, param = key.split(".", 1)
            overrides.setdefault(node, {})[param] = yaml.safe_load(value) if isinstance(value, str) else value
        else:
            raise ValueError(unknown_argument_message(key, robot))

    params = load_parameters(config / f"{robot}.yaml")
    if sim:
        params = merge_parameters(params, load_parameters(config / f"{robot}_sim.yaml"))

    adapter = ADAPTERS[robot]
    for name, (node, param) in ARGUMENT_PARAMETERS.items():
        if args.get(name):
            params.setdefault(node, {})[param] = args[name]
    params.setdefault(adapter, {})["dry_run"] = parse_bool("dry_run", args["dry_run"])
    # the recorder stores the evidence of what drove the robot with each episode
    recorder = params.setdefault("recorder", {})
    recorder["checkpoint_id"] = str(params.get("policy", {}).get("checkpoint", ""))
    recorder["dataset_statistics_key"] = str(params.get("policy", {}).get("dataset_statistics_key", ""))
    recorder["seed"] = int(params.get("policy", {}).get("seed", 0))
    for node, values in overrides.items():
        params.setdefault(node, {}).update(values)
    # the buffer sizes each camera as the checkpoint it feeds expects
    params.setdefault("observation_buffer", {}).setdefault("checkpoint", str(params.get("policy", {}).get("checkpoint", "")))
    # ... and how the observation buffer builds the proprio from the joint states (the export's
    # robot state), after the overrides
    recorder["proprio_layout"] = json.dumps(
        ProprioLayout.from_parameters(params.get("observation_buffer", {})).to_dict(), sort_keys=True)

    teleop = parse_bool("teleop", args["teleop"])
    with_policy = not teleop or bool(params.get("policy", {}).get("checkpoint"))  # demonstrations need no model
    if teleop:
        params.setdefault(adapter, {}).setdefault("source", "teleop")
        teleop_params = params.setdefault("teleop", {})
        teleop_params.setdefault("robot", robot)
        # the adapter's step and the policy's action names, so both sources' chunks look alike
        for param, (node, source) in {"step_period": (adapter, "step_period"),
                                      "action_dimension_names": ("policy", "action_dimension_names")}.items():
            if source in params.get(node, {}):
                teleop_params.setdefault(param, params[node][source])
    local_policy = parse_bool("policy", args["policy"])
    names = (["observation_buffer"] + ["policy"] * local_policy if with_policy else []) + [adapter]
    if teleop:
        names.append("teleop")
    if sim:
        names.append(SIMULATORS[robot])
    if parse_bool("record", args["record"]):
        names.append("recorder")
    unknown = set(overrides) - set(names)
    if unknown:
        raise ValueError(f"parameter overrides for nodes not in the {robot} graph: {sorted(unknown)}")

    namespace = args["namespace"].strip("/")
    stop_order = {adapter: 0, SIMULATORS[robot]: 2, "recorder": 3}
    return [
        NodeSpec(
            name=name,
            executable=name,
            parameters=params.get(name, {}),
            namespace=namespace,
            stop_order=stop_order.get(name, 1),
        )
        for name in names
    ]


# ------------------------------------------------------------------------------ fleets

# Launch arguments of a fleet (one policy server, K robot graphs): name -> (default, description).
FLEET_ARGUMENTS: dict[str, tuple[str, str]] = {
    "robots": ("", "the robot of each graph, comma-separated (widowx, ur5, bimanual): robots:=widowx,widowx,ur5"),
    "names": ("", "each robot's namespace, comma-separated, as many as robots; empty: <robot>_<n> "
              "(widowx_0, widowx_1, ur5_0)"),
    **{name: LAUNCH_ARGUMENTS[name] for name in ("checkpoint", "tokenizer", "dry_run", "record")},
}
SERVER = "policy"  # the fleet's policy server: the policy node, serving every robot namespace


def fleet_names(robots: list[str], names: list[str]) -> list[str]:
    """Each robot's namespace: ``names`` as given, else ``<robot>_<n>`` numbered per kind."""
    if not names:
        return [f"{robot}_{robots[:i].count(robot)}" for i, robot in enumerate(robots)]
    if len(names) != len(robots):
        raise ValueError(f"names:= gives {len(names)} names for {len(robots)} robots")
    for name in names:
        if not all(part.isidentifier() for part in name.split("/")):
            raise ValueError(f"names: {name!r} is not a robot namespace (names like cell1 or lab/cell1)")
    if len(set(names)) != len(names) or SERVER in names:
        raise ValueError(f"names: {names} must be distinct and not '{SERVER}'")
    return names


def _nested(key: str, value: Any) -> dict[str, Any]:
    """``a.b.c`` = value as {a: {b: {c: value}}}, the map a parameter file holds for that name."""
    head, _, rest = key.partition(".")
    return {head: _nested(rest, value) if rest else value}


def describe_fleet(sim: bool = False, arguments: Mapping[str, str] | None = None,
                   config: Path | None = None) -> list[NodeSpec]:
    """One policy server and one graph per robot of ``robots:=`` (its buffer, adapter, simulator
    with ``sim``, recorder with ``record:=true``; no policy of its own), each robot's graph in its
    namespace (the group a required node's exit stops). The server serves every namespace with
    the dataset statistics key and action names of that robot's config file; the rest of its
    parameters are the first robot's. Overrides: ``policy.<param>`` (the server),
    ``<ns>.<node>.<param>`` (one robot's node; ``<ns>.policy.dataset_statistics_key`` is the key
    the server unnormalizes that robot's actions with), ``<node>.<param>`` (that node in every
    robot graph that has it)."""
    config = config or config_dir()
    args = {name: default for name, (default, _) in FLEET_ARGUMENTS.items()}
    dotted: dict[str, str] = {}
    for key, value in (arguments or {}).items():
        if key in FLEET_ARGUMENTS:
            args[key] = value
        elif "." in key:
            dotted[key] = value
        else:
            raise ValueError(unknown_argument_message(key, FLEET))
    robots = [r.strip() for r in args["robots"].split(",") if r.strip()]
    if not robots:
        raise ValueError("robots:= names no robot (robots:=widowx,widowx,ur5)")
    unknown = sorted(set(robots) - set(ROBOTS))
    if unknown:
        raise ValueError(f"robots: unknown robot {unknown[0]!r} (choose from {', '.join(ROBOTS)})")
    names = fleet_names(robots, [n.strip().strip("/") for n in args["names"].split(",") if n.strip()])

    given = {k: args[k] for k in ("checkpoint", "tokenizer", "dry_run", "record") if args[k]}
    graphs = {name: describe(robot, sim=sim, arguments={**given, "namespace": name}, config=config)
              for robot, name in zip(robots, names)}
    server: dict[str, Any] = {}
    overrides: dict[str, dict[str, str]] = {name: {} for name in names}
    for key, value in dotted.items():
        head, rest = key.split(".", 1)
        if head == SERVER:
            server = merge_parameters(server, _nested(rest, yaml.safe_load(value)))
        elif head in overrides:  # one robot's node: its graph refuses a node it does not have
            overrides[head][rest] = value
        else:  # a node of every robot graph that has it
            having = [name for name, graph in graphs.items() if head in {s.name for s in graph if s.name != SERVER}]
            if not having:
                raise ValueError(f"'{key}': '{head}' is neither '{SERVER}', a robot of this fleet "
                                 f"({', '.join(names)}) nor a node of their graphs")
            for name in having:
                overrides[name][key] = value

    specs: list[NodeSpec] = []
    policies = []
    for robot, name in zip(robots, names):
        if overrides[name]:
            graphs[name] = describe(robot, sim=sim, arguments={**given, **overrides[name], "namespace": name}, config=config)
        policies.append((name, robot, next(s for s in graphs[name] if s.name == SERVER).parameters))
        specs += [replace(spec, group=name) for spec in graphs[name] if spec.name != SERVER]

    steps = {params.get("step_period") for _, _, params in policies}
    if len(steps) > 1:
        raise ValueError(f"robots {', '.join(sorted({r for _, r, _ in policies}))} need different policy step periods "
                         f"({', '.join(str(s) for s in sorted(steps, key=str))} s): one server runs one")
    common = {k: v for k, v in policies[0][2].items() if k not in ("dataset_statistics_key", "action_dimension_names")}
    parameters = {**common, "robots": names}
    for name, _, params in policies:
        own = {k: params[k] for k in ("dataset_statistics_key", "action_dimension_names") if k in params}
        parameters = merge_parameters(parameters, _nested(name.replace("/", "."), own))
    parameters = merge_parameters(parameters, server)
    return [NodeSpec(name=SERVER, executable=SERVER, parameters=parameters, stop_order=1), *specs]
