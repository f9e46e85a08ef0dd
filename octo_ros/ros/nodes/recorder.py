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
node clock's receive time; header stamps stay inside the messages. A recorded topic whose
publishers use another type than the recorded one delivers nothing: it is named (ERROR, once per
type), in the diagnostics and in the episode's notes (``topics_of_another_type``).
"""
from __future__ import annotations

import importlib

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from octo_ros.recording.bag import unfinished_bags
from octo_ros.recording.recorder import EpisodeRecorder, RecorderConfig, offered_qos_kind, resolved_proprio_layout, topic_requests
from octo_ros.recording.types import normalize_type, recording_types
from octo_ros.ros.support import LEVELS, QOS_BY_KIND, RELIABLE_QOS, Diagnostics, declare_config, run_node
from octo_ros_msgs.msg import PolicyStatus
from octo_ros_msgs.srv import StartEpisode, StopEpisode


def message_class(msgtype: str):
    pkg, _, name = normalize_type(msgtype).split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        p = self.declare_parameter
        requests = topic_requests(list(p("topics", [""]).value), list(p("topic_types", [""]).value),
                                  list(p("topic_qos", [""]).value))
        evidence = {key: p(key, "").value for key in ("checkpoint_id", "checkpoint_hash", "dataset_statistics_key",
                                                      "adapter_config", "gripper_convention")}
        seed = p("seed", -1).value
        config = declare_config(self, RecorderConfig(), ("output_dir", "robot", "flush_period_s", "fsync"))
        self.recorder = EpisodeRecorder(
            config, evidence, None if seed < 0 else int(seed),
            resolved_proprio_layout(p("proprio_layout", "").value, self.resolve_topic_name), recording_types(),
            self.get_logger())
        auto = bool(p("auto_episode", False).value)
        status_topic = p("auto_episode_status_topic", "policy/status").value
        # resolved name → (type or "", qos kind or ""), until subscribed
        self.pending = {self.resolve_topic_name(topic): (msgtype, kind) for topic, msgtype, kind in requests}
        self._subscribe_pending()
        if self.pending:
            self.create_timer(1.0, self._subscribe_pending)

        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_service(StartEpisode, "~/start_episode", self._on_start)
        self.create_service(StopEpisode, "~/stop_episode", self._on_stop)
        self.create_timer(max(0.05, config.flush_period_s / 2), self.recorder.flush_if_due)
        if self.recorder.graph_evidence:
            self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        if auto:
            self.create_subscription(PolicyStatus, status_topic,
                                     lambda msg: self.recorder.on_policy_task(msg.task_kind, msg.instruction), 10)
        for bag in unfinished_bags(self.recorder.expanded_output_dir):
            self.get_logger().warning(f"unfinished bag {bag} (a recorder died): run `octo-ros repair {bag}`")
        self.get_logger().info(
            f"recording {self.recorder.describe_topics() or 'no topic yet'}"
            + (f"; waiting for the types of {', '.join(self.pending)}" if self.pending else "")
            + f" into {self.recorder.output_dir}" + ("; auto episodes from " + status_topic if auto else ""))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        namespace = self.get_namespace().strip("/")
        for status in msg.status:
            if status.name.rpartition("/")[0] == namespace:  # not another graph's node
                for kv in status.values:
                    self.recorder.on_evidence(kv.key, kv.value)

    def _check_publisher_types(self) -> None:
        self.recorder.on_publisher_types({name: {info.topic_type for info in self.get_publishers_info_by_topic(name)}
                                          for name in self.recorder.specs})

    def _publish_diagnostics(self) -> None:
        self._check_publisher_types()
        level, message, values = self.recorder.status(list(self.pending))
        self.diagnostics.publish(LEVELS[level], message, values)

    def _subscribe_pending(self) -> None:
        if not self.pending:
            return
        graph = dict(self.get_topic_names_and_types()) if any(not t for t, _ in self.pending.values()) else {}
        for name, (msgtype, kind) in list(self.pending.items()):
            msgtype = msgtype or next(iter(graph.get(name, [])), "")
            if not msgtype:
                continue
            try:
                spec = self.recorder.topic_spec(name, msgtype, kind, lambda: offered_qos_kind(
                    (q.reliability == ReliabilityPolicy.BEST_EFFORT, q.durability == DurabilityPolicy.TRANSIENT_LOCAL)
                    for q in (info.qos_profile for info in self.get_publishers_info_by_topic(name))))
                cls = message_class(spec.msgtype)
            except Exception as exc:  # noqa: BLE001 - report and keep the node up
                self.get_logger().error(f"cannot record {name}: {exc}")
                del self.pending[name]
                continue
            self.create_subscription(cls, name, lambda data, s=spec: self._on_message(s, data),
                                     QOS_BY_KIND.get(spec.qos, RELIABLE_QOS), raw=True)
            del self.pending[name]
            self.recorder.add_topic(spec)

    def _on_message(self, spec, data: bytes) -> None:
        self.recorder.on_message(spec, self.get_clock().now().nanoseconds, data)

    def _on_start(self, request, response):
        metadata = {kv.key: kv.value for kv in request.metadata}
        response.success, response.message, response.bag_path = self.recorder.start_episode(request.instruction, metadata)
        return response

    def _on_stop(self, request, response):
        notes = {kv.key: kv.value for kv in request.metadata}
        self._check_publisher_types()
        response.success, response.message, response.bag_path = self.recorder.stop_episode(request.outcome, notes)
        return response

    def close(self) -> None:
        """On Ctrl-C: close a running episode properly (outcome ``interrupted``)."""
        self.recorder.close()


def main() -> None:
    run_node(RecorderNode, "recorder")


if __name__ == "__main__":
    main()
