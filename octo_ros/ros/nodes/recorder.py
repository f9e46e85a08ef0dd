"""recorder: rollout episodes → one rosbag2 (MCAP) bag each.

Parameters
  topics            string[]  topics to record (relative names resolve in the node's namespace)
  topic_types       string[]  same length as ``topics`` (``sensor_msgs/msg/Image``); empty or
                              an empty entry → the type is discovered from the graph
  topic_qos         string[]  optional, same length: ``sensor`` (best effort), ``reliable``,
                              ``latched`` (reliable + transient local; the last message is cached
                              between episodes and written when an episode starts). Default:
                              images → sensor, ``*goal_image``/``*instruction`` → latched, else reliable
  output_dir        string    where bags go (created if missing); default ``~/octo_ros_bags``
  robot             string    robot name: bag names are ``<robot>_<YYYYmmdd-HHMMSS>``
  checkpoint_id, checkpoint_hash, dataset_statistics_key, adapter_config, gripper_convention
                    string    evidence stored with every episode (the launcher passes the first and
                              the third); ``checkpoint_hash``, ``adapter_config`` and
                              ``gripper_convention``, when not set, come from the graph: the values
                              of those names in the /diagnostics of the nodes in the recorder's
                              namespace (the policy's and the adapter's), also for a running episode
  seed              int       random seed of the policy (-1: unknown)
  proprio_layout    string    JSON of the observation buffer's ProprioLayout (the launcher passes
                              it): how the export builds the robot state from the joint states;
                              its topics are resolved in this node's namespace
  flush_period      double    seconds of data at most lost by a crash (default 0.5)
  fsync             bool      fsync after every flush (power-loss safety; default false)
  auto_episode      bool      start/stop episodes from the policy's task changes (default false)
  auto_episode_status_topic  string  PolicyStatus topic watched for task changes (``policy/status``)

Services
  ~/start_episode   octo_ros_msgs/StartEpisode: instruction, metadata (``operator`` and free-form)
  ~/stop_episode    octo_ros_msgs/StopEpisode: outcome, metadata (notes)

Messages are written as received (serialized CDR from raw subscriptions), stamped with the
node clock's receive time; header stamps stay inside the messages.
"""
from __future__ import annotations

import importlib
import json
import threading

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from octo_ros.perception.observation import JointStateSourceConfig, ProprioLayout
from octo_ros.recording.bag import (
    EpisodeBagWriter,
    EpisodeInfo,
    RecordingError,
    TopicSpec,
    unfinished_bags,
)
from octo_ros.recording.types import normalize_type, recording_types
from octo_ros.ros.support import ERROR, OK, QOS_BY_KIND, RELIABLE_QOS, WARN, Diagnostics, run_node
from octo_ros_msgs.msg import PolicyStatus
from octo_ros_msgs.srv import StartEpisode, StopEpisode

# evidence the recorder learns from the graph's /diagnostics when it is not given
GRAPH_EVIDENCE = ("checkpoint_hash", "adapter_config", "gripper_convention")
IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}


def default_qos_kind(topic: str, msgtype: str) -> str:
    leaf = topic.rstrip("/").rsplit("/", 1)[-1]
    if leaf in ("goal_image", "instruction"):
        return "latched"
    if msgtype in IMAGE_TYPES:
        return "sensor"
    return "reliable"


