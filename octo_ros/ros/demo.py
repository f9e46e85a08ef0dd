"""`octo-ros demo`: the simulated robot driven by Octo through the full graph.

``--robot bimanual`` (the default, what `make demo` runs): the full graph on the simulated ALOHA
for a bounded time with an UNTRAINED tiny Octo written once in the official layout: the arms move,
without purpose; recorded to a bag, then a summary, a video and plots of the rollout.

``--robot widowx --checkpoint CK``: a WidowX policy (one tools/train_demo_policy.sh made; ``demo``:
the shipped one, once one ships) does the reach task — put the gripper on the block the
instruction names — in a few seeded episodes no training saw, through `octo-ros evaluate`'s graph
(camera → observation buffer → policy → adapter → simulator over DDS); it prints the success rate
and writes a bag and a video of every episode.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ALOHA_START_ARM_POSE = [0.0, -0.96, 1.16, 0.0, -0.3, 0.0]
DATASET = "aloha_sim_cube_scripted_dataset"
INSTRUCTION = "transfer the cube to the other arm"


def demo_checkpoint(directory: Path) -> Path:
    """The untrained checkpoint (created once), with action statistics centred on
    ALOHA's start pose so the untrained actions stay near it."""
    from octo_ros.model.testing import make_untrained_checkpoint

    path = make_untrained_checkpoint(directory, cameras=("primary",), action_dim=14, action_horizon=50,
                                     head="l1", dataset=DATASET)
    stats_file = path / "dataset_statistics.json"
    stats = json.loads(stats_file.read_text())
    mean = ALOHA_START_ARM_POSE + [0.5] + ALOHA_START_ARM_POSE + [0.5]
    std = [0.15] * 6 + [1.0] + [0.15] * 6 + [1.0]
    mask = [True] * 6 + [False] + [True] * 6 + [False]  # grippers stay as produced
    lo = [m - 3 * s for m, s in zip(mean, std)]
    hi = [m + 3 * s for m, s in zip(mean, std)]
    stats[DATASET]["action"] = {"mean": mean, "std": std, "mask": mask, "min": lo, "max": hi, "p01": lo, "p99": hi}
    stats_file.write_text(json.dumps(stats))
    return path


def run_demo(out: Path, duration: float) -> dict:
    import rclpy
    from diagnostic_msgs.msg import KeyValue
    from interbotix_xs_msgs.msg import JointGroupCommand
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    from octo_ros.recording.review import review
    from octo_ros.ros.graph import describe
    from octo_ros.ros.launcher import GraphProcess
    from octo_ros_msgs.msg import ActionChunk
    from octo_ros_msgs.srv import SetInstruction, StartEpisode, StopEpisode

    out.mkdir(parents=True, exist_ok=True)
    print("octo-ros demo: the policy is an UNTRAINED tiny Octo checkpoint (random weights): "
          "the loop is real, the motions are meaningless.", flush=True)
    checkpoint = demo_checkpoint(out / "checkpoint")
    specs = describe("bimanual", sim=True, arguments={
        "checkpoint": str(checkpoint), "dataset_statistics_key": DATASET, "dry_run": "false", "record": "true",
        "recorder.output_dir": str(out / "bags"),
    })
    os.environ.setdefault("MUJOCO_GL", "egl")
    # The demo commands follower arms by their real topic names: keep it on this machine,
    # so it can never reach a real robot on the network.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    rclpy.init()
    node = Node("octo_ros_demo")
    chunks: list[ActionChunk] = []
    commands = [0]
    node.create_subscription(ActionChunk, "action_chunk", chunks.append, 10)
    node.create_subscription(JointGroupCommand, "follower_left/commands/joint_group",
                             lambda _: commands.__setitem__(0, commands[0] + 1), 100)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)

    def call(srv_type, name, request, timeout=120.0):
        client = node.create_client(srv_type, name)
        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=0.5):
            executor.spin_once(timeout_sec=0.1)
            if graph.check() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not come up (see the node output above)")
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise RuntimeError(f"{name} did not answer within {timeout} s")
        return future.result()

    graph = GraphProcess(specs)
    bag = ""
    try:
        graph.start()
        started = call(StartEpisode, "recorder/start_episode", StartEpisode.Request(
            instruction=INSTRUCTION, metadata=[KeyValue(key="operator", value="octo-ros demo")]))
        if not started.success:
            raise RuntimeError(f"recording did not start: {started.message}")
        bag = started.bag_path
        reply = call(SetInstruction, "policy/set_instruction", SetInstruction.Request(instruction=INSTRUCTION))
        if not reply.success:
            raise RuntimeError(f"instruction rejected: {reply.message}")
        end = time.monotonic() + duration
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
            if graph.check():
                raise RuntimeError(f"{', '.join(graph.failed)} died during the demo")
        stopped = call(StopEpisode, "recorder/stop_episode", StopEpisode.Request(outcome="demo"))
        if not stopped.success:
            raise RuntimeError(f"recording did not stop cleanly: {stopped.message}")
        bag = stopped.bag_path
    finally:
        graph.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()

    latencies = np.array([c.inference_latency for c in chunks]) if chunks else np.zeros(1)
    reviewed = review(bag, out / "review")
    summary = {
        "seconds": duration,
        "steps_executed": commands[0],
        "chunks": len(chunks),
        "inference_latency_p50_ms": round(float(np.percentile(latencies, 50)) * 1e3, 1),
        "inference_latency_p95_ms": round(float(np.percentile(latencies, 95)) * 1e3, 1),
        "bag": str(bag),
        **{k: (str(v) if not isinstance(v, list) else [str(x) for x in v]) for k, v in reviewed.items()},
    }
    return summary


