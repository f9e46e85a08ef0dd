"""What every simulated task shares (no rclpy): the status a simulator reports about its task,
and the rule that turns a stream of success checks into an episode outcome.

A task's success is computed by the simulator from its own state (joint positions, object poses,
contacts), never from what a policy or an expert says about itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def episode_problem(tasks, task: str | None = None, seed: int | None = None) -> str:
    """Why ``episode_task`` = ``task`` / ``episode_seed`` = ``seed`` (None: not being set) cannot be
    laid out by a simulator whose tasks are ``tasks`` ('' when they can; an empty task is none)."""
    if task and task not in tasks:
        return f"episode_task {task!r} is not a task of this simulator (known: {', '.join(tasks)})"
    if seed is not None and seed < 0:
        return f"episode_seed must be >= 0, got {seed}"
    return ""


@dataclass(frozen=True)
class TaskStatus:
    """One report of a simulator about its task.

    ``values`` carries the ground truth a scripted expert may use (object positions, the robot's
    tip), as numbers or tuples of numbers; ``reward`` is the task's own dense/staged reward where it
    has one (gym-aloha), else 1.0 on success and 0.0 otherwise."""

    task: str
    seed: int
    instruction: str
    success: bool
    reward: float
    time: float  # simulation seconds
    values: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class EpisodeRule:
    """An episode succeeds once the success check has held for ``hold_s`` without a break; it fails
    when ``timeout_s`` pass first."""

    timeout_s: float
    hold_s: float

    def __post_init__(self):
        if not (self.timeout_s > 0 and 0 <= self.hold_s < self.timeout_s):
            raise ValueError("need timeout_s > 0 and 0 <= hold_s < timeout_s")


class EpisodeJudge:
    """Feed ``update(t, success)`` with every status; ``outcome`` becomes "success" or "failure"."""

    def __init__(self, rule: EpisodeRule, start: float):
        self.rule = rule
        self.start = start
        self._since: float | None = None
        self.outcome: str | None = None

    def update(self, t: float, success: bool) -> str | None:
        if self.outcome is None:
            if success:
                self._since = t if self._since is None else self._since
                if t - self._since >= self.rule.hold_s - 1e-9:
                    self.outcome = "success"
            else:
                self._since = None
            if self.outcome is None and t - self.start >= self.rule.timeout_s:
                self.outcome = "failure"
        return self.outcome

