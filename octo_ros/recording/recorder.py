"""The recorder's core without ROS: which topics to record with which QoS, the episode in progress
(start, messages, flushes, stop), the latched messages cached between episodes, the evidence each
episode carries, automatic episodes from the policy's task changes, and the recorder's status.

The node (``octo_ros/ros/nodes/recorder.py``) owns the subscriptions, services and timers and calls
in here; every call is serialised by :attr:`EpisodeRecorder.lock` (subscriptions, timers and
services may run on different threads). ``log`` is the node's logger (``info``/``warning``/``error``).
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from octo_ros.perception.observation import JointStateSourceConfig, ProprioLayout
from octo_ros.recording.bag import EpisodeBagWriter, EpisodeInfo, RecordingError, TopicSpec
from octo_ros.recording.types import RecordingTypes, normalize_type

# evidence the recorder learns from the graph's /diagnostics when it is not given
GRAPH_EVIDENCE = ("checkpoint_hash", "adapter_config", "gripper_convention")
EVIDENCE = ("checkpoint_id", "checkpoint_hash", "dataset_statistics_key", "adapter_config", "gripper_convention")
IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}


def default_qos_kind(topic: str, msgtype: str) -> str:
    leaf = topic.rstrip("/").rsplit("/", 1)[-1]
    if leaf in ("goal_image", "instruction"):
        return "latched"
    if msgtype in IMAGE_TYPES:
        return "sensor"
    return "reliable"


def offered_qos_kind(offered: Iterable[tuple[bool, bool]]) -> str:
    """The QoS kind to subscribe with, as rosbag2 adapts to what the publishers offer, given
    ``(best_effort, transient_local)`` per publisher ('' with no publisher yet): best effort if any
    publisher is (a reliable subscription would get nothing from it), latched only if every one is
    transient-local."""
    offered = list(offered)
    if not offered:
        return ""
    if any(best_effort for best_effort, _ in offered):
        return "sensor"
    if all(transient_local for _, transient_local in offered):
        return "latched"
    return "reliable"


def topic_requests(topics: list[str], types: list[str], qos_kinds: list[str]) -> list[tuple[str, str, str]]:
    """The ``topics`` / ``topic_types`` / ``topic_qos`` parameters as (topic, type or '', QoS kind
    or ''); empty entries of ``topics`` are dropped, ``[""]`` lists are empty."""
    topics = [t for t in topics if t]
    types = [] if types == [""] else types
    qos_kinds = [] if qos_kinds == [""] else qos_kinds
    if types and len(types) != len(topics):
        raise ValueError(f"topic_types has {len(types)} entries for {len(topics)} topics")
    if qos_kinds and len(qos_kinds) != len(topics):
        raise ValueError(f"topic_qos has {len(qos_kinds)} entries for {len(topics)} topics")
    return [(topic, types[i] if types else "", qos_kinds[i] if qos_kinds else "") for i, topic in enumerate(topics)]


def resolved_proprio_layout(text: str, resolve: Callable[[str], str]) -> dict:
    """The ``proprio_layout`` parameter (JSON), checked, with its topics resolved by ``resolve`` (as
    the recorder's own topics are); {} when empty."""
    if not text:
        return {}
    try:
        layout = ProprioLayout.from_dict(json.loads(text))
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"parameter proprio_layout is not a valid layout: {exc}") from None
    sources = tuple(JointStateSourceConfig(resolve(s.topic), s.prefix) for s in layout.sources)
    return ProprioLayout(layout.joint_names, sources, layout.normalization).to_dict()


@dataclass
class RecorderConfig:
    output_dir: str = "~/octo_ros_bags"  # where bags go (created if missing)
    robot: str = "robot"  # bag names are <robot>_<YYYYmmdd-HHMMSS>
    flush_period_s: float = 0.5  # seconds of data at most lost by a crash
    fsync: bool = False  # fsync after every flush (power-loss safety)


