"""Command-loop jitter of the three adapter nodes at their control rates, with inference running
in another process.

    .venv/bin/python bench/adapter_jitter.py                      # all three, 10 s each, with inference load
    .venv/bin/python bench/adapter_jitter.py --robots ur5 --seconds 5 --no-load

Each adapter runs as its own process against its simulated driver (widowx_sim, aloha_sim, the
in-process fake UR controller), armed (dry-run off), fed a stream of action chunks so it computes a
new command every tick. The tick times are the ``~/command_preview`` header stamps (the node clock
read inside the control timer), so DDS delivery does not count; jitter = |tick interval - period|.
The load process loops ``OctoPolicy.sample_actions`` on a tiny untrained checkpoint.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# robot: (adapter, simulator or None, adapter params, sim params, control period s, step period s, horizon, dim,
#         preview message type name)
ROBOTS = {
    "widowx": ("widowx_adapter", "widowx_sim", {"control_period": 0.2},
               {"initial_pose": "[0.0,0.022,0.1831,0.0,1.3657,0.0]", "render_rate": "1.0", "image_width": "64",
                "image_height": "48"}, 0.2, 0.2, 4, 7),
    "bimanual": ("bimanual_adapter", "aloha_sim",
                 {"left_gripper_open": 1.4910, "left_gripper_close": -0.6213,
                  "right_gripper_open": 1.4910, "right_gripper_close": -0.6213},
                 {"render_rate": "1.0", "image_width": "64", "image_height": "48"}, 0.02, 0.02, 50, 14),
    "ur5": ("ur5_adapter", None, {"backend": "fake"}, {}, 1 / 125, 0.2, 4, 7),
}


def _load_loop(checkpoint: str) -> None:
    """Child process: sample_actions in a loop until killed."""
    from octo_ros.model.policy import OctoPolicy

    tokenizer = next((str(Path(checkpoint) / n) for n in ("spiece.model", "tokenizer.json")
                      if (Path(checkpoint) / n).is_file()), None)
    policy = OctoPolicy.load(checkpoint, device="cpu", tokenizer=tokenizer)
    rng = np.random.default_rng(0)
    obs = {"image_primary": rng.integers(0, 256, (1, 2, 64, 64, 3), dtype=np.uint8),
           "timestep_pad_mask": np.ones((1, 2), bool)}
    tasks = policy.create_tasks(texts=["pick up the spoon"])
    n, t0 = 0, time.perf_counter()
    while True:
        policy.sample_actions(obs, tasks)
        n += 1
        if n % 5 == 0:
            print(f"load: {n / (time.perf_counter() - t0):.1f} inferences/s", flush=True)


def _ros_args(name: str, params: dict) -> list[str]:
    argv = ["--ros-args", "-r", f"__node:={name}"]
    for key, value in params.items():
        argv += ["-p", f"{key}:={value}"]
    return argv


def _spawn(module: str, name: str, params: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", f"octo_ros.ros.nodes.{module}", *_ros_args(name, params)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(robot: str, seconds: float, log) -> dict:
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool

    from octo_ros.ros.messages import ns_to_stamp
    from octo_ros.timebase import stamp_to_ns
    from octo_ros_msgs.msg import ActionChunk

    adapter, sim, a_params, s_params, period, step, horizon, dim = ROBOTS[robot]
    procs = []
    if sim:
        procs.append(_spawn(sim, sim, s_params, log))
    procs.append(_spawn(adapter, adapter, a_params, log))
    node = Node(f"jitter_bench_{robot}")
    stamps: list[int] = []
    latest: dict = {}
    msg_type = PoseStamped if robot == "ur5" else JointState
    node.create_subscription(msg_type, f"/{adapter}/command_preview",
                             lambda m: (stamps.append(stamp_to_ns(m.header.stamp)), latest.update(msg=m)), 100)
    pub = node.create_publisher(ActionChunk, "/action_chunk", 10)
    action = {"base": None}

    def publish_chunk():
        if action["base"] is None:
            return
        msg = ActionChunk(horizon=horizon, action_dim=dim, step_period=step)
        msg.header.stamp = ns_to_stamp(node.get_clock().now().nanoseconds)
        a = np.tile(np.asarray(action["base"], np.float32), (horizon, 1))
        msg.actions = a.ravel().tolist()
        msg.normalized = msg.actions
        pub.publish(msg)

    node.create_timer(0.2, publish_chunk)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 40
        while "msg" not in latest:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{adapter} did not come up")
            time.sleep(0.1)
        if robot == "bimanual":  # hold the current joints, swing the left waist back and forth slowly
            base = np.array(latest["msg"].position, float)
            action["base"] = base
        else:  # small forward/back deltas (open gripper)
            action["base"] = np.array([0.002, 0, 0, 0, 0, 0, 1.0])
        client = node.create_client(SetBool, f"/{adapter}/set_dry_run")
        client.wait_for_service(timeout_sec=10)
        future = client.call_async(SetBool.Request(data=False))
        while not future.done():
            time.sleep(0.02)
        time.sleep(1.0)  # settle
        stamps.clear()
        t_end = time.monotonic() + seconds
        flip = 1.0
        while time.monotonic() < t_end:
            time.sleep(1.0)
            flip = -flip
            if robot == "bimanual":
                b = action["base"].copy()
                b[0] += 0.05 * flip
                action["base"] = b
            else:
                action["base"] = np.array([0.002 * flip, 0, 0, 0, 0, 0, 1.0])
        ticks = np.array(stamps, dtype=np.int64)
    finally:
        executor.shutdown()
        node.destroy_node()
        for p in reversed(procs):
            _stop(p)
    intervals = np.diff(ticks) / 1e9
    jitter = np.abs(intervals - period) * 1e3
    return {"robot": robot, "rate": 1 / period, "ticks": len(ticks), "expected": int(seconds / period),
            "p50": float(np.percentile(jitter, 50)) if len(jitter) else float("nan"),
            "p99": float(np.percentile(jitter, 99)) if len(jitter) else float("nan"),
            "max": float(jitter.max()) if len(jitter) else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", nargs="+", default=list(ROBOTS), choices=list(ROBOTS))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-load", action="store_true", help="no inference process")
    parser.add_argument("--load-only", help=argparse.SUPPRESS)  # child mode: checkpoint path
    args = parser.parse_args()
    if args.load_only:
        _load_loop(args.load_only)
        return 0
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "78")
    import rclpy

    from octo_ros.model.testing import make_untrained_checkpoint

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "nodes.log", "w")
        load = None
        if not args.no_load:
            checkpoint = make_untrained_checkpoint(Path(tmp) / "ckpt", head="diffusion")
            load = subprocess.Popen([sys.executable, __file__, "--load-only", str(checkpoint)], cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            time.sleep(5.0)  # model loaded and looping
        rclpy.init()
        try:
            for robot in args.robots:
                rows.append(measure(robot, args.seconds, log))
        finally:
            if load is not None:
                _stop(load)
            rclpy.try_shutdown()
            log.close()
            if load is not None:
                loads = [l for l in (Path(tmp) / "nodes.log").read_text().splitlines() if l.startswith("load:")]
                print(f"inference load: {loads[-1][6:] if loads else 'no report'}")
    print(f"adapter command-loop jitter |tick interval - period| ({'with' if not args.no_load else 'without'} "
          f"inference in another process, {os.cpu_count()} CPUs, {args.seconds:g} s each, armed)")
    print("| adapter | rate Hz | ticks / expected | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['robot']} | {r['rate']:g} | {r['ticks']} / {r['expected']} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['max']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
