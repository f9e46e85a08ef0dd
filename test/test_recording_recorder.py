"""The recorder's core without ROS (octo_ros.recording.recorder): topic parameters and QoS kinds,
episodes written to real bags (latched messages cached between episodes, the cached instruction,
silent topics and topics published with another type named), automatic episodes from task changes, evidence learnt mid-episode, status."""
import json

import pytest

from octo_ros.recording.bag import TopicSpec, read_episode_metadata
from octo_ros.recording.reading import load_episode
from octo_ros.recording.recorder import (
    EpisodeRecorder,
    RecorderConfig,
    default_qos_kind,
    offered_qos_kind,
    resolved_proprio_layout,
    topic_requests,
)
from octo_ros.recording.types import recording_types


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(("info", text))

    def warning(self, text):
        self.lines.append(("warning", text))

    def error(self, text):
        self.lines.append(("error", text))


def make(tmp_path, **evidence):
    rec = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path / "bags"), robot="widowx"), evidence, 7, {},
                          recording_types(), Log())
    for spec in (TopicSpec("/instruction", "std_msgs/msg/String", "latched"),
                 TopicSpec("/status", "std_msgs/msg/String", "reliable")):
        rec.add_topic(spec)
    return rec


def string(text):
    types = recording_types()
    return types.serialize(types.message_class("std_msgs/msg/String")(data=text), "std_msgs/msg/String")


def test_topic_parameters_pair_up_or_say_what_is_wrong():
    assert topic_requests(["/a", "", "/b"], [""], [""]) == [("/a", "", ""), ("/b", "", "")]
    assert topic_requests(["/a"], ["std_msgs/msg/String"], ["latched"]) == [("/a", "std_msgs/msg/String", "latched")]
    with pytest.raises(ValueError, match="topic_types has 2 entries for 1 topics"):
        topic_requests(["/a"], ["x", "y"], [""])
    with pytest.raises(ValueError, match="topic_qos has 2 entries for 1 topics"):
        topic_requests(["/a"], [""], ["sensor", "reliable"])


def test_qos_kinds_follow_rosbag2():
    assert default_qos_kind("/cell/goal_image", "sensor_msgs/msg/Image") == "latched"
    assert default_qos_kind("/cam/image_raw", "sensor_msgs/msg/Image") == "sensor"
    assert default_qos_kind("/joint_states", "sensor_msgs/msg/JointState") == "reliable"
    assert offered_qos_kind([]) == ""
    assert offered_qos_kind([(False, True), (True, False)]) == "sensor"  # any best effort
    assert offered_qos_kind([(False, True), (False, True)]) == "latched"  # every one transient-local
    assert offered_qos_kind([(False, True), (False, False)]) == "reliable"


def test_proprio_layout_is_checked_and_resolved():
    layout = {"joint_state": {"sources": [{"topic": "joint_states", "prefix": ""}], "joints": ["j1"]}}
    resolved = resolved_proprio_layout(json.dumps(layout), lambda t: "/cell1/" + t)
    assert resolved["joint_state"]["sources"] == [{"topic": "/cell1/joint_states", "prefix": ""}]
    assert resolved_proprio_layout("", str) == {}
    with pytest.raises(ValueError, match="parameter proprio_layout is not a valid layout"):
        resolved_proprio_layout("{not json", str)


def test_an_episode_gets_the_latched_instruction_and_names_silent_topics(tmp_path):
    rec = make(tmp_path, checkpoint_id="ck1")
    rec.on_message(rec.specs["/instruction"], 1_000, string("pick up the spoon"))  # before any episode: cached
    ok, message, path = rec.start_episode("", {"operator": "ana", "site": "lab"})
    assert ok and message.startswith("recording widowx_")
    assert rec.start_episode("again", {})[:2] == (False, f"episode {rec.episode.path.name} is already recording; "
                                                         "stop it first")
    ok, message, path = rec.stop_episode("success", {"note": "clean"})
    assert ok and message.endswith(": 3 messages")  # the instruction and the start and stop metadata
    meta = read_episode_metadata(path)
    assert (meta["instruction"], meta["operator"], meta["metadata"], meta["checkpoint_id"], meta["seed"]) == (
        "pick up the spoon", "ana", {"site": "lab"}, "ck1", 7)
    assert meta["notes"] == {"note": "clean", "topics_without_messages": "/status"}
    assert ("warning", f"episode {rec_name(path)}: no messages on /status") in rec.log.lines
    assert load_episode(path).instruction == "pick up the spoon"
    assert rec.stop_episode("failure", {}) == (False, "no episode is recording", "")


