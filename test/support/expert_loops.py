"""Pure closed loops (no ROS) of an operator — the scripted expert or a random one — against a
simulator core through the robot's real adapter core: the operator's inputs become horizon-1
action chunks the way the teleop node makes them, the adapter turns them into robot commands,
the simulator moves and judges the task. Used by the tests and bench/experts.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from octo_ros.control.teleop import TwistTeleop, TwistTeleopConfig
from octo_ros.sim.reach import ReachExpert
from octo_ros.sim.tasks import EpisodeJudge

STEP = 0.2  # s, the WidowX / UR5 policy (and teleop) step


@dataclass
class EpisodeResult:
    outcome: str
    seconds: float  # judged part of the episode
    reset_ok: bool


class Teleop:
    """The teleop node's core for a twist operator: the input at step start ``t`` is integrated
    over the step ending at ``t`` (the previous input held), as the node publishes it."""

    def __init__(self):
        self.core = TwistTeleop(TwistTeleopConfig())

    def action(self, t: float, velocity, gripper: float) -> np.ndarray:
        self.core.on_twist(t, np.asarray(velocity, float) / self.core.config.linear_scale, (0.0, 0.0, 0.0))
        self.core.on_gripper(gripper)
        return self.core.action(t)


class RandomTwistOperator:
    """Uniformly random velocities (up to the expert's speed) and gripper: the baseline."""

    def __init__(self, max_speed: float, seed: int):
        self.max_speed = max_speed
        self.rng = np.random.default_rng(10_000 + seed)

    def command(self, tip, t: float) -> tuple[np.ndarray, float]:
        return self.rng.uniform(-self.max_speed, self.max_speed, 3), float(self.rng.integers(2))


def _reach_episode(robot, task: str, seed: int, operator: str, policy_side=None) -> EpisodeResult:
    """``robot``: a loop below (set_task, tip, status, tick advancing one step, t); ``policy_side``
    (action -> action), when given, is applied to every judged action before the adapter executes it:
    the conventions between a policy's output and the adapter (normalization, signs) under test."""
    scene = robot.set_task(task, seed)
    expert = ReachExpert(scene)
    teleop = Teleop()
    for _ in range(int(8.0 / STEP)):  # reset: drive to the start point, not judged
        if expert.start_reached(robot.tip()):
            break
        robot.tick(teleop.action(robot.t, expert.to_start(robot.tip(), robot.t), 1.0))
    reset_ok = expert.start_reached(robot.tip())
    player = expert if operator == "expert" else RandomTwistOperator(expert.config.max_speed, seed)
    judge = EpisodeJudge(scene.config.rule, start=robot.t)
    while judge.update(robot.t, robot.status().success) is None:
        v, g = player.command(robot.tip(), robot.t)
        action = teleop.action(robot.t, v, g)
        robot.tick(action if policy_side is None else policy_side(action))
    return EpisodeResult(judge.outcome, robot.t - judge.start, reset_ok)


class WidowXLoop:
    """WidowXSim (xs_sdk driver core + scene) driven by the WidowX adapter core."""

    def __init__(self):
        from octo_ros.control.kinematics import solve_ik
        from octo_ros.robots.interbotix.driver_standin import InterbotixSimConfig
        from octo_ros.robots.interbotix.kinematics import WX250S
        from octo_ros.robots.widowx.adapter import BRIDGE_START_STATE, WidowXAdapter, WidowXConfig, pose_from_bridge_state
        from octo_ros.robots.widowx.sim import WidowXSim, WidowXSimConfig

        q0 = tuple(solve_ik(WX250S, pose_from_bridge_state(BRIDGE_START_STATE)).q)
        # the widowx_sim node's driver modes: velocity profile 0 (joints at their velocity limits)
        driver = InterbotixSimConfig(arm_profile_type="velocity", arm_profile_velocity=0.0)
        self.sim = WidowXSim(WidowXSimConfig(initial_q=q0, driver=driver, image_width=64, image_height=48))
        self.adapter = WidowXAdapter(WidowXConfig())
        self.adapter.set_source("teleop")
        self.t = 0.0
        self._feed()
        self.adapter.set_dry_run(False)

    def _feed(self):
        js = self.sim.joint_states()
        self.adapter.update_joint_state(js.position[:6], js.stamp, gripper_open=js.position[7] > 0.025, now=self.t)

    def set_task(self, task, seed):
        return self.sim.set_task(task, seed)

    def tip(self):
        return self.sim.tip_position()

    def status(self):
        return self.sim.task_status()

    def tick(self, action):
        self.adapter.add_chunk(np.asarray(action, float)[None], self.t, self.t, "teleop")
        self._feed()
        out = self.adapter.step(self.t)
        if out.send:
            assert self.sim.command_joint_group("arm", list(out.target))
        if out.send_gripper:
            assert self.sim.command_joint_single("gripper", out.gripper)
        for _ in range(int(round(STEP / 0.01))):
            self.t = round(self.t + 0.01, 9)
            self.sim.update(self.t)


class UR5Loop:
    """The fake UR controller driven by the UR adapter core's servoL backend, shown (and judged) by the UR5 scene."""

    def __init__(self):
        from octo_ros.robots.ur5.adapter import URConfig, URRTDEBackend
        from octo_ros.robots.ur5.controller_standin import FakeURController
        from octo_ros.robots.ur5.sim import UR5Scene, UR5SceneConfig

        self.t = 0.0
        self.fake = FakeURController(initial_pose=(0.4, -0.1, 0.3, 0.0, math.pi, 0.0), clock=lambda: self.t)
        # ur5.yaml's default workspace box; servoL at 25 Hz instead of 125 Hz keeps 40 episodes within
        # seconds (the speed caps and the interpolation between steps are the same)
        config = URConfig(workspace_low=(0.25, -0.30, 0.05), workspace_high=(0.60, 0.30, 0.45), control_frequency_hz=25.0)
        self.backend = URRTDEBackend(config, "127.0.0.1", connect=self.fake.connect)
        self.backend.adapter.set_source("teleop")
        assert self.backend.arm(self.t) == ""
        self.scene = UR5Scene(UR5SceneConfig(image_width=64, image_height=48))
        self._show()

    def _show(self):
        assert self.scene.set_tcp_pose(self.fake.pose())

    def set_task(self, task, seed):
        return self.scene.set_task(task, seed)

    def tip(self):
        return self.scene.tip_position()

    def status(self):
        return self.scene.task_status(self.t)

    def tick(self, action):
        self.backend.adapter.add_chunk(np.asarray(action, float)[None], self.t, self.t, "teleop")
        dt = self.backend.config.control_period_s
        for _ in range(int(round(STEP / dt))):
            self.backend.cycle(self.t)
            self.t = round(self.t + dt, 9)
        self._show()


LOOPS = {"widowx": WidowXLoop, "ur5": UR5Loop}


def run_episodes(robot: str, task: str, seeds, operator: str = "expert", policy_side=None) -> list[EpisodeResult]:
    loop = LOOPS[robot]()
    return [_reach_episode(loop, task, seed, operator, policy_side) for seed in seeds]


class RandomJointOperator:
    """A random walk of both arms' joint targets around where they start (about the expert's joint
    speeds), grippers opening and closing at random: the bimanual baseline."""

    def __init__(self, start14, seed: int, step_rad: float = 0.03):
        self.rng = np.random.default_rng(20_000 + seed)
        self.start = np.asarray(start14, float)
        self.q = self.start.copy()
        self.step_rad = step_rad

    def follow(self, measured14, t: float) -> np.ndarray:
        self.q += self.rng.normal(0.0, self.step_rad, 14)
        self.q = np.clip(self.q, self.start - 0.8, self.start + 0.8)
        self.q[[6, 13]] = self.rng.integers(2, size=2)
        return self.q.copy()


class BimanualLoop:
    """gym-aloha's MuJoCo followers driven by the bimanual adapter core (bimanual_sim.yaml's constants)."""

    def __init__(self):
        from octo_ros.robots.bimanual.adapter import BimanualAdapter, BimanualConfig
        from octo_ros.robots.bimanual.sim import AlohaSim, AlohaSimConfig

        self.sim = AlohaSim(AlohaSimConfig(gripper_joint_open=1.6214, gripper_joint_close=0.6197))
        self.adapter = BimanualAdapter(BimanualConfig())
        self.adapter.set_source("teleop")
        self.offset = 0.0  # sim time restarts at every reset; the adapter's clock must not
        self._feed()

    def now(self) -> float:
        return self.offset + self.sim.time

    def _feed(self):
        for side in ("left", "right"):
            js = self.sim.joint_states(side)
            self.adapter.update_joint_state(side, js.position[:6], js.position[6], self.offset + js.stamp, now=self.now())

    def episode(self, task: str, seed: int, operator: str) -> EpisodeResult:
        from octo_ros.robots.bimanual.expert import LEADER_JOINTS, LiftCubeExpert, leader_joint_positions
        from octo_ros.robots.bimanual.sim import TASKS
        from octo_ros.robots.bimanual.teleop import LeaderTeleop, LeaderTeleopConfig

        self.adapter.set_dry_run(True)  # the reset teleports the arms: disarmed, as collect does
        self.offset += self.sim.time + self.sim.control_dt
        cube = self.sim.set_task(task, seed)
        self._feed()
        self.adapter.set_dry_run(False)
        start = self.sim.qpos14()
        player = LiftCubeExpert(cube, start, model=self.sim.model) if operator == "expert" else RandomJointOperator(start, seed)
        teleop = LeaderTeleop(LeaderTeleopConfig())
        judge = EpisodeJudge(TASKS[task].rule, start=0.0)
        while judge.update(self.sim.time, self.sim.task_status().success) is None:
            now = self.now()
            # the operator's 14-D intent → leader joint states → the teleop node's action
            intent = player.follow(self.sim.qpos14(), self.sim.time)
            for side, positions in leader_joint_positions(intent, teleop.config).items():
                teleop.update(side, LEADER_JOINTS, positions, now)
            action, why = teleop.action(now)
            assert action is not None, why
            self.adapter.add_chunk(action[None], now, now, "teleop")
            self._feed()
            out = self.adapter.step(now)
            if out.send:
                for side, command in zip(("left", "right"), self.adapter.arm_commands(out)):
                    assert self.sim.command_joint_group(side, "arm", list(command.arm))
                    assert self.sim.command_joint_single(side, "gripper", command.gripper)
            self.sim.step()
        return EpisodeResult(judge.outcome, self.sim.time, True)


def run_bimanual_episodes(task: str, seeds, operator: str = "expert") -> list[EpisodeResult]:
    loop = BimanualLoop()
    return [loop.episode(task, seed, operator) for seed in seeds]
