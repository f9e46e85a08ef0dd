"""Read a recorded episode back into arrays (for review and export). No rclpy, no ROS install:
rosbags' AnyReader decodes with the definitions embedded in the bag.

Streams are found by type: every ``sensor_msgs/Image``/``CompressedImage`` topic is a camera
(except ``*goal_image``, the goal), ``ActionChunk`` the commanded actions (every ActionChunk
topic, merged in receive order: a policy's chunks and a teleoperation node's horizon-1 chunks;
``source`` says which, empty in older bags: policy; where the adapter's diagnostics say which
source it executes, the other source's chunks are left out), ``PolicyStatus`` the status, ``DiagnosticArray`` the diagnostics (safety clamps are the statuses with a key or
message containing "clamp").

The robot state is the model's proprio, built from the ``JointState`` topics by the observation
buffer's rules (:class:`~octo_ros.perception.observation.ProprioLayout`: sources with prefixes,
joint order, gripper normalization) with the layout the episode recorded (``proprio_layout`` in
the episode metadata: the graph passes the observation buffer's to the recorder). A layout
without proprio joints (WidowX, UR5: the model takes no proprio), or a bag without a recorded
layout: the raw positions of the one ``JointState`` topic (several, without a layout: no state,
``state_origin`` says why).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from octo_ros.datatypes import ActionChunk
from octo_ros.perception.observation import JointStateError, ProprioLayout
from octo_ros.recording.bag import METADATA_TOPIC, RecordingError, is_complete
from octo_ros.timebase import ns_to_seconds

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


@dataclass
class CameraStream:
    topic: str
    times: np.ndarray  # receive time, ns
    _msgs: list = field(repr=False)

    def frame(self, i: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        from octo_ros.perception.image_codec import decode_image_msg

        return decode_image_msg(self._msgs[i])

    def index_at(self, t_ns: int) -> int:
        """Latest frame received at or before ``t_ns`` (-1: none yet)."""
        return int(np.searchsorted(self.times, t_ns, side="right")) - 1

    @property
    def key(self) -> str:
        """Feature-friendly name: ``/cam/image_raw`` → ``cam``; ``/wrist/image`` → ``wrist``."""
        parts = [p for p in self.topic.split("/") if p and p not in ("image_raw", "image", "compressed", "image_rect")]
        return "_".join(parts) or "camera"


@dataclass
class Chunks:
    """The action chunks of an episode in arrival order; the columns below are views of ``items``."""

    times: np.ndarray  # receive time, ns (N,)
    items: list[ActionChunk]

    @cached_property
    def stamps(self) -> np.ndarray:  # header stamp, ns (N,)
        return np.array([c.stamp_ns for c in self.items], dtype=np.int64)

    @cached_property
    def sequence(self) -> np.ndarray:
        return np.array([c.sequence for c in self.items], dtype=np.int64)

    @property
    def actions(self) -> list[np.ndarray]:  # (H, D) each, unnormalized
        return [c.actions for c in self.items]

    @cached_property
    def step_period(self) -> np.ndarray:
        return np.array([c.step_period_s for c in self.items], dtype=np.float64)

    @cached_property
    def latency(self) -> np.ndarray:
        return np.array([c.inference_latency_s for c in self.items], dtype=np.float64)

    @property
    def dimension_names(self) -> list[str]:  # the first chunk's
        return list(self.items[0].dimension_names)

    @property
    def task(self) -> list[str]:
        return [c.task for c in self.items]

    @cached_property
    def source(self) -> list[str]:  # per chunk: "policy" or "teleop"
        return [c.source for c in self.items]

    def action_at(self, t_ns: int) -> tuple[np.ndarray | None, int, int]:
        """(action executed at t, chunk index, row) with receding-horizon execution of the
        newest chunk received by t: row = steps elapsed since the chunk's observation stamp."""
        i = int(np.searchsorted(self.times, t_ns, side="right")) - 1
        if i < 0:
            return None, -1, -1
        chunk = self.items[i]
        period = chunk.step_period_s if chunk.step_period_s > 0 else 0.2
        row = int(np.clip(np.floor(ns_to_seconds(t_ns - chunk.stamp_ns) / period + 1e-6), 0, chunk.actions.shape[0] - 1))
        return chunk.actions[row], i, row


