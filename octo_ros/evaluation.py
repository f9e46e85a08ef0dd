"""Closed-loop evaluation bookkeeping (no rclpy): seeds, each episode's failure mode, the block the
tip held on, the success rate with its 95 % Wilson interval, and the evidence table (what drove the
robot, with what).

The ROS driver (octo_ros.ros.evaluate) runs the episodes; everything it decides about them is here.
A failure mode says why an episode did not succeed, most specific first:

* ``node_error``   a node of the graph died during the episode (detail: which, and its exit code);
* ``estop``        the adapter reported an e-stop (detail: its reason);
* ``safety_hold``  the adapter held, for a reason other than waiting on the chunk schedule, for at
                   least ``HoldTracker.min_hold_s`` in one stretch (detail: the reason);
* ``timeout``      the simulator's success check did not hold in time, and none of the above.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from octo_ros.control.safety import reason_kind
from octo_ros.sim.tasks import EpisodeJudge

# other_target: the tip held on the block the instruction named, not on the one the simulator
# judges (an instruction swapped to another block of the scene: what a swap evaluation looks for)
FAILURE_MODES = ("node_error", "estop", "safety_hold", "timeout", "other_target")

# Adapter hold reasons that are the chunk schedule at work, not a safety limit.
SCHEDULE_HOLDS = ("previous step slot not over yet",)


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default); (0, 1) for n = 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def parse_seeds(text: str, episodes: int | None = None) -> list[int]:
    """``"A-B"`` (inclusive) or ``"A,B,C"`` or ``"A"`` (then ``episodes`` seeds from A) into seeds;
    with ``episodes`` given, a range must hold at least that many and the first ``episodes`` are used."""
    text = text.strip()
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-", 1))
            if high < low:
                raise ValueError
            seeds = list(range(low, high + 1))
        elif "," in text:
            seeds = [int(v) for v in text.split(",")]
        else:
            start = int(text)
            seeds = list(range(start, start + (episodes or 1)))
    except ValueError:
        raise ValueError(f"seeds {text!r}: write A-B (inclusive), A,B,C or A") from None
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds {text!r}: seeds are >= 0")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {text!r}: a seed is repeated")
    if episodes is not None:
        if episodes < 1:
            raise ValueError("need --episodes >= 1")
        if len(seeds) < episodes:
            raise ValueError(f"seeds {text!r} name {len(seeds)} seeds for {episodes} episodes")
        seeds = seeds[:episodes]
    return seeds


def adapter_status(text: str) -> tuple[str, str]:
    """The adapter's ``~/status`` text ``"<move|hold|estop>: <reason>"`` as (kind, reason)."""
    kind, _, reason = text.partition(":")
    return kind.strip(), reason.strip()


@dataclass
class HoldTracker:
    """Feed every adapter status of an episode (``update(t, text)``, t in seconds); keeps the
    longest stretch of one kind of safety hold (reasons compared without their numbers), how often
    each kind held, and the first e-stop."""

    min_hold_s: float = 1.0
    estop_reason: str | None = None
    longest_hold_s: float = 0.0
    longest_hold_reason: str = ""
    statuses: int = 0
    hold_counts: dict[str, int] = field(default_factory=dict)
    _since: float | None = None
    _kind: str = ""

    def update(self, t: float, text: str) -> None:
        status, reason = adapter_status(text)
        self.statuses += 1
        if status == "estop" and self.estop_reason is None:
            self.estop_reason = reason or "e-stop"
        if status == "hold" and reason not in SCHEDULE_HOLDS:
            kind = reason_kind(reason)
            self.hold_counts[kind] = self.hold_counts.get(kind, 0) + 1
            if self._since is None or kind != self._kind:
                self._since, self._kind = t, kind
            if t - self._since >= self.longest_hold_s:
                self.longest_hold_s, self.longest_hold_reason = t - self._since, reason
        else:
            self._since = None

    @property
    def safety_hold(self) -> str | None:
        return self.longest_hold_reason if self.longest_hold_s >= self.min_hold_s else None

    def most_frequent_hold(self) -> str:
        """'<kind> (n of m statuses)' of the commonest safety hold, '' when none."""
        if not self.hold_counts:
            return ""
        kind, n = max(self.hold_counts.items(), key=lambda item: item[1])
        return f"{kind} ({n} of {self.statuses} statuses)"


def classify(success: bool, dead_nodes: list[str] | tuple[str, ...] = (), holds: HoldTracker | None = None) -> tuple[str | None, str]:
    """(failure mode or None on success, detail) of one episode. A node that died makes the
    episode a failure even when the success check had held."""
    if dead_nodes:
        return "node_error", ", ".join(dead_nodes)
    if holds is not None and holds.estop_reason is not None:
        return "estop", holds.estop_reason
    if success:
        return None, ""
    if holds is not None and holds.safety_hold is not None:
        return "safety_hold", holds.safety_hold
    detail = "the success check did not hold before the episode's time ran out"
    frequent = holds.most_frequent_hold() if holds is not None else ""
    return "timeout", detail + (f"; commonest hold: {frequent}" if frequent else "")


