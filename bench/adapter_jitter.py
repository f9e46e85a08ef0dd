"""Command-loop jitter of the three adapter nodes at their control rates, with inference running
in another process.

    .venv/bin/python bench/adapter_jitter.py                      # all three, 10 s each, with inference load
    .venv/bin/python bench/adapter_jitter.py --robots ur5 --seconds 5 --no-load

Each adapter runs as its own process against its simulated driver (widowx_sim, aloha_sim, the
in-process fake UR controller), armed (dry-run off), fed a stream of action chunks so it computes a
new command every tick. The tick times are the ``~/command_preview`` header stamps (the node clock
read inside the control timer), so DDS delivery does not count. Lateness = how far each tick is
behind its slot on the timer's grid (the grid's origin is the least-late tick); "skipped" counts
slots with no tick (a tick later than one period). The load process loops
``OctoPolicy.sample_actions`` on a tiny untrained checkpoint.

Two configurations, measured one after the other in the same run:
  normal    adapter at normal scheduling (``realtime_priority:=0``), inference on every core
  realtime  the shipped defaults: control loop SCHED_FIFO (``octo_ros.control.realtime``),
            inference on all cores but one (``octo_ros.inference.runtime.default_torch_threads``)
"""
from __future__ import annotations

import argparse
import os
import re
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


CONFIGS = {"normal": {"realtime_priority": 0}, "realtime": {}}


def _load_loop(checkpoint: str, threads: int) -> None:
    """Child process: sample_actions in a loop until killed."""
    import torch

    from octo_ros.model.policy import OctoPolicy

    torch.set_num_threads(threads)

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


def _ros_args(name: str, params: dict, params_file: str | None = None) -> list[str]:
    argv = ["--ros-args", "-r", f"__node:={name}"] + (["--params-file", params_file] if params_file else [])
    for key, value in params.items():
        argv += ["-p", f"{key}:={value}"]
    return argv


def _spawn(module: str, name: str, params: dict, log, params_file: str | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", f"octo_ros.ros.nodes.{module}", *_ros_args(name, params, params_file)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def lateness(ticks_ns: np.ndarray, period: float) -> tuple[np.ndarray, int]:
    """Per-tick lateness (s) behind the timer grid, and how many grid slots had no tick."""
    t = (ticks_ns - ticks_ns[0]) / 1e9
    slot = np.round(t / period)
    phase = t - slot * period
    return phase - phase.min(), int(np.sum(np.maximum(np.diff(slot) - 1, 0)))


def measure(robot: str, config: str, seconds: float, log) -> dict:
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool

    from octo_ros.control.teleop import DELTA_ACTION_NAMES
    from octo_ros.robots.bimanual.adapter import ACTION_NAMES as BIMANUAL_ACTION_NAMES
    from octo_ros.ros.messages import ns_to_stamp
    from octo_ros.timebase import stamp_to_ns
    from octo_ros_msgs.msg import ActionChunk

    adapter, sim, a_params, s_params, period, step, horizon, dim = ROBOTS[robot]
    names = BIMANUAL_ACTION_NAMES if robot == "bimanual" else DELTA_ACTION_NAMES  # the adapter's action layout
    procs = []
    if sim:
        procs.append(_spawn(sim, sim, s_params, log))
    # the robot's parameter file first: its safety limits must be given for the adapter to arm
    procs.append(_spawn(adapter, adapter, {**a_params, **CONFIGS[config]}, log, str(ROOT / "config" / f"{robot}.yaml")))
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
        msg = ActionChunk(horizon=horizon, action_dim=dim, step_period=step, dimension_names=list(names))
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
    late, skipped = lateness(ticks, period)
    late_ms = late * 1e3
    return {"robot": robot, "config": config, "rate": 1 / period, "ticks": len(ticks),
            "expected": int(seconds / period), "p50": float(np.percentile(late_ms, 50)),
            "p99": float(np.percentile(late_ms, 99)), "max": float(late_ms.max()), "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", nargs="+", default=list(ROBOTS), choices=list(ROBOTS))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-load", action="store_true", help="no inference process")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--load-only", help=argparse.SUPPRESS)  # child mode: checkpoint path
    parser.add_argument("--load-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_only:
        _load_loop(args.load_only, args.load_threads)
        return 0
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "78")
    import rclpy

    from octo_ros.control.realtime import allowed_fifo_priority
    from octo_ros.inference.runtime import default_torch_threads
    from octo_ros.model.testing import make_untrained_checkpoint

    cpus = len(os.sched_getaffinity(0))
    rows, loads = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "nodes.log", "w")
        checkpoint = None if args.no_load else make_untrained_checkpoint(Path(tmp) / "ckpt", head="diffusion")
        rclpy.init()
        try:
            for robot in args.robots:
                for config in args.configs:
                    threads = cpus if config == "normal" else default_torch_threads()
                    load, load_log = None, Path(tmp) / f"load_{robot}_{config}.log"
                    if checkpoint is not None:
                        with open(load_log, "w") as out:
                            load = subprocess.Popen([sys.executable, __file__, "--load-only", str(checkpoint),
                                                     "--load-threads", str(threads)], cwd=ROOT, stdout=out,
                                                    stderr=subprocess.STDOUT, start_new_session=True)
                        deadline = time.monotonic() + 180
                        while "load:" not in load_log.read_text():  # model loaded and looping
                            if time.monotonic() > deadline or load.poll() is not None:
                                raise RuntimeError(f"inference load did not start: {load_log.read_text()[-2000:]}")
                            time.sleep(0.5)
                    try:
                        rows.append(measure(robot, config, args.seconds, log))
                    finally:
                        if load is not None:
                            _stop(load)
                    reports = re.findall(r"load: ([\d.]+ inferences/s)", load_log.read_text()) if load else []
                    loads[(robot, config)] = f"{threads} threads, {reports[-1]}" if reports else "none"
        finally:
            rclpy.try_shutdown()
            log.close()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"adapter control-loop lateness behind the timer grid ({'with' if not args.no_load else 'without'} "
          f"inference in another process; {cpus} CPUs, {cpu}; load average {os.getloadavg()[0]:.1f}; "
          f"SCHED_FIFO allowed up to {allowed_fifo_priority()}; {args.seconds:g} s each, armed)")
    print("| adapter | config | inference load | rate Hz | ticks / expected | lateness p50 ms | p99 ms | max ms | "
          "skipped slots |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['robot']} | {r['config']} | {loads[(r['robot'], r['config'])]} | {r['rate']:g} | {r['ticks']} / "
              f"{r['expected']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | {r['skipped']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
