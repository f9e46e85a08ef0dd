"""`octo-ros collect <robot>`: scripted demonstrations recorded through the real graph.

The simulated robot, its adapter (armed, executing ``teleop`` chunks), the teleop node and the
recorder run as child processes (octo_ros.ros.launcher.GraphProcess); this process is the
operator. For each episode it lays out the task scene of the episode's seed in the simulator
(``~/reset_episode``), drives the arm to the scene's start point, starts a recording with the
task's instruction, and then lets the scripted expert — which knows the simulator's ground truth
from ``~/task_status`` — drive the same inputs a person would: a Twist and a gripper command
(WidowX, UR5) or the two leader arms' joint states (bimanual). The episode ends when the
simulator's own success check has held long enough (``success``) or time is up (``failure``);
that outcome is the episode's label.

One bag folder per episode under OUT (so ``octo-ros export OUT/* ...`` takes them all). Episode
``i`` uses seed ``S + i``. A rerun skips the episodes OUT already holds (labelled ``success`` or
``failure`` by the same collection); bags of interrupted episodes are moved to ``OUT/.unfinished``.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

FINISHED = ("success", "failure")
OPERATOR = "octo-ros collect (scripted expert)"
UNFINISHED_DIR = ".unfinished"
LOG_NAME = ".collect.log"  # the graph's output, in OUT


@dataclass(frozen=True)
class RobotTasks:
    tasks: dict  # name -> the task's description (ReachTaskConfig, AlohaTask)
    default: str


def robot_tasks(robot: str) -> RobotTasks:
    """The simulated tasks of ``robot`` (imported on demand: the ALOHA sim needs MuJoCo)."""
    if robot == "widowx":
        from octo_ros.robots.widowx.sim import DEFAULT_TASK, TASKS
    elif robot == "ur5":
        from octo_ros.robots.ur5.sim import DEFAULT_TASK, TASKS
    elif robot == "bimanual":
        from octo_ros.robots.bimanual.sim import DEFAULT_TASK, TASKS
    else:
        raise ValueError(f"unknown robot {robot!r}")
    return RobotTasks(TASKS, DEFAULT_TASK)


# ------------------------------------------------------------------------------ resuming


def _collect_metadata(bag: Path) -> dict | None:
    from octo_ros.recording.bag import is_complete, read_episode_metadata

    if not is_complete(bag):
        return None
    try:
        return read_episode_metadata(bag)
    except (OSError, KeyError, ValueError):
        return None


def finished_episodes(out: Path, task: str, seed: int) -> dict[int, Path]:
    """Episode index → bag, for the episodes of this collection (task, first seed) OUT holds.
    ValueError when OUT holds another collection's episodes."""
    done: dict[int, Path] = {}
    for bag in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")) if out.is_dir() else ():
        info = _collect_metadata(bag)
        meta = (info or {}).get("metadata", {})
        if info is None or "collect_episode" not in meta or info.get("outcome") not in FINISHED:
            continue
        if meta.get("task") != task or int(meta.get("collect_seed", -1)) != seed:
            raise ValueError(f"{out} holds episodes of another collection ({bag.name}: task {meta.get('task')}, "
                             f"seed {meta.get('collect_seed')}); use another OUT")
        done[int(meta["collect_episode"])] = bag
    return done


def set_aside_unfinished(out: Path) -> list[Path]:
    """Move bags that are not finished episodes (a crash, an interrupted run) to OUT/.unfinished."""
    moved = []
    if not out.is_dir():
        return moved
    for bag in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        info = _collect_metadata(bag)
        if info is not None and info.get("outcome") in FINISHED:
            continue
        target = out / UNFINISHED_DIR / bag.name
        target.parent.mkdir(exist_ok=True)
        shutil.move(str(bag), str(target))
        moved.append(target)
    return moved


# ------------------------------------------------------------------------------ the graph


def collect_specs(robot: str, task: str, out: Path, assignments: dict[str, str]):
    """The nodes: the simulated robot, its adapter (armed, teleop chunks), the teleop node and the
    recorder into ``out``; ``assignments`` are ``node.parameter`` overrides (teleop's included)."""
    from octo_ros.ros.graph import ADAPTERS, SIMULATORS, NodeSpec, describe

    adapter, sim = ADAPTERS[robot], SIMULATORS[robot]
    teleop = {k.split(".", 1)[1]: v for k, v in assignments.items() if k.startswith("teleop.")}
    arguments = {"dry_run": "false", "record": "true", "recorder.output_dir": str(out), "recorder.seed": "-1",
                 f"{adapter}.source": "teleop", f"{sim}.episode_task": task}
    arguments.update({k: v for k, v in assignments.items() if not k.startswith("teleop.")})
    specs = [s for s in describe(robot, sim=True, arguments=arguments) if s.name not in ("policy", "observation_buffer")]
    for spec in specs:
        topics = spec.parameters.get("topics")
        if spec.name == "recorder" and topics is not None and "teleop/action_chunk" not in topics:
            spec.parameters["topics"] = [*topics, "teleop/action_chunk"]
    params = {"robot": robot, **{k: yaml.safe_load(v) for k, v in teleop.items()}}
    specs.append(NodeSpec(name="teleop", executable="teleop", parameters=params, namespace=specs[0].namespace))
    return specs


