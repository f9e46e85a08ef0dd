"""Observation-to-chunk latency of the observation_buffer + policy nodes over DDS,
with a tiny untrained checkpoint: a camera (640x480 rgb8, 10 Hz) and joint states
(50 Hz) are published, and for every action chunk the time from the camera frame's
stamp to the chunk's arrival is measured, next to the policy's own inference latency.

Run: .venv/bin/python bench/policy_pipeline.py [--seconds 20] [--head diffusion|l1]
Prints p50/p95 in milliseconds.
"""
import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from octo_ros.model.testing import make_untrained_checkpoint  # noqa: E402
from octo_ros.ros.graph import NodeSpec  # noqa: E402
from octo_ros.ros.launcher import GraphProcess  # noqa: E402
from octo_ros.ros.messages import image_to_msg, ns_to_stamp  # noqa: E402
from octo_ros.ros.support import SENSOR_QOS  # noqa: E402
from octo_ros.timebase import stamp_to_ns  # noqa: E402
from octo_ros_msgs.msg import ActionChunk  # noqa: E402
from octo_ros_msgs.srv import SetInstruction  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--head", default="diffusion", choices=["diffusion", "l1"])
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "77")

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_untrained_checkpoint(Path(tmp) / "ckpt", head=args.head)
        specs = [
            NodeSpec("observation_buffer", "observation_buffer", {
                "camera_inputs": ["image_primary"], "cameras.image_primary.topic": "/bench/image_raw",
                "cameras.image_primary.height": 64, "cameras.image_primary.width": 64,
                "joint_state_topic": "/bench/joint_states", "rate_hz": 5.0}),
            NodeSpec("policy", "policy", {"checkpoint": str(checkpoint),
                                          "action_dimension_names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]}),
        ]
        rclpy.init()
        node = Node("bench_policy_pipeline")
        camera = node.create_publisher(Image, "/bench/image_raw", SENSOR_QOS)
        joints = node.create_publisher(JointState, "/bench/joint_states", SENSOR_QOS)
        frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        end_to_end, inference = [], []

        def on_chunk(msg: ActionChunk):
            end_to_end.append((time.time_ns() - stamp_to_ns(msg.header.stamp)) / 1e6)
            inference.append(msg.inference_latency * 1e3)

        node.create_subscription(ActionChunk, "/action_chunk", on_chunk, 10)
        node.create_timer(0.1, lambda: camera.publish(image_to_msg(frame, time.time_ns())))
        node.create_timer(0.02, lambda: joints.publish(JointState(
            header=Header(stamp=ns_to_stamp(time.time_ns())), name=["j1"], position=[0.0])))
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        graph = GraphProcess(specs, out=sys.stderr)  # node output on stderr, the table on stdout
        with graph:
            client = node.create_client(SetInstruction, "/policy/set_instruction")
            if not client.wait_for_service(timeout_sec=60):
                print("policy did not come up", file=sys.stderr)
                return 1
            future = client.call_async(SetInstruction.Request(instruction="pick up the spoon"))
            while not future.done():
                time.sleep(0.05)
            time.sleep(3.0)  # warm-up
            end_to_end.clear()
            inference.clear()
            time.sleep(args.seconds)
        executor.shutdown()
        spinner.join(timeout=5)
        rclpy.try_shutdown()

    def row(name, values):
        p50, p95 = np.percentile(values, [50, 95]) if values else (float("nan"), float("nan"))
        print(f"| {name} | {len(values)} | {p50:.1f} | {p95:.1f} |")

    print(f"policy pipeline, tiny {args.head} model, 640x480 camera at 10 Hz -> 64x64, windows at 5 Hz")
    print("| latency | chunks | p50 ms | p95 ms |\n|---|---|---|---|")
    row("camera stamp -> chunk received (end to end)", end_to_end)
    row("window received -> chunk published (policy)", inference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
