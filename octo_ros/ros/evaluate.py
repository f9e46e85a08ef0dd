"""`octo-ros evaluate <robot>`: seeded closed-loop episodes of a simulated task through the real
graph — camera → observation buffer → policy (its own process) → adapter (armed) → simulator,
over DDS — judged by the simulator's own success check (``~/task_status``).

This process is the evaluator: for each seed it disarms the adapter, lays out the scene
(``~/reset_episode``), brings the arm to the scene's start point (joint commands straight to the
simulated driver, as a person resetting the robot would), resets the observation window, gives
the policy the instruction, starts a recording, waits for the first chunk computed after the
reset, arms the adapter and watches the task status, the adapter's status and the processes until
the episode's rule (octo_ros.sim.tasks.EpisodeRule) decides. A node that dies is that episode's
failure mode (octo_ros.evaluation.classify); the graph is started afresh and the next episode runs.

OUT gets ``summary.json``, ``evidence.md`` / ``evidence.json``, one bag per episode (``bags/``)
and a video of every failed episode (``videos/``; of every episode with ``video_every_episode``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from octo_ros.evaluation import (
    BlockJudges,
    EpisodeResult,
    HoldTracker,
    block_reached,
    classify,
    evidence_markdown,
    parse_seeds,
    summarize,
)

EVALUATED_ROBOTS = ("widowx", "bimanual")
DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "robots" / "widowx" / "demo_policy"
UNTRAINED = "untrained"
LOG_NAME = "graph.log"


def robot_tasks(robot: str):
    """(tasks, default task) of a robot whose simulated tasks evaluate runs (`octo-ros collect`'s table)."""
    from octo_ros.ros.collect import robot_tasks as simulated_tasks

    if robot not in EVALUATED_ROBOTS:
        raise ValueError(f"octo-ros evaluate runs the {', '.join(EVALUATED_ROBOTS)} tasks; {robot!r} has none yet")
    tasks = simulated_tasks(robot)
    return tasks.tasks, tasks.default


def resolve_checkpoint(name: str, out: Path, robot: str = "widowx") -> Path:
    """``demo``: the shipped (WidowX) policy; ``untrained``: random weights of a tiny Octo with the
    robot's action layout (written into OUT); else a checkpoint folder."""
    if name == "demo":
        if robot != "widowx":
            raise ValueError(f"no {robot} policy ships (only the WidowX one: octo_ros/robots/widowx/demo_policy)")
        if not (DEMO_CHECKPOINT / "octo_ros.json").is_file():
            raise ValueError(f"no shipped demo policy at {DEMO_CHECKPOINT}: tools/train_demo_policy.sh makes one")
        return DEMO_CHECKPOINT
    if name == UNTRAINED and robot == "bimanual":
        from octo_ros.ros.demo import demo_checkpoint

        return demo_checkpoint(out / "untrained_checkpoint")
    if name == UNTRAINED:
        from octo_ros.model.testing import make_untrained_checkpoint

        return make_untrained_checkpoint(out / "untrained_checkpoint", cameras=("primary",), action_dim=7, action_horizon=4,
                                         head="diffusion", dataset=UNTRAINED)
    path = Path(name).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"checkpoint {name!r} is not a folder (or 'demo' / '{UNTRAINED}')")
    return path


def evaluation_specs(robot: str, task: str, checkpoint: Path, out: Path, assignments: dict[str, str]):
    from octo_ros.inference.checkpoint_info import checkpoint_dataset_keys, checkpoint_observation_keys
    from octo_ros.ros.graph import ADAPTERS, SIMULATORS, describe

    sim = SIMULATORS[robot]
    arguments = {"checkpoint": str(checkpoint), "dry_run": "true", "record": "true",
                 "recorder.output_dir": str(out / "bags"), f"{sim}.episode_task": task}
    keys = checkpoint_dataset_keys(checkpoint)
    if assignments.get("dataset_statistics_key") is None and len(keys) == 1:
        arguments["dataset_statistics_key"] = keys[0]  # a fine-tuned or untrained checkpoint knows one dataset
    if robot == "widowx" and "proprio" in checkpoint_observation_keys(checkpoint):
        # fine-tuned on episodes `octo-ros collect` recorded: observation.state is the driver's joint_states
        from octo_ros.robots.interbotix.kinematics import JOINT_STATE_NAMES

        arguments["observation_buffer.proprio_joints"] = json.dumps(list(JOINT_STATE_NAMES))
    arguments.update(assignments)
    specs = describe(robot, sim=True, arguments=arguments)
    for spec in specs:
        if spec.name == "recorder":
            spec.parameters["topics"] = [*spec.parameters.get("topics", []), f"{sim}/task_status", f"{ADAPTERS[robot]}/status"]
    return specs


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("octo_ros")
    except PackageNotFoundError:
        v = "source"
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return f"octo_ros {v}" + (f" ({commit})" if commit else "")