# ------------------------------------------------------------------------------ episodes


@dataclass
class EpisodeRecord:
    index: int
    seed: int
    outcome: str
    seconds: float
    bag: str


def _reach_episode(op, task: str, seed: int, metadata: dict, linear_scale: float) -> tuple[str, float, str]:
    from octo_ros.sim.reach import ReachExpert, sample_scene
    from octo_ros.sim.tasks import EpisodeJudge

    scene = sample_scene(task, robot_tasks(op.robot).tasks[task], seed)
    expert = ReachExpert(scene)
    op.arm(True)
    # reset: drive to the scene's start point (not recorded)
    deadline = time.monotonic() + 15.0
    while True:
        status, _ = op.latest()
        tip = status.values["tip"]
        if expert.start_reached(tip):
            break
        if time.monotonic() > deadline or op.graph.check():
            raise RuntimeError(f"the arm did not reach the start point {np.round(scene.start, 3).tolist()} (at "
                               f"{np.round(tip, 3).tolist()}; see {LOG_NAME})")
        op.send_twist(expert.to_start(tip, status.time), 1.0, linear_scale)
        time.sleep(0.05)
    op.send_twist((0.0, 0.0, 0.0), 1.0, linear_scale)
    bag = op.start_episode(scene.instruction, metadata)
    status, count = op.latest()
    judge = EpisodeJudge(scene.config.rule, start=status.time)
    while judge.outcome is None:
        op.wait(lambda: op.latest()[1] > count, 5.0, "the task status")
        status, count = op.latest()
        if judge.update(status.time, status.success) is None:
            velocity, gripper = expert.command(status.values["tip"], status.time)
            op.send_twist(velocity, gripper, linear_scale)
    op.send_twist((0.0, 0.0, 0.0), 1.0, linear_scale)
    return judge.outcome, status.time - judge.start, bag


def _bimanual_episode(op, task: str, seed: int, metadata: dict, leader) -> tuple[str, float, str]:
    from octo_ros.robots.bimanual.expert import LiftCubeExpert
    from octo_ros.sim.tasks import EpisodeJudge

    spec = robot_tasks("bimanual").tasks[task]
    status, _ = op.latest()
    start = np.asarray(status.values["qpos14"], float)
    expert = LiftCubeExpert(status.values["cube"], start)
    # the leaders at the followers' (reset) pose before arming: the teleop's newest action is that
    # pose, not where the leaders were at the end of the last episode; and a moment more before
    # recording, so the first recorded actions hold
    for armed in (False, True):
        if armed:
            op.arm(True)
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            op.send_leaders(start, leader)
            time.sleep(0.02)
    bag = op.start_episode(spec.instruction, metadata)
    status, count = op.latest()
    judge = EpisodeJudge(spec.rule, start=status.time)
    while judge.outcome is None:
        status, n = op.latest()
        op.send_leaders(expert.follow(status.values["qpos14"], status.time), leader)
        if n > count:
            count = n
            judge.update(status.time, status.success)
        if op.graph.check():
            raise RuntimeError(f"{', '.join(op.graph.failed)} died during the episode (see {LOG_NAME})")
        time.sleep(0.02)
    return judge.outcome, status.time - judge.start, bag