class EpisodeRecorder:
    """At most one episode at a time, written as its messages arrive (serialized CDR). ``evidence``:
    the :data:`EVIDENCE` given (the rest of :data:`GRAPH_EVIDENCE` is learnt with :meth:`on_evidence`);
    ``seed``: the policy's (None: unknown); ``proprio_layout``: see :func:`resolved_proprio_layout`."""

    def __init__(self, config: RecorderConfig, evidence: dict[str, str], seed: int | None, proprio_layout: dict,
                 types: RecordingTypes, log):
        self.config = config
        self.output_dir = config.output_dir
        self.evidence = {key: evidence.get(key, "") for key in EVIDENCE}
        self.seed, self.proprio_layout = seed, proprio_layout
        self.types, self.log = types, log
        self.lock = threading.RLock()
        self.episode: EpisodeBagWriter | None = None
        self.episode_auto = False
        self.latched_cache: dict[str, tuple[int, bytes]] = {}
        self.specs: dict[str, TopicSpec] = {}  # resolved name → spec, once subscribed
        self.graph_evidence = {key for key in GRAPH_EVIDENCE if not self.evidence[key]}
        self.other_types: dict[str, list[str]] = {}  # recorded topic → types its publishers use instead, now
        self.episode_other_types: dict[str, set[str]] = {}  # the same, during the episode in progress
        self._mismatches_logged: set[tuple[str, str]] = set()
        self._last_task: tuple[str, str] | None = None

    @property
    def expanded_output_dir(self) -> str:
        return os.path.expanduser(self.output_dir)

    # ----------------------------------------------------------------- topics
    def topic_spec(self, name: str, msgtype: str, kind: str, offered_kind: Callable[[], str]) -> TopicSpec:
        """The spec to subscribe ``name`` with (its type made known; the kind given, else what the
        publishers offer, else the default for the topic). Raises when the type has no definition."""
        msgtype = normalize_type(msgtype)
        self.types.ensure(msgtype)
        return TopicSpec(name, msgtype, kind or offered_kind() or default_qos_kind(name, msgtype))

    def add_topic(self, spec: TopicSpec) -> None:
        """A topic subscribed to: recorded from now on, also by the episode in progress."""
        self.specs[spec.topic] = spec
        with self.lock:
            if self.episode is not None:
                try:
                    self.episode.add_topic(spec)
                except RecordingError as exc:
                    self.log.error(str(exc))

    def on_publisher_types(self, published: dict[str, set[str]]) -> None:
        """The types each recorded topic's publishers use now. A publisher of another type never
        matches the subscription: its messages are lost without a word from DDS, so say so (logged
        once per topic and type, in the status and in the notes of the episodes it overlapped)."""
        current = {}
        for name, spec in self.specs.items():
            others = sorted({normalize_type(t) for t in published.get(name, ())} - {spec.msgtype})
            if others:
                current[name] = others
            for other in others:
                if (name, other) not in self._mismatches_logged:
                    self._mismatches_logged.add((name, other))
                    self.log.error(f"{name} is published as {other}, recorded as {spec.msgtype}: "
                                   "those messages cannot be recorded")
        with self.lock:
            self.other_types = current
            if self.episode is not None:
                for name, others in current.items():
                    self.episode_other_types.setdefault(name, set()).update(others)

    def describe_topics(self) -> str:
        return ', '.join(f'{s.topic} ({s.msgtype}, {s.qos})' for s in self.specs.values())

    # ----------------------------------------------------------------- messages
    def on_message(self, spec: TopicSpec, stamp_ns: int, data: bytes) -> None:
        if spec.qos == "latched":
            self.latched_cache[spec.topic] = (stamp_ns, data)
        with self.lock:
            ep = self.episode
            if ep is None or ep.failure:
                return
            try:
                ep.write(spec.topic, stamp_ns, data)
            except RecordingError as exc:
                self.log.error(f"episode {ep.path.name}: {exc}")

    def flush_if_due(self) -> None:
        with self.lock:
            ep = self.episode
            if ep is None or ep.failure:
                return
            try:
                ep.flush_if_due()
            except RecordingError as exc:
                self.log.error(f"episode {ep.path.name}: {exc}")

    def on_evidence(self, key: str, value: str) -> None:
        """A value the graph's /diagnostics report for ``key`` (kept when it is evidence not given)."""
        if key in self.graph_evidence and value and value != self.evidence[key]:
            with self.lock:
                self.evidence[key] = value
                if self.episode is not None:
                    setattr(self.episode.info, key, value)

    # ----------------------------------------------------------------- episodes
    def start_episode(self, instruction: str, metadata: dict[str, str], auto: bool = False) -> tuple[bool, str, str]:
        """(success, message, bag path) as ``~/start_episode`` answers."""
        with self.lock:
            if self.episode is not None:
                return False, f"episode {self.episode.path.name} is already recording; stop it first", str(self.episode.path)
            metadata = dict(metadata)
            operator = metadata.pop("operator", "")
            if not instruction:
                instruction = self._cached_instruction()
            info = EpisodeInfo(
                robot=self.config.robot, instruction=instruction, operator=operator, seed=self.seed,
                goal_image_topic=next((t for t in self.specs if t.endswith("goal_image")), ""),
                metadata=metadata, proprio_layout=self.proprio_layout, **self.evidence,
            )
            try:
                ep = EpisodeBagWriter(self.expanded_output_dir, info, list(self.specs.values()),
                                      flush_period=self.config.flush_period_s, fsync=self.config.fsync, types=self.types)
                for topic, (stamp, data) in self.latched_cache.items():
                    ep.write(topic, stamp, data)
            except RecordingError as exc:
                self.log.error(f"cannot start an episode: {exc}")
                return False, str(exc), ""
            self.episode, self.episode_auto = ep, auto
            self.episode_other_types = {topic: set(others) for topic, others in self.other_types.items()}
            self.log.info(f"episode {ep.path.name} started: {instruction!r}")
            return True, f"recording {ep.path.name}", str(ep.path)

    def stop_episode(self, outcome: str, notes: dict[str, str]) -> tuple[bool, str, str]:
        """(success, message, bag path) as ``~/stop_episode`` answers."""
        with self.lock:
            ep = self.episode
            if ep is None:
                return False, "no episode is recording", ""
            self.episode = None
            failure = ep.failure
            silent = [t for t, n in ep.counts.items() if n == 0]
            if silent:  # a configured topic that delivered nothing: said in the episode's metadata
                notes = {**notes, "topics_without_messages": ", ".join(silent)}
                self.log.warning(f"episode {ep.path.name}: no messages on {', '.join(silent)}")
            if self.episode_other_types:
                notes = {**notes, "topics_of_another_type": _types_text(self.episode_other_types)}
            try:
                path = ep.close(outcome or "unlabeled", notes)
            except RecordingError as exc:
                self.log.error(f"episode {ep.path.name} stopped with an error: {exc}")
                return False, str(exc), str(ep.path)
            if failure:  # a flush failed mid-episode but closing worked (space freed)
                return False, f"episode stopped, but data was lost mid-episode: {failure}", str(path)
            total = sum(ep.counts.values())
            self.log.info(f"episode {path.name} stopped ({outcome!r}), {total} messages")  # escaped
            return True, f"stopped {path.name}: {total} messages", str(path)

    def on_policy_task(self, task_kind: str, instruction: str) -> None:
        """Automatic episodes: a task change stops the automatic episode in progress and a new task
        (kind not ``none``) starts one."""
        task = (task_kind, instruction)
        if task == self._last_task:
            return
        self._last_task = task
        if self.episode is not None and self.episode_auto:
            self.stop_episode("unlabeled", {"stopped_by": f"task change to {task_kind}"})
        if task_kind not in ("", "none") and self.episode is None:
            self.start_episode(instruction, {"started_by": "auto_episode"}, auto=True)

    def _cached_instruction(self) -> str:
        for topic, (_, data) in self.latched_cache.items():
            if topic.endswith("/instruction") and self.specs[topic].msgtype == "std_msgs/msg/String":
                return self.types.deserialize(data, "std_msgs/msg/String").data
        return ""

    # ----------------------------------------------------------------- status
    def status(self, waiting_for: list[str]) -> tuple[str, str, dict]:
        """(``ok`` | ``warn`` | ``error``, message, values) for the diagnostics; ``waiting_for``: the
        topics whose type is not known yet."""
        with self.lock:
            episode = self.episode
            values = {"recording": episode is not None, "output_dir": self.output_dir,
                      "topics": len(self.specs), "waiting_for_types": ", ".join(waiting_for),
                      "topics_of_another_type": _types_text(self.other_types)}
            if episode is not None:
                values.update({"bag": str(episode.path), "messages": sum(episode.counts.values()),
                               "topics_without_messages": ", ".join(t for t, n in episode.counts.items() if n == 0)})
                failure = episode.failure
        if episode is not None and failure:
            return "error", f"recording failed: {failure}", values
        if waiting_for:
            return "warn", f"no publisher yet to learn the type of {', '.join(waiting_for)}", values
        return "ok", f"recording {episode.path.name}" if episode is not None else "idle", values

    def close(self) -> None:
        """On shutdown: close a running episode properly (outcome ``interrupted``)."""
        if self.episode is not None:
            ok, message, _ = self.stop_episode("interrupted", {"stopped_by": "recorder shutdown"})
            if ok:  # one severity per logging call site: rclpy raises on a change
                self.log.info(message)
            else:
                self.log.error(message)


def _types_text(types: dict) -> str:
    return ", ".join(f"{topic} ({', '.join(sorted(others))})" for topic, others in sorted(types.items()))