@dataclass
class EpisodeResult:
    index: int
    seed: int
    instruction: str
    success: bool
    failure_mode: str | None
    failure_detail: str
    steps: int  # commands the adapter sent to the robot during the episode
    seconds: float  # simulation seconds from the start to the outcome
    time_to_success_s: float | None
    bag: str = ""
    video: str = ""
    target: str = ""  # the block the simulator judges (reach tasks)
    instruction_target: str = ""  # the block the instruction named
    reached: str = ""  # the block under the tip at the end ('' when none)
    extra: dict = field(default_factory=dict)


def summarize(results: list[EpisodeResult], evidence: dict) -> dict:
    """``summary.json``: the success rate, its 95 % Wilson interval, counts per failure mode, the
    evidence, one entry per episode."""
    n = len(results)
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, n)
    modes = {m: sum(r.failure_mode == m for r in results) for m in FAILURE_MODES}
    named = [r for r in results if r.instruction_target]
    summary = {
        "success_rate": successes / n if n else 0.0,
        "episodes": n,
        "successes": successes,
        "wilson_95": [low, high],
        "seeds": [r.seed for r in results],
        "failure_modes": modes,
        "evidence": evidence,
        "per_episode": [asdict(r) for r in results],
    }
    if named:
        summary["instruction_target_reached_rate"] = sum(r.reached == r.instruction_target for r in named) / len(named)
    return summary


EVIDENCE_FIELDS = (
    ("checkpoint", "checkpoint"), ("checkpoint_hash", "checkpoint hash"), ("dataset_statistics_key", "dataset statistics key"),
    ("cameras", "cameras (input: height x width)"), ("adapter", "adapter configuration"),
    ("gripper_convention", "gripper convention"), ("execution_mode", "execution mode"), ("robot", "robot"),
    ("task", "task"), ("instruction", "instruction"), ("seeds", "seeds"), ("software_version", "software version"),
)


def _cell(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) if len(value) <= 12 else f"{_cell(value[0])} … {_cell(value[-1])} ({len(value)})"
    return str(value).replace("|", "\\|")


def evidence_markdown(summary: dict) -> str:
    """The evidence table and the per-episode table as Markdown."""
    ev = summary["evidence"]
    low, high = summary["wilson_95"]
    lines = ["# Evaluation evidence", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {_cell(ev.get(key, ''))} |" for key, label in EVIDENCE_FIELDS]
    lines += [f"| episodes | {summary['episodes']} |",
              f"| success rate | {summary['success_rate']:.2f} ({summary['successes']}/{summary['episodes']}; "
              f"95 % Wilson {low:.2f}–{high:.2f}) |",
              f"| failure modes | {_cell(summary['failure_modes'])} |"]
    if "instruction_target_reached_rate" in summary:
        lines.append(f"| instruction's block reached | {summary['instruction_target_reached_rate']:.2f} |")
    lines += ["", "| # | seed | outcome | failure mode | steps | time to success (s) | reached | video |",
              "|---|---|---|---|---|---|---|---|"]
    for r in summary["per_episode"]:
        mode = "" if r["failure_mode"] is None else f"{r['failure_mode']}: {r['failure_detail']}"
        tts = "" if r["time_to_success_s"] is None else f"{r['time_to_success_s']:.2f}"
        lines.append(f"| {r['index']} | {r['seed']} | {'success' if r['success'] else 'failure'} | {_cell(mode)} | "
                     f"{r['steps']} | {tts} | {r['reached']} | {r['video']} |")
    return "\n".join(lines) + "\n"


def block_on(scene, colour: str, tip) -> bool:
    """The task's own check of the tip against the block of ``colour`` (scene: a ReachScene)."""
    return replace(scene, target=scene.colours.index(colour)).on_target(tip)


class BlockJudges:
    """Every block's own check under the task's rule, fed the tip with each status: ``held`` is the
    first block the tip held on.  Where the instruction names another block than the simulator
    judges (a swap), ``instructed_other_held`` ends the episode once that block is held: the
    demonstrations end there, and by the timeout the tip would have sunk through the block."""

    def __init__(self, scene, named: str, start: float):
        blocks = hasattr(scene, "colours")  # a reach scene; the bimanual task has no blocks
        self.scene, self.named = scene, named
        self.judged = scene.colours[scene.target] if blocks else ""
        self.judges = {c: EpisodeJudge(scene.rule, start=start) for c in scene.colours} if blocks else {}
        self.held = ""

    def update(self, t: float, tip) -> None:
        for colour, judge in self.judges.items():
            if not self.held and judge.update(t, block_on(self.scene, colour, tip)) == "success":
                self.held = colour

    @property
    def instructed_other_held(self) -> bool:
        return bool(self.held) and self.held == self.named != self.judged


def block_reached(scene, tip) -> str:
    """The colour of the block the tip is on (the task's own check against each block), or ''."""
    return next((colour for colour in scene.colours if block_on(scene, colour, tip)), "")
