"""Reach-the-named-block tasks for the table-top arms (WidowX, UR5; no rclpy).

A scene is two or three cubes of distinct colours at random, separated positions on the table (or
in a task's fixed slots, jittered, in random order), one of them named in the instruction ("put
the gripper on the red block"), and a random start point for the gripper tip. The check is the simulator's: the tip (the point between the fingertips, from the
arm's forward kinematics) is over the named block's top face, no further than ``success_xy`` from
its centre, and at most ``success_height`` above it.

The expert is the operator a teleop node expects: it returns a base-frame linear velocity (m/s,
what a ``geometry_msgs/Twist`` carries) and a gripper command (1 = open), computed from the ground
truth: move above the block at a safe height, then descend onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from octo_ros.sim.render import Box
from octo_ros.sim.tasks import EpisodeRule, TaskStatus

# Block colours (RGB) the instructions name; distinct in hue so the camera image tells them apart.
BLOCK_COLOURS = {
    "red": (205, 35, 35),
    "green": (40, 165, 60),
    "blue": (35, 80, 215),
    "yellow": (235, 200, 30),
}
INSTRUCTION = "put the gripper on the {colour} block"


def reach_instructions(template: str = INSTRUCTION) -> list[str]:
    """Every instruction a reach task can give (one per colour)."""
    return [template.format(colour=colour) for colour in BLOCK_COLOURS]


@dataclass(frozen=True)
class ReachTaskConfig:
    """Where blocks and the start point are drawn, and what counts as on the block (m, base frame)."""

    block_low: tuple[float, float]  # block centres, xy
    block_high: tuple[float, float]
    start_low: tuple[float, float, float]  # gripper tip at the start of an episode
    start_high: tuple[float, float, float]
    block_half: float = 0.02  # cube half size
    table_z: float = 0.0
    blocks: tuple[int, int] = (2, 3)  # fewest, most blocks in a scene
    min_separation: float = 0.08  # between block centres
    # Fixed places the blocks are put in (xy centres, each jittered by up to ``slot_jitter`` per
    # axis; the colours and which places are used vary); empty: anywhere in the block region.
    slots: tuple[tuple[float, float], ...] = ()
    slot_jitter: float = 0.0
    success_xy: float = 0.015
    success_height: float = 0.03  # tip above the block's top face
    rule: EpisodeRule = EpisodeRule(timeout_s=10.0, hold_s=0.6)
    instruction: str = INSTRUCTION

    def __post_init__(self):
        if self.slots and len(self.slots) < self.blocks[1]:
            raise ValueError(f"{len(self.slots)} slots for up to {self.blocks[1]} blocks")


@dataclass(frozen=True)
class ReachScene:
    """One sampled episode: blocks (the target is ``blocks[target]``) and the tip's start point."""

    task: str
    config: ReachTaskConfig
    seed: int
    blocks: tuple[Box, ...]
    colours: tuple[str, ...]
    target: int
    start: tuple[float, float, float]

    @property
    def instruction(self) -> str:
        return self.config.instruction.format(colour=self.colours[self.target])

    @property
    def rule(self) -> EpisodeRule:
        return self.config.rule

    @property
    def target_top(self) -> np.ndarray:
        """Centre of the named block's top face."""
        b = self.blocks[self.target]
        return np.array([b.center[0], b.center[1], b.center[2] + b.half[2]])

    def on_target(self, tip) -> bool:
        tip = np.asarray(tip, float)
        top = self.target_top
        above = tip[2] - top[2]
        return bool(np.hypot(*(tip[:2] - top[:2])) <= self.config.success_xy and 0.0 <= above <= self.config.success_height)

    def status(self, tip, time: float) -> TaskStatus:
        """The check for the tip at ``tip`` (simulation ``time``), with the ground truth an expert needs."""
        ok = self.on_target(tip)
        return TaskStatus(self.task, self.seed, self.instruction, ok, float(ok), time,
                          {"tip": tuple(float(v) for v in tip), "target": tuple(float(v) for v in self.target_top),
                           "start": self.start})