def _schedule_evidence(core) -> dict:
    """What every adapter config states about its control schedule and staleness limits (the
    defaults the node falls back to where its YAML sets nothing)."""
    ex = core.execution
    return {"control_period": core.control_period_s, "step_period": ex.step_period_s,
            "execution_mode": getattr(ex.mode, "value", ex.mode), "exec_horizon": ex.exec_horizon,
            "ensemble_horizon": ex.ensemble_horizon, "exp_weight": ex.exp_weight,
            "chunk_timeout": core.safety.chunk_timeout_s, "state_timeout": core.safety.state_timeout_s}


def _bimanual_adapter_evidence(given: dict) -> tuple[dict, str]:
    from octo_ros.robots.bimanual.adapter import BimanualConfig

    core = BimanualConfig()
    adapter = _schedule_evidence(core)
    for side in ("left", "right"):
        arm = getattr(core, side)
        adapter.update({f"{side}_namespace": arm.namespace, f"{side}_gripper_open": arm.gripper_open_rad,
                        f"{side}_gripper_close": arm.gripper_close_rad})
    adapter.update({k: v for k, v in given.items() if k in adapter})
    gripper = "; ".join(f"{side}: policy gripper 1 = open -> {adapter[f'{side}_gripper_open']} rad, 0 = closed -> "
                        f"{adapter[f'{side}_gripper_close']} rad (gripper joint)" for side in ("left", "right"))
    return adapter, gripper


def evidence(robot: str, task: str, checkpoint: Path, specs, seeds: list[int], instruction: str) -> dict:
    from octo_ros.robots.widowx.adapter import WidowXConfig
    from octo_ros.ros.graph import ADAPTERS

    params = {s.name: s.parameters for s in specs}
    given = params[ADAPTERS[robot]]
    if robot == "bimanual":
        adapter, gripper = _bimanual_adapter_evidence(given)
        return _evidence(robot, task, checkpoint, params, adapter, gripper, seeds, instruction or "the task's")
    core = WidowXConfig()
    adapter = _schedule_evidence(core)
    adapter.update({"workspace_low": list(core.workspace_low), "workspace_high": list(core.workspace_high),
                    "max_step_translation": core.max_step_translation_m, "max_step_rotation": core.max_step_rotation_rad,
                    "gripper_pwm": core.gripper.robot_open})
    adapter.update({k: v for k, v in given.items() if k in adapter})
    gripper = (f"policy gripper 1 = open, 0 = closed -> xs_sdk PWM +{adapter['gripper_pwm']} open / "
               f"-{adapter['gripper_pwm']} closed")
    adapter.pop("gripper_pwm")
    return _evidence(robot, task, checkpoint, params, adapter, gripper, seeds,
                     instruction or "the scene's (names its target block)")


def _evidence(robot, task, checkpoint, params, adapter, gripper, seeds, instruction) -> dict:
    from octo_ros.inference.checkpoint_info import checkpoint_content_hash, checkpoint_image_sizes

    return {
        "robot": robot, "task": task, "checkpoint": str(checkpoint), "checkpoint_hash": checkpoint_content_hash(checkpoint),
        "dataset_statistics_key": params["policy"].get("dataset_statistics_key", ""),
        "cameras": {name: f"{h}x{w}" for name, (h, w) in checkpoint_image_sizes(checkpoint).items()},
        "adapter": {k: v for k, v in adapter.items() if k != "execution_mode"},
        "gripper_convention": gripper, "execution_mode": adapter["execution_mode"],
        "seeds": seeds, "instruction": instruction,
        "software_version": software_version(),
    }


