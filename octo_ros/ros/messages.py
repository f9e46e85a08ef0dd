"""Conversions between octo_ros messages and the numpy structures of the pure core.

No rclpy here: message classes are plain generated Python types.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from transforms3d.quaternions import mat2quat

from octo_ros.control.kinematics import rotation_exp
from octo_ros.datatypes import ActionChunk, ObservationWindow
from octo_ros.perception.image_codec import decode_image_msg, encode_image
from octo_ros.sim.tasks import TaskStatus
from octo_ros.timebase import split_ns, stamp_to_ns
from octo_ros_msgs.msg import ActionChunk as ActionChunkMsg
from octo_ros_msgs.msg import CameraWindow, PolicyStatus
from octo_ros_msgs.msg import ObservationWindow as ObservationWindowMsg

if TYPE_CHECKING:  # not at run time: the server imports torch, which the other nodes need not load
    from octo_ros.inference.server import RobotStatus


def ns_to_stamp(ns: int) -> Time:
    sec, nanosec = split_ns(ns)
    return Time(sec=sec, nanosec=nanosec)


def pose_to_msg(pose6, stamp_ns: int, frame_id: str) -> PoseStamped:
    """A pose [x, y, z, rx, ry, rz] (rotation vector, as UR reports it) as a PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pose6[:3])
    w, x, y, z = mat2quat(rotation_exp(np.asarray(pose6[3:6], float)))
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = float(x), float(y), float(z), float(w)
    return msg


def image_to_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "") -> Image:
    """An (H, W, 3) uint8 RGB array as an rgb8 sensor_msgs/Image."""
    fields = encode_image(rgb, "rgb8")
    msg = Image(encoding=fields.encoding, height=fields.height, width=fields.width, step=fields.step,
                is_bigendian=fields.is_bigendian)
    msg.data = fields.data
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    return msg


def joint_state_to_msg(sample, stamp: Time, prefix: str = "") -> JointState:
    """A joint-state sample (``name``, ``position``, ``velocity``, ``effort``; a driver stand-in's) as a
    sensor_msgs/JointState stamped ``stamp``, its names prefixed with ``prefix``."""
    msg = JointState(name=[prefix + n for n in sample.name], position=[float(v) for v in sample.position],
                     velocity=[float(v) for v in sample.velocity], effort=[float(v) for v in sample.effort])
    msg.header.stamp = stamp
    return msg


def window_to_msg(window: ObservationWindow) -> ObservationWindowMsg:
    msg = ObservationWindowMsg()
    msg.header.stamp = ns_to_stamp(int(window.stamps_ns[-1]))
    msg.step_stamps = [ns_to_stamp(int(s)) for s in window.stamps_ns]
    msg.timestep_pad_mask = [bool(v) for v in window.timestep_pad_mask]
    for name, frames in window.images.items():
        stamps = window.image_stamps_ns[name]
        msg.cameras.append(CameraWindow(
            input_name=name, frames=[image_to_msg(frame, int(s)) for frame, s in zip(frames, stamps)]))
    if window.proprio.size:
        msg.proprio_names = list(window.proprio_names)
        msg.proprio = window.proprio.astype(np.float32).ravel().tolist()
    return msg


def window_from_msg(msg: ObservationWindowMsg) -> ObservationWindow:
    """Checks the window is consistent and returns its arrays; ValueError names what is wrong."""
    steps = len(msg.timestep_pad_mask)
    if steps == 0:
        raise ValueError("observation window has no steps")
    if len(msg.step_stamps) != steps:
        raise ValueError(f"observation window has {len(msg.step_stamps)} step stamps for {steps} steps")
    if not msg.cameras:
        raise ValueError("observation window has no camera")
    images, image_stamps = {}, {}
    for camera in msg.cameras:
        if len(camera.frames) != steps:
            raise ValueError(f"camera {camera.input_name} has {len(camera.frames)} frames for {steps} steps")
        images[camera.input_name] = np.stack([decode_image_msg(frame) for frame in camera.frames])
        image_stamps[camera.input_name] = np.array([stamp_to_ns(f.header.stamp) for f in camera.frames], np.int64)
    proprio = np.asarray(msg.proprio, dtype=np.float32)
    names = tuple(msg.proprio_names)
    if proprio.size != steps * len(names):
        raise ValueError(f"proprio has {proprio.size} values for {steps} steps x {len(names)} names")
    return ObservationWindow(
        images=images,
        proprio=proprio.reshape(steps, len(names)),
        stamps_ns=np.array([stamp_to_ns(s) for s in msg.step_stamps], dtype=np.int64),
        timestep_pad_mask=np.array(msg.timestep_pad_mask, dtype=bool),
        proprio_names=names,
        image_stamps_ns=image_stamps,
    )


