"""How long each node of a simulated graph takes to stop, measured from the signal to its
exit, the way `ros2 launch` stops a graph: SIGINT to every node at once, with inference
running (a task is set). `ros2 launch` escalates to SIGTERM after 5 s and SIGKILL after 10 s;
the nodes must stop well inside the first.

Run: .venv/bin/python bench/shutdown.py [--robot widowx|ur5|bimanual] [--rounds 3] [--seconds 8]
Prints, per node, the stop times (s) of every round and the worst, with the CPU and the load.
"""
import argparse
import io
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from octo_ros.model.testing import make_untrained_checkpoint  # noqa: E402
from octo_ros.ros.graph import describe  # noqa: E402
from octo_ros.ros.launcher import GraphProcess  # noqa: E402


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _instruct() -> None:
    subprocess.run([sys.executable, "-c", (
        "import rclpy; from rclpy.node import Node; from octo_ros_msgs.srv import SetInstruction\n"
        "rclpy.init(); n = Node('bench_instruct'); c = n.create_client(SetInstruction, '/policy/set_instruction')\n"
        "assert c.wait_for_service(timeout_sec=120)\n"
        "f = c.call_async(SetInstruction.Request(instruction='pick up the spoon'))\n"
        "rclpy.spin_until_future_complete(n, f, timeout_sec=60)")], check=True, timeout=200)


def one_round(specs) -> dict[str, float]:
    graph = GraphProcess(specs, out=io.StringIO())
    graph.start()
    try:
        _instruct()
        time.sleep(ARGS.seconds)
        sent = time.monotonic()
        for proc in graph.processes.values():
            proc.send_signal(signal.SIGINT)
        stopped = {}
        while len(stopped) < len(graph.processes) and time.monotonic() - sent < 30:
            for name, proc in graph.processes.items():
                if name not in stopped and proc.poll() is not None:
                    stopped[name] = time.monotonic() - sent
            time.sleep(0.005)
        return stopped
    finally:
        graph.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="widowx", choices=["widowx", "ur5", "bimanual"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="closed loop before the signal")
    global ARGS
    ARGS = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "78")
    os.environ.setdefault("MUJOCO_GL", "egl")
    with tempfile.TemporaryDirectory() as tmp:
        action_dim, horizon = (14, 50) if ARGS.robot == "bimanual" else (7, 4)
        checkpoint = make_untrained_checkpoint(Path(tmp) / "ckpt", action_dim=action_dim, action_horizon=horizon,
                                               head="l1")
        specs = describe(ARGS.robot, sim=True, arguments={
            "checkpoint": str(checkpoint), "dataset_statistics_key": "untrained", "dry_run": "false",
            "record": "true", "recorder.output_dir": str(Path(tmp) / "bags"), "recorder.auto_episode": "true"})
        rounds = [one_round(specs) for _ in range(ARGS.rounds)]
    print(f"CPU: {_cpu()}, {os.cpu_count()} cores; load average at the end: {os.getloadavg()}")
    print(f"{ARGS.robot} sim graph, SIGINT to every node at once after {ARGS.seconds:g} s of closed loop:")
    print(f"{'node':>20}  " + "  ".join(f"round {i + 1:>2}" for i in range(len(rounds))) + "   worst (s)")
    for spec in specs:
        times = [r.get(spec.name, float("nan")) for r in rounds]
        print(f"{spec.name:>20}  " + "  ".join(f"{t:8.2f}" for t in times) + f"   {max(times):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
