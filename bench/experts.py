"""Scripted experts against random operators: success rates over seeded episodes (prints only).

    .venv/bin/python bench/experts.py                       # pure closed loops (no ROS), 20 episodes each
    .venv/bin/python bench/experts.py --graph --episodes 20 # also through the real graph (octo-ros collect)

Pure: expert / random operator → the teleop core → the robot's adapter core → the simulator core,
judged by the simulator (test/support/expert_loops.py). Graph: `octo-ros collect` for each robot
(sim + adapter + teleop node + recorder as processes, bags in a temporary folder), outcome and
episode seconds per episode.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "test")]


def summary(name: str, outcomes, seconds) -> str:
    ok = sum(o == "success" for o in outcomes)
    mean = sum(seconds) / len(seconds) if seconds else float("nan")
    return f"{name:<34} {ok:>3}/{len(outcomes):<3} success ({100.0 * ok / len(outcomes):5.1f} %), mean episode {mean:4.1f} s"


def pure(episodes: int) -> None:
    from support.expert_loops import run_bimanual_episodes, run_episodes

    seeds = range(episodes)
    for robot, task in (("widowx", "reach_block"), ("ur5", "reach_block"), ("bimanual", "lift_cube")):
        for operator in ("expert", "random"):
            t0 = time.process_time()
            if robot == "bimanual":
                results = run_bimanual_episodes(task, seeds, operator)
            else:
                results = run_episodes(robot, task, seeds, operator)
            line = summary(f"pure {robot} {task} {operator}", [r.outcome for r in results], [r.seconds for r in results])
            print(f"{line}  [{time.process_time() - t0:.1f} s CPU]", flush=True)


def graph(episodes: int, seed: int) -> None:
    from octo_ros.ros.collect import run_collect

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(150, 230)))
    small = {"widowx": "widowx_sim", "ur5": "ur5_sim", "bimanual": "aloha_sim"}
    for robot, sim in small.items():
        with tempfile.TemporaryDirectory(prefix=f"collect_{robot}_") as out:
            t0 = time.monotonic()
            records = run_collect(robot, None, episodes, seed, Path(out), progress=False,
                                  assignments={f"{sim}.image_width": "128", f"{sim}.image_height": "96"})
            line = summary(f"graph {robot} (collect)", [r.outcome for r in records], [r.seconds for r in records])
            print(f"{line}  [{time.monotonic() - t0:.0f} s wall]", flush=True)
            print("    " + " ".join(f"{r.seed}:{r.outcome[0]}{r.seconds:.1f}" for r in records), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="first seed of the graph runs")
    parser.add_argument("--graph", action="store_true", help="also run the episodes through the real graph")
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    pure(args.episodes)
    if args.graph:
        graph(args.episodes, args.seed)


if __name__ == "__main__":
    main()
