"""Recorded demonstrations for fine-tuning tests: episode bags as the recorder writes them
(serialized CDR messages), exported with the project's LeRobot v3 exporter.

Every control step (5 Hz) the camera shows a uniform grey level ``v`` (a slow random walk) and
the "expert" commands an action that is a fixed function of ``v`` (gripper open iff v > 128):
a policy that reads the image can predict the action, so the validation loss can fall.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState

from octo_ros.recording.bag import EpisodeBagWriter, EpisodeInfo, TopicSpec
from octo_ros.recording.export import export_lerobot
from octo_ros_msgs.msg import ActionChunk

S = 1_000_000_000
PERIOD = S // 5


def expert_action(v: float, dim: int) -> np.ndarray:
    """The demonstrated action for grey level ``v`` (0..255); the last dimension is a gripper."""
    x = v / 255.0 - 0.5
    a = np.array([x * (1 + d / dim) * (-1) ** d for d in range(dim)], np.float32) * 0.1
    a[-1] = float(v > 128)
    if dim >= 14:  # bimanual: both grippers
        a[dim // 2 - 1] = float(v > 100)
    return a


def record_demo(out: Path, name: str, steps: int, action_dim: int, joints: Sequence[str], seed: int,
                camera_hw=(48, 64), instruction: str = "move to the grey level") -> Path:
    rng = np.random.default_rng(seed)
    h, w = camera_hw
    topics = [TopicSpec("/cam/image_raw", "sensor_msgs/msg/Image", "sensor"),
              TopicSpec("/joint_states", "sensor_msgs/msg/JointState"),
              TopicSpec("/action_chunk", "octo_ros_msgs/msg/ActionChunk")]
    writer = EpisodeBagWriter(out, EpisodeInfo(robot="test", instruction=instruction), topics, name=name)
    t0 = time.time_ns()
    v = float(rng.uniform(40, 215))
    names = [f"a{d}" for d in range(action_dim - 1)] + ["gripper"]
    if action_dim >= 14:
        names[action_dim // 2 - 1] = "left_gripper"
        names[-1] = "right_gripper"
    msgs = []
    for k in range(steps):
        v = float(np.clip(v + rng.normal(0, 25), 10, 245))
        base = t0 + k * PERIOD
        img = Image(height=h, width=w, encoding="rgb8", step=3 * w, data=bytes(np.full((h, w, 3), int(v), np.uint8)))
        img.header.stamp = Time(sec=(base + 4_000_000) // S, nanosec=(base + 4_000_000) % S)
        msgs.append((base + 5_000_000, "/cam/image_raw", img))
        js = JointState(name=list(joints), position=[v / 255.0 + 0.01 * j for j in range(len(joints))])
        js.header.stamp = Time(sec=(base + 1_000_000) // S, nanosec=(base + 1_000_000) % S)
        msgs.append((base + 1_000_000, "/joint_states", js))
        a = expert_action(v, action_dim)
        chunk = ActionChunk(sequence=k, horizon=1, action_dim=action_dim, step_period=0.2, dimension_names=names,
                            actions=a.tolist(), normalized=[0.0] * action_dim, task=f"language: {instruction}")
        stamp = base + 13_000_000 - 50_000_000
        chunk.header.stamp = Time(sec=stamp // S, nanosec=stamp % S)
        msgs.append((base + 13_000_000, "/action_chunk", chunk))
    for t, topic, msg in sorted(msgs, key=lambda m: m[0]):
        writer.write(topic, t, serialize_message(msg))
    return writer.close("success", {})


def make_lerobot_dataset(out: Path, episodes: int = 6, steps: int = 24, action_dim: int = 7,
                         joints: Sequence[str] = tuple(f"j{i}" for i in range(7)), seed: int = 0,
                         instructions: Sequence[str] = ("move to the grey level",)) -> Path:
    """A LeRobot v3 dataset of ``episodes`` recorded demonstrations (exported by octo_ros)."""
    bags_dir = out.parent / f"{out.name}_bags"
    bags = [record_demo(bags_dir, f"demo{e}", steps, action_dim, joints, seed * 1000 + e,
                        instruction=instructions[e % len(instructions)]) for e in range(episodes)]
    export_lerobot(bags, out, progress=False, codec="libx264")
    return out