def message_class(msgtype: str):
    pkg, _, name = normalize_type(msgtype).split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        p = self.declare_parameter
        topics = list(p("topics", [""]).value)
        types = list(p("topic_types", [""]).value)
        qos_kinds = list(p("topic_qos", [""]).value)
        self.output_dir = p("output_dir", "~/octo_ros_bags").value
        self.robot = p("robot", "robot").value
        self.evidence = {
            "checkpoint_id": p("checkpoint_id", "").value,
            "checkpoint_hash": p("checkpoint_hash", "").value,
            "dataset_statistics_key": p("dataset_statistics_key", "").value,
            "adapter_config": p("adapter_config", "").value,
            "gripper_convention": p("gripper_convention", "").value,
        }
        seed = p("seed", -1).value
        self.seed = None if seed < 0 else int(seed)
        self.proprio_layout = self._proprio_layout(p("proprio_layout", "").value)
        self.flush_period = float(p("flush_period", 0.5).value)
        self.fsync = bool(p("fsync", False).value)
        auto = bool(p("auto_episode", False).value)
        status_topic = p("auto_episode_status_topic", "policy/status").value

        topics = [t for t in topics if t]
        if types == [""]:
            types = []
        if qos_kinds == [""]:
            qos_kinds = []
        if types and len(types) != len(topics):
            raise ValueError(f"topic_types has {len(types)} entries for {len(topics)} topics")
        if qos_kinds and len(qos_kinds) != len(topics):
            raise ValueError(f"topic_qos has {len(qos_kinds)} entries for {len(topics)} topics")
        self.types = recording_types()
        self._lock = threading.RLock()
        self.episode: EpisodeBagWriter | None = None
        self.episode_auto = False
        self.latched_cache: dict[str, tuple[int, bytes]] = {}
        self.specs: dict[str, TopicSpec] = {}  # resolved name → spec, once subscribed
        self.pending: dict[str, tuple[str, str]] = {}  # resolved name → (type or "", qos kind or "")
        for i, topic in enumerate(topics):
            name = self.resolve_topic_name(topic)
            self.pending[name] = (types[i] if types else "", qos_kinds[i] if qos_kinds else "")
        self._subscribe_pending()
        if self.pending:
            self.create_timer(1.0, self._subscribe_pending)

        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_service(StartEpisode, "~/start_episode", self._on_start)
        self.create_service(StopEpisode, "~/stop_episode", self._on_stop)
        self.create_timer(max(0.05, self.flush_period / 2), self._on_flush_timer)
        self._graph_evidence = {key for key in GRAPH_EVIDENCE if not self.evidence[key]}
        if self._graph_evidence:
            self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        if auto:
            self._last_task: tuple[str, str] | None = None
            self.create_subscription(PolicyStatus, status_topic, self._on_policy_status, 10)
        for bag in unfinished_bags(_expand(self.output_dir)):
            self.get_logger().warning(f"unfinished bag {bag} (a recorder died): run `octo-ros repair {bag}`")
        self.get_logger().info(
            f"recording {', '.join(f'{s.topic} ({s.msgtype}, {s.qos})' for s in self.specs.values()) or 'no topic yet'}"
            + (f"; waiting for the types of {', '.join(self.pending)}" if self.pending else "")
            + f" into {self.output_dir}" + ("; auto episodes from " + status_topic if auto else ""))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        namespace = self.get_namespace().strip("/")
        for status in msg.status:
            if status.name.rpartition("/")[0] != namespace:  # another graph's node
                continue
            for kv in status.values:
                if kv.key in self._graph_evidence and kv.value and kv.value != self.evidence[kv.key]:
                    with self._lock:
                        self.evidence[kv.key] = kv.value
                        if self.episode is not None:
                            setattr(self.episode.info, kv.key, kv.value)

    def _publish_diagnostics(self) -> None:
        with self._lock:
            episode = self.episode
            values = {"recording": episode is not None, "output_dir": self.output_dir,
                      "topics": len(self.specs), "waiting_for_types": ", ".join(self.pending)}
            if episode is not None:
                values.update({"bag": str(episode.path), "messages": sum(episode.counts.values()),
                               "topics_without_messages": ", ".join(t for t, n in episode.counts.items() if n == 0)})
                failure = episode.failure
        if episode is not None and failure:
            level, message = ERROR, f"recording failed: {failure}"
        elif self.pending:
            level, message = WARN, f"no publisher yet to learn the type of {', '.join(self.pending)}"
        else:
            level, message = OK, f"recording {episode.path.name}" if episode is not None else "idle"
        self.diagnostics.publish(level, message, values)

    # ----------------------------------------------------------------- subscriptions

    def _subscribe_pending(self) -> None:
        if not self.pending:
            return
        graph = dict(self.get_topic_names_and_types()) if any(not t for t, _ in self.pending.values()) else {}
        for name, (msgtype, kind) in list(self.pending.items()):
            if not msgtype:
                found = graph.get(name, [])
                if not found:
                    continue
                msgtype = found[0]
            msgtype = normalize_type(msgtype)
            try:
                self.types.ensure(msgtype)
                cls = message_class(msgtype)
            except Exception as exc:  # noqa: BLE001 - report and keep the node up
                self.get_logger().error(f"cannot record {name}: {exc}")
                del self.pending[name]
                continue
            spec = TopicSpec(name, msgtype, kind or self._offered_qos_kind(name) or default_qos_kind(name, msgtype))
            self.create_subscription(cls, name, lambda data, s=spec: self._on_message(s, data),
                                     QOS_BY_KIND.get(spec.qos, RELIABLE_QOS), raw=True)
            self.specs[name] = spec
            del self.pending[name]
            with self._lock:
                if self.episode is not None:
                    try:
                        self.episode.add_topic(spec)
                    except RecordingError as exc:
                        self.get_logger().error(str(exc))

    def _offered_qos_kind(self, topic: str) -> str:
        """The QoS the publishers of ``topic`` offer, as rosbag2 adapts to it ('' with no publisher
        yet): best effort if any publisher is (a reliable subscription would get nothing from it),
        latched only if every one is transient-local."""
        offered = [info.qos_profile for info in self.get_publishers_info_by_topic(topic)]
        if not offered:
            return ""
        if any(q.reliability == ReliabilityPolicy.BEST_EFFORT for q in offered):
            return "sensor"
        if all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered):
            return "latched"
        return "reliable"

    def _on_message(self, spec: TopicSpec, data: bytes) -> None:
        stamp = self.get_clock().now().nanoseconds
        if spec.qos == "latched":
            self.latched_cache[spec.topic] = (stamp, data)
        with self._lock:
            ep = self.episode
            if ep is None or ep.failure:
                return
            try:
                ep.write(spec.topic, stamp, data)
            except RecordingError as exc:
                self.get_logger().error(f"episode {ep.path.name}: {exc}")

    def _on_flush_timer(self) -> None:
        with self._lock:
            ep = self.episode
            if ep is None or ep.failure:
                return
            try:
                ep.flush_if_due()
            except RecordingError as exc:
                self.get_logger().error(f"episode {ep.path.name}: {exc}")

    # ----------------------------------------------------------------- episodes

    def start_episode(self, instruction: str, metadata: dict[str, str], auto: bool = False) -> tuple[bool, str, str]:
        with self._lock:
            if self.episode is not None:
                return False, f"episode {self.episode.path.name} is already recording; stop it first", str(self.episode.path)
            metadata = dict(metadata)
            operator = metadata.pop("operator", "")
            if not instruction:
                instruction = self._cached_instruction()
            info = EpisodeInfo(
                robot=self.robot, instruction=instruction, operator=operator, seed=self.seed,
                goal_image_topic=next((t for t in self.specs if t.endswith("goal_image")), ""),
                metadata=metadata, proprio_layout=self.proprio_layout, **self.evidence,
            )
            try:
                ep = EpisodeBagWriter(_expand(self.output_dir), info, list(self.specs.values()),
                                      flush_period=self.flush_period, fsync=self.fsync, types=self.types)
                for topic, (stamp, data) in self.latched_cache.items():
                    ep.write(topic, stamp, data)
            except RecordingError as exc:
                self.get_logger().error(f"cannot start an episode: {exc}")
                return False, str(exc), ""
            self.episode, self.episode_auto = ep, auto
            self.get_logger().info(f"episode {ep.path.name} started: {instruction!r}")
            return True, f"recording {ep.path.name}", str(ep.path)

    def stop_episode(self, outcome: str, notes: dict[str, str]) -> tuple[bool, str, str]:
        with self._lock:
            ep = self.episode
            if ep is None:
                return False, "no episode is recording", ""
            self.episode = None
            failure = ep.failure
            silent = [t for t, n in ep.counts.items() if n == 0]
            if silent:  # a configured topic that delivered nothing: said in the episode's metadata
                notes = {**notes, "topics_without_messages": ", ".join(silent)}
                self.get_logger().warning(f"episode {ep.path.name}: no messages on {', '.join(silent)}")
            try:
                path = ep.close(outcome or "unlabeled", notes)
            except RecordingError as exc:
                self.get_logger().error(f"episode {ep.path.name} stopped with an error: {exc}")
                return False, str(exc), str(ep.path)
            if failure:  # a flush failed mid-episode but closing worked (space freed)
                return False, f"episode stopped, but data was lost mid-episode: {failure}", str(path)
            total = sum(ep.counts.values())
            self.get_logger().info(f"episode {path.name} stopped ({outcome}), {total} messages")
            return True, f"stopped {path.name}: {total} messages", str(path)

    def _proprio_layout(self, text: str) -> dict:
        """The ``proprio_layout`` parameter, checked, with its topics resolved as this node's are."""
        if not text:
            return {}
        try:
            layout = ProprioLayout.from_dict(json.loads(text))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"parameter proprio_layout is not a valid layout: {exc}") from None
        sources = tuple(JointStateSourceConfig(self.resolve_topic_name(s.topic), s.prefix) for s in layout.sources)
        return ProprioLayout(layout.joint_names, sources, layout.normalization).to_dict()

    def _cached_instruction(self) -> str:
        for topic, (_, data) in self.latched_cache.items():
            if topic.endswith("/instruction") and self.specs[topic].msgtype == "std_msgs/msg/String":
                return self.types.deserialize(data, "std_msgs/msg/String").data
        return ""

    def _on_start(self, request, response):
        metadata = {kv.key: kv.value for kv in request.metadata}
        response.success, response.message, response.bag_path = self.start_episode(request.instruction, metadata)
        return response

    def _on_stop(self, request, response):
        notes = {kv.key: kv.value for kv in request.metadata}
        response.success, response.message, response.bag_path = self.stop_episode(request.outcome, notes)
        return response

    def _on_policy_status(self, msg: PolicyStatus) -> None:
        task = (msg.task_kind, msg.instruction)
        if task == self._last_task:
            return
        self._last_task = task
        if self.episode is not None and self.episode_auto:
            self.stop_episode("unlabeled", {"stopped_by": f"task change to {msg.task_kind}"})
        if msg.task_kind not in ("", "none") and self.episode is None:
            self.start_episode(msg.instruction, {"started_by": "auto_episode"}, auto=True)

    def close(self) -> None:
        """On Ctrl-C: close a running episode properly (outcome ``interrupted``)."""
        if self.episode is not None:
            ok, message, _ = self.stop_episode("interrupted", {"stopped_by": "recorder shutdown"})
            if ok:  # one severity per logging call site: rclpy raises on a change
                self.get_logger().info(message)
            else:
                self.get_logger().error(message)


def _expand(path: str) -> str:
    import os

    return os.path.expanduser(path)


def main() -> None:
    run_node(RecorderNode, "recorder")


if __name__ == "__main__":
    main()