DEMO_SEEDS = 5000  # the WidowX demo's first seed: the training's demonstrations use 0.., its evaluation 1000..


def run_widowx_demo(out: Path, episodes: int, checkpoint: str = "demo", progress: bool = True) -> dict:
    """``episodes`` seeded episodes of a WidowX policy (`octo-ros evaluate`), a video of each;
    returns the evaluation's summary."""
    from octo_ros.robots.widowx.sim import DEFAULT_TASK
    from octo_ros.ros.evaluate import Evaluation, EvaluationSettings

    settings = EvaluationSettings(robot="widowx", task=DEFAULT_TASK, checkpoint=checkpoint,
                                  seeds=list(range(DEMO_SEEDS, DEMO_SEEDS + episodes)), out=out,
                                  progress=progress, video_every_episode=True)
    return Evaluation(settings).run()


def _print_widowx_summary(summary: dict, out: Path) -> None:
    low, high = summary["wilson_95"]
    print(f"\n=== octo-ros demo: WidowX, {summary['evidence']['task']}, {summary['evidence']['checkpoint']} ===")
    for e in summary["per_episode"]:
        outcome = f"success in {e['time_to_success_s']:.1f} s" if e["success"] else f"failure ({e['failure_mode']}: {e['failure_detail']})"
        print(f"seed {e['seed']}: \"{e['instruction']}\" -> {outcome}; reached: {e['reached'] or 'no block'}")
        print(f"    video: {e['video']}")
    print(f"success rate {summary['success_rate']:.2f} ({summary['successes']}/{summary['episodes']} episodes, "
          f"95 % Wilson {low:.2f}-{high:.2f}); summary, evidence and bags: {out}")


def _cmd_demo(args) -> int:
    if args.robot == "widowx":
        out = Path(args.out).resolve()
        try:
            summary = run_widowx_demo(out, args.episodes, args.checkpoint)
        except (RuntimeError, ValueError) as err:
            print(f"octo-ros demo failed: {err}", file=sys.stderr)
            return 1
        _print_widowx_summary(summary, out)
        return 0 if summary["episodes"] == args.episodes else 1
    try:
        summary = run_demo(Path(args.out).resolve(), args.duration)
    except RuntimeError as err:
        print(f"octo-ros demo failed: {err}", file=sys.stderr)
        return 1
    print("\n=== octo-ros demo summary (untrained checkpoint) ===")
    for key, value in summary.items():
        print(f"{key:>26}: {value}")
    if summary["steps_executed"] == 0 or summary["chunks"] == 0:
        print("octo-ros demo: no commands reached the robot", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the simulated robot driven by Octo through the full graph, recorded")
    p.add_argument("--robot", choices=("bimanual", "widowx"), default="bimanual",
                   help="bimanual: an untrained checkpoint; widowx: a trained policy does the reach task")
    p.add_argument("--checkpoint", default="demo", help="widowx: the policy ('demo': the shipped one)")
    p.add_argument("--out", default="out/demo", help="where the bags, videos and summaries go")
    p.add_argument("--episodes", type=int, default=3, help="widowx: how many seeded episodes")
    p.add_argument("--duration", type=float, default=20.0, help="bimanual: seconds of closed-loop control")
    p.set_defaults(func=_cmd_demo)