class NodeDied(RuntimeError):
    def __init__(self, names: list[str]):
        super().__init__(f"{', '.join(names)} died")
        self.names = names


def start_joints(scene, initial_q) -> np.ndarray:
    """Joint angles putting the tip at the scene's start point with the initial pose's orientation
    (what the translation-only operator of `octo-ros collect` keeps)."""
    from octo_ros.control.kinematics import forward_kinematics, solve_ik
    from octo_ros.robots.interbotix.kinematics import ARMS

    kin = ARMS["wx250s"]
    target = forward_kinematics(kin, np.asarray(initial_q, float))
    target[:3, 3] = scene.start
    ik = solve_ik(kin, target, seeds=(np.asarray(initial_q, float),))
    if not ik.success:
        raise RuntimeError(f"no joint solution for the start point {scene.start}: {ik.reason}")
    return ik.q


@dataclasses.dataclass(frozen=True)
class AlohaScene:
    """A bimanual episode: the simulator samples the cube's pose from the seed (``~/reset_episode``)."""

    task: str
    seed: int
    instruction: str
    rule: object  # octo_ros.sim.tasks.EpisodeRule


def episode_scene(robot: str, task: str, spec, seed: int):
    """The episode of ``seed``: a reach scene (blocks, target, start point) or an AlohaScene."""
    if robot == "bimanual":
        return AlohaScene(task, int(seed), spec.instruction, spec.rule)
    from octo_ros.sim.reach import sample_scene

    return sample_scene(task, spec, seed)


@dataclasses.dataclass
class EvaluationSettings:
    robot: str
    task: str
    checkpoint: str
    seeds: list[int]
    out: Path
    instruction: str = ""  # '' : the scene's own; else this text for every episode
    swap_target: bool = False  # instruct another block of the scene than the one the simulator judges
    assignments: dict = dataclasses.field(default_factory=dict)
    progress: bool = True
    reset_timeout_s: float = 15.0
    video_every_episode: bool = False  # else only the failures get a video