def rec_name(path):
    return path.rsplit("/", 1)[-1]


def test_task_changes_start_and_stop_automatic_episodes(tmp_path):
    rec = make(tmp_path)
    rec.on_policy_task("language", "open the drawer")
    first = rec.episode
    assert first is not None and rec.episode_auto and first.info.instruction == "open the drawer"
    rec.on_policy_task("language", "open the drawer")  # the same task: nothing changes
    assert rec.episode is first
    rec.on_policy_task("none", "")
    assert rec.episode is None
    assert read_episode_metadata(first.path)["notes"]["stopped_by"] == "task change to none"


def test_evidence_from_the_graph_reaches_the_running_episode_unless_given(tmp_path):
    rec = make(tmp_path, checkpoint_hash="given")
    assert rec.graph_evidence == {"adapter_config", "gripper_convention"}
    rec.start_episode("task", {})
    rec.on_evidence("checkpoint_hash", "from-graph")
    rec.on_evidence("gripper_convention", "model 1 = open")
    rec.on_message(rec.specs["/status"], 2_000, string("hold"))
    assert rec.status([])[:2] == ("ok", f"recording {rec.episode.path.name}")
    assert rec.status(["/cam"])[:2] == ("warn", "no publisher yet to learn the type of /cam")
    path = rec.episode.path
    rec.close()
    meta = read_episode_metadata(path)
    assert (meta["checkpoint_hash"], meta["gripper_convention"], meta["outcome"]) == ("given", "model 1 = open",
                                                                                     "interrupted")
    assert rec.status([]) == ("ok", "idle", {"recording": False, "output_dir": str(tmp_path / "bags"), "topics": 2,
                                             "waiting_for_types": "", "topics_of_another_type": ""})


def test_a_topic_published_with_another_type_is_named_and_the_outcome_logged_escaped(tmp_path):
    rec = make(tmp_path)
    rec.on_publisher_types({"/status": {"std_msgs/msg/String"}})
    assert not [line for line in rec.log.lines if line[0] == "error"] and rec.status([])[2]["topics_of_another_type"] == ""
    assert rec.start_episode("pick", {})[0]
    rec.on_publisher_types({"/status": {"std_msgs/msg/String", "sensor_msgs/msg/JointState"}})
    rec.on_publisher_types({"/status": {"sensor_msgs/msg/JointState"}})  # said once
    errors = [text for level, text in rec.log.lines if level == "error"]
    assert errors == ["/status is published as sensor_msgs/msg/JointState, recorded as std_msgs/msg/String: "
                      "those messages cannot be recorded"]
    assert rec.status([])[2]["topics_of_another_type"] == "/status (sensor_msgs/msg/JointState)"
    rec.on_publisher_types({})  # the publisher went away: the episode it overlapped still says so
    ok, _, bag = rec.stop_episode("fail\x1b[2Jure", {})
    assert ok
    assert read_episode_metadata(bag)["notes"]["topics_of_another_type"] == "/status (sensor_msgs/msg/JointState)"
    assert rec.status([])[2]["topics_of_another_type"] == ""
    assert not any("\x1b" in text for _, text in rec.log.lines)
    assert rec.start_episode("next", {})[0]
    ok, _, bag = rec.stop_episode("success", {})
    assert "topics_of_another_type" not in read_episode_metadata(bag)["notes"]