def chunk_to_msg(chunk: ActionChunk) -> ActionChunkMsg:
    horizon, dim = chunk.actions.shape
    msg = ActionChunkMsg(
        sequence=chunk.sequence, model_id=chunk.model_id, task=chunk.task, horizon=horizon, action_dim=dim,
        step_period=float(chunk.step_period_s), dimension_names=list(chunk.dimension_names),
        inference_latency=float(chunk.inference_latency_s), source=chunk.source,
    )
    msg.header.stamp = ns_to_stamp(chunk.stamp_ns)
    msg.actions = np.asarray(chunk.actions, dtype=np.float32).ravel().tolist()
    if chunk.normalized is not None:
        msg.normalized = np.asarray(chunk.normalized, dtype=np.float32).ravel().tolist()
    return msg


def chunk_from_msg(msg: ActionChunkMsg) -> ActionChunk:
    """ValueError names what is inconsistent in the message."""
    shape = (int(msg.horizon), int(msg.action_dim))
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"action chunk {msg.sequence} has shape {shape}")
    actions = np.asarray(msg.actions, dtype=np.float32)
    normalized = np.asarray(msg.normalized, dtype=np.float32)
    for name, values in (("actions", actions), ("normalized", normalized)):
        if values.size != shape[0] * shape[1]:
            raise ValueError(f"action chunk {msg.sequence}: {name} has {values.size} values, expected {shape[0]}x{shape[1]}")
    if len(msg.dimension_names) not in (0, shape[1]):
        raise ValueError(f"action chunk {msg.sequence}: {len(msg.dimension_names)} dimension names for {shape[1]} dimensions")
    if not msg.step_period > 0:
        raise ValueError(f"action chunk {msg.sequence}: step_period {msg.step_period} is not positive")
    return ActionChunk.from_msg(msg)


def task_status_to_msg(status: TaskStatus, name: str) -> DiagnosticStatus:
    """A simulator's task report as diagnostic_msgs/DiagnosticStatus: message = the instruction;
    values task, seed, success, reward, time and the ground truth, each value JSON."""
    msg = DiagnosticStatus(level=DiagnosticStatus.OK, name=name, message=status.instruction, hardware_id="simulation")
    fields = {"task": status.task, "seed": status.seed, "success": status.success, "reward": status.reward,
              "time": status.time, **status.values}
    msg.values = [KeyValue(key=k, value=json.dumps(v)) for k, v in fields.items()]
    return msg


def task_status_from_msg(msg: DiagnosticStatus) -> TaskStatus:
    fields = {kv.key: json.loads(kv.value) for kv in msg.values}
    try:
        return TaskStatus(task=fields.pop("task"), seed=int(fields.pop("seed")), instruction=msg.message,
                          success=bool(fields.pop("success")), reward=float(fields.pop("reward")),
                          time=float(fields.pop("time")), values=fields)
    except KeyError as missing:
        raise ValueError(f"task status '{msg.name}' lacks {missing}") from None


def policy_status_to_msg(status: RobotStatus, model_id: str, stamp: Time) -> PolicyStatus:
    """A served robot's status as octo_ros_msgs/PolicyStatus, ``header.frame_id`` the robot."""
    msg = PolicyStatus(state=int(status.state), message=status.message, model_id=model_id,
                       task_kind=status.task.kind, instruction=status.task.instruction or "",
                       chunks_published=status.chunks_published, windows_dropped=status.windows_dropped,
                       latency_p50=status.latency_p50_s, latency_p95=status.latency_p95_s)
    msg.header.stamp, msg.header.frame_id = stamp, status.name
    return msg
