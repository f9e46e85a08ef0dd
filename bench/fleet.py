"""Fleet serving across a network (issue #16): what one robot puts on the wire, and the chunk
stream across an emulated link.

    nice -n 10 .venv/bin/python bench/fleet.py sizes
    nice -n 10 .venv/bin/python bench/fleet.py link --seconds 30 --rounds 2     # root: network namespaces
    nice -n 10 .venv/bin/python bench/fleet.py robots --seconds 10 --rounds 2

``sizes``: serialized (CDR) sizes of an observation window and an action chunk as the nodes send
them, for each robot's configured cameras at Octo's input sizes (primary 256x256, wrist 128x128),
and the MB/s per robot at the buffer's rate.

``link``: the WidowX robot graph (simulator, buffer, armed adapter) in one network namespace, the
policy (untrained tiny checkpoint) in another, a veth pair between them (test/support/netns.py);
phases alternate between the plain link and ``tc netem delay 5ms loss 1%`` (where the kernel has
sch_netem; else it says so) on the running graph. Per phase: chunks per second at the adapter and
latency from the observation stamp to the chunk's arrival in the robot namespace, p50 / p95.
Prints the CPU model and the load before and after.

``robots``: the policy server's core (octo_ros/inference/server.py, no ROS) with K = 1, 2, 4
simulated robots, each putting a fresh window (64x64, proprio 3, tiny untrained checkpoint) every
step period (0.2 s), in phase (cameras in step) or spread over the period: one server batching them (its default batching window) against one server per
robot (what K policy nodes do: one call per window, competing for the CPU), configurations
interleaved. Per configuration: chunks per second in all, latency from a window's hand-off to its
chunk p50 / p95 per robot, and the batch sizes formed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "test")]

OCTO_SIZES = {"image_primary": 256, "image_wrist": 128}  # official Octo checkpoints' example batch


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} x {model}; load {' '.join(f'{v:.1f}' for v in os.getloadavg())}"


def sizes() -> None:
    from rclpy.serialization import serialize_message

    from octo_ros.datatypes import ActionChunk, ObservationWindow
    from octo_ros.ros.graph import config_dir, load_parameters
    from octo_ros.ros.messages import chunk_to_msg, window_to_msg

    print(f"{'robot':9} {'cameras':28} {'window B':>10} {'rate Hz':>8} {'MB/s':>6} {'Mbit/s':>7} {'chunk B':>8}")
    for robot in ("widowx", "ur5", "bimanual"):
        buffer = load_parameters(config_dir() / f"{robot}.yaml")["observation_buffer"]
        inputs = buffer.get("camera_inputs", ["image_primary"])
        steps, rate = int(buffer.get("window_size", 2)), float(buffer.get("rate_hz", 5.0))
        proprio = list(buffer.get("proprio_joints", []))
        stamps = np.arange(steps, dtype=np.int64) * 200_000_000 + 1
        window = ObservationWindow(
            images={name: np.zeros((steps, OCTO_SIZES[name], OCTO_SIZES[name], 3), np.uint8) for name in inputs},
            proprio=np.zeros((steps, len(proprio)), np.float32), stamps_ns=stamps,
            timestep_pad_mask=np.ones(steps, bool), proprio_names=tuple(proprio),
            image_stamps_ns={name: stamps for name in inputs})
        window_bytes = len(serialize_message(window_to_msg(window)))
        dim = 14 if robot == "bimanual" else 7
        chunk = ActionChunk(stamp_ns=1, actions=np.zeros((4, dim)), step_period_s=0.2)
        chunk_bytes = len(serialize_message(chunk_to_msg(chunk)))
        label = ", ".join(f"{n} {OCTO_SIZES[n]}²" for n in inputs) + f" x {steps}"
        print(f"{robot:9} {label:28} {window_bytes:10d} {rate:8g} {window_bytes * rate / 1e6:6.2f} "
              f"{window_bytes * rate * 8 / 1e6:7.1f} {chunk_bytes:8d}")


def _percentiles(values) -> str:
    if not values:
        return "no chunks"
    p50, p95 = np.percentile(values, [50, 95])
    return f"p50 {p50 * 1e3:6.0f} ms  p95 {p95 * 1e3:6.0f} ms"


def link(seconds: float, rounds: int) -> None:
    from support.netns import NetnsLink, netns_unavailable

    from octo_ros.model.testing import make_untrained_checkpoint
    from octo_ros.ros.graph import describe
    from octo_ros.ros.launcher import GraphProcess

    reason = netns_unavailable()
    if reason:
        print(f"link: network namespaces unavailable ({reason})")
        return
    work = Path(tempfile.mkdtemp(prefix="octo_fleet_"))
    checkpoint = make_untrained_checkpoint(work / "ckpt", cameras=("primary",))
    specs = {s.name: s for s in describe("widowx", sim=True, arguments={
        "checkpoint": str(checkpoint), "dataset_statistics_key": "untrained", "dry_run": "false"})}
    print(f"machine: {machine()}")
    with NetnsLink() as net:
        def env(peer):
            return dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_STATIC_PEERS=peer,
                        FASTDDS_BUILTIN_TRANSPORTS="UDPv4", PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "test")]),
                        ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", str(150 + os.getpid() % 80)))
        policy = GraphProcess([specs["policy"]], env=env(net.ROBOT_ADDRESS), command_prefix=net.prefix(net.gpu),
                              out=open(work / "gpu.log", "w"))
        robot = GraphProcess([specs[n] for n in ("observation_buffer", "widowx_adapter", "widowx_sim")],
                             env=env(net.GPU_ADDRESS), command_prefix=net.prefix(net.robot), out=open(work / "robot.log", "w"))
        records = work / "probe.jsonl"
        policy.start()
        robot.start()
        probe = subprocess.Popen(net.prefix(net.robot) + [sys.executable, "-m", "support.link_probe", str(records),
                                                          "pick up the spoon"], env=robot.env, cwd=ROOT)

        def chunks(after: float, before: float) -> list[dict]:
            lines = records.read_text().splitlines() if records.exists() else []
            return [r for r in map(json.loads, [x for x in lines if x.endswith("}")])
                    if r["kind"] == "chunk" and after < r["t"] <= before]
        try:
            deadline = time.time() + 600
            while not chunks(0, time.time()) and time.time() < deadline:
                assert not policy.check() and not robot.check(), "a node exited while starting"
                time.sleep(0.5)
            netem = net.netem("delay 5ms loss 1%")
            phases = ["plain veth"] + ([] if netem else ["veth + netem 5 ms, 1 %"])
            if netem:
                print(f"netem: unavailable here ({netem}); plain link only")
            for _ in range(rounds):
                for phase in phases:
                    if phase == "plain veth":
                        net.netem_off()
                    else:
                        net.netem("delay 5ms loss 1%")
                    start = time.time()
                    time.sleep(seconds)
                    got = chunks(start, time.time())
                    print(f"{phase:24} {len(got) / seconds:5.2f} chunks/s  observation -> chunk at the robot: "
                          f"{_percentiles([r['t'] - r['stamp'] for r in got])}  ({len(got)} chunks, load "
                          f"{os.getloadavg()[0]:.1f})")
        finally:
            probe.send_signal(signal.SIGINT)
            probe.wait(10)
            robot.stop()
            policy.stop()
    print(f"machine after: {machine()}")


def robots(seconds: float, rounds: int) -> None:
    import threading

    from support.fleet_windows import synthetic_window, two_dataset_checkpoint

    from octo_ros.inference.server import PolicyConfig, PolicyServer, RobotConfig
    from octo_ros.model.policy import OctoPolicy

    checkpoint = two_dataset_checkpoint(Path(tempfile.mkdtemp(prefix="octo_fleet_")) / "ck", "diffusion")
    policy = OctoPolicy.load(str(checkpoint), tokenizer=str(checkpoint / "spiece.model"))
    print(f"machine: {machine()}; torch threads {__import__('torch').get_num_threads()}")

    def run(k: int, batched: bool, together: bool) -> None:
        names = [f"r{i}" for i in range(k)]
        handed: dict[tuple[str, int], float] = {}
        latencies: dict[str, list[float]] = {n: [] for n in names}
        lock = threading.Lock()

        def publish(name, chunk):
            with lock:
                latencies[name].append(time.perf_counter() - handed[(name, chunk.stamp_ns)])
        servers = {}
        for group in ([names] if batched else [[n] for n in names]):
            server = PolicyServer(policy, PolicyConfig(seed=0), publish, lambda name: None, lambda key, text: None)
            for name in group:
                server.serve(name, RobotConfig(dataset_statistics_key="untrained"))
                server.instruct(name, "pick up the spoon")
                servers[name] = server
            server.start()
        stop = threading.Event()

        def robot(name: str, offset: float) -> None:  # a fresh window every step, robots out of phase
            time.sleep(offset)
            step = 0
            while not stop.is_set():
                stamp = time.time_ns()
                with lock:
                    handed[(name, stamp)] = time.perf_counter()
                servers[name].put_window(name, synthetic_window(step, stamp))
                step += 1
                stop.wait(0.2)
        threads = [threading.Thread(target=robot, args=(n, 0.0 if together else 0.2 * i / k)) for i, n in enumerate(names)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        batches = {}
        for server in set(servers.values()):
            server.close()
            for size, count in server.batch_sizes.items():
                batches[size] = batches.get(size, 0) + count
        total = sum(len(v) for v in latencies.values())
        per_robot = "; ".join(f"{n} {_percentiles(latencies[n])}" for n in names)
        print(f"K={k} {'in phase' if together else 'spread':8} {'one server, batched' if batched else 'one server per robot':20} "
              f"{total / seconds:5.1f} chunks/s  "
              f"batches {dict(sorted(batches.items()))}  load {os.getloadavg()[0]:.1f}\n    {per_robot}")

    run(1, True, True)  # warm-up: first calls allocate
    for _ in range(rounds):
        for k in (1, 2, 4):
            for together in (True, False):
                for batched in (True, False):
                    run(k, batched, together)
    print(f"machine after: {machine()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("sizes")
    p = sub.add_parser("link")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=2)
    p = sub.add_parser("robots")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.what == "sizes":
        sizes()
    else:
        {"link": link, "robots": robots}[args.what](args.seconds, args.rounds)


if __name__ == "__main__":
    main()