@dataclass
class Episode:
    bag: Path
    metadata: dict[str, Any]
    start_ns: int
    end_ns: int
    cameras: list[CameraStream]
    goal_image: np.ndarray | None
    state_times: np.ndarray | None  # receive time of each state (a joint state completed it)
    state_names: list[str]
    states: np.ndarray | None  # (N, D) float32: the proprio (or raw joint positions, see state_origin)
    state_origin: str  # where the layout came from, or why there is no state
    joint_topics: list[str]  # the recorded JointState topics
    chunks: Chunks | None
    status_times: np.ndarray
    status_state: np.ndarray
    clamp_times: np.ndarray  # ns of diagnostics statuses reporting a clamp
    instructions: list[tuple[int, str]]  # (time, text) from the instruction topic / status

    @property
    def instruction(self) -> str:
        return self.metadata.get("instruction") or (self.instructions[0][1] if self.instructions else "")

    def state_at(self, t_ns: int) -> np.ndarray | None:
        if self.state_times is None:
            return None
        i = int(np.searchsorted(self.state_times, t_ns, side="right")) - 1
        return None if i < 0 else self.states[i]


def deserialize(reader, raw: bytes, msgtype: str):
    """AnyReader's deserialize, tolerating trailing bytes after a complete message (rclpy's
    ``serialize_message`` on Kilted leaves up to 8 such bytes after trailing double sequences;
    rosbags rejects more than 3)."""
    from rosbags.highlevel.anyreader import AnyReaderError

    try:
        return reader.deserialize(raw, msgtype)
    except AnyReaderError as exc:
        if "size mismatch" not in str(exc):
            raise
        msgdef = reader.typestore.get_msgdef(msgtype)
        func = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
        return func(memoryview(raw)[4:], 0, msgdef.cls, reader.typestore)[0]


def load_episode(bag: str | Path) -> Episode:
    from rosbags.highlevel import AnyReader

    bag = Path(bag)
    if not is_complete(bag):
        raise RecordingError(f"{bag} is not a complete bag (its recorder died?): run `octo-ros repair {bag}` first")
    by_topic: dict[str, list[tuple[int, Any]]] = {}
    types: dict[str, str] = {}
    with AnyReader([bag]) as reader:
        for conn in reader.connections:
            types[conn.topic] = conn.msgtype
        for conn, t_ns, raw in reader.messages():
            by_topic.setdefault(conn.topic, []).append((t_ns, deserialize(reader, raw, conn.msgtype)))
        start_ns, end_ns = reader.start_time, reader.end_time

    metadata: dict[str, Any] = {}
    for _, msg in by_topic.get(METADATA_TOPIC, []):
        metadata.update(json.loads(msg.data))  # stop (last) overrides start
    try:
        from octo_ros.recording.bag import read_episode_metadata

        metadata.update(read_episode_metadata(bag))
    except (OSError, KeyError, ValueError):
        pass

    cameras, goal = [], None
    for topic in sorted(by_topic):
        if types[topic] not in IMAGE_TYPES:
            continue
        msgs = by_topic[topic]
        if topic.rstrip("/").endswith("goal_image"):
            from octo_ros.perception.image_codec import decode_image_msg

            goal = decode_image_msg(msgs[-1][1])
            continue
        cameras.append(CameraStream(topic, np.array([t for t, _ in msgs], dtype=np.int64), [m for _, m in msgs]))

    joint_topics = {t: by_topic.get(t, []) for t in sorted(types) if types[t] == "sensor_msgs/msg/JointState"}
    state_times, state_names, states, state_origin = robot_state(joint_topics, metadata)

    diagnostics = [(t, st) for topic in by_topic if types[topic] == "diagnostic_msgs/msg/DiagnosticArray"
                   for t, arr in by_topic[topic] for st in arr.status]
    chunks = None
    received = sorted(((t, ActionChunk.from_msg(m)) for topic in sorted(by_topic)
                       if types[topic] == "octo_ros_msgs/msg/ActionChunk" for t, m in by_topic[topic]), key=lambda x: x[0])
    received = executed_source_only(received, diagnostics)
    if received:
        shapes = {(len(c.dimension_names), c.actions.shape[1]) for _, c in received}
        if len({dim for _, dim in shapes}) > 1:
            raise RecordingError(f"{bag}: action chunks of different dimensions {sorted(shapes)} in one episode")
        chunks = Chunks(times=np.array([t for t, _ in received], dtype=np.int64), items=[c for _, c in received])

    status = [(t, m) for topic in by_topic if types[topic] == "octo_ros_msgs/msg/PolicyStatus" for t, m in by_topic[topic]]
    clamps = [t for t, st in diagnostics
              if "clamp" in st.message.lower() or any("clamp" in kv.key.lower() and kv.value.lower() not in ("0", "false", "")
                                                      for kv in st.values)]
    instructions = [(t, m.data) for topic in by_topic if topic.endswith("instruction") and types[topic] == "std_msgs/msg/String"
                    for t, m in by_topic[topic]]
    return Episode(
        bag=bag, metadata=metadata, start_ns=start_ns, end_ns=end_ns, cameras=cameras, goal_image=goal,
        state_times=state_times, state_names=state_names, states=states, state_origin=state_origin,
        joint_topics=list(joint_topics), chunks=chunks,
        status_times=np.array([t for t, _ in status], dtype=np.int64),
        status_state=np.array([m.state for _, m in status], dtype=np.int64),
        clamp_times=np.array(sorted(clamps), dtype=np.int64), instructions=sorted(instructions),
    )