class Evaluation:
    """Runs the episodes; ``graph`` and ``episode`` (the index being run, -1 before) can be watched."""

    def __init__(self, settings: EvaluationSettings):
        self.s = settings
        self.graph = None
        self.episode = -1
        self.armed = False
        self.restart = False  # the episode's graph lost a node: start a fresh one
        self.results: list[EpisodeResult] = []

    def _start_graph(self, specs, log):
        from octo_ros.ros.evaluator import Evaluator
        from octo_ros.ros.launcher import GraphProcess

        self.graph = GraphProcess(specs, out=log, keep_going=True)
        self.graph.start()
        op = Evaluator(self.s.robot, self.graph)
        try:
            op.wait(lambda: op.latest()[0] is not None, 180.0, "the simulator's task status")
        except BaseException:  # also Ctrl-C / SIGTERM: its executor thread must not outlive it
            op.close()
            raise
        return op

    def run(self) -> dict:
        from tqdm import tqdm

        s = self.s
        tasks, _ = robot_tasks(s.robot)
        if s.task not in tasks:
            raise ValueError(f"unknown {s.robot} task {s.task!r} (choose one of {', '.join(tasks)})")
        if s.robot == "bimanual" and s.swap_target:
            raise ValueError("--swap-target needs a task with several targets to name (the reach tasks)")
        s.out.mkdir(parents=True, exist_ok=True)
        checkpoint = resolve_checkpoint(s.checkpoint, s.out, s.robot)
        specs = evaluation_specs(s.robot, s.task, checkpoint, s.out, s.assignments)
        initial_q = next(sp for sp in specs if sp.name.endswith("_sim")).parameters.get("initial_pose")
        ev = evidence(s.robot, s.task, checkpoint, specs, s.seeds, s.instruction)
        (s.out / "evidence.json").write_text(json.dumps(ev, indent=2))
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # the evaluator commands real topic names
        log = open(s.out / LOG_NAME, "a")
        bar = tqdm(total=len(s.seeds), unit="episode", disable=not s.progress, file=sys.stderr)
        op = None
        try:
            op = self._start_graph(specs, log)
            for index, seed in enumerate(s.seeds):
                self.episode = index
                scene = episode_scene(s.robot, s.task, tasks[s.task], seed)
                self.restart = False
                try:
                    result = self._episode(op, index, scene, initial_q)
                except NodeDied as died:  # before the episode was armed
                    result = self._died(op, index, scene, died.names)
                if self.restart:
                    op.close()
                    self.graph.stop()
                    op = self._start_graph(specs, log)
                self.results.append(result)
                bar.update(1)
                bar.set_postfix(successes=sum(r.success for r in self.results))
                self._write(ev)
        finally:
            bar.close()
            if op is not None:
                op.close()
            if self.graph is not None:
                self.graph.stop()
            log.close()
        return self._write(ev)

    def _write(self, ev: dict) -> dict:
        summary = summarize(self.results, ev)
        (self.s.out / "summary.json").write_text(json.dumps(summary, indent=2))
        (self.s.out / "evidence.md").write_text(evidence_markdown(summary))
        return summary

    def _instruction(self, scene) -> tuple[str, str]:
        """(instruction, the block it names; '' for a task without blocks)."""
        if isinstance(scene, AlohaScene):
            return self.s.instruction or scene.instruction, ""
        if self.s.instruction:
            named = [c for c in scene.colours if c in self.s.instruction]
            return self.s.instruction, named[0] if named else ""
        target = scene.target
        if self.s.swap_target:
            target = (scene.target + 1) % len(scene.colours)
        return scene.config.instruction.format(colour=scene.colours[target]), scene.colours[target]

    def _episode(self, op, index: int, scene, initial_q) -> EpisodeResult:
        from octo_ros.sim.tasks import EpisodeJudge

        op.arm(False)  # the reset moves the arm: never while armed
        self.armed = False
        op.lay_out(scene.task, scene.seed)  # the bimanual simulator puts the arms at the start pose itself
        if not isinstance(scene, AlohaScene):
            self._reset_arm(op, scene, initial_q, self.s.reset_timeout_s)
        instruction, named = self._instruction(scene)
        op.trigger("observation_buffer/reset")
        op.instruct(instruction)
        reset_ns = op.now_ns()
        bag = op.start_episode(instruction, {"evaluate_episode": index, "seed": scene.seed, "task": scene.task,
                                             "checkpoint": self.s.checkpoint})
        op.wait(lambda: op.chunk_stamp_ns > reset_ns, 60.0, "a chunk computed after the reset")
        with op._lock:
            op.holds, commands0 = HoldTracker(), op.commands
        op.arm(True)
        self.armed = True
        status, count = op.latest()
        judge = EpisodeJudge(scene.rule, start=status.time)
        blocks = BlockJudges(scene, named, status.time)
        succeeded_at = None
        dead: list[str] = []
        while judge.outcome is None and not blocks.instructed_other_held:
            try:
                op.wait(lambda: op.latest()[1] > count, 5.0, "the task status")
            except NodeDied as died:
                dead = died.names
                break
            status, count = op.latest()
            if judge.update(status.time, status.success) == "success":
                succeeded_at = status.time - judge.start
            blocks.update(status.time, status.values.get("tip"))  # no tip: the bimanual task, no blocks
            with op._lock:
                if op.holds.estop_reason is not None:
                    break
        success = judge.outcome == "success" and not dead
        with op._lock:
            holds, steps = op.holds, op.commands - commands0
            op.holds = None
        if dead:
            return self._died(op, index, scene, dead, steps, status.time - judge.start)
        mode, detail = classify(success, dead, holds)
        if mode == "timeout" and blocks.instructed_other_held:
            mode, detail = "other_target", f"held on the instructed {named} block; the simulator judges the {blocks.judged} one"
        op.arm(False)
        self.armed = False
        if mode == "estop":
            op.trigger(f"{op.adapter}/reset_estop")
        bag = op.stop_episode("success" if success else "failure", {"failure_mode": mode or "", "failure_detail": detail})
        video = self._video(bag) if not success or self.s.video_every_episode else ""
        return EpisodeResult(index, scene.seed, instruction, success, mode, detail, steps, status.time - judge.start,
                             succeeded_at, bag=bag, video=video, **self._targets(scene, named, status, blocks.held))

    @staticmethod
    def _reset_arm(op, scene, initial_q, timeout: float) -> None:
        """The arm to the scene's start point, straight through the driver (disarmed)."""
        q = start_joints(scene, initial_q)
        deadline = time.monotonic() + timeout
        while np.linalg.norm(np.asarray(op.latest()[0].values["tip"]) - scene.start) > 0.005:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the arm did not reach the start point of seed {scene.seed}")
            op.check_alive()
            op.move_arm(q)
            time.sleep(0.1)

    @staticmethod
    def _targets(scene, named: str, status, held: str = "") -> dict:
        """The block the simulator judges, the one the instruction named and the one reached: held on
        as long as the task's rule asks, else under the tip at the end (reach tasks)."""
        if isinstance(scene, AlohaScene):
            return {}
        return {"target": scene.colours[scene.target], "instruction_target": named,
                "reached": held or (block_reached(scene, status.values["tip"]) if status else "")}

    def _died(self, op, index: int, scene, names: list[str], steps: int = 0, seconds: float = 0.0) -> EpisodeResult:
        """The episode a node died in: recorded as far as the recorder still can; the graph restarts."""
        self.restart = True
        self.armed = False
        mode, detail = classify(False, [f"{n} (exit code {self.graph.processes[n].returncode})" for n in names])
        op.known_dead = set(self.graph.failed)
        bag = ""
        if "recorder" not in names:
            try:
                bag = op.stop_episode("failure", {"failure_mode": mode, "failure_detail": detail})
            except (RuntimeError, NodeDied):  # it was not recording yet, or died too
                bag = ""
        status, _ = op.latest()
        instruction, named = self._instruction(scene)
        return EpisodeResult(index, scene.seed, instruction, False, mode, detail, steps, seconds, None,
                             bag=bag, video=self._video(bag) if bag else "", **self._targets(scene, named, status))

    def _video(self, bag: str) -> str:
        from octo_ros.recording.review import review

        try:
            return str(review(bag, self.s.out / "videos").get("video", ""))
        except Exception as exc:  # a bag too short to review must not end the evaluation
            return f"(no video: {exc})"


