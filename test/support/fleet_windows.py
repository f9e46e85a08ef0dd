"""What the policy-server tests feed it: a tiny checkpoint with statistics for two datasets,
synthetic observation windows that differ per robot and per step, and a node publishing them on
``/<robot>/observation_window`` (in the test process, or as a child process that can be killed:
``python -m support.fleet_windows <robot> <seed>``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from octo_ros.datatypes import ObservationWindow
from octo_ros.model.testing import make_untrained_checkpoint

PROPRIO = ("j1", "j2", "j3")


def two_dataset_checkpoint(path: Path, head: str) -> Path:
    """A tiny checkpoint with proprio (3) whose statistics cover two datasets of the same action
    size: 'untrained' and 'other' (other action mean/std and proprio mean)."""
    checkpoint = make_untrained_checkpoint(path, head=head, proprio_dim=len(PROPRIO))
    stats_path = checkpoint / "dataset_statistics.json"
    stats = json.loads(stats_path.read_text())
    if "other" not in stats:
        other = json.loads(json.dumps(stats["untrained"]))
        other["action"]["mean"] = [v + 0.5 for v in other["action"]["mean"]]
        other["action"]["std"] = [v * 2.0 for v in other["action"]["std"]]
        other["proprio"]["mean"] = [v - 0.3 for v in other["proprio"]["mean"]]
        stats["other"] = other
        stats_path.write_text(json.dumps(stats))
    return checkpoint


def synthetic_window(seed: int, stamp_ns: int, steps: int = 2, size: int = 64, proprio: int = len(PROPRIO),
                     step_ns: int = 200_000_000) -> ObservationWindow:
    """A window whose frames and proprio are drawn from ``seed`` and its stamp (first step padded):
    a test rebuilds the window a chunk was computed from out of the chunk's stamp."""
    rng = np.random.default_rng([seed, stamp_ns])
    stamps = stamp_ns - step_ns * np.arange(steps - 1, -1, -1, dtype=np.int64)
    return ObservationWindow(images={"image_primary": rng.integers(0, 255, (steps, size, size, 3), dtype=np.uint8)},
                             proprio=rng.normal(size=(steps, proprio)).astype(np.float32), stamps_ns=stamps,
                             timestep_pad_mask=np.array([False] + [True] * (steps - 1)),
                             proprio_names=tuple(f"j{i + 1}" for i in range(proprio)),
                             image_stamps_ns={"image_primary": stamps})


def start_window_source(node, robot: str, seed: int, rate_hz: float = 5.0):
    """Publish a new window for ``robot`` at ``rate_hz`` from ``node``; returns (publisher, timer)."""
    from octo_ros.ros.messages import window_to_msg
    from octo_ros_msgs.msg import ObservationWindow as ObservationWindowMsg

    publisher = node.create_publisher(ObservationWindowMsg, f"/{robot}/observation_window", 2)
    def publish():
        publisher.publish(window_to_msg(synthetic_window(seed, node.get_clock().now().nanoseconds)))

    return publisher, node.create_timer(1.0 / rate_hz, publish)


def main() -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node

    robot, seed = sys.argv[1], int(sys.argv[2])
    rclpy.init()
    node = Node(f"{robot}_windows")
    start_window_source(node, robot, seed)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