def run_collect(robot: str, task: str | None, episodes: int, seed: int, out: Path,
                assignments: dict[str, str] | None = None, progress: bool = True) -> list[EpisodeRecord]:
    """Record episodes ``0 .. episodes-1`` not yet in ``out``; returns what this run recorded."""
    from tqdm import tqdm

    from octo_ros.control.teleop import TwistTeleopConfig
    from octo_ros.robots.bimanual.teleop import LeaderTeleopConfig
    from octo_ros.ros.graph import ADAPTERS, SIMULATORS
    from octo_ros.ros.launcher import GraphProcess
    from octo_ros.ros.operator import Operator

    tasks = robot_tasks(robot)
    task = task or tasks.default
    if task not in tasks.tasks:
        raise ValueError(f"unknown {robot} task {task!r} (choose one of {', '.join(tasks.tasks)})")
    if episodes < 1 or seed < 0:
        raise ValueError("need --episodes >= 1 and --seed >= 0")
    assignments = dict(assignments or {})
    out.mkdir(parents=True, exist_ok=True)
    for moved in set_aside_unfinished(out):
        print(f"octo-ros collect: unfinished bag moved to {moved}", flush=True)
    done = finished_episodes(out, task, seed)
    todo = [i for i in range(episodes) if i not in done]
    if not todo:
        print(f"octo-ros collect: all {episodes} episodes are in {out} already", flush=True)
        return []
    specs = collect_specs(robot, task, out, assignments)
    teleop_params = next(s.parameters for s in specs if s.name == "teleop")
    linear_scale = float(teleop_params.get("linear_scale", TwistTeleopConfig.linear_scale))
    d = LeaderTeleopConfig()
    leader = LeaderTeleopConfig(**{f"{side}_gripper_{end}_rad": float(teleop_params.get(f"{side}_gripper_{end}",
                                                                                          getattr(d, f"{side}_gripper_{end}_rad")))
                                   for side in ("left", "right") for end in ("open", "close")})
    os.environ.setdefault("MUJOCO_GL", "egl")
    # The operator commands real topic names: keep the graph on this machine.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    log = open(out / LOG_NAME, "a")
    graph = GraphProcess(specs, out=log)
    records: list[EpisodeRecord] = []
    bar = tqdm(total=episodes, initial=len(done), unit="episode", disable=not progress, file=sys.stdout)
    op = None
    try:
        graph.start()
        op = Operator(robot, graph, (ADAPTERS[robot], SIMULATORS[robot]))
        op.wait(lambda: op.latest()[0] is not None, 120.0, f"{SIMULATORS[robot]}'s task status")
        for index in todo:
            episode_seed = seed + index
            op.arm(False)  # the reset may move the arms: never while armed; each episode arms
            op.lay_out(task, episode_seed)
            metadata = {"operator": OPERATOR, "task": task, "task_seed": episode_seed, "collect_episode": index,
                        "collect_seed": seed, "collect_episodes": episodes}
            if robot == "bimanual":
                outcome, seconds, bag = _bimanual_episode(op, task, episode_seed, metadata, leader)
            else:
                outcome, seconds, bag = _reach_episode(op, task, episode_seed, metadata, linear_scale)
            status, _ = op.latest()
            bag = op.stop_episode(outcome, {"success_check": "simulator", "reward": f"{status.reward:g}",
                                            "seconds": f"{seconds:.2f}"})
            records.append(EpisodeRecord(index, episode_seed, outcome, seconds, bag))
            bar.write(f"episode {index} (seed {episode_seed}): {outcome} in {seconds:.1f} s -> {bag}")
            bar.update(1)
    finally:
        bar.close()
        if op is not None:
            op.close()
        graph.stop()
        log.close()
    return records


def _cmd_collect(args) -> int:
    from octo_ros.ros.launcher import parse_assignments

    try:
        records = run_collect(args.robot, args.task, args.episodes, args.seed, Path(args.out).resolve(),
                              parse_assignments(args.assignments), progress=not args.no_progress)
    except (RuntimeError, ValueError) as err:
        print(f"octo-ros collect failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("octo-ros collect: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if records:
        successes = sum(r.outcome == "success" for r in records)
        print(f"octo-ros collect: {successes}/{len(records)} episodes of this run succeeded")
    return 0


def register(subparsers) -> None:
    from octo_ros.ros.graph import ROBOTS

    p = subparsers.add_parser(
        "collect", help="record scripted-expert demonstrations on a simulated robot through the real graph",
        description="Runs the simulated robot, its adapter, the teleop node and the recorder; a scripted expert "
        "drives the teleop inputs. One bag folder per episode under OUT, labelled success/failure by the "
        "simulator's check; a rerun skips the episodes OUT holds. Trailing node.parameter:=value items "
        "override parameters (e.g. widowx_sim.image_width:=128, teleop.linear_scale:=0.1).")
    p.add_argument("robot", choices=ROBOTS)
    p.add_argument("out", metavar="OUT", help="folder for the episode bags")
    p.add_argument("--task", default=None, help="the simulated task (default: the robot's default task)")
    p.add_argument("--episodes", type=int, required=True, help="how many episodes OUT should hold")
    p.add_argument("--seed", type=int, default=0, help="seed of episode 0; episode i uses seed + i")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("assignments", nargs="*", metavar="node.parameter:=value")
    p.set_defaults(func=_cmd_collect)