def sample_scene(task: str, config: ReachTaskConfig, seed: int) -> ReachScene:
    """The scene of episode ``seed`` of ``task`` (the same seed always gives the same scene)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(config.blocks[0], config.blocks[1] + 1))
    colours = tuple(str(c) for c in rng.choice(sorted(BLOCK_COLOURS), size=n, replace=False))
    centres: list[np.ndarray] = []
    if config.slots:
        for slot in rng.permutation(len(config.slots))[:n]:
            centres.append(np.asarray(config.slots[slot]) + rng.uniform(-config.slot_jitter, config.slot_jitter, 2))
    while len(centres) < n:  # rejection sampling; the regions are several separations wide
        c = rng.uniform(config.block_low, config.block_high)
        if all(np.linalg.norm(c - o) >= config.min_separation for o in centres):
            centres.append(c)
    h = config.block_half
    blocks = tuple(
        Box((float(c[0]), float(c[1]), config.table_z + h), (h, h, h), BLOCK_COLOURS[colour], yaw=float(rng.uniform(-0.4, 0.4)))
        for c, colour in zip(centres, colours)
    )
    start = tuple(float(v) for v in rng.uniform(config.start_low, config.start_high))
    return ReachScene(task, config, int(seed), blocks, colours, int(rng.integers(n)), start)


@dataclass(frozen=True)
class ReachExpertConfig:
    max_speed: float = 0.1  # m/s: a SpaceMouse at full deflection under the teleop node's default scale
    gain: float = 1.5  # 1/s: velocity per metre of error (the teleop path lags one to two steps)
    clearance: float = 0.05  # m above the block top while moving sideways
    align_xy: float = 0.01  # m: descend once this close above the block
    goal_height: float = 0.012  # m above the top face: inside the success band
    # s: how long a command takes to show in the measured tip (the teleop node averages over a
    # step, the adapter executes at step boundaries, the arm tracks): commands sent this recently
    # are taken as still under way, as an operator watching the arm does
    lag_s: float = 0.4


class ReachExpert:
    """Velocity commands that bring the tip onto the named block (or to the start point). Call
    with the measured tip and the time ``t`` (s, any monotonic clock) of the measurement."""

    def __init__(self, scene: ReachScene, config: ReachExpertConfig | None = None):
        self.scene = scene
        self.config = config or ReachExpertConfig()
        self._sent: list[tuple[float, np.ndarray]] = []  # (time, velocity) of recent commands

    def _under_way(self, t: float) -> np.ndarray:
        """Displacement commanded in the last ``lag_s`` (each command held until the next)."""
        self._sent = [(ts, v) for ts, v in self._sent if ts >= t - self.config.lag_s]
        ends = [ts for ts, _ in self._sent[1:]] + [t]
        return sum((v * (end - ts) for (ts, v), end in zip(self._sent, ends)), np.zeros(3))

    def _towards(self, goal: np.ndarray, tip: np.ndarray, t: float) -> np.ndarray:
        v = self.config.gain * (goal - tip)
        speed = float(np.linalg.norm(v))
        v = v if speed <= self.config.max_speed else v * (self.config.max_speed / speed)
        self._sent.append((t, v))
        return v

    def to_start(self, tip, t: float) -> np.ndarray:
        """Velocity towards the scene's start point (the reset before an episode)."""
        return self._towards(np.asarray(self.scene.start, float), np.asarray(tip, float) + self._under_way(t), t)

    def start_reached(self, tip, tolerance: float = 0.01) -> bool:
        return bool(np.linalg.norm(np.asarray(tip, float) - self.scene.start) <= tolerance)

    def command(self, tip, t: float) -> tuple[np.ndarray, float]:
        """(linear velocity m/s in the base frame, gripper 1 = open) for the tip measured at ``tip``."""
        c = self.config
        tip = np.asarray(tip, float) + self._under_way(t)
        top = self.scene.target_top
        goal = top + (0.0, 0.0, c.goal_height)
        if np.hypot(*(tip[:2] - top[:2])) > c.align_xy:
            # sideways at a safe height first: never sweep through a block
            safe = top[2] + c.clearance
            if tip[2] < safe - 0.005:
                goal = np.array([tip[0], tip[1], safe])
            else:
                goal = np.array([top[0], top[1], max(tip[2], safe)])
        return self._towards(goal, tip, t), 1.0