def executed_source_only(chunks: list[tuple[int, ActionChunk]], diagnostics: list[tuple[int, Any]]) -> list[tuple[int, ActionChunk]]:
    """The chunks of the source the adapter executed when each arrived (its diagnostics report
    ``source``, about once a second); all of them before the first report or without any."""
    reports = sorted((t, kv.value) for t, st in diagnostics for kv in st.values if kv.key == "source")
    if not reports:
        return chunks
    times = np.array([t for t, _ in reports], dtype=np.int64)
    kept = []
    for t, chunk in chunks:
        i = int(np.searchsorted(times, t, side="right")) - 1
        if i < 0 or reports[i][1] == chunk.source:
            kept.append((t, chunk))
    return kept


def recorded_layout(metadata: dict[str, Any]) -> tuple[ProprioLayout | None, str]:
    """The episode's proprio layout, if it recorded one."""
    if metadata.get("proprio_layout"):
        return ProprioLayout.from_dict(metadata["proprio_layout"]), "recorded with the episode"
    return None, "no proprio layout recorded with the episode"


def _bag_topic(topic: str, bag_topics: list[str]) -> str | None:
    """The recorded topic a layout topic names (relative names match under any namespace)."""
    if topic in bag_topics:
        return topic
    matches = [t for t in bag_topics if not topic.startswith("/") and t.endswith("/" + topic)]
    return matches[0] if len(matches) == 1 else None


def robot_state(joint_topics: dict[str, list[tuple[int, Any]]], metadata: dict[str, Any]):
    """(times, names, states, origin) from the recorded joint states (see the module docstring)."""
    try:
        layout, origin = recorded_layout(metadata)
    except ValueError as exc:
        return None, [], None, f"the recorded proprio layout is invalid: {exc}"
    if layout is not None and layout.joint_names:
        topics = {s.topic: _bag_topic(s.topic, list(joint_topics)) for s in layout.sources}
        absent = [t for t, bag_topic in topics.items() if bag_topic is None]
        if absent:
            return None, [], None, (f"the proprio layout ({origin}) needs joint states on {absent}, not in the bag "
                                    f"(JointState topics: {list(joint_topics)})")
        events = sorted(((t, k, m) for k, s in enumerate(layout.sources) for t, m in joint_topics[topics[s.topic]]),
                        key=lambda e: (e[0], e[1]))
        latest: list = [None] * len(layout.sources)
        times, rows = [], []
        for t, k, m in events:
            try:
                latest[k] = layout.parse(layout.sources[k].topic, list(m.name), list(m.position))
            except JointStateError:
                continue  # the buffer drops such a message too
            if all(x is not None for x in latest):
                values, missing = layout.merge(latest)
                if not missing:
                    times.append(t)
                    rows.append(values)
        states = np.stack(rows) if rows else np.zeros((0, len(layout.joint_names)), np.float32)
        return np.array(times, dtype=np.int64), list(layout.joint_names), states, f"proprio layout {origin}"
    topic = _bag_topic(layout.sources[0].topic, list(joint_topics)) if layout is not None else None
    if topic is None and len(joint_topics) == 1:
        topic = next(iter(joint_topics))
    if topic is None:
        return None, [], None, (f"{origin}; cannot tell which of the JointState topics {list(joint_topics)} is the "
                                "robot state" if joint_topics else "no JointState topic")
    msgs = joint_topics[topic]
    if not msgs:
        return None, [], None, f"no message on {topic}"
    names = list(msgs[0][1].name)
    rows = [(t, np.asarray(m.position, dtype=np.float32)) for t, m in msgs if list(m.name) == names]
    return (np.array([t for t, _ in rows], dtype=np.int64), names, np.stack([p for _, p in rows]),
            f"raw joint positions of {topic}")


def gripper_dim(ep: Episode) -> int | None:
    if ep.chunks is None:
        return None
    names = [n.lower() for n in ep.chunks.dimension_names]
    for i, n in enumerate(names):
        if "gripper" in n:
            return i
    return None