def _cmd_evaluate(args) -> int:
    from octo_ros.ros.launcher import parse_assignments

    try:
        tasks, default = robot_tasks(args.robot)
        settings = EvaluationSettings(
            robot=args.robot, task=args.task or default, checkpoint=args.checkpoint,
            seeds=parse_seeds(args.seeds, args.episodes), out=Path(args.out).resolve(), instruction=args.instruction or "",
            swap_target=args.swap_target, assignments=parse_assignments(args.assignments), progress=not args.no_progress,
            video_every_episode=args.video_every_episode)
        summary = Evaluation(settings).run()
    except (ValueError, RuntimeError) as err:
        print(f"octo-ros evaluate: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"octo-ros evaluate: interrupted; the episodes that ended are in {args.out}/summary.json", file=sys.stderr)
        return 130
    low, high = summary["wilson_95"]
    print(f"success rate {summary['success_rate']:.2f} ({summary['successes']}/{summary['episodes']}, "
          f"95 % Wilson {low:.2f}-{high:.2f}); failure modes {summary['failure_modes']}; {settings.out / 'summary.json'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="seeded closed-loop episodes of a simulated task through the real graph",
                              description="Success judged by the simulator; OUT gets summary.json, evidence.md/json, "
                              "bags/ and videos/ of failures.")
    p.add_argument("robot", choices=EVALUATED_ROBOTS)
    p.add_argument("--task", default="", help="the robot's default task when not given")
    p.add_argument("--checkpoint", required=True, help=f"a checkpoint folder, 'demo' (the shipped policy) or '{UNTRAINED}'")
    p.add_argument("--episodes", type=int, default=None, help="how many episodes (default: one per seed)")
    p.add_argument("--seeds", default="1000-1019", help="A-B (inclusive), A,B,C, or A (then --episodes seeds from A)")
    p.add_argument("--instruction", default="", help="this instruction for every episode instead of the scene's")
    p.add_argument("--swap-target", action="store_true", help="instruct another block than the one the simulator judges")
    p.add_argument("--video-every-episode", action="store_true", help="a video of the successes too (default: failures)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("out")
    p.add_argument("assignments", nargs="*", metavar="key:=value", help="launch arguments or node.parameter overrides")
    p.set_defaults(func=_cmd_evaluate)
